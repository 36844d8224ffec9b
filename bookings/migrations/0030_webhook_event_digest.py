"""A webhook event is known by the SHA-256 of its signed body, not by its event ID header.

The signature covers the body only. Keyed on the header's ID, one genuinely signed body could
be sent again under any other ID and be applied again, and a genuine new event be skipped as
"already processed" if its ID had been sent first with another body. The ID is kept, no longer
unique, for people matching our records with the provider's.

Rows from before this migration have no digest (their bodies were never kept): they stay as a
record of what arrived. One of those events delivered again is applied again, which changes
nothing, as every webhook handler is idempotent (a confirmed payment is left as it is, a refund
already settled is recognised by its ID). NULL digests never collide in the unique constraint.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0029_weekly_hours_past_midnight"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="webhookevent",
            name="webhook_event_unique",
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="digest",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="webhookevent",
            name="event_id",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddConstraint(
            model_name="webhookevent",
            constraint=models.UniqueConstraint(fields=("provider", "digest"), name="webhook_event_digest_unique"),
        ),
    ]
