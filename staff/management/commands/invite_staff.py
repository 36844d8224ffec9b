"""Invite a member of staff: `manage.py invite_staff EMAIL --role counsellor --name "Asha Menon"`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from staff.models import User
from staff.services import InvitationError, staff_invite


class Command(BaseCommand):
    help = "Create a staff account and email the invitee a link to choose their password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--role", required=True, choices=User.Role.values)
        parser.add_argument("--name", default="", help="Full name; needed for a counsellor, whom clients see by it.")

    def handle(self, *args: Any, email: str, role: str, name: str, **options: Any) -> None:
        try:
            user = staff_invite(email=email, role=role, name=name)
        except InvitationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Invited {user.email} as {user.get_role_display().lower()}."))
