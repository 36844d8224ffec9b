"""Deliver queued emails whose (re)try time has come, after answering the requests for
booking links from /status/ that no task has answered. Safe to run from cron every minute,
and concurrently: each message and request is claimed by one sender before it is handled."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from bookings.emails import emails_send_due
from bookings.services import booking_links_requests_handle_due


class Command(BaseCommand):
    help = "Send or retry queued emails that are due."

    def handle(self, *args: object, **options: object) -> None:
        answered = booking_links_requests_handle_due()
        sent = emails_send_due()
        self.stdout.write(
            f"{sent} email(s) sent." + (f" {answered} request(s) for links answered." if answered else "")
        )
