"""What a payment took, as a column: it was kept in the provider payloads (`raw`), which
erasure empties, and only when it differed from the attempt's amount."""

from django.db import migrations, models


def captured_from_payloads(apps, schema_editor):
    Payment = apps.get_model("bookings", "Payment")
    for payment in Payment.objects.exclude(provider_payment_id="").only("pk", "amount", "raw").iterator():
        captured = ((payment.raw or {}).get("captured") or {}).get("data") or {}
        Payment.objects.filter(pk=payment.pk).update(captured_amount=int(captured.get("amount", payment.amount)))


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0004_event_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="captured_amount",
            field=models.PositiveIntegerField(blank=True, help_text="In minor units.", null=True),
        ),
        migrations.RunPython(captured_from_payloads, migrations.RunPython.noop),
    ]
