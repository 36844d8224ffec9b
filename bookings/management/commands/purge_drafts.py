"""Delete unverified booking drafts older than DRAFT_RETENTION_HOURS; first, make the
requests held for a client's last session to be recorded, if that is done (a stand-in for
the call after recording it, if that was lost), and give up those held too long.

Safe from cron at any interval, even overlapping runs: each batch locks its rows and skips
rows another run holds, and a draft verified meanwhile is never deleted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from bookings.services import drafts_purge, held_requests_release


class Command(BaseCommand):
    help = (
        "Make the requests held for a last session now recorded, then delete unverified booking drafts older "
        "than DRAFT_RETENTION_HOURS (default 48)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        made = held_requests_release()
        if made:
            self.stdout.write(f"Made {made} request(s) held until their client's last session was recorded.")
        deleted = drafts_purge()
        self.stdout.write(f"Deleted {deleted} unverified draft(s) older than {settings.DRAFT_RETENTION_HOURS} hours.")
