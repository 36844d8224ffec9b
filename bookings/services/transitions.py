"""The one transition path, and the small helpers every action uses."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bookings import notifications, selectors
from bookings.errors import (
    ActiveBookingExists,
    BookingError,
    SlotUnavailable,
    StaleBooking,
    TooLate,
    TransitionNotAllowed,
)
from bookings.lifecycle import CLIENT_LABELS, TRANSITIONS
from bookings.models import (
    ACK_ALPHABET,
    ACK_LENGTH,
    SLOT_HOLDING_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    Counsellor,
    Mode,
    PaymentState,
    SessionType,
    Slot,
    Status,
)

logger = logging.getLogger(__name__)


# --- Small pure helpers -----------------------------------------------------------------


def ack_id_new() -> str:
    return "MS-" + "".join(secrets.choice(ACK_ALPHABET) for _i in range(ACK_LENGTH))


_ACK_INPUT = re.compile(r"^MS([A-Z0-9]{6})$")
# Separators people type or paste inside an ID: spaces and dashes (hyphen to em dash),
# underscores, dots (a full stop after an ID copied from a sentence).
_ACK_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015_.]+")
# "MS" and a separator: the prefix was typed ("MS-7K3Q" is a short ID, not the code "MS7K3Q").
_ACK_PREFIX = re.compile(r"\s*ms[\s\-\u2010-\u2015_.]", re.IGNORECASE)
# The longest text read as an ID: room for a separator between every character and spaces
# around it; anything longer is not an ID someone copied.
ACK_ID_TYPED_MAX_LENGTH = 20


def ack_id_compact(raw: str) -> str:
    """What someone typed or pasted as an acknowledgement ID, without separators, in capitals,
    with "MS" put in front if only the six characters were given. ack_id_normalise checks it;
    the lookup form also reads it to say which characters were not an ID's."""
    typed = raw or ""
    compact = _ACK_SEPARATORS.sub("", typed).upper()
    if len(compact) == ACK_LENGTH and not _ACK_PREFIX.match(typed):
        compact = f"MS{compact}"
    return compact


def ack_id_normalise(raw: str) -> str | None:
    """An acknowledgement ID as people copy it (`ms-abc234 `, `MS ABC234`, `ms\u2013abc234` (an en dash),
    `ABC234`, `MS-ABC234.`) -> `MS-ABC234`; None if it cannot be one. The status page and the
    chatbot API both read IDs through this, so they find the same bookings."""
    if len((raw or "").strip()) > ACK_ID_TYPED_MAX_LENGTH:
        return None
    match = _ACK_INPUT.match(ack_id_compact(raw))
    if not match or any(c not in ACK_ALPHABET for c in match.group(1)):
        return None
    return f"MS-{match.group(1)}"


def email_normalise(raw: str) -> str:
    return (raw or "").strip().lower()


def phone_normalise(raw: str, *, region: str = "IN") -> str:
    """E.164, or ValueError with a message for the client. Empty stays empty."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError(_("Enter a phone number, for example 98765 43210 or +91 98765 43210.")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(_("This phone number is not valid. Check the number of digits and the country code."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Before this hour a deadline is read as the wrong day: "by Tuesday, 02:00" reads as Tuesday,
# when it means Monday night.
SMALL_HOURS_END = 6


def _end_of_day(day: date) -> datetime:
    """The last second of `day` in the clinic's zone: what "by Sunday" means to a client."""
    return timezone.make_aware(datetime.combine(day, time(23, 59, 59)))


def payment_due_at(*, approved_at: datetime, session_start: datetime, now: datetime) -> datetime:
    """When a reserved time must be paid for, set `now` (at approval, or when the session moves).

    PAYMENT_WINDOW_HOURS after approval, to the end of that day in the clinic's zone, so the
    deadline is a day and never an odd minute; and never later than
    PAYMENT_DEADLINE_BEFORE_SESSION_HOURS before the session. When that limit falls in the small
    hours, it moves back to the end of the evening before, if that is still over an hour away,
    since nobody reads "by Tuesday, 02:00" as Monday night."""
    window_end = timezone.localtime(approved_at + timedelta(hours=settings.PAYMENT_WINDOW_HOURS))
    latest = timezone.localtime(session_start - timedelta(hours=settings.PAYMENT_DEADLINE_BEFORE_SESSION_HOURS))
    if latest.hour < SMALL_HOURS_END:
        evening = _end_of_day(latest.date() - timedelta(days=1))
        if evening > now + timedelta(hours=1):
            latest = evening
    return min(_end_of_day(window_end.date()), latest)


def _integrity_error_to_domain(exc: IntegrityError) -> BookingError | None:
    text = str(exc).lower()
    if "booking_one_per_slot" in text or "bookings_booking.slot_id" in text:
        return SlotUnavailable()
    if "booking_one_active_per_email" in text or "bookings_booking.email" in text:
        return ActiveBookingExists()
    return None


def _slot_held_or_blocked(slot: Slot) -> tuple[bool, bool]:
    """In one query: whether a booking holds `slot`, and whether its counsellor has since
    blocked that time off (blocking keeps the slots bookings ever held: not to be taken)."""
    return (
        Slot.objects.filter(pk=slot.pk)
        .values_list(
            Exists(Booking.objects.filter(slot_id=slot.pk, status__in=SLOT_HOLDING_STATUSES)),
            Exists(
                BlockedPeriod.objects.filter(counsellor_id=slot.counsellor_id, start__lt=slot.end, end__gt=slot.start)
            ),
        )
        .get()
    )


def slot_is_bookable(*, slot: Slot, session_type: SessionType, now: datetime | None = None) -> str | None:
    """None if a client may choose `slot` for `session_type`; otherwise why not."""
    now = now or timezone.now()
    if slot.start < now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS):
        return _("That time is too soon to book online. Please choose a later time.")
    if slot.start > now + timedelta(days=settings.BOOKING_HORIZON_DAYS):
        return _("That time is too far ahead to book yet. Please choose an earlier time.")
    if slot.duration < session_type.duration:
        return _("That time is too short for this kind of session. Please choose another time.")
    if not slot.counsellor.is_active:
        return _("That time is no longer available. Please choose another time.")
    held, blocked = _slot_held_or_blocked(slot)
    if held:
        return SlotUnavailable.default_message
    if blocked:
        return _("That time is no longer available. Please choose another time.")
    return None


def _check_mode(*, session_type: SessionType, mode: str, counsellor: Counsellor | None) -> None:
    if mode not in session_type.modes:
        if mode == Mode.ONLINE:
            message = gettext("“%(name)s” is not held online. Choose in person, or another kind of session.")
        else:
            message = gettext("“%(name)s” is not held in person. Choose online, or another kind of session.")
        raise BookingError(message % {"name": session_type.shown_name})
    if counsellor is not None:
        offered = (mode == Mode.ONLINE and counsellor.offers_online) or (
            mode == Mode.IN_PERSON and counsellor.offers_in_person
        )
        if not offered:
            if mode == Mode.ONLINE:
                message = gettext("%(name)s does not meet clients online. Choose in person, or another counsellor.")
            else:
                message = gettext("%(name)s does not meet clients in person. Choose online, or another counsellor.")
            raise BookingError(message % {"name": counsellor.display_name})


def _too_close_to_pay_message() -> str:
    return (
        f"This session starts within {settings.PAYMENT_DEADLINE_BEFORE_SESSION_HOURS} hours, which "
        "leaves the client no time to pay online. Choose a later time."
    )


def slots_lock(slot_ids: Iterable[int]) -> dict[int, Slot]:
    """Lock slots to take them (approving, moving, booking for a client, verifying a request
    for a time), in the one order every writer of a counsellor's slots uses: their
    counsellors' rows first, then the slots, each in primary-key order. Publishing, blocking
    time off and removing slots lock the counsellor first too, so each of these waits for the
    others instead of deadlocking (a block that found no booking in its period would otherwise
    delete a slot being taken, and fail at commit). Returns the slots that still exist, by
    id, with their counsellors; call inside a transaction."""
    ids = sorted(set(slot_ids))
    counsellor_ids = sorted(set(Slot.objects.filter(pk__in=ids).values_list("counsellor_id", flat=True)))
    list(Counsellor.objects.select_for_update().filter(pk__in=counsellor_ids).order_by("pk").values_list("pk"))
    slots = Slot.objects.select_for_update(of=("self",)).select_related("counsellor").filter(pk__in=ids)
    return {slot.pk: slot for slot in slots.order_by("pk")}


def _check_slot_for_staff(*, slot: Slot, session_type: SessionType, now: datetime) -> None:
    if slot.start <= now:
        raise TooLate(_("That time has already passed. Choose a time in the future."))
    # Staff book a counsellor whose profile clients do not see (just joined, say), but not
    # one whose account is deactivated: they have left, or are away.
    if not Counsellor.objects.filter(selectors.counsellors_at_work_q(), pk=slot.counsellor_id).exists():
        raise SlotUnavailable(
            f"{slot.counsellor.display_name}'s staff account is deactivated, so their times can't be booked. "
            "Choose another counsellor's time."
        )
    if slot.duration < session_type.duration:
        raise SlotUnavailable(
            f"That slot lasts {int(slot.duration.total_seconds() // 60)} minutes; "
            f"a {session_type.name} session needs {session_type.duration_minutes}."
        )
    held, blocked = _slot_held_or_blocked(slot)
    if held:
        raise SlotUnavailable(_("That time slot is already taken by another booking."))
    if blocked:
        raise SlotUnavailable(
            f"{slot.counsellor.display_name} has blocked off that time (leave, a holiday). Choose another "
            "time, or remove the blocked period on the availability page first."
        )


# --- The one transition path ------------------------------------------------------------


def _paid_in_full(booking: Booking) -> bool:
    """A confirmed payment of the booking's amount and currency exists."""
    return booking.payments.filter(
        status=PaymentState.CONFIRMED, amount=booking.amount, currency=booking.currency
    ).exists()


def booking_transition(
    *,
    booking: Booking | int,
    to: str,
    actor: str,
    user: Any = None,
    reason: str = "",
    expected_version: int | None = None,
    changes: dict[str, Any] | None = None,
    client_asked: bool = False,
) -> Booking:
    """Move a booking to status `to`, or raise a BookingError and change nothing.

    `changes` are other fields to save with the move (the slot on approval, say).
    `client_asked`: staff made the move because the client asked (a cancellation), so the
    client's email does not say the clinic decided it.
    `expected_version` refuses the move if someone else changed the booking meanwhile.
    """
    booking_id = booking.pk if isinstance(booking, Booking) else booking
    with transaction.atomic():
        locked = Booking.objects.select_for_update().get(pk=booking_id)
        if expected_version is not None and locked.version != expected_version:
            raise StaleBooking()
        from_status = locked.status
        actors = TRANSITIONS.get((from_status, to))
        if actors is None or actor not in actors:
            if actor == Actor.CLIENT:  # shown on a client's page, in their language
                raise TransitionNotAllowed(
                    gettext(
                        "This booking is now “%(status)s”, so that can no longer be done. Your booking page "
                        "shows where it stands."
                    )
                    % {"status": CLIENT_LABELS[from_status]}
                )
            raise TransitionNotAllowed(
                f"A booking that is {Status(from_status).label.lower()} cannot become "
                f"{Status(to).label.lower()}" + ("." if actors is None else f" by {Actor(actor).label.lower()}.")
            )
        if to == Status.CONFIRMED and not _paid_in_full(locked):
            # Whoever moves it: a provider's word, or staff's record of money taken at the clinic.
            raise TransitionNotAllowed("A booking is confirmed only by a payment of its amount, and it has none.")
        changes = dict(changes or {})
        counsellor_before_id = locked.counsellor_id
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.status = to
        locked.version += 1
        try:
            with transaction.atomic():
                locked.save(update_fields=[*changes, "status", "version", "updated_at"])
        except IntegrityError as exc:
            domain = _integrity_error_to_domain(exc)
            if domain is None:
                raise
            raise domain from exc
        BookingEvent.objects.create(
            booking=locked,
            from_status=from_status,
            to_status=to,
            actor=actor,
            actor_user=user if actor == Actor.STAFF else None,
            reason=reason[:500],
        )
        notifications.on_transition(
            booking=locked,
            from_status=from_status,
            actor=actor,
            user=user,
            client_asked=client_asked,
            counsellor_before_id=counsellor_before_id,
        )
        if to == Status.CANCELLED and locked.slot_id and from_status in SLOT_HOLDING_STATUSES:
            # Imported here: the waitlist builds on this module, not the other way round.
            from bookings.services.waitlist import slots_freed

            slots_freed(slot_ids=[locked.slot_id])
        if from_status == Status.CONFIRMED:
            # The address's one active booking is no more: a request its client made meanwhile,
            # held for it (requests.booking_verify), is made now. After the commit, so that
            # recording the session never fails for it; the hourly sweep stands in if this is lost.
            from bookings.services.requests import held_requests_release

            email = locked.email
            transaction.on_commit(lambda: held_requests_release(email=email), robust=True)
    logger.info("booking %s: %s -> %s by %s", locked.pk, from_status, to, actor)
    return locked


def booking_record(
    *,
    booking: Booking,
    action: str,
    actor: str,
    user: Any = None,
    reason: str = "",
    moved: tuple[datetime, datetime] | None = None,
) -> None:
    """An audit event that is not a change of status (an email resent, a slot moved...).
    `moved`: a move's old and new start."""
    BookingEvent.objects.create(
        booking=booking,
        from_status=booking.status,
        to_status=booking.status,
        action=action,
        actor=actor,
        actor_user=user if actor == Actor.STAFF else None,
        reason=reason[:500],
        moved_from=moved[0] if moved else None,
        moved_to=moved[1] if moved else None,
    )
