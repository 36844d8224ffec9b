"""Cancel bookings whose payment window has ended, retry refunds that never started, and ask
the provider about refunds whose outcome never arrived by webhook.

Safe to run from cron every few minutes, even twice at once: each booking is moved with a
compare-and-swap under a row lock (see services.bookings_expire).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bookings.services import bookings_expire, payment_refunds_check, payment_refunds_retry


class Command(BaseCommand):
    help = "Cancel APPROVED and PAYMENT_PENDING bookings past their payment deadline; retry stuck refunds."

    def handle(self, *args: Any, **options: Any) -> None:
        expired = bookings_expire()
        refunded = payment_refunds_retry()
        checked = payment_refunds_check()
        self.stdout.write(
            f"expired {expired} booking(s); sent {refunded} pending refund(s); settled {checked} checked refund(s)"
        )
