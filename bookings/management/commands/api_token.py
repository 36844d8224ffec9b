"""Tokens for the chatbot API: `api_token create NAME`, `api_token revoke NAME`, `api_token list`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bookings.api.auth import ApiClientExists, api_client_create, api_client_revoke
from bookings.models import ApiClient


class Command(BaseCommand):
    help = "Create, revoke or list the chatbot API's tokens. A new token is printed once and never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("create", help="Create a client and print its token once.").add_argument("name")
        actions.add_parser("revoke", help="Revoke a client's token at once.").add_argument("name")
        actions.add_parser("list", help="List clients: never their tokens.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            self._create(options["name"])
        elif action == "revoke":
            self._revoke(options["name"])
        else:
            self._list()

    def _create(self, name: str) -> None:
        try:
            client, token = api_client_create(name=name)
        except (ApiClientExists, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created API client {client.name!r}. Its token, shown only this once:")
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
        for client in clients:
            state = f"revoked {_when(client.revoked_at)}" if client.revoked_at else "active"
            last_used = _when(client.last_used_at) if client.last_used_at else "never"
            self.stdout.write(f"{client.name}\t{state}\tcreated {_when(client.created_at)}\tlast used {last_used}")


def _when(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")
