"""Deliver queued emails whose (re)try time has come. Safe to run from cron every minute,
and concurrently: each message is claimed by one sender before it is sent."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from bookings.emails import emails_send_due


class Command(BaseCommand):
    help = "Send or retry queued emails that are due."

    def handle(self, *args: object, **options: object) -> None:
        sent = emails_send_due()
        self.stdout.write(f"{sent} email(s) sent.")
