"""Print a setup link for a staff account's first authenticator app:
`manage.py staff_setup_link EMAIL`.

For whoever runs the server when the portal's email cannot reach the member (the first
administrator before SMTP works, or a broken mail server): the link does what the emailed one
does, once, for 30 minutes, in a browser signed in as that member. Hand it over as you would
a password."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from staff.models import User
from staff.selectors import has_authenticator_app
from staff.services import SETUP_LINK_MINUTES, setup_link_create

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Print a single-use link that lets a staff member, signed in, set up the first authenticator app "
        "of their account (what the portal otherwise emails them)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, email: str, **options: Any) -> None:
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"There is no staff account with the email address {email.strip()!r}.")
        if not user.is_active:
            raise CommandError(f"The staff account of {user.email} is deactivated: reactivate it first.")
        if has_authenticator_app(user):
            raise CommandError(
                f"{user.email} already has an authenticator app. If it is lost, an administrator resets it "
                "on the Staff page first."
            )
        url = setup_link_create(user=user)
        logger.info("staff account %s: authenticator setup link printed by manage.py", user.pk)
        self.stdout.write(
            f"A setup link for {user.email}, for {SETUP_LINK_MINUTES} minutes and once; open it in a browser "
            "signed in as them:"
        )
        self.stdout.write(url)
