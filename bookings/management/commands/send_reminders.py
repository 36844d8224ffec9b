"""Queue the reminder emails due before confirmed sessions (settings.REMINDER_HOURS).

Safe to run from cron every few minutes, and several at once: each reminder is claimed by a
row that a unique constraint allows once per booking, reminder and slot (see
services.reminders_send).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bookings.services import reminders_send


class Command(BaseCommand):
    help = "Email reminders before confirmed sessions; each is sent once."

    def handle(self, *args: Any, **options: Any) -> None:
        queued = reminders_send()
        self.stdout.write(f"{queued} reminder(s) queued.")
