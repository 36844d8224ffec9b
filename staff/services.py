"""Staff accounts: invitations, deactivation, second-factor resets, calendar subscriptions.
Bookings' rules live in bookings.services, not here."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from bookings.emails import absolute_url, email_queue
from bookings.errors import BookingError, TokenInvalid
from bookings.models import ACTIVE_STATUSES, Booking, Counsellor, CounsellorPreviousSlug
from bookings.services import counsellor_save
from bookings.tokens import token_check, token_hash, token_lookup_hash
from staff import selectors
from staff.middleware import setup_allow
from staff.models import AccountEvent, CalendarSubscription, SetupLink, User

logger = logging.getLogger(__name__)


class InvitationError(BookingError):
    code = "invitation_refused"


class StaffAccountError(BookingError):
    code = "staff_account_refused"


def invitation_url(user: User) -> str:
    """A link to choose a password: allauth's password-reset key, valid PASSWORD_RESET_TIMEOUT
    (three days) and void once a password is set."""
    key = default_token_generator.make_token(user)
    path = reverse("account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": key})
    return absolute_url(path)


def address_proved_by_reset(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    """allauth's `password_reset` signal: a password was set through a link emailed to the
    account's address (an invitation, or "Forgotten your password?"), which proves the
    address. Marked verified, as allauth's second-factor setup refuses an account with an
    unverified address, and the portal needs no other email verification.

    The session that set it may set up the account's first authenticator app, without the
    emailed setup link (staff.middleware.setup_allow): it will sign in as that member next."""
    EmailAddress.objects.filter(user_id=user.pk, email__iexact=user.email).update(verified=True)
    if request is not None and hasattr(request, "session"):
        setup_allow(request.session, user)


# --- Authenticator setup links --------------------------------------------------------------

SETUP_LINK_MINUTES = 30


class SetupLinkRefused(TokenInvalid):
    """A setup link opened in a browser signed in as someone else (reason "other_account")."""

    messages = {**TokenInvalid.messages, "other_account": "This link was sent to another staff account."}


def setup_link_create(*, user: User) -> str:
    """A link that lets the browser opening it, signed in as `user`, set up the first
    authenticator app of their account: single-use, for SETUP_LINK_MINUTES; it replaces any
    earlier one (only the newest works). Returns its URL, which is stored only as a hash."""
    raw = secrets.token_urlsafe(24)
    with transaction.atomic():
        # Two requests at once take turns on the member's row, so that one link is left.
        User.objects.select_for_update().filter(pk=user.pk).first()
        SetupLink.objects.filter(user=user).delete()
        SetupLink.objects.create(
            user=user,
            token_hash=token_hash(raw),
            expires_at=timezone.now() + timedelta(minutes=SETUP_LINK_MINUTES),
        )
    return absolute_url(reverse("staff_setup_link", kwargs={"token": raw}))


def setup_link_send(*, user: User) -> None:
    """Email `user` a new setup link (setup_link_create)."""
    with transaction.atomic():
        email_queue(
            kind="staff_setup_link",
            to=user.email,
            context={"name": user.first_name, "setup_url": setup_link_create(user=user), "minutes": SETUP_LINK_MINUTES},
        )
    logger.info("staff account %s: authenticator setup link sent", user.pk)


def setup_link_get(*, raw: str, for_update: bool = False) -> SetupLink:
    """The live setup link behind `raw`, or TokenInvalid saying why not."""
    qs = SetupLink.objects.filter(token_hash=token_lookup_hash(raw))
    if for_update:
        qs = qs.select_for_update()
    link = qs.first()
    if link is None:
        raise TokenInvalid("unknown")
    token_check(link)
    return link


def setup_link_claim(*, raw: str, user: User) -> SetupLink:
    """Use up `user`'s setup link: it proves that whoever opened it reads their email, and
    marks the address verified (as address_proved_by_reset does). Refused, and left unused,
    for a link sent to someone else."""
    with transaction.atomic():
        link = setup_link_get(raw=raw, for_update=True)
        if link.user_id != user.pk:
            raise SetupLinkRefused("other_account", link=link)
        link.used_at = timezone.now()
        link.save(update_fields=["used_at"])
        EmailAddress.objects.filter(user_id=user.pk, email__iexact=user.email).update(verified=True)
    logger.info("staff account %s: authenticator setup link used", user.pk)
    return link


def staff_invite(*, email: str, role: str, name: str = "", invited_by: Any = None) -> User:
    """Create a staff account without a password and email the invitee a link to set one.

    A counsellor also gets their Counsellor profile, under `name` (required: clients see it),
    hidden from clients until an administrator shows it ("Show this profile to clients"):
    nobody can book a counsellor who has not yet joined. Inviting an existing address is
    refused.
    """
    email = (email or "").strip().lower()
    if role not in User.Role.values:
        raise InvitationError("Choose a role: administrator or counsellor.", field="role")
    if not email:
        raise InvitationError("Enter the email address to invite.", field="email")
    existing = User.objects.filter(email__iexact=email).only("is_active").first()
    if existing is not None and not existing.is_active:
        raise InvitationError(
            "This person's staff account is deactivated: reactivate it instead of inviting them.", field="email"
        )
    if existing is not None:
        raise InvitationError("There is already a staff account with this email address.", field="email")
    if role == User.Role.COUNSELLOR and not name.strip():
        raise InvitationError(
            "Enter the counsellor's full name: clients see it when they choose and book.", field="name"
        )
    first, _, last = name.strip().partition(" ")
    with transaction.atomic():
        user = User.objects.create_user(email=email, password=None, first_name=first, last_name=last, role=role)
        if role == User.Role.COUNSELLOR:
            _counsellor_profile_new(user, name)
        _invitation_send(user, invited_by=invited_by)
    return user


def _counsellor_profile_new(user: User, name: str) -> Counsellor:
    """`user`'s counsellor profile under `name`, hidden from clients until an administrator
    shows it ("Show this profile to clients")."""
    # The slug's column holds 50 characters: room for "-N" after a long name's first 40.
    base = slugify(name)[:40].strip("-") or "counsellor"
    slug, n = base, 2
    # Nor a link name another profile had before: old links with it lead there.
    while Counsellor.objects.filter(slug=slug).exists() or CounsellorPreviousSlug.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return Counsellor.objects.create(user=user, display_name=name.strip(), slug=slug, is_active=False)


def counsellor_profile_add(*, member: User, name: str, by: Any) -> Counsellor:
    """A counsellor profile for an administrator who also counsels (one who runs a small
    practice and sees clients): their sessions, availability and emails as any counsellor's,
    under the one account. Hidden from clients until shown, as an invited counsellor's."""
    if not name.strip():
        raise StaffAccountError("Enter the name clients will see when they choose and book.")
    if len(name.strip()) > Counsellor._meta.get_field("display_name").max_length:
        raise StaffAccountError("Keep the name to 120 characters.")
    if "\x00" in name:  # as a form's field refuses it (PostgreSQL cannot store it)
        raise StaffAccountError("The name cannot contain a null character.")
    with transaction.atomic():
        member = User.objects.select_for_update().get(pk=member.pk)
        if not member.is_active:
            raise StaffAccountError("This account is deactivated: reactivate it first.")
        if Counsellor.objects.filter(user=member).exists():
            raise StaffAccountError(f"{member} already has a counsellor profile.")
        profile = _counsellor_profile_new(member, name)
        AccountEvent.objects.create(member=member, actor=by, kind=AccountEvent.Kind.COUNSELLOR_PROFILE_ADDED)
    return profile


def staff_reinvite(*, user: User) -> None:
    """Send a fresh invitation link to someone who has not set a password yet."""
    if user.has_usable_password():
        raise InvitationError("This person has already set a password. They can use 'Forgotten your password?'.")
    _invitation_send(user)


def _invitation_send(user: User, *, invited_by: Any = None) -> None:
    """The invitation email, first or again: a link to choose a password."""
    email_queue(
        kind="staff_invite",
        to=user.email,
        context={
            "invited_name": user.first_name,
            "role_label": User.Role(user.role).label.lower(),
            "invited_by": str(invited_by) if invited_by else "",
            "set_password_url": invitation_url(user),
        },
    )


# --- Deactivation and second-factor resets ------------------------------------------------
#
# Each runs in one transaction that locks the rows it decides on, records an AccountEvent (the
# record administrators read on the Team page) and logs ids only. Ending someone's sessions is
# a bump of User.session_version: every session they have open fails Django's auth-hash check
# on its next request and is flushed, on any session engine, without scanning the sessions table.


@dataclass(frozen=True)
class Deactivation:
    changed: bool  # False: the account was already deactivated
    profile_hidden: bool  # their counsellor profile was shown to clients and is hidden now
    open_bookings: int  # active bookings still assigned to them, for someone to reassign
    waitlist_told: int = 0  # clients waiting for them, emailed that their place has ended


def _locked_administrators() -> list[int]:
    """The active administrators' ids, their rows locked in id order (so that two
    administrators acting on each other at once queue up instead of deadlocking)."""
    return list(
        User.objects.select_for_update()
        .filter(role=User.Role.ADMINISTRATOR, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _require_administrator(by: User, administrators: list[int]) -> None:
    # Re-read under the lock: `by` may have been deactivated since their request began.
    if by.pk not in administrators:
        raise StaffAccountError("Only an active administrator can change staff accounts.")


def staff_deactivate(*, user: User, by: User) -> Deactivation:
    """Stop `user` signing in, end their open sessions and stop their calendar subscription.
    A counsellor's public profile is hidden too, so clients cannot book someone who has left;
    their bookings are left as they are (the result says how many are still open, for an
    administrator to reassign).

    Refused: deactivating yourself, and deactivating the last active administrator.
    Deactivating an account that is already deactivated changes nothing."""
    with transaction.atomic():
        administrators = _locked_administrators()
        _require_administrator(by, administrators)
        member = User.objects.select_for_update().get(pk=user.pk)
        if member.pk in administrators and len(administrators) == 1:
            raise StaffAccountError(
                "This is the last active administrator. Invite or reactivate another administrator first."
            )
        if member.pk == by.pk:
            raise StaffAccountError("You cannot deactivate your own account. Ask another administrator.")
        open_count = selectors.open_bookings_count(member=member)
        if not member.is_active:
            return Deactivation(changed=False, profile_hidden=False, open_bookings=open_count)
        member.is_active = False
        member.session_version += 1
        member.save(update_fields=["is_active", "session_version"])
        # Their phone's calendar stops reading their sessions too (the feed also checks).
        CalendarSubscription.objects.filter(user=member).delete()
        # Their sessions' own meeting links are most likely their rooms too: an administrator
        # gives the sessions another counsellor, or sets a link for them again.
        Booking.objects.filter(counsellor__user=member, status__in=ACTIVE_STATUSES).exclude(meeting_url="").update(
            meeting_url=""
        )
        profile = Counsellor.objects.filter(user=member, is_active=True).first()
        hidden = profile is not None
        told = 0
        if profile is not None:
            profile.is_active = False
            told = counsellor_save(counsellor=profile)
        AccountEvent.objects.create(member=member, actor=by, kind=AccountEvent.Kind.DEACTIVATED)
    logger.info(
        "staff account %s deactivated by %s (profile hidden: %s, open bookings: %s)",
        member.pk,
        by.pk,
        hidden,
        open_count,
    )
    return Deactivation(changed=True, profile_hidden=hidden, open_bookings=open_count, waitlist_told=told)


def staff_reactivate(*, user: User, by: User) -> bool:
    """Let `user` sign in again. A counsellor profile hidden at deactivation stays hidden: an
    administrator shows it again on the profile page when the counsellor is ready for clients.
    Returns False if the account was already active."""
    with transaction.atomic():
        _require_administrator(by, _locked_administrators())
        member = User.objects.select_for_update().get(pk=user.pk)
        if member.is_active:
            return False
        if member.email.endswith("@invalid"):
            raise StaffAccountError(
                "This account was anonymised after its owner left: invite them again with their address instead."
            )
        member.is_active = True
        member.save(update_fields=["is_active"])
        AccountEvent.objects.create(member=member, actor=by, kind=AccountEvent.Kind.REACTIVATED)
    logger.info("staff account %s reactivated by %s", member.pk, by.pk)
    return True


def staff_second_factor_reset(*, user: User, by: User) -> bool:
    """Remove `user`'s authenticator app and recovery codes, stop their calendar subscription
    (a lost phone holds its address too) and end their open sessions (each session remembers
    that its second factor was confirmed; see staff.middleware). At their next sign-in the
    portal sends them to set up a new authenticator app.

    Refused for yourself: your own second factor is changed in your account settings, where
    allauth asks for your password first. Returns False if there was nothing to remove (their
    sessions are ended all the same)."""
    from allauth.mfa.models import Authenticator

    with transaction.atomic():
        _require_administrator(by, _locked_administrators())
        member = User.objects.select_for_update().get(pk=user.pk)
        if member.pk == by.pk:
            raise StaffAccountError("You cannot reset your own second factor here. Change it in your account settings.")
        removed, _ = Authenticator.objects.filter(user=member).delete()
        # A lost phone holds the calendar address as well as the app: it stops working, and
        # the member makes a new one from the new phone.
        CalendarSubscription.objects.filter(user=member).delete()
        member.session_version += 1
        member.save(update_fields=["session_version"])
        AccountEvent.objects.create(member=member, actor=by, kind=AccountEvent.Kind.SECOND_FACTOR_RESET)
    logger.info("staff account %s: second factor reset by %s (%s authenticators removed)", member.pk, by.pk, removed)
    return removed > 0


# --- Calendar subscriptions -----------------------------------------------------------------
#
# A counsellor's calendar app reads their sessions from a secret address
# (staff.calendar_subscription). The secret is the only credential, so only its hash is kept
# and the address is shown once; a new one replaces the old, which stops working at once.

# How often a read of the feed is written down: calendar apps poll every few minutes to every
# day, and "last read" only needs to say whether one still does.
CALENDAR_READ_EVERY = timedelta(hours=1)


def calendar_subscription_url(raw: str) -> str:
    """The address a calendar app subscribes to, made from SITE_URL (calendar services fetch
    it from the internet, as they would an emailed link)."""
    return absolute_url(reverse("staff:calendar_app_feed", kwargs={"token": raw}))


def calendar_subscription_create(*, user: User) -> str:
    """A new calendar address for `user`, who must be an active member with a counsellor
    profile (StaffAccountError otherwise). It replaces any earlier one, which stops working at
    once. Returns the address, which is stored only as a hash: show it now or never."""
    raw = secrets.token_urlsafe(32)
    with transaction.atomic():
        # Two presses at once take turns on the member's row, so that one address is left.
        member = User.objects.select_for_update().filter(pk=user.pk).first()
        if member is None or not member.is_active or not Counsellor.objects.filter(user=member).exists():
            raise StaffAccountError("Only a counsellor has sessions to show in a calendar app.")
        replaced, _ = CalendarSubscription.objects.filter(user=member).delete()
        CalendarSubscription.objects.create(user=member, token_hash=token_hash(raw))
    logger.info("staff account %s: calendar subscription %s", member.pk, "replaced" if replaced else "made")
    return calendar_subscription_url(raw)


def calendar_subscription_stop(*, user: User, by: User | None = None) -> bool:
    """Stop `user`'s calendar subscription: its address answers 404 from now on. `by`: the
    administrator who stopped it from the Team page (recorded there), None for the member's
    own. Returns False if there was none."""
    with transaction.atomic():
        if by is not None:
            _require_administrator(by, _locked_administrators())
        stopped, _ = CalendarSubscription.objects.filter(user_id=user.pk, stopped_at__isnull=True).delete()
        if stopped and by is not None:
            AccountEvent.objects.create(
                member_id=user.pk, actor=by, kind=AccountEvent.Kind.CALENDAR_SUBSCRIPTION_STOPPED
            )
    if stopped:
        logger.info("staff account %s: calendar subscription stopped by %s", user.pk, by.pk if by else user.pk)
    return bool(stopped)


def calendar_subscription_stop_on_reset(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    """allauth's `password_reset` signal: a password was set through an emailed link. Whoever
    knew the old password may have signed in and made the calendar address (or read it on the
    member's screen as it was shown); the reset ends their sessions (the password is part of
    each session's hash) and this stops the address too. The row stays, marked, so that the
    member's calendar page says what happened until they make a new address."""
    stopped = CalendarSubscription.objects.filter(user_id=user.pk, stopped_at__isnull=True).update(
        stopped_at=timezone.now()
    )
    if stopped:
        logger.info("staff account %s: calendar subscription stopped by a password reset", user.pk)


def calendar_subscription_read(*, subscription_id: int, last_read_at: datetime | None, now: datetime) -> None:
    """A calendar app has read the feed of subscription `subscription_id` (last read at
    `last_read_at`). Written at most once per CALENDAR_READ_EVERY: an app polling every few
    minutes costs no write. A replaced or stopped subscription's row is gone, and nothing is
    written."""
    if last_read_at is not None and now - last_read_at < CALENDAR_READ_EVERY:
        return
    CalendarSubscription.objects.filter(pk=subscription_id).update(last_read_at=now)


# --- Former staff -------------------------------------------------------------------------

FORMER_STAFF_NAME = "Former staff member"


def former_staff_anonymise(*, now: datetime | None = None) -> int:
    """Accounts deactivated more than RETENTION_MONTHS ago (and not reactivated since): the
    person has left. Their name and address are replaced, their password, authenticators
    (TOTP secrets, recovery codes), allauth's copies of their address, setup links and
    calendar address deleted, and their counsellor profile's room link and texts about them
    cleared. Kept: the account row itself (the audit trail's "who" of each booking event and
    account event points at it, shown as FORMER_STAFF_NAME) and, for a counsellor, the
    display name on their profile: the clinic's record of who held each session, as anonymised
    bookings keep it. Their entries in the staff view log have gone by then (kept
    RETENTION_MONTHS). Returns how many accounts. Safe to run again."""
    from allauth.mfa.models import Authenticator
    from django.db.models import OuterRef, Subquery

    now = now or timezone.now()
    cutoff = now - timedelta(days=30 * settings.RETENTION_MONTHS)
    last_change = AccountEvent.objects.filter(
        member=OuterRef("pk"), kind__in=(AccountEvent.Kind.DEACTIVATED, AccountEvent.Kind.REACTIVATED)
    ).order_by("-created_at", "-pk")
    left = (
        User.objects.filter(is_active=False)
        .exclude(email__endswith="@invalid")
        .annotate(
            last_kind=Subquery(last_change.values("kind")[:1]), last_at=Subquery(last_change.values("created_at")[:1])
        )
        .filter(last_kind=AccountEvent.Kind.DEACTIVATED, last_at__lt=cutoff)
        .values_list("pk", flat=True)
    )
    done = 0
    for pk in list(left):
        with transaction.atomic():
            member = User.objects.select_for_update().get(pk=pk)
            if member.is_active or member.email.endswith("@invalid"):
                continue  # reactivated, or done by another run, meanwhile
            member.first_name, member.last_name = FORMER_STAFF_NAME, ""
            member.email = f"former-staff-{member.pk}@invalid"
            member.set_unusable_password()
            member.session_version += 1
            member.save(update_fields=["first_name", "last_name", "email", "password", "session_version"])
            Authenticator.objects.filter(user=member).delete()
            EmailAddress.objects.filter(user=member).delete()
            SetupLink.objects.filter(user=member).delete()
            CalendarSubscription.objects.filter(user=member).delete()
            Counsellor.objects.filter(user=member).update(
                meeting_url="", bio="", bio_hi="", approach="", approach_hi="", daily_summary=False
            )
        done += 1
        logger.info("former staff account %s anonymised", pk)
    return done
