"""Email the administrators about each chatbot API token that expires within
API_TOKEN_WARNING_DAYS (14), so that it is rotated before the chatbot stops.

Run it once a day from cron. Running it again sends nothing new: each token is marked when
its warning is queued (services in bookings.api.auth), and a rotation's new token is
warned about in its turn.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bookings.api.auth import api_token_warnings_send


class Command(BaseCommand):
    help = "Email the administrators once about each chatbot API token that expires within 14 days."

    def handle(self, *args: Any, **options: Any) -> None:
        warned = api_token_warnings_send()
        self.stdout.write(f"{warned} API token warning(s) queued.")
