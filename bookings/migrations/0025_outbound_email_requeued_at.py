from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0024_counsellor_previous_slug"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboundemail",
            name="requeued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
