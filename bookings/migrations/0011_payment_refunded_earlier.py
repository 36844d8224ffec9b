"""Of a payment's refunded amount, what went back before the refund in hand (part of it
refunded from the provider's dashboard, say). A database default, for the release still
running during a deploy."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0010_counsellor_hindi'),
    ]

    operations = [
        migrations.AddField(
            model_name='payment',
            name='refunded_earlier',
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
    ]
