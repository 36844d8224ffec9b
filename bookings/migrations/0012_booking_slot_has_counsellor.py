"""A booking with a time has a counsellor. Every path that gives a booking its slot gives it
the slot's counsellor too; this makes the database hold it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0011_payment_refunded_earlier'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='booking',
            constraint=models.CheckConstraint(
                condition=models.Q(('slot__isnull', True), ('counsellor__isnull', False), _connector='OR'),
                name='booking_slot_has_counsellor',
            ),
        ),
    ]
