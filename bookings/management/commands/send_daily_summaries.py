"""Email counsellors who asked for it a summary of today's sessions.

Run it once each morning from cron (e.g. 07:00 in the clinic's zone). Running it again the
same day sends nothing new: each summary is claimed by a row unique per counsellor and day.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bookings.services import daily_summaries_send


class Command(BaseCommand):
    help = "Email each counsellor who wants one the list of today's sessions (once a day)."

    def handle(self, *args: Any, **options: Any) -> None:
        queued = daily_summaries_send()
        self.stdout.write(f"{queued} daily summar{'y' if queued == 1 else 'ies'} queued.")
