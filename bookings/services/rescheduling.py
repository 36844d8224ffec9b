"""Moving a booking to another slot, by the client (confirmed by email) or by staff."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from bookings import notifications, selectors
from bookings.errors import (
    BookingError,
    SlotUnavailable,
    StaleBooking,
    TooLate,
    TransitionNotAllowed,
)
from bookings.lifecycle import CLIENT_LABELS
from bookings.models import (
    Actor,
    Booking,
    LinkToken,
    Slot,
    Status,
)
from bookings.services.decisions import cancellation_open_for_client
from bookings.services.transitions import (
    _check_mode,
    _check_slot_for_staff,
    _integrity_error_to_domain,
    _too_close_to_pay_message,
    booking_record,
    payment_due_at,
    slot_is_bookable,
    slots_lock,
)
from bookings.services.waitlist import slots_freed
from bookings.tokens import booking_lock_for_link, token_claim, token_create, token_get, token_just_sent

logger = logging.getLogger(__name__)


# --- Rescheduling -------------------------------------------------------------------------
# A move is not a change of status: the booking keeps its status, acknowledgement ID and
# payment. Like a transition it goes through one function (`booking_reschedule`) that locks
# the rows, bumps the version, writes an event and queues its emails for after commit.

RESCHEDULABLE_BY_CLIENT = (Status.APPROVED, Status.CONFIRMED)
RESCHEDULABLE_BY_STAFF = (Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED)
RESCHEDULED = "rescheduled"  # the BookingEvent action


def reschedule_moves_used(*, booking: Booking) -> int:
    """How many times the client has moved this booking (staff moves are not counted).
    Reads the booking's events, so a page that prefetched them pays no query."""
    return sum(1 for e in booking.events.all() if e.action == RESCHEDULED and e.actor == Actor.CLIENT)


def reschedule_state_for_client(*, booking: Booking) -> dict[str, Any]:
    """What the booking page says about moving: whether to offer it, why not, moves left."""
    used = reschedule_moves_used(booking=booking)
    return {
        "show": booking.status in RESCHEDULABLE_BY_CLIENT and booking.slot_id is not None,
        "problem": reschedule_problem_for_client(booking=booking),
        "moves_left": max(settings.RESCHEDULE_LIMIT - used, 0),
    }


def reschedule_problem_for_client(
    *, booking: Booking, now: datetime | None = None, asked_at: datetime | None = None
) -> str | None:
    """None if the client may move this booking online now; otherwise why not, in words for
    them. `asked_at`: when they asked, for a move confirmed from an emailed link (the cutoff is
    judged then: cancellation_open_for_client)."""
    if booking.status not in RESCHEDULABLE_BY_CLIENT or booking.slot_id is None:
        return _("Only a booking with a reserved time that is not being paid for right now can be moved.")
    if booking.counsellor is not None and not booking.counsellor.is_active:
        # Clients may choose only times of counsellors whose profile they see (slot_is_bookable):
        # one who has left (deactivation hides the profile) or is hidden has none to offer.
        return gettext(
            "Times with %(name)s can no longer be chosen online. Please contact the clinic to move this session."
        ) % {"name": booking.counsellor.display_name}
    if not cancellation_open_for_client(booking=booking, now=now, asked_at=asked_at):
        return gettext(
            "Sessions can be moved online until %(hours)s hours before they start. Please contact the clinic."
        ) % {"hours": settings.CANCELLATION_CUTOFF_HOURS}
    if reschedule_moves_used(booking=booking) >= settings.RESCHEDULE_LIMIT:
        return ngettext(
            "A booking can be moved online once, and this one has been. Please contact the clinic.",
            "A booking can be moved online %(count)d times, and this one has been. Please contact the clinic.",
            settings.RESCHEDULE_LIMIT,
        ) % {"count": settings.RESCHEDULE_LIMIT}
    return None


def _client_slot_problem(*, booking: Booking, slot: Slot, now: datetime | None = None) -> str | None:
    """Why a client may not move `booking` into `slot` (None if they may)."""
    if slot.counsellor_id != booking.counsellor_id:
        return _("That time is with a different counsellor. Please choose one of your counsellor's times.")
    problem = slot_is_bookable(slot=slot, session_type=booking.session_type, now=now)
    if problem:
        return problem
    try:
        _check_mode(session_type=booking.session_type, mode=booking.mode, counsellor=slot.counsellor)
    except BookingError as exc:
        return exc.message
    return None


def booking_reschedule(
    *,
    booking_id: int,
    slot_id: int,
    actor: str,
    user: Any = None,
    expected_version: int | None = None,
    client_asked: bool = False,
    asked_at: datetime | None = None,
) -> Booking:
    """Move a booking to another free slot, keeping its status, acknowledgement ID and payment.
    `asked_at`: when the client asked, for a move they confirm from an emailed link (their
    cutoff is judged then).
    `client_asked`: staff moved it because the client asked (they phoned, say), so the
    client's email says it moved as they asked, not that the clinic moved it.

    The old slot is released and the new one taken by one UPDATE in one transaction, so the
    booking always holds exactly one of them. Both slots are locked first, in primary-key
    order (and before the booking, as `booking_approve` does), so two moves crossing the same
    slots queue up instead of deadlocking; the constraint `booking_one_per_slot` is the
    backstop and reads as SlotUnavailable. Clients: before the cutoff, within
    RESCHEDULE_LIMIT, same counsellor, a time they could book. Staff: any free future slot
    that fits the session, of a counsellor at work; a slot of another counsellor hands the
    booking over to them (the staff views let only administrators choose one), and with it
    who may read the client's words (staff.permissions decides by the booking's counsellor).
    """
    now = timezone.now()
    old_slot_id = Booking.objects.filter(pk=booking_id).values_list("slot_id", flat=True).first()
    if old_slot_id is None:
        raise TransitionNotAllowed(_("Only a booking with a reserved time can be moved to another time."))
    with transaction.atomic():
        locked = slots_lock([old_slot_id, slot_id])
        new_slot = locked.get(slot_id)
        if new_slot is None:
            raise SlotUnavailable(_("That time is no longer offered. Please choose another."))
        booking = (
            Booking.objects.select_for_update(of=("self",))
            .select_related("session_type", "slot", "counsellor")
            .get(pk=booking_id)
        )
        if booking.slot_id != old_slot_id or (expected_version is not None and booking.version != expected_version):
            raise StaleBooking()
        allowed = RESCHEDULABLE_BY_CLIENT if actor == Actor.CLIENT else RESCHEDULABLE_BY_STAFF
        if booking.status not in allowed:
            if actor == Actor.CLIENT:  # shown on a client's page, in their language
                raise TransitionNotAllowed(
                    gettext(
                        "This booking is now “%(status)s”, so it can no longer be moved to another time. Your "
                        "booking page shows where it stands."
                    )
                    % {"status": CLIENT_LABELS[booking.status]}
                )
            raise TransitionNotAllowed(
                f"A booking that is {Status(booking.status).label.lower()} cannot be moved to another time."
            )
        if booking.slot_id == new_slot.pk:
            raise BookingError(_("The booking is already at that time."))
        if actor == Actor.CLIENT:
            problem = reschedule_problem_for_client(booking=booking, now=now, asked_at=asked_at)
            if problem:
                raise TooLate(problem)
            problem = _client_slot_problem(booking=booking, slot=new_slot, now=now)
            if problem:
                raise SlotUnavailable(problem)
        else:
            _check_slot_for_staff(slot=new_slot, session_type=booking.session_type, now=now)
            _check_mode(session_type=booking.session_type, mode=booking.mode, counsellor=new_slot.counsellor)
        changes: dict[str, Any] = {"slot": new_slot, "counsellor": new_slot.counsellor}
        old_slot_held = locked.get(old_slot_id)
        old_counsellor = (
            old_slot_held.counsellor
            if old_slot_held is not None and old_slot_held.counsellor_id == booking.counsellor_id
            else booking.counsellor
        )
        handed_over = booking.counsellor_id != new_slot.counsellor_id
        if handed_over and booking.meeting_url:
            # A link set for this booking is most likely the old counsellor's own meeting,
            # which the new one cannot host: the session uses the new counsellor's room.
            changes["meeting_url"] = ""
        if booking.status in (Status.APPROVED, Status.PAYMENT_PENDING):
            # The payment deadline follows the session: never later than it allows.
            due = payment_due_at(approved_at=booking.approved_at or now, session_start=new_slot.start, now=now)
            if due <= now:
                if actor == Actor.CLIENT:
                    # Their time to pay ran out (the booking expires at the next sweep).
                    raise TooLate(
                        _(
                            "The time to pay for this booking has run out, so it cannot be moved. Please contact the clinic."
                        )
                    )
                raise TooLate(_too_close_to_pay_message())
            changes["payment_due_at"] = due
        old_slot = booking.slot
        for field, value in changes.items():
            setattr(booking, field, value)
        booking.version += 1
        try:
            with transaction.atomic():
                booking.save(update_fields=[*changes, "version", "updated_at"])
        except IntegrityError as exc:
            domain = _integrity_error_to_domain(exc)
            if domain is None:
                raise
            raise domain from exc
        booking_record(
            booking=booking,
            action=RESCHEDULED,
            actor=actor,
            user=user,
            reason=selectors.move_reason(
                old_start=old_slot.start,
                new_start=new_slot.start,
                old_counsellor=old_counsellor if handed_over else None,
                new_counsellor=new_slot.counsellor if handed_over else None,
                link_cleared="meeting_url" in changes,
            ),
            moved=(old_slot.start, new_slot.start),
        )
        # Links to confirm other moves were for the old time: they stop working.
        LinkToken.objects.filter(
            booking=booking, purpose=LinkToken.Purpose.RESCHEDULE, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        notifications.rescheduled(
            booking=booking,
            old_slot=old_slot,
            actor=actor,
            old_counsellor=old_counsellor,
            user=user,
            client_asked=client_asked,
        )
        slots_freed(slot_ids=[old_slot.pk])
    logger.info("booking %s moved from slot %s to %s by %s", booking.pk, old_slot.pk, new_slot.pk, actor)
    return booking


def booking_reschedule_request(*, booking: Booking, slot: Slot) -> None:
    """Email the client a single-use link (valid RESCHEDULE_LINK_MINUTES) to confirm moving
    to `slot`. Nothing moves until they confirm; the time is not held meanwhile."""
    problem = reschedule_problem_for_client(booking=booking)
    if problem:
        raise TooLate(problem)
    problem = _client_slot_problem(booking=booking, slot=slot)
    if problem:
        raise SlotUnavailable(problem)
    with transaction.atomic():
        booking_lock_for_link(booking)
        if token_just_sent(booking=booking, purpose=LinkToken.Purpose.RESCHEDULE, slot=slot):
            return
        raw = token_create(
            booking=booking,
            purpose=LinkToken.Purpose.RESCHEDULE,
            lifetime=timedelta(minutes=settings.RESCHEDULE_LINK_MINUTES),
            slot=slot,
        )
        notifications.reschedule_confirmation(booking=booking, slot=slot, raw_token=raw)


def booking_reschedule_confirm(*, token: str) -> Booking:
    """The client confirmed the move from the emailed link (a POST). If the move is refused
    (the time was taken meanwhile, say), nothing changes and the link is not used up."""
    with transaction.atomic():
        # The slots are locked before the link (slots_lock's order): withdrawing the time, or
        # blocking time off over it, deletes the link with the slot.
        link = token_get(raw=token, purpose=LinkToken.Purpose.RESCHEDULE)
        current = Booking.objects.filter(pk=link.booking_id).values_list("slot_id", flat=True).first()
        slots_lock([slot_id for slot_id in (current, link.slot_id) if slot_id is not None])
        link = token_claim(raw=token, purpose=LinkToken.Purpose.RESCHEDULE)
        return booking_reschedule(
            booking_id=link.booking_id, slot_id=link.slot_id, actor=Actor.CLIENT, asked_at=link.created_at
        )


def booking_move_to_start(*, booking_id: int, start: datetime, user: Any, expected_version: int | None) -> Booking:
    """A booking dragged on the staff calendar: move it to its counsellor's free slot that
    starts exactly at `start`, or refuse."""
    booking = Booking.objects.get(pk=booking_id)
    slot = (
        selectors.slots_free_for_staff(counsellor=booking.counsellor, start=start, end=start + timedelta(seconds=1))
        .filter(start=start)
        .first()
        if booking.counsellor_id
        else None
    )
    if slot is None:
        raise SlotUnavailable(
            "There is no free slot of this counsellor starting at that time. Publish one first, or drop the "
            "session on a free (shaded) time."
        )
    return booking_reschedule(
        booking_id=booking_id, slot_id=slot.pk, actor=Actor.STAFF, user=user, expected_version=expected_version
    )
