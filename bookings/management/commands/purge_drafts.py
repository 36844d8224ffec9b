"""Delete unverified booking drafts older than DRAFT_RETENTION_HOURS.

Safe from cron at any interval, even overlapping runs: each batch locks its rows and skips
rows another run holds, and a draft verified meanwhile is never deleted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from bookings.services import drafts_purge


class Command(BaseCommand):
    help = "Delete unverified booking drafts older than DRAFT_RETENTION_HOURS (default 48)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = drafts_purge()
        self.stdout.write(f"Deleted {deleted} unverified draft(s) older than {settings.DRAFT_RETENTION_HOURS} hours.")
