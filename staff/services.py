"""Staff accounts: invitations. Bookings' rules live in bookings.services, not here."""

from __future__ import annotations

from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils.text import slugify

from bookings.emails import absolute_url, email_queue
from bookings.errors import BookingError
from bookings.models import Counsellor
from staff.models import User


class InvitationError(BookingError):
    code = "invitation_refused"


def invitation_url(user: User) -> str:
    """A link to choose a password: allauth's password-reset key, valid PASSWORD_RESET_TIMEOUT
    (three days) and void once a password is set."""
    key = default_token_generator.make_token(user)
    path = reverse("account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": key})
    return absolute_url(path)


def staff_invite(*, email: str, role: str, name: str = "", invited_by: Any = None) -> User:
    """Create a staff account without a password and email the invitee a link to set one.

    A counsellor also gets their Counsellor profile (inactive for clients until an
    administrator publishes availability). Inviting an existing address is refused.
    """
    email = (email or "").strip().lower()
    if role not in User.Role.values:
        raise InvitationError("Choose a role: administrator or counsellor.")
    if not email:
        raise InvitationError("Enter the email address to invite.")
    if User.objects.filter(email__iexact=email).exists():
        raise InvitationError("There is already a staff account with this email address.")
    first, _, last = name.strip().partition(" ")
    with transaction.atomic():
        user = User.objects.create_user(email=email, password=None, first_name=first, last_name=last, role=role)
        if role == User.Role.COUNSELLOR:
            base = slugify(name) or slugify(email.split("@")[0]) or "counsellor"
            slug, n = base, 2
            while Counsellor.objects.filter(slug=slug).exists():
                slug, n = f"{base}-{n}", n + 1
            Counsellor.objects.create(user=user, display_name=name.strip() or email, slug=slug)
        email_queue(
            kind="staff_invite",
            to=user.email,
            language=settings.LANGUAGE_CODE,
            context={
                "invited_name": user.first_name,
                "role_label": User.Role(role).label.lower(),
                "invited_by": str(invited_by) if invited_by else "",
                "set_password_url": invitation_url(user),
            },
        )
    return user


def staff_reinvite(*, user: User) -> None:
    """Send a fresh invitation link to someone who has not set a password yet."""
    if user.has_usable_password():
        raise InvitationError("This person has already set a password. They can use 'Forgotten your password?'.")
    email_queue(
        kind="staff_invite",
        to=user.email,
        language=settings.LANGUAGE_CODE,
        context={
            "invited_name": user.first_name,
            "role_label": User.Role(user.role).label.lower(),
            "invited_by": "",
            "set_password_url": invitation_url(user),
        },
    )
