from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_payment_provider(app_configs, **kwargs):
    if settings.PAYMENT_PROVIDER == "sandbox":
        return [
            Warning(
                "PAYMENT_PROVIDER is 'sandbox': bookings would be confirmed without any money moving.",
                hint="Set PAYMENT_PROVIDER=razorpay with RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET and RAZORPAY_WEBHOOK_SECRET.",
                id="mindsettler.W001",
            )
        ]
    return []
