import bookings.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0026_booking_slot_counsellor_and_sqlite_overlap"),
    ]

    operations = [
        # Django calls a callable default once when it adds the column, for every row there
        # is: each existing token works for API_TOKEN_DAYS from the release, so no working
        # chatbot breaks at deploy and administrators are told well before it expires.
        migrations.AddField(
            model_name="apiclient",
            name="expires_at",
            field=models.DateTimeField(default=bookings.models.api_token_expiry),
        ),
        migrations.AddField(
            model_name="apiclient",
            name="expiry_warned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="apiclient",
            name="previous_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="apiclient",
            name="previous_token_hash",
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
    ]
