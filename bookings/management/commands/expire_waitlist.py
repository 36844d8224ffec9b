"""Expire waitlist entries whose last day has passed, end those the clinic can no longer
serve (telling the clients), offer free times nobody took to the next waiting clients (and
freed times whose offer's task was lost), and delete stale entries. Run it hourly.

Safe to run from cron as often as wanted, even twice at once (see services.waitlist_expire).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bookings.services import waitlist_expire


class Command(BaseCommand):
    help = (
        "Expire waitlist entries past their last day; offer free times nobody took to the next waiting clients, "
        "and freed times whose offer was lost; "
        "delete unconfirmed and long-finished entries."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = waitlist_expire()
        self.stdout.write(
            f"expired {result['expired']} waitlist entr(y/ies); ended {result['ended']}; "
            f"offered {result['offered_again']} free time(s) again; deleted {result['deleted']}"
        )
