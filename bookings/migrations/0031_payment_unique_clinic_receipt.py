"""A receipt number at the clinic is unique whatever its case: "r-1042" is receipt R-1042
typed again, not a second receipt. Payment providers' IDs keep their case (Razorpay's are
case-sensitive), so this holds for payments at the clinic only.

Receipts already recorded twice in different cases stop the migration, named, for an
administrator to correct one of them first: no receipt number is changed here.
"""

import django.db.models.functions.text
from django.db import migrations, models


def refuse_receipts_recorded_twice(apps, schema_editor):
    Payment = apps.get_model("bookings", "Payment")
    receipts: dict[str, list[str]] = {}
    for receipt in Payment.objects.filter(provider="clinic").values_list("provider_payment_id", flat=True):
        receipts.setdefault(receipt.lower(), []).append(receipt)
    twice = sorted(" and ".join(sorted(same)) for same in receipts.values() if len(same) > 1)
    if twice:
        raise RuntimeError(
            "These receipt numbers of payments at the clinic were recorded twice, in different cases: "
            f"{'; '.join(twice)}. Correct one of each (bookings_payment.provider_payment_id, provider "
            "'clinic'), then migrate again."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0030_webhook_event_digest"),
    ]

    operations = [
        migrations.RunPython(refuse_receipts_recorded_twice, migrations.RunPython.noop, elidable=True),
        migrations.AddConstraint(
            model_name="payment",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("provider_payment_id"),
                condition=models.Q(("provider", "clinic")),
                name="payment_unique_clinic_receipt",
            ),
        ),
    ]
