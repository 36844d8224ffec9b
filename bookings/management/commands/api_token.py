"""Tokens for the chatbot API: `api_token create NAME [--days N]`, `api_token rotate NAME
[--days N] [--overlap-days D]`, `api_token revoke NAME`, `api_token list`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bookings.api.auth import (
    ROTATION_OVERLAP_DAYS,
    ApiClientExists,
    ApiClientRevoked,
    api_client_create,
    api_client_revoke,
    api_client_rotate,
    token_moment,
)
from bookings.models import ApiClient


class Command(BaseCommand):
    help = (
        "Create, rotate, revoke or list the chatbot API's tokens. A new token is printed once and never stored; "
        "each works for a limited number of days."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        days_help = f"How many days the token works (default: API_TOKEN_DAYS, now {settings.API_TOKEN_DAYS})."
        create = actions.add_parser("create", help="Create a client and print its token once.")
        create.add_argument("name")
        create.add_argument("--days", type=int, help=days_help)
        rotate = actions.add_parser(
            "rotate", help="Give a client a new token, printed once; its current one keeps working a few days more."
        )
        rotate.add_argument("name")
        rotate.add_argument("--days", type=int, help=days_help)
        rotate.add_argument(
            "--overlap-days",
            type=int,
            default=ROTATION_OVERLAP_DAYS,
            help=f"How many days the current token keeps working, to redeploy the chatbot "
            f"(default: {ROTATION_OVERLAP_DAYS}; 0 stops it now).",
        )
        actions.add_parser("revoke", help="Revoke a client's token at once.").add_argument("name")
        actions.add_parser("list", help="List clients and when their tokens expire: never the tokens.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            self._create(options["name"], options["days"])
        elif action == "rotate":
            self._rotate(options["name"], options["days"], options["overlap_days"])
        elif action == "revoke":
            self._revoke(options["name"])
        else:
            self._list()

    def _create(self, name: str, days: int | None) -> None:
        try:
            client, token = api_client_create(name=name, days=days)
        except (ApiClientExists, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Created API client {client.name!r}; its token works until {token_moment(client.expires_at)}. "
            "Its token, shown only this once:"
        )
        self.stdout.write(token)
        self.stderr.write("Store it in the chatbot's secrets now; only its hash is kept here.")

    def _rotate(self, name: str, days: int | None, overlap_days: int) -> None:
        try:
            client, token = api_client_rotate(name=name, days=days, overlap_days=overlap_days)
        except ApiClient.DoesNotExist:
            raise CommandError(f"There is no API client named {name!r}.") from None
        except (ApiClientRevoked, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if client.previous_expires_at > timezone.now():
            old = f"The old token keeps working until {token_moment(client.previous_expires_at)}: redeploy the chatbot with the new one before then."
        else:
            old = "The old token no longer works."
        self.stdout.write(
            f"New token for {client.name!r}, working until {token_moment(client.expires_at)}. {old} "
            "The new token, shown only this once:"
        )
        self.stdout.write(token)
        self.stderr.write("Store it in the chatbot's secrets now; only its hash is kept here.")

    def _revoke(self, name: str) -> None:
        try:
            revoked = api_client_revoke(name=name)
        except ApiClient.DoesNotExist:
            raise CommandError(f"There is no API client named {name!r}.") from None
        if revoked:
            self.stdout.write(f"Revoked the token of {name!r}; it is refused from now on.")
        else:
            self.stdout.write(f"The token of {name!r} was already revoked.")

    def _list(self) -> None:
        clients = ApiClient.objects.order_by("name")
        if not clients:
            self.stdout.write("No API clients.")
            return
        now = timezone.now()
        for client in clients:
            if client.revoked_at:
                state = f"revoked {token_moment(client.revoked_at)}"
            elif client.expires_at <= now:
                state = f"expired {token_moment(client.expires_at)}"
            else:
                state = f"active, expires {token_moment(client.expires_at)}"
            last_used = token_moment(client.last_used_at) if client.last_used_at else "never"
            line = f"{client.name}\t{state}\tcreated {token_moment(client.created_at)}\tlast used {last_used}"
            if not client.revoked_at and client.previous_expires_at and client.previous_expires_at > now:
                line += f"\tprevious token works until {token_moment(client.previous_expires_at)}"
            self.stdout.write(line)
