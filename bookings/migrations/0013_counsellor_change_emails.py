"""A counsellor may turn off the emails about changes to their sessions (on by default). A
database default, for the release still running during a deploy."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0012_booking_slot_has_counsellor'),
    ]

    operations = [
        migrations.AddField(
            model_name='counsellor',
            name='change_emails',
            field=models.BooleanField(db_default=True, default=True),
        ),
    ]
