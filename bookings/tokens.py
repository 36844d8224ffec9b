"""Secrets for emailed links: 192 random bits, only their SHA-256 stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from bookings.errors import TokenInvalid
from bookings.models import Booking, LinkToken, Slot, WaitlistEntry, WaitlistToken


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def token_create(*, booking: Booking, purpose: str, lifetime: timedelta, slot: Slot | None = None) -> str:
    """Store a new token for `booking` and return the raw value for the link. `slot`: the
    time a RESCHEDULE link moves the booking to (only those carry one)."""
    raw = secrets.token_urlsafe(24)
    LinkToken.objects.create(
        booking=booking,
        purpose=purpose,
        token_hash=token_hash(raw),
        expires_at=timezone.now() + lifetime,
        slot=slot,
    )
    return raw


# A button that emails a link, pressed again at once (a double-click, a reload that posts the
# form again), sends nothing more: the first press's email is on its way, and where only the
# newest link works, a second email would leave the first one, which arrives first, dead.
REPEAT_PRESS = timedelta(seconds=60)


def token_just_sent(*, booking: Booking, purpose: str, slot: Slot | None = None) -> bool:
    """Whether a live link of `purpose` (to `slot`, for a move) was made for `booking` within
    REPEAT_PRESS. Call inside a transaction holding the booking's row lock
    (`booking_lock_for_link`), so two presses at the same moment are answered one after the
    other and the second sees the first's link."""
    now = timezone.now()
    return LinkToken.objects.filter(
        booking=booking,
        purpose=purpose,
        slot=slot,
        used_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
        created_at__gt=now - REPEAT_PRESS,
    ).exists()


def booking_lock_for_link(booking: Booking) -> None:
    """Lock `booking`'s row (inside a transaction) before deciding whether to email it a link."""
    _booking_lock(booking.pk)


def _booking_lock(booking_id: int) -> None:
    Booking.objects.select_for_update().filter(pk=booking_id).values_list("pk", flat=True).first()


def token_lookup_hash(raw: str) -> str:
    """The stored hash to look `raw` up by, or TokenInvalid("unknown") for what no link
    carries (nothing, or more than any link's 32 characters by far)."""
    if not raw or len(raw) > 100:
        raise TokenInvalid("unknown")
    return token_hash(raw)


def token_get(*, raw: str, purpose: str, for_update: bool = False, related: tuple[str, ...] = ()) -> LinkToken:
    """The live token behind `raw`, or TokenInvalid saying why not.

    `for_update` locks the row (call inside a transaction) so a single-use token can be
    claimed exactly once under concurrency. `related`: more select_related paths (e.g.
    "booking__slot"), read in the same query.
    """
    hashed = token_lookup_hash(raw)
    qs = LinkToken.objects.select_related("booking", *related)
    if for_update:
        qs = qs.select_for_update(of=("self",))
    try:
        link = qs.get(token_hash=hashed, purpose=purpose)
    except LinkToken.DoesNotExist:
        raise TokenInvalid("unknown") from None
    token_check(link)
    return link


def token_check(link: Any) -> None:
    """TokenInvalid if `link` may not be used: revoked, used up or expired. Any stored link
    with `used_at` and `expires_at` (and maybe `revoked_at`): booking links, waitlist links,
    staff's authenticator setup links."""
    if getattr(link, "revoked_at", None) is not None:
        raise TokenInvalid("revoked", link=link)
    if link.used_at is not None:
        raise TokenInvalid("used", link=link)
    if link.expires_at <= timezone.now():
        raise TokenInvalid("expired", link=link)


def token_claim(*, raw: str, purpose: str) -> LinkToken:
    """Use up a single-use token. Must run inside the transaction that acts on it.

    Its booking's row is locked before the link's, the order of everything that changes a
    booking's links (a new verification link revoking the old, purging a draft with its
    links): the other order deadlocks with them."""
    assert transaction.get_connection().in_atomic_block, "claim tokens inside a transaction"
    booking_id = (
        LinkToken.objects.filter(token_hash=token_lookup_hash(raw), purpose=purpose)
        .values_list("booking_id", flat=True)
        .first()
    )
    if booking_id is not None:
        _booking_lock(booking_id)
    link = token_get(raw=raw, purpose=purpose, for_update=True)
    link.used_at = timezone.now()
    link.save(update_fields=["used_at"])
    return link


def tokens_revoke(*, booking: Booking, purpose: str | None = None) -> int:
    qs = LinkToken.objects.filter(booking=booking, revoked_at__isnull=True)
    if purpose:
        qs = qs.filter(purpose=purpose)
    return qs.update(revoked_at=timezone.now())


# --- Waitlist links (their own table: a waitlist entry is not a booking) ----------------


def waitlist_token_create(*, entry: WaitlistEntry, purpose: str, lifetime: timedelta) -> str:
    raw = secrets.token_urlsafe(24)
    WaitlistToken.objects.create(
        entry=entry, purpose=purpose, token_hash=token_hash(raw), expires_at=timezone.now() + lifetime
    )
    return raw


def waitlist_token_get(*, raw: str, purpose: str, for_update: bool = False) -> WaitlistToken:
    """The live waitlist token behind `raw`, or TokenInvalid saying why not."""
    hashed = token_lookup_hash(raw)
    qs = WaitlistToken.objects.select_related("entry")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    link = qs.filter(token_hash=hashed, purpose=purpose).first()
    if link is None:
        raise TokenInvalid("unknown")
    token_check(link)
    return link


def waitlist_token_claim(*, raw: str, purpose: str) -> WaitlistToken:
    """Use up a single-use waitlist token, inside the transaction that acts on it."""
    assert transaction.get_connection().in_atomic_block, "claim tokens inside a transaction"
    link = waitlist_token_get(raw=raw, purpose=purpose, for_update=True)
    link.used_at = timezone.now()
    link.save(update_fields=["used_at"])
    return link
