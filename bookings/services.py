"""Every action on bookings, in one place. Views, the API and commands call these.

Each status change goes through `booking_transition`: a transaction, the row re-read under
a lock, the lifecycle table checked, the row saved with `update_fields`, a `BookingEvent`
written, and the emails queued for after commit. Nothing else assigns `Booking.status`.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import phonenumbers
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from bookings import notifications, payments, selectors
from bookings.errors import (
    ActiveBookingExists,
    BookingError,
    PaymentError,
    SlotsHeld,
    SlotUnavailable,
    StaleBooking,
    TooLate,
    TransitionNotAllowed,
)
from bookings.lifecycle import STAFF_CREATED_STATUSES, TRANSITIONS
from bookings.models import (
    ACK_ALPHABET,
    ACK_LENGTH,
    ACTIVE_STATUSES,
    SLOT_HOLDING_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    Counsellor,
    DailySummary,
    LinkToken,
    Mode,
    OutboundEmail,
    Payment,
    Reminder,
    SessionType,
    Slot,
    Status,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistToken,
    WebhookEvent,
    WeeklyHours,
)
from bookings.tokens import token_claim, token_create, waitlist_token_claim, waitlist_token_create

logger = logging.getLogger(__name__)

# --- Small pure helpers -----------------------------------------------------------------


def ack_id_new() -> str:
    return "MS-" + "".join(secrets.choice(ACK_ALPHABET) for _ in range(ACK_LENGTH))


_ACK_INPUT = re.compile(r"^MS-?([A-Z0-9]{6})$")


def ack_id_normalise(raw: str) -> str | None:
    """`ms-abc234 ` -> `MS-ABC234`; None if it cannot be an acknowledgement ID."""
    candidate = (raw or "").strip().upper()
    match = _ACK_INPUT.match(candidate)
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
        raise ValueError("Enter a phone number, for example 98765 43210 or +91 98765 43210.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("This phone number is not valid. Check the number of digits and the country code.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def payment_due_at(*, approved_at: datetime, session_start: datetime) -> datetime:
    """The payment window: PAYMENT_WINDOW_HOURS after approval, never later than
    PAYMENT_DEADLINE_BEFORE_SESSION_HOURS before the session."""
    return min(
        approved_at + timedelta(hours=settings.PAYMENT_WINDOW_HOURS),
        session_start - timedelta(hours=settings.PAYMENT_DEADLINE_BEFORE_SESSION_HOURS),
    )


def _integrity_error_to_domain(exc: IntegrityError) -> BookingError | None:
    text = str(exc).lower()
    if "booking_one_per_slot" in text or "bookings_booking.slot_id" in text:
        return SlotUnavailable()
    if "booking_one_active_per_email" in text or "bookings_booking.email" in text:
        return ActiveBookingExists()
    return None


# --- The one transition path ------------------------------------------------------------


def booking_transition(
    *,
    booking: Booking | int,
    to: str,
    actor: str,
    user: Any = None,
    reason: str = "",
    expected_version: int | None = None,
    changes: dict[str, Any] | None = None,
) -> Booking:
    """Move a booking to status `to`, or raise a BookingError and change nothing.

    `changes` are other fields to save with the move (the slot on approval, say).
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
            raise TransitionNotAllowed(
                f"A booking that is {Status(from_status).label.lower()} cannot become "
                f"{Status(to).label.lower()}" + ("." if actors is None else f" by {Actor(actor).label.lower()}.")
            )
        changes = dict(changes or {})
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
        notifications.on_transition(booking=locked, from_status=from_status, actor=actor)
        if to == Status.CANCELLED and locked.slot_id and from_status in SLOT_HOLDING_STATUSES:
            slots_freed(slot_ids=[locked.slot_id])
    logger.info("booking %s: %s -> %s by %s", locked.pk, from_status, to, actor)
    return locked


def booking_record(*, booking: Booking, action: str, actor: str, user: Any = None, reason: str = "") -> None:
    """An audit event that is not a change of status (an email resent, a slot moved...)."""
    BookingEvent.objects.create(
        booking=booking,
        from_status=booking.status,
        to_status=booking.status,
        action=action,
        actor=actor,
        actor_user=user if actor == Actor.STAFF else None,
        reason=reason[:500],
    )


# --- Creating bookings ------------------------------------------------------------------


def _create_with_ack_id(**fields: Any) -> Booking:
    """Insert a booking with a fresh random acknowledgement ID, retrying on a collision."""
    for _ in range(10):
        try:
            with transaction.atomic():
                return Booking.objects.create(ack_id=ack_id_new(), **fields)
        except IntegrityError as exc:
            if "ack_id" not in str(exc).lower():
                domain = _integrity_error_to_domain(exc)
                if domain is None:
                    raise
                raise domain from exc
    raise RuntimeError("could not find a free acknowledgement ID")  # 31**6 IDs: never in practice


def slot_is_bookable(*, slot: Slot, session_type: SessionType, now: datetime | None = None) -> str | None:
    """None if a client may choose `slot` for `session_type`; otherwise why not."""
    now = now or timezone.now()
    if slot.start < now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS):
        return "That time is too soon to book online. Please choose a later time."
    if slot.start > now + timedelta(days=settings.BOOKING_HORIZON_DAYS):
        return "That time is too far ahead to book yet. Please choose an earlier time."
    if slot.duration < session_type.duration:
        return "That time is too short for this kind of session. Please choose another time."
    if not slot.counsellor.is_active:
        return "That time is no longer available. Please choose another time."
    if slot.bookings.filter(status__in=SLOT_HOLDING_STATUSES).exists():
        return SlotUnavailable.default_message
    return None


def _check_mode(*, session_type: SessionType, mode: str, counsellor: Counsellor | None) -> None:
    if mode not in session_type.modes:
        raise BookingError(f"{session_type.name} sessions are not offered {Mode(mode).label.lower()}.")
    if counsellor is not None:
        offered = (mode == Mode.ONLINE and counsellor.offers_online) or (
            mode == Mode.IN_PERSON and counsellor.offers_in_person
        )
        if not offered:
            raise BookingError(f"{counsellor.display_name} does not offer {Mode(mode).label.lower()} sessions.")


def booking_submit(
    *,
    submission_key: str,
    session_type: SessionType,
    mode: str,
    counsellor: Counsellor | None,
    preferred_slot: Slot | None,
    preferred_times: str,
    client_name: str,
    email: str,
    phone: str,
    age_confirmation: str,
    concerns: str,
    language: str = "en",
) -> tuple[Booking, bool]:
    """Create a DRAFT and email its verification link. Returns (booking, created).

    The same `submission_key` (one per wizard run) returns the draft already made, so a
    double click or a resubmit after Back never makes a second one.
    """
    existing = Booking.objects.filter(submission_key=submission_key).first()
    if existing is not None:
        return existing, False
    if preferred_slot is None and not preferred_times.strip():
        raise BookingError("Choose a time, or tell us which days and times suit you.")
    if preferred_slot is not None:
        counsellor = preferred_slot.counsellor
    _check_mode(session_type=session_type, mode=mode, counsellor=counsellor)
    with transaction.atomic():
        if preferred_slot is not None:
            # Lock the slot so a concurrent approval cannot slip between check and insert.
            preferred_slot = Slot.objects.select_for_update().select_related("counsellor").get(pk=preferred_slot.pk)
            problem = slot_is_bookable(slot=preferred_slot, session_type=session_type)
            if problem:
                raise SlotUnavailable(problem)
        try:
            booking = _create_with_ack_id(
                submission_key=submission_key,
                status=Status.DRAFT,
                client_name=client_name.strip(),
                email=email_normalise(email),
                phone=phone,
                age_confirmation=age_confirmation,
                consent_policy_version=settings.POLICY_VERSION,
                consented_at=timezone.now(),
                language=language,
                concerns=concerns.strip(),
                preferred_times=preferred_times.strip(),
                session_type=session_type,
                mode=mode,
                counsellor=counsellor,
                preferred_slot=preferred_slot,
                amount=session_type.price,
                currency=session_type.currency,
            )
        except IntegrityError:
            # Lost a race with the same submission key: the other request made the draft.
            return Booking.objects.get(submission_key=submission_key), False
        BookingEvent.objects.create(booking=booking, to_status=Status.DRAFT, action="created", actor=Actor.CLIENT)
        raw = token_create(
            booking=booking,
            purpose=LinkToken.Purpose.VERIFY,
            lifetime=timedelta(hours=settings.VERIFICATION_LINK_HOURS),
        )
        notifications.verification(booking=booking, raw_token=raw)
    return booking, True


def booking_resend_verification(*, booking: Booking) -> None:
    """A fresh verification link (the old ones stop working). Only for drafts."""
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking.pk)
        if booking.status != Status.DRAFT:
            return
        LinkToken.objects.filter(
            booking=booking, purpose=LinkToken.Purpose.VERIFY, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        raw = token_create(
            booking=booking,
            purpose=LinkToken.Purpose.VERIFY,
            lifetime=timedelta(hours=settings.VERIFICATION_LINK_HOURS),
        )
        notifications.verification(booking=booking, raw_token=raw)


def booking_verify(*, token: str) -> Booking:
    """The client confirmed their email: DRAFT -> PENDING.

    If the address already has an active booking, no second one is made: that address is
    emailed a link to the existing booking and ActiveBookingExists is raised.
    """
    existing: Booking | None = None
    with transaction.atomic():
        link = token_claim(raw=token, purpose=LinkToken.Purpose.VERIFY)
        draft = link.booking
        existing = Booking.objects.filter(email=draft.email, status__in=ACTIVE_STATUSES).exclude(pk=draft.pk).first()
        if existing is None:
            try:
                return booking_transition(booking=draft, to=Status.PENDING, actor=Actor.CLIENT, reason="Email verified")
            except ActiveBookingExists:
                existing = Booking.objects.filter(email=draft.email, status__in=ACTIVE_STATUSES).first()
        if existing is not None:
            notifications.already_active(booking=existing)
    raise ActiveBookingExists()


def booking_create_by_staff(
    *,
    user: Any,
    status: str,
    session_type: SessionType,
    mode: str,
    client_name: str,
    email: str,
    phone: str,
    slot: Slot | None,
    counsellor: Counsellor | None = None,
    amount: int | None = None,
    age_confirmation: str = Booking.AgeConfirmation.ADULT,
    language: str = "en",
) -> Booking:
    """A booking for a client who phoned or walked in: starts PENDING or APPROVED."""
    if status not in STAFF_CREATED_STATUSES:
        raise TransitionNotAllowed("Bookings made by staff start as pending or approved.")
    if status == Status.APPROVED and slot is None:
        raise BookingError("Choose a time slot to approve the booking straight away.")
    if slot is not None:
        counsellor = slot.counsellor
    _check_mode(session_type=session_type, mode=mode, counsellor=counsellor)
    now = timezone.now()
    with transaction.atomic():
        extra: dict[str, Any] = {}
        if slot is not None:
            slot = Slot.objects.select_for_update().select_related("counsellor").get(pk=slot.pk)
            _check_slot_for_staff(slot=slot, session_type=session_type, now=now)
            if status == Status.APPROVED:
                due = payment_due_at(approved_at=now, session_start=slot.start)
                if due <= now:
                    raise TooLate(_too_close_to_pay_message())
                extra = {"slot": slot, "approved_at": now, "payment_due_at": due}
        booking = _create_with_ack_id(
            status=status,
            client_name=client_name.strip(),
            email=email_normalise(email),
            phone=phone,
            age_confirmation=age_confirmation,
            language=language,
            session_type=session_type,
            mode=mode,
            counsellor=counsellor,
            preferred_slot=slot,
            amount=session_type.price if amount is None else amount,
            currency=session_type.currency,
            created_by=user,
            **extra,
        )
        BookingEvent.objects.create(
            booking=booking,
            to_status=status,
            action="created",
            actor=Actor.STAFF,
            actor_user=user,
            reason="Booked by staff",
        )
        notifications.on_transition(booking=booking, from_status=Status.DRAFT, actor=Actor.STAFF)
    return booking


# --- Staff decisions --------------------------------------------------------------------


def _too_close_to_pay_message() -> str:
    return (
        f"This session starts within {settings.PAYMENT_DEADLINE_BEFORE_SESSION_HOURS} hours, which "
        "leaves the client no time to pay online. Choose a later time."
    )


def _check_slot_for_staff(*, slot: Slot, session_type: SessionType, now: datetime) -> None:
    if slot.start <= now:
        raise TooLate("That time has already passed. Choose a time in the future.")
    if slot.duration < session_type.duration:
        raise SlotUnavailable(
            f"That slot lasts {int(slot.duration.total_seconds() // 60)} minutes; "
            f"a {session_type.name} session needs {session_type.duration_minutes}."
        )
    if slot.bookings.filter(status__in=SLOT_HOLDING_STATUSES).exists():
        raise SlotUnavailable("That time slot is already taken by another booking.")


def booking_approve(
    *,
    booking_id: int,
    slot_id: int,
    user: Any,
    amount: int | None = None,
    expected_version: int | None = None,
    reason: str = "",
) -> Booking:
    """PENDING -> APPROVED into a free slot. The payment window starts now."""
    now = timezone.now()
    with transaction.atomic():
        # Lock the slot first: concurrent approvals into one slot queue up here.
        try:
            slot = Slot.objects.select_for_update().select_related("counsellor").get(pk=slot_id)
        except Slot.DoesNotExist:
            raise SlotUnavailable("That time slot no longer exists. Choose another.") from None
        booking = Booking.objects.select_related("session_type").get(pk=booking_id)
        _check_slot_for_staff(slot=slot, session_type=booking.session_type, now=now)
        due = payment_due_at(approved_at=now, session_start=slot.start)
        if due <= now:
            raise TooLate(_too_close_to_pay_message())
        changes: dict[str, Any] = {
            "slot": slot,
            "counsellor": slot.counsellor,
            "approved_at": now,
            "payment_due_at": due,
        }
        if amount is not None:
            changes["amount"] = amount
        return booking_transition(
            booking=booking_id,
            to=Status.APPROVED,
            actor=Actor.STAFF,
            user=user,
            reason=reason or f"Approved for {timezone.localtime(slot.start):%a %d %b %Y, %H:%M %Z}",
            expected_version=expected_version,
            changes=changes,
        )


def booking_reject(*, booking_id: int, user: Any, reason: str, expected_version: int | None = None) -> Booking:
    if not reason.strip():
        raise BookingError("Give a reason for rejecting this request.")
    return booking_transition(
        booking=booking_id,
        to=Status.REJECTED,
        actor=Actor.STAFF,
        user=user,
        reason=reason.strip(),
        expected_version=expected_version,
    )


def _booking_outcome(
    *, booking_id: int, to: str, user: Any, reason: str, too_early: str, expected_version: int | None
) -> Booking:
    """Record how a session went (completed, no-show): only once it has ended."""
    booking = Booking.objects.select_related("slot").get(pk=booking_id)
    if booking.slot is not None and booking.slot.end > timezone.now():
        raise TooLate(too_early)
    return booking_transition(
        booking=booking_id, to=to, actor=Actor.STAFF, user=user, reason=reason, expected_version=expected_version
    )


def booking_complete(*, booking_id: int, user: Any, expected_version: int | None = None) -> Booking:
    return _booking_outcome(
        booking_id=booking_id,
        to=Status.COMPLETED,
        user=user,
        reason="Session completed",
        too_early="A session can be marked completed only after it has ended.",
        expected_version=expected_version,
    )


def cancellation_open_for_client(*, booking: Booking, now: datetime | None = None) -> bool:
    """Clients may cancel online until CANCELLATION_CUTOFF_HOURS before the session."""
    if booking.status not in ACTIVE_STATUSES:
        return False
    if booking.slot is None:
        return True
    now = now or timezone.now()
    return booking.slot.start - now > timedelta(hours=settings.CANCELLATION_CUTOFF_HOURS)


def booking_cancel(
    *,
    booking_id: int,
    actor: str,
    reason: str,
    user: Any = None,
    expected_version: int | None = None,
    client_asked: bool = False,
) -> Booking:
    """Cancel an active booking. Clients only before the cutoff; staff must give a reason.

    A paid booking's refund is started after commit (payments). Staff cancelling at the
    client's request (`client_asked`) inside the cutoff is recorded as a late cancellation.
    """
    if actor == Actor.STAFF and not reason.strip():
        raise BookingError("Give a reason for cancelling this booking.")
    with transaction.atomic():
        # of=self: PostgreSQL cannot lock the nullable side of the outer join to slot.
        booking = Booking.objects.select_for_update(of=("self",)).select_related("slot").get(pk=booking_id)
        if (
            actor == Actor.CLIENT
            and booking.status in ACTIVE_STATUSES
            and not cancellation_open_for_client(booking=booking)
        ):
            raise TooLate(
                f"Sessions can be cancelled online until {settings.CANCELLATION_CUTOFF_HOURS} hours "
                "before they start. Please contact the clinic."
            )
        from_status = booking.status
        cancelled = booking_transition(
            booking=booking,
            to=Status.CANCELLED,
            actor=actor,
            user=user,
            reason=reason.strip() or "Cancelled",
            expected_version=expected_version,
        )
        if actor == Actor.STAFF and client_asked and booking.slot is not None:
            _record_if_late(booking=cancelled, slot=booking.slot, user=user)
        if from_status == Status.CONFIRMED:
            # Full refund: clients get here only before the cutoff (checked above), staff always.
            paid = Payment.objects.filter(booking=cancelled, status=Payment.State.CONFIRMED).first()
            if paid is not None:
                payment_refund(payment_id=paid.pk, reason=f"Booking cancelled by {Actor(actor).label.lower()}")
        return cancelled


def booking_cancel_request(*, booking: Booking) -> None:
    """Email the client a single-use link (valid CANCELLATION_LINK_MINUTES) to confirm cancelling."""
    if not cancellation_open_for_client(booking=booking):
        raise TooLate(
            f"Sessions can be cancelled online until {settings.CANCELLATION_CUTOFF_HOURS} hours "
            "before they start. Please contact the clinic."
        )
    with transaction.atomic():
        raw = token_create(
            booking=booking,
            purpose=LinkToken.Purpose.CANCEL,
            lifetime=timedelta(minutes=settings.CANCELLATION_LINK_MINUTES),
        )
        notifications.cancel_confirmation(booking=booking, raw_token=raw)


def booking_cancel_confirm(*, token: str) -> Booking:
    """The client confirmed cancellation from the emailed link (a POST)."""
    with transaction.atomic():
        link = token_claim(raw=token, purpose=LinkToken.Purpose.CANCEL)
        return booking_cancel(booking_id=link.booking_id, actor=Actor.CLIENT, reason="Cancelled by the client")


# --- Slots ------------------------------------------------------------------------------


def slot_create(*, counsellor: Counsellor, start: datetime, end: datetime) -> Slot:
    """Publish one free slot. Refuses one that overlaps another of the counsellor's slots."""
    if end <= start:
        raise BookingError("A slot must end after it starts.")
    with transaction.atomic():
        # Serialise publishing per counsellor so the overlap check holds (on SQLite too;
        # PostgreSQL also has an exclusion constraint).
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        if Slot.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start).exists():
            raise SlotUnavailable("That time overlaps another of this counsellor's slots.")
        try:
            with transaction.atomic():
                slot = Slot.objects.create(counsellor=counsellor, start=start, end=end)
        except IntegrityError as exc:
            raise SlotUnavailable("That time overlaps another of this counsellor's slots.") from exc
        slots_freed(slot_ids=[slot.pk])
        return slot


def booking_page_path(raw_token: str) -> str:
    return reverse("bookings:booking_page", args=[raw_token])


# --- Staff portal: emails, meeting links ------------------------------------------------

# Emails that may be sent again as they were (their links stay valid for the booking's life).
RESENDABLE_EMAIL_KINDS = ("request_received", "approved", "rejected", "confirmed", "cancelled", "already_active")


def booking_resend_last_email(*, booking_id: int, user: Any) -> OutboundEmail:
    """Queue the booking's last status email again, to the same address, and note it in the
    audit trail. Single-use links (verification, cancellation) are never resent."""
    from bookings.emails import _enqueue_delivery

    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        last = (
            OutboundEmail.objects.filter(booking=booking, kind__in=RESENDABLE_EMAIL_KINDS)
            .order_by("-created_at", "-id")
            .first()
        )
        if last is None:
            raise BookingError("No email about this booking has been sent yet, so there is nothing to resend.")
        copy = OutboundEmail.objects.create(
            kind=last.kind,
            booking=booking,
            to=last.to,
            subject=last.subject,
            body_text=last.body_text,
            body_html=last.body_html,
            ics=last.ics,
        )
        booking_record(booking=booking, action="email_resent", actor=Actor.STAFF, user=user, reason=last.subject)
        transaction.on_commit(lambda: _enqueue_delivery(copy.pk))
    return copy


def booking_set_meeting_url(*, booking_id: int, user: Any, meeting_url: str) -> Booking:
    """Set (or, with "", clear) a booking's own meeting link; empty means the counsellor's room."""
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.mode != Mode.ONLINE:
            raise BookingError("Only online sessions have a meeting link.")
        booking.meeting_url = meeting_url.strip()
        booking.save(update_fields=["meeting_url", "updated_at"])
        booking_record(
            booking=booking,
            action="meeting_link",
            actor=Actor.STAFF,
            user=user,
            reason="Meeting link set for this booking" if booking.meeting_url else "Meeting link: counsellor's room",
        )
    return booking


# --- Availability -------------------------------------------------------------------------

# Publishing more than this at once is almost certainly a mistake (a dragged month, say).
PUBLISH_MAX_DAYS = 35


def _overlaps(start: datetime, end: datetime, periods: list[tuple[datetime, datetime]]) -> bool:
    return any(s < end and e > start for s, e in periods)


def slots_publish(
    *,
    counsellor: Counsellor,
    start: datetime,
    end: datetime,
    session_minutes: int,
    buffer_minutes: int = 0,
    now: datetime | None = None,
) -> tuple[list[Slot], int]:
    """Split start..end into sessions of `session_minutes`, `buffer_minutes` apart, and
    publish each one that is in the future, outside blocked periods and clear of the
    counsellor's existing slots. Returns (slots created, times skipped). Never duplicates."""
    if end <= start:
        raise BookingError("The period must end after it starts.")
    if session_minutes <= 0 or buffer_minutes < 0:
        raise BookingError("Sessions must last at least a minute, and the buffer cannot be negative.")
    if end - start > timedelta(days=PUBLISH_MAX_DAYS):
        raise BookingError(f"Publish at most {PUBLISH_MAX_DAYS} days at a time.")
    now = now or timezone.now()
    session, step = timedelta(minutes=session_minutes), timedelta(minutes=session_minutes + buffer_minutes)
    with transaction.atomic():
        # The same per-counsellor lock as slot_create, so the overlap check holds.
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        taken = list(
            Slot.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start).values_list("start", "end")
        )
        taken += list(
            BlockedPeriod.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start).values_list(
                "start", "end"
            )
        )
        new: list[Slot] = []
        skipped = 0
        t = start
        while t + session <= end:
            if t <= now or _overlaps(t, t + session, taken):
                skipped += 1
            else:
                new.append(Slot(counsellor=counsellor, start=t, end=t + session))
            t += step
        try:
            with transaction.atomic():
                created = Slot.objects.bulk_create(new)
        except IntegrityError as exc:
            raise SlotUnavailable("Some of these times overlap this counsellor's slots. Please try again.") from exc
        slots_freed(slot_ids=[s.pk for s in created])
    return created, skipped


def availability_generate(*, counsellor: Counsellor, weeks: int = 4, today: date | None = None) -> int:
    """Publish free slots from the counsellor's weekly hours for the coming `weeks`, from
    today. Running it again creates only what is missing. Returns how many were created."""
    today = today or timezone.localdate()
    tz = timezone.get_current_timezone()
    hours = list(WeeklyHours.objects.filter(counsellor=counsellor))
    created = 0
    for offset in range(weeks * 7):
        day = today + timedelta(days=offset)
        for wh in hours:
            if wh.weekday != day.weekday():
                continue
            slots, _ = slots_publish(
                counsellor=counsellor,
                start=timezone.make_aware(datetime.combine(day, wh.start_time), tz),
                end=timezone.make_aware(datetime.combine(day, wh.end_time), tz),
                session_minutes=wh.session_minutes,
                buffer_minutes=wh.buffer_minutes,
            )
            created += len(slots)
    return created


def weekly_hours_add(
    *,
    counsellor: Counsellor,
    weekday: int,
    start_time: time,
    end_time: time,
    session_minutes: int,
    buffer_minutes: int,
) -> WeeklyHours:
    if not 0 <= weekday <= 6:
        raise BookingError("Choose a day of the week.")
    if end_time <= start_time:
        raise BookingError("Working hours must end after they start.")
    if session_minutes <= 0 or buffer_minutes < 0:
        raise BookingError("Sessions must last at least a minute, and the buffer cannot be negative.")
    length = datetime.combine(date.min, end_time) - datetime.combine(date.min, start_time)
    if length < timedelta(minutes=session_minutes):
        raise BookingError("These hours are shorter than one session.")
    if WeeklyHours.objects.filter(
        counsellor=counsellor, weekday=weekday, start_time__lt=end_time, end_time__gt=start_time
    ).exists():
        raise BookingError("These hours overlap hours already set for that day.")
    return WeeklyHours.objects.create(
        counsellor=counsellor,
        weekday=weekday,
        start_time=start_time,
        end_time=end_time,
        session_minutes=session_minutes,
        buffer_minutes=buffer_minutes,
    )


def _bookings_in_slots(slots: Any) -> list[Booking]:
    """Active bookings that hold one of `slots`, or asked for one as their preferred time."""
    return list(
        Booking.objects.filter(Q(slot__in=slots) | Q(preferred_slot__in=slots), status__in=ACTIVE_STATUSES)
        .select_related("slot", "preferred_slot")
        .order_by("pk")
    )


def slot_delete(*, slot_id: int) -> None:
    """Withdraw one published slot. Refused if an active booking holds or asked for it."""
    with transaction.atomic():
        slot = Slot.objects.select_for_update().filter(pk=slot_id).first()
        if slot is None:
            return
        held = _bookings_in_slots([slot])
        if held:
            raise SlotsHeld("This slot holds an active booking, so it cannot be removed.", bookings=held)
        if Booking.objects.filter(slot=slot).exists():
            raise BookingError(
                "Earlier bookings refer to this slot, so it stays in the records. To stop offering "
                "this time, add a blocked period over it."
            )
        slot.delete()


def blocked_period_create(
    *, counsellor: Counsellor, start: datetime, end: datetime, reason: str = ""
) -> tuple[BlockedPeriod, int]:
    """Block start..end (leave, a holiday) and remove the free slots inside it.

    Refused as a whole, listing them, if active bookings hold (or asked for) slots inside:
    those must be moved or cancelled first. Returns (period, free slots removed). Slots that
    only past bookings refer to stay in the records; `selectors.slots_free` hides them.
    """
    if end <= start:
        raise BookingError("A blocked period must end after it starts.")
    with transaction.atomic():
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        inside = Slot.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start)
        held = _bookings_in_slots(inside)
        if held:
            raise SlotsHeld(
                "Active bookings hold times in this period. Move or cancel them first, then block it.",
                bookings=held,
            )
        unused = inside.exclude(Exists(Booking.objects.filter(slot=OuterRef("pk"))))
        ids = list(unused.values_list("pk", flat=True))
        Slot.objects.filter(pk__in=ids).delete()
        period = BlockedPeriod.objects.create(counsellor=counsellor, start=start, end=end, reason=reason.strip())
    return period, len(ids)


# --- Client journey: wizard checks, resends, lookups, housekeeping ----------------------


def booking_choice_problems(
    *,
    session_type: SessionType,
    mode: str,
    counsellor: Counsellor | None,
    slot: Slot | None,
    preferred_times: str,
) -> dict[str, str]:
    """What is wrong with a client's choice of session, by form field ({} if nothing).

    The wizard shows these next to the fields before anything is saved; `booking_submit`
    checks the same rules again under a lock when the request is sent.
    """
    problems: dict[str, str] = {}
    try:
        _check_mode(session_type=session_type, mode=mode, counsellor=counsellor)
    except BookingError as exc:
        problems["mode" if mode not in session_type.modes else "counsellor"] = exc.message
    if slot is None:
        if not preferred_times.strip():
            problems["slot"] = "Choose a time, or tell us which days and times suit you."
        return problems
    if counsellor is not None and slot.counsellor_id != counsellor.pk:
        problems["slot"] = (
            f"That time is with a different counsellor. Choose one of {counsellor.display_name}'s times, "
            "or choose “No preference”."
        )
        return problems
    problem = slot_is_bookable(slot=slot, session_type=session_type)
    if problem is None and "mode" not in problems:
        try:
            _check_mode(session_type=session_type, mode=mode, counsellor=slot.counsellor)
        except BookingError as exc:
            problem = exc.message + " Choose another time, or the other way of meeting."
    if problem:
        problems["slot"] = problem
    return problems


def booking_resend_verification_for_token(*, token: str) -> bool:
    """A fresh verification email for the draft behind a verification link that no longer
    works (expired, used, replaced). True if one was sent.

    The email goes only to the address the draft was made with, so the link's holder learns
    nothing and can reach no one else.
    """
    from bookings.tokens import token_hash

    if not token or len(token) > 100:
        return False
    link = (
        LinkToken.objects.select_related("booking")
        .filter(token_hash=token_hash(token), purpose=LinkToken.Purpose.VERIFY)
        .first()
    )
    if link is None or link.booking.status != Status.DRAFT:
        return False
    booking_resend_verification(booking=link.booking)
    return True


# How many bookings one "email me my links" message lists: the most recent ones.
BOOKING_LINKS_MAX = 10


def booking_links_send(*, email: str) -> int:
    """Email the address the links to its bookings, if it has any. Returns how many.

    The caller must answer the same whatever this returns, so that nobody can learn
    whether an address has booked. Unverified drafts and anonymised bookings are left out.
    """
    address = email_normalise(email)
    with transaction.atomic():
        bookings = list(
            Booking.objects.filter(email=address, anonymised_at__isnull=True)
            .exclude(status=Status.DRAFT)
            .order_by("-created_at")[:BOOKING_LINKS_MAX]
        )
        if bookings:
            notifications.booking_links(email=address, bookings=bookings)
    return len(bookings)


def drafts_purge(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Delete unverified drafts older than DRAFT_RETENTION_HOURS, with their events, links and
    emails. Safe to run often and concurrently (cron, a task): each batch locks its rows and
    skips rows another run holds. Returns how many drafts were deleted."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.DRAFT_RETENTION_HOURS)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                Booking.objects.select_for_update(skip_locked=True)
                .filter(status=Status.DRAFT, created_at__lt=cutoff)
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            # The verification email holds the client's name: it goes with the draft.
            OutboundEmail.objects.filter(booking_id__in=ids).delete()
            # Re-check the status in the delete itself: a draft verified meanwhile stays.
            _, per_model = Booking.objects.filter(pk__in=ids, status=Status.DRAFT).delete()
            deleted += per_model.get(Booking._meta.label, 0)
        if len(ids) < batch_size:
            return deleted


# --- Payments ---------------------------------------------------------------------------
# The rules for money live here; bookings/payments.py only talks to providers. Every route
# a payment can arrive by (return URL, webhook, sandbox callback) ends in `payment_confirm`.
# Lock order, everywhere: the Payment row first, then the Booking row.

PAYMENT_OPEN_STATES = (Payment.State.CREATED, Payment.State.PENDING)
PAYMENT_RETRY_MESSAGE = (
    "We could not reach the payment service just now. Nothing has been charged, and your "
    "time is still reserved. Please try again in a minute."
)


def _money(amount: int, currency: str) -> str:
    major, minor = divmod(int(amount), 100)
    return f"{currency} {major:,}.{minor:02d}"


def _raw_add(payment: Payment, key: str, value: Any) -> None:
    """Keep every payload the provider sent, by event, in arrival order."""
    raw = dict(payment.raw or {})
    name, n = key, 2
    while name in raw:
        name, n = f"{key}#{n}", n + 1
    raw[name] = {"at": timezone.now().isoformat(), "data": value}
    payment.raw = raw


def _staff_alert(*, payment: Payment, booking: Booking, why: str) -> None:
    """Flag the payment for staff and email each administrator (inside the caller's
    transaction, so the alert is sent only if the change it describes commits)."""
    from django.contrib.auth import get_user_model

    from bookings.emails import absolute_url, email_queue

    payment.needs_attention = why[:300]
    admins = get_user_model().objects.filter(is_active=True, role="administrator").values_list("email", flat=True)
    for email in admins:
        email_queue(
            kind="payment_attention",
            to=email,
            booking=booking,
            context={"booking": booking, "payment": payment, "why": why, "staff_url": absolute_url("/staff/")},
        )
    logger.warning("payment %s for booking %s needs attention", payment.pk, booking.pk)


def _payable_or_raise(booking: Booking, *, now: datetime) -> None:
    """Why this booking cannot be paid now, as a message for the client."""
    messages = {
        Status.DRAFT: "This booking is not ready for payment yet: please confirm your email address first.",
        Status.PENDING: "This booking is not ready for payment yet. We will email you when a time is confirmed.",
        Status.PAYMENT_PENDING: "A payment for this booking is already in progress.",
        Status.CONFIRMED: "This booking is already paid and confirmed. There is nothing more to pay.",
        Status.COMPLETED: "This session has already taken place. There is nothing to pay.",
        Status.REJECTED: "This request was not accepted, so there is nothing to pay.",
        Status.CANCELLED: "This booking is cancelled, so it cannot be paid.",
    }
    if booking.status != Status.APPROVED:
        raise PaymentError(messages.get(booking.status, "This booking cannot be paid."))
    if booking.payment_due_at is not None and booking.payment_due_at <= now:
        raise PaymentError(
            "The time to pay for this booking has passed, so the time slot is being released. "
            "You are welcome to book again."
        )


def payment_start(*, booking_id: int) -> Payment:
    """APPROVED -> PAYMENT_PENDING: a new payment attempt with the provider in use.

    The provider's order is made outside any transaction, so a slow provider holds no lock.
    If the provider fails or times out, the attempt is recorded as failed, the booking stays
    APPROVED and payable, and PaymentError asks the client to try again.
    """
    now = timezone.now()
    booking = Booking.objects.get(pk=booking_id)
    _payable_or_raise(booking, now=now)
    provider = payments.get_provider()
    payment = Payment.objects.create(
        booking=booking, provider=provider.identifier, amount=booking.amount, currency=booking.currency
    )
    try:
        order_id, response = provider.order_create(payment=payment)
    except payments.ProviderError as exc:
        logger.warning("payment %s: order not created: %s", payment.pk, exc)
        payment.status = Payment.State.FAILED
        _raw_add(payment, "order_error", str(exc)[:500])
        payment.save(update_fields=["status", "raw", "updated_at"])
        raise PaymentError(PAYMENT_RETRY_MESSAGE) from exc
    refused: BookingError | None = None
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        payment.provider_order_id = order_id
        _raw_add(payment, "order", response)
        locked = Booking.objects.select_for_update().get(pk=booking_id)
        try:
            # Another tab, a cancellation or the expiry sweep may have moved it meanwhile.
            _payable_or_raise(locked, now=timezone.now())
        except PaymentError as exc:
            refused = exc
            payment.status = Payment.State.FAILED
            payment.save(update_fields=["provider_order_id", "raw", "status", "updated_at"])
        else:
            payment.status = Payment.State.PENDING
            payment.save(update_fields=["provider_order_id", "raw", "status", "updated_at"])
            booking_transition(
                booking=locked,
                to=Status.PAYMENT_PENDING,
                actor=Actor.CLIENT,
                reason=f"Payment started ({provider.verbose_name}, attempt {payment.pk})",
            )
    if refused is not None:
        raise refused
    return payment


def payment_restart(*, booking_id: int) -> Payment:
    """The client gave up on an attempt (closed the checkout, say) and wants to pay again:
    close the open attempts, then start a new one. A payment for a closed attempt that
    still arrives is accepted (or refunded) by `payment_confirm`."""
    open_ids = list(
        Payment.objects.filter(booking_id=booking_id, status__in=PAYMENT_OPEN_STATES).values_list("pk", flat=True)
    )
    for payment_id in open_ids:
        payment_fail(payment_id=payment_id, reason="Abandoned: the client started a new payment", actor=Actor.SYSTEM)
    return payment_start(booking_id=booking_id)


def payment_current(*, booking: Booking) -> Payment | None:
    """The attempt the client is paying with now, if any."""
    return booking.payments.filter(status=Payment.State.PENDING).order_by("-created_at", "-pk").first()


def payment_fail(
    *, payment_id: int, reason: str, raw: dict[str, Any] | None = None, actor: str = Actor.PROVIDER
) -> Payment:
    """An attempt failed or was abandoned: PAYMENT_PENDING -> APPROVED, and the client may
    pay again with a new attempt. Repeats, and failures reported after success, change nothing."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status not in PAYMENT_OPEN_STATES:
            return payment
        payment.status = Payment.State.FAILED
        _raw_add(payment, "failed", {"reason": reason[:300], **(raw or {})})
        payment.save(update_fields=["status", "raw", "updated_at"])
        booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
        still_open = booking.payments.filter(status__in=PAYMENT_OPEN_STATES).exists()
        if booking.status == Status.PAYMENT_PENDING and not still_open:
            booking_transition(
                booking=booking, to=Status.APPROVED, actor=actor, reason=f"Payment not completed: {reason}"
            )
    return payment


def payment_confirm(
    *,
    payment_id: int,
    provider_payment_id: str,
    amount: int,
    currency: str,
    raw: dict[str, Any],
    source: str,
) -> Payment:
    """A provider says `amount` was captured for this attempt. The one confirmation path.

    Locks the payment row; the same provider payment seen again returns quietly. Amount and
    currency must match the booking exactly or nothing is confirmed and staff are told. A
    payment for a booking that can no longer be confirmed (cancelled, expired, or already
    paid by another attempt) is recorded and refunded automatically, and staff are told.
    """
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.provider_payment_id == provider_payment_id:
            return payment
        booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
        paid = _money(amount, currency)
        if payment.provider_payment_id:
            # Two captured payments on one order: keep the first, staff refund the other.
            _raw_add(payment, f"{source}:second_payment", raw)
            _staff_alert(
                payment=payment,
                booking=booking,
                why=f"A second payment ({provider_payment_id}, {paid}) arrived for this attempt's order. "
                "Refund it from the provider's dashboard.",
            )
            payment.save(update_fields=["raw", "needs_attention", "updated_at"])
            return payment
        payment.provider_payment_id = provider_payment_id
        _raw_add(payment, source, raw)
        fields = ["provider_payment_id", "raw", "status", "needs_attention", "refund_status", "updated_at"]
        mismatch = (amount, currency) != (booking.amount, booking.currency) or (amount, currency) != (
            payment.amount,
            payment.currency,
        )
        if mismatch:
            payment.status = Payment.State.PENDING
            _staff_alert(
                payment=payment,
                booking=booking,
                why=f"Paid {paid}, but the booking costs {_money(booking.amount, booking.currency)}. "
                "Not confirmed: check the payment with the provider, then refund it or confirm by hand.",
            )
            payment.save(update_fields=fields)
            return payment
        if booking.status in (Status.APPROVED, Status.PAYMENT_PENDING):
            if booking.status == Status.APPROVED:
                # An attempt the client had abandoned (or that failed once) was paid after all.
                booking = booking_transition(
                    booking=booking,
                    to=Status.PAYMENT_PENDING,
                    actor=Actor.CLIENT,
                    reason=f"Payment from attempt {payment.pk} arrived",
                )
            payment.status = Payment.State.CONFIRMED
            payment.confirmed_at = timezone.now()
            payment.save(update_fields=[*fields, "confirmed_at"])
            # Other open attempts can no longer be paid into this booking.
            booking.payments.filter(status__in=PAYMENT_OPEN_STATES).exclude(pk=payment.pk).update(
                status=Payment.State.FAILED, updated_at=timezone.now()
            )
            booking_transition(
                booking=booking,
                to=Status.CONFIRMED,
                actor=Actor.PROVIDER,
                reason=f"Paid {paid} ({payment.provider} {provider_payment_id})",
            )
            return payment
        # Too late: the booking was cancelled or expired, or is already paid.
        payment.status = Payment.State.PENDING
        why = (
            f"Payment of {paid} arrived after the booking was {booking.get_status_display().lower()}. "
            "A full refund has been started automatically."
        )
        _staff_alert(payment=payment, booking=booking, why=why)
        payment.save(update_fields=fields)
        booking_record(booking=booking, action="late_payment", actor=Actor.PROVIDER, reason=why)
        _refund_mark(payment=payment, reason="Payment arrived too late")
        notifications.payment_refunding(booking=booking, payment=payment)
    return payment


def _refund_mark(*, payment: Payment, reason: str) -> None:
    """Inside the caller's transaction: decide on a full refund; the provider is asked
    after commit (so a rolled-back decision never moves money)."""
    payment.refund_status = Payment.RefundState.PENDING
    _raw_add(payment, "refund_requested", {"reason": reason[:300]})
    payment.save(update_fields=["refund_status", "raw", "updated_at"])
    transaction.on_commit(lambda: _refund_enqueue(payment.pk))


def _refund_enqueue(payment_id: int) -> None:
    from bookings.tasks import refund_payment

    try:
        refund_payment.enqueue(payment_id)
    except Exception:
        # The payment stays "refund started"; `payment_refunds_retry` picks it up.
        logger.exception("could not enqueue refund of payment %s", payment_id)


def payment_refund(*, payment_id: int, reason: str) -> Payment:
    """Refund a captured payment in full. The decision is recorded now; the provider is
    asked after commit. Repeats change nothing."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.refund_status or not payment.provider_payment_id:
            return payment
        if payment.status not in (Payment.State.CONFIRMED, Payment.State.PENDING):
            return payment
        _refund_mark(payment=payment, reason=reason)
    return payment


def payment_refund_execute(*, payment_id: int) -> Payment:
    """Ask the provider for the refund decided earlier. The payment row stays locked during
    the call so two workers can never refund one payment twice."""
    recorded = ""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().select_related("booking").get(pk=payment_id)
        if payment.refund_status != Payment.RefundState.PENDING or payment.provider_refund_id:
            return payment
        amount = payment.amount - payment.refunded_amount
        try:
            refund = payments.provider_for(payment.provider).refund_create(payment=payment, amount=amount)
        except payments.ProviderError as exc:
            logger.warning("payment %s: refund failed: %s", payment.pk, exc)
            payment.refund_status = Payment.RefundState.FAILED
            _raw_add(payment, "refund_error", str(exc)[:500])
            _staff_alert(
                payment=payment,
                booking=payment.booking,
                why=f"The automatic refund of {_money(amount, payment.currency)} failed. "
                "Refund it from the provider's dashboard, then note it here.",
            )
            payment.save(update_fields=["refund_status", "raw", "needs_attention", "updated_at"])
            return payment
        payment.provider_refund_id = refund.refund_id
        payment.refunded_amount += amount
        payment.status = Payment.State.REFUNDED
        payment.refund_status = Payment.RefundState.PROCESSED if refund.processed else Payment.RefundState.PENDING
        _raw_add(payment, "refund", refund.raw)
        payment.save(
            update_fields=["provider_refund_id", "refunded_amount", "status", "refund_status", "raw", "updated_at"]
        )
        recorded = f"Refund of {_money(amount, payment.currency)} started ({payment.provider} {refund.refund_id})"
    # Its own transaction: the audit row locks the booking, which must not wait on a
    # payment lock held across a network call.
    booking_record(booking=payment.booking, action="refund", actor=Actor.SYSTEM, reason=recorded)
    return payment


def payment_refunds_retry(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Refunds decided but never sent to the provider (a worker died, say). Returns how many were sent."""
    due = Payment.objects.filter(
        refund_status=Payment.RefundState.PENDING,
        provider_refund_id="",
        updated_at__lte=timezone.now() - older_than,
    ).values_list("pk", flat=True)
    done = 0
    for payment_id in list(due):
        if payment_refund_execute(payment_id=payment_id).provider_refund_id:
            done += 1
    return done


def payment_refund_processed(*, provider: str, provider_payment_id: str, refund_id: str, raw: dict[str, Any]) -> None:
    """The provider says the refund reached the client's bank."""
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update()
            .filter(provider=provider, provider_payment_id=provider_payment_id)
            .first()
        )
        if payment is None or payment.refund_status == Payment.RefundState.PROCESSED:
            return
        payment.refund_status = Payment.RefundState.PROCESSED
        payment.provider_refund_id = payment.provider_refund_id or refund_id
        _raw_add(payment, "refund_processed", raw)
        payment.save(update_fields=["refund_status", "provider_refund_id", "raw", "updated_at"])


def payment_return(*, payment_id: int, data: dict[str, str]) -> Payment:
    """The client's browser came back from checkout with the provider's (signed) result.

    Raises payments.SignatureInvalid if it cannot be authenticated; changes nothing then.
    """
    payment = Payment.objects.select_related("booking").get(pk=payment_id)
    provider = payments.provider_for(payment.provider)
    outcome = provider.return_verify(payment=payment, data=data)
    if isinstance(outcome, payments.Paid):
        return payment_confirm(
            payment_id=payment.pk,
            provider_payment_id=outcome.payment_id,
            amount=outcome.amount,
            currency=outcome.currency,
            raw=outcome.raw,
            source="return",
        )
    if isinstance(outcome, payments.Failed):
        return payment_fail(payment_id=payment.pk, reason=outcome.reason, raw=outcome.raw)
    return payment  # Waiting: the webhook will confirm it.


def payment_webhook(*, provider: str, event: payments.WebhookEvent) -> bool:
    """Apply one authenticated webhook event, once. Returns False for a replay.

    The event ID is recorded in the same transaction as its effect: if applying it fails,
    neither is kept and the provider's retry is processed afresh.
    """
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(provider=provider, event_id=event.event_id)
            outcome = event.outcome
            if isinstance(outcome, payments.Paid | payments.Failed):
                payment = Payment.objects.filter(provider=provider, provider_order_id=outcome.order_id).first()
                if payment is None:
                    logger.info("webhook %s %s: no payment for its order", provider, event.kind)
                elif isinstance(outcome, payments.Paid):
                    payment_confirm(
                        payment_id=payment.pk,
                        provider_payment_id=outcome.payment_id,
                        amount=outcome.amount,
                        currency=outcome.currency,
                        raw=outcome.raw,
                        source=f"webhook:{event.kind}",
                    )
                else:
                    payment_fail(payment_id=payment.pk, reason=outcome.reason, raw=outcome.raw)
            elif isinstance(outcome, payments.RefundProcessed):
                payment_refund_processed(
                    provider=provider,
                    provider_payment_id=outcome.payment_id,
                    refund_id=outcome.refund_id,
                    raw=outcome.raw,
                )
    except IntegrityError:
        if WebhookEvent.objects.filter(provider=provider, event_id=event.event_id).exists():
            return False
        raise
    return True


# --- The payment window -----------------------------------------------------------------


def bookings_expire(*, now: datetime | None = None) -> int:
    """Cancel (as SYSTEM) APPROVED and PAYMENT_PENDING bookings whose payment window has
    ended; their slots are free again and the client is emailed. Returns how many.

    Safe to run from several workers at once: each booking is re-selected under a lock with
    its old status and due time (compare-and-swap), so a booking paid or expired meanwhile
    is skipped. A payment that arrives after this is refunded by `payment_confirm`.
    """
    now = now or timezone.now()
    due = Booking.objects.filter(
        status__in=(Status.APPROVED, Status.PAYMENT_PENDING), payment_due_at__lte=now
    ).values_list("pk", "status")
    expired = 0
    for booking_id, old_status in list(due):
        with transaction.atomic():
            booking = (
                Booking.objects.select_for_update()
                .filter(pk=booking_id, status=old_status, payment_due_at__lte=now)
                .first()
            )
            if booking is None:
                continue
            booking_transition(
                booking=booking,
                to=Status.CANCELLED,
                actor=Actor.SYSTEM,
                reason="The time to pay ran out; the time slot was released",
                expected_version=booking.version,
            )
        expired += 1
        # Separately, so this never holds the booking lock while waiting on a payment row.
        Payment.objects.filter(booking_id=booking_id, status__in=PAYMENT_OPEN_STATES, provider_payment_id="").update(
            status=Payment.State.FAILED, updated_at=timezone.now()
        )
    return expired


# --- Privacy: anonymisation and retention -------------------------------------------------

ANONYMISED_NAME = "Anonymised client"


def booking_anonymise(*, booking_id: int, reason: str) -> bool:
    """Clear a booking's personal data, keeping the audit skeleton and the amounts.

    Kept: acknowledgement ID, status, session type, slot, amounts, payment references and
    the events' from/to/actor/when (the accounts need them). Cleared: name, email, phone, the
    client's own words, meeting link, outgoing emails' text, payment payloads, link tokens.
    Refuses (returns False) for active bookings: cancel them first.
    """
    from bookings.models import OutboundEmail, Payment

    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.anonymised_at is not None:
            return True
        if booking.status in ACTIVE_STATUSES:
            return False
        Booking.objects.filter(pk=booking.pk).update(
            client_name=ANONYMISED_NAME,
            email=f"anonymised-{booking.pk}@invalid",
            phone="",
            concerns="",
            preferred_times="",
            meeting_url="",
            submission_key=None,
            anonymised_at=timezone.now(),
        )
        OutboundEmail.objects.filter(booking=booking).update(
            to=f"anonymised-{booking.pk}@invalid", subject="(removed)", body_text="", body_html="", ics=""
        )
        Payment.objects.filter(booking=booking).update(raw={})
        LinkToken.objects.filter(booking=booking).delete()
        BookingEvent.objects.filter(booking=booking).update(reason="")
        booking_record(booking=booking, action="anonymised", actor=Actor.SYSTEM, reason=reason)
    logger.info("booking %s anonymised", booking_id)
    return True


def retention_apply(*, now: datetime | None = None) -> dict[str, int]:
    """The retention policy, safe to run from cron concurrently with the app:
    finished bookings anonymised after RETENTION_MONTHS, sent emails deleted after 30 days."""
    from bookings.models import OutboundEmail

    now = now or timezone.now()
    cutoff = now - timedelta(days=30 * settings.RETENTION_MONTHS)
    finished = Booking.objects.filter(
        status__in=(Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED, Status.REJECTED),
        anonymised_at__isnull=True,
        updated_at__lt=cutoff,
    ).values_list("pk", flat=True)
    anonymised = sum(booking_anonymise(booking_id=pk, reason="Retention period ended") for pk in list(finished))
    emails, _ = OutboundEmail.objects.filter(
        status=OutboundEmail.State.SENT, sent_at__lt=now - timedelta(days=30)
    ).delete()
    return {"anonymised": anonymised, "emails_deleted": emails}


# --- Privacy: erasure and export on the client's request ----------------------------------

PRIVACY_LINK_HOURS = 24


def privacy_request(*, booking: Booking, purpose: str) -> None:
    """Email the booking's address a link that confirms erasure (single use) or downloads
    the client's data (for PRIVACY_LINK_HOURS). Only the address's owner can act on it."""
    if purpose not in (LinkToken.Purpose.ERASE, LinkToken.Purpose.EXPORT):
        raise ValueError(f"not a privacy purpose: {purpose}")
    with transaction.atomic():
        # An older link of the same kind stops working: only the newest email counts.
        LinkToken.objects.filter(booking=booking, purpose=purpose, used_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        raw = token_create(booking=booking, purpose=purpose, lifetime=timedelta(hours=PRIVACY_LINK_HOURS))
        notifications.privacy_link(booking=booking, purpose=purpose, raw_token=raw)
    logger.info("booking %s: %s link sent", booking.pk, purpose)


class ErasureRefused(BookingError):
    code = "erasure_refused"
    default_message = (
        "You have a booking that is still active. Cancel it first from its booking page (or ask "
        "the clinic to), then use this link again: it stays valid until it expires."
    )


def privacy_erase(*, token: str) -> int:
    """The client confirmed erasure (a POST from the emailed link): anonymise every booking
    made with that address. Returns how many. Refused while any of them is active, and then
    the link is not used up.

    What is kept for paid sessions, because the accounts must keep it: see booking_anonymise
    (acknowledgement ID, date, session type, amount, payment and refund references).
    """
    with transaction.atomic():
        link = token_claim(raw=token, purpose=LinkToken.Purpose.ERASE)
        email = link.booking.email
        bookings = Booking.objects.select_for_update().filter(email=email, anonymised_at__isnull=True)
        ids = list(bookings.values_list("pk", flat=True))
        if Booking.objects.filter(pk__in=ids, status__in=ACTIVE_STATUSES).exists():
            raise ErasureRefused()
        for booking_id in ids:
            booking_anonymise(booking_id=booking_id, reason="Erased at the client's request")
        # Waitlist entries hold the same personal data and no accounts need them.
        WaitlistEntry.objects.filter(email=email).delete()
    logger.info("erasure: %s booking(s) anonymised", len(ids))
    return len(ids)


def privacy_export(*, token: str) -> dict[str, Any]:
    """Everything held about the address behind an export link, as JSON-ready data."""
    from bookings.tokens import token_get

    link = token_get(raw=token, purpose=LinkToken.Purpose.EXPORT)
    email = link.booking.email
    bookings = (
        Booking.objects.filter(email=email, anonymised_at__isnull=True)
        .select_related("session_type", "counsellor", "slot")
        .prefetch_related("events", "payments")
        .order_by("created_at")
    )

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    logger.info("export: data for %s booking(s) downloaded", len(bookings))
    return {
        "exported_at": timezone.now().isoformat(),
        "email": email,
        "bookings": [
            {
                "acknowledgement_id": b.ack_id,
                "status": b.status,
                "created_at": when(b.created_at),
                "name": b.client_name,
                "email": b.email,
                "phone": b.phone,
                "age_confirmation": b.age_confirmation,
                "consent_policy_version": b.consent_policy_version,
                "consented_at": when(b.consented_at),
                "what_brings_you": b.concerns,
                "preferred_times": b.preferred_times,
                "session_type": b.session_type.name,
                "mode": b.mode,
                "counsellor": b.counsellor.display_name if b.counsellor else None,
                "session_start": when(b.slot.start) if b.slot else None,
                "session_end": when(b.slot.end) if b.slot else None,
                "amount_minor_units": b.amount,
                "currency": b.currency,
                "events": [
                    {
                        "at": when(e.created_at),
                        "from": e.from_status,
                        "to": e.to_status,
                        "action": e.action,
                        "by": e.actor,
                        "reason": e.reason,
                    }
                    for e in b.events.all()
                ],
                "payments": [
                    {
                        "amount_minor_units": p.amount,
                        "currency": p.currency,
                        "status": p.status,
                        "refund_status": p.refund_status,
                        "created_at": when(p.created_at),
                    }
                    for p in b.payments.all()
                ],
            }
            for b in bookings
        ],
        "waitlist": [
            {
                "name": w.client_name,
                "session_type": w.session_type.name,
                "mode": w.mode,
                "counsellor": w.counsellor.display_name if w.counsellor else None,
                "from": w.date_from.isoformat(),
                "to": w.date_to.isoformat(),
                "status": w.status,
                "created_at": when(w.created_at),
            }
            for w in WaitlistEntry.objects.filter(email=email).select_related("session_type", "counsellor")
        ],
    }


# --- Outcomes: no-shows and late cancellations ------------------------------------------


def booking_no_show(*, booking_id: int, user: Any, expected_version: int | None = None) -> Booking:
    """CONFIRMED -> NO_SHOW: the client did not come. Final, like COMPLETED; no email, no refund."""
    return _booking_outcome(
        booking_id=booking_id,
        to=Status.NO_SHOW,
        user=user,
        reason="The client did not attend",
        too_early="A session can be marked as a no-show only after it has ended.",
        expected_version=expected_version,
    )


def cancellation_is_late(*, session_start: datetime, now: datetime | None = None) -> bool:
    """Inside the cutoff: closer to the session than clients may cancel online."""
    now = now or timezone.now()
    return session_start - now <= timedelta(hours=settings.CANCELLATION_CUTOFF_HOURS)


def _record_if_late(*, booking: Booking, slot: Slot, user: Any) -> None:
    """Inside the caller's transaction: a `late_cancellation` event next to the cancellation,
    so the transition itself stays an ordinary one and reports can count late ones."""
    now = timezone.now()
    if not cancellation_is_late(session_start=slot.start, now=now):
        return
    hours = max(int((slot.start - now).total_seconds() // 3600), 0)
    when = f"{hours} hour{'s' if hours != 1 else ''} before the session" if slot.start > now else "after it began"
    booking_record(
        booking=booking,
        action="late_cancellation",
        actor=Actor.STAFF,
        user=user,
        reason=f"Cancelled at the client's request {when} (cutoff {settings.CANCELLATION_CUTOFF_HOURS} hours)",
    )


# --- Reminders and the counsellors' daily summary ---------------------------------------
# Both are sent by periodic commands (cron or a task worker), safe to run concurrently and
# again: each email is claimed by inserting a row a unique constraint allows only once, in
# the same transaction that queues the email.


def reminder_kind(hours: int) -> str:
    return f"{hours}h"


def reminders_send(*, now: datetime | None = None) -> int:
    """Queue the reminders that are due for CONFIRMED sessions. Returns how many.

    A reminder of REMINDER_HOURS `h` is due from `h` hours before the session until the next
    (shorter) reminder's time, or the start. It is not sent if the session was confirmed
    after that time (the confirmation has just told the client), nor for a session
    cancelled or moved since: the booking is re-read under a lock with its slot, and a
    reminder is keyed by the slot, so a moved session gets fresh reminders for its new time.
    """
    now = now or timezone.now()
    offsets = sorted(set(settings.REMINDER_HOURS), reverse=True)
    queued = 0
    for i, hours in enumerate(offsets):
        kind = reminder_kind(hours)
        until = offsets[i + 1] if i + 1 < len(offsets) else 0
        due = (
            Booking.objects.filter(
                status=Status.CONFIRMED,
                slot__start__gt=now + timedelta(hours=until),
                slot__start__lte=now + timedelta(hours=hours),
            )
            .exclude(Exists(Reminder.objects.filter(booking=OuterRef("pk"), slot=OuterRef("slot"), kind=kind)))
            .exclude(
                Exists(
                    BookingEvent.objects.filter(
                        booking=OuterRef("pk"),
                        to_status=Status.CONFIRMED,
                        created_at__gt=OuterRef("slot__start") - timedelta(hours=hours),
                    )
                )
            )
            .order_by("slot__start")
            .values_list("pk", "slot_id")
        )
        for booking_id, slot_id in list(due):
            queued += _reminder_send(booking_id=booking_id, slot_id=slot_id, kind=kind, now=now)
    return queued


def _reminder_send(*, booking_id: int, slot_id: int, kind: str, now: datetime) -> bool:
    with transaction.atomic():
        # skip_locked: a booking being changed right now (cancelled, moved) is left for the
        # next run, which sees what it became.
        booking = (
            Booking.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("slot", "counsellor", "session_type")
            .filter(pk=booking_id, status=Status.CONFIRMED, slot_id=slot_id, slot__start__gt=now)
            .first()
        )
        if booking is None:
            return False
        try:
            with transaction.atomic():
                reminder = Reminder.objects.create(booking=booking, kind=kind, slot_id=slot_id)
        except IntegrityError:
            return False  # another run sent this one
        reminder.email = notifications.reminder(booking=booking)
        reminder.save(update_fields=["email"])
    logger.info("booking %s: %s reminder queued", booking_id, kind)
    return True


def daily_summaries_send(*, today: date | None = None) -> int:
    """Email each active counsellor who asked for it (Counsellor.daily_summary) a list of
    today's sessions: times, acknowledgement IDs and client initials only. Once per
    counsellor per day, however often it runs; a day without sessions sends nothing.
    Returns how many were queued."""
    today = today or timezone.localdate()
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(today, time.min), tz)
    end = timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min), tz)
    counsellors = (
        Counsellor.objects.filter(is_active=True, daily_summary=True, user__is_active=True)
        .exclude(user__email="")
        .exclude(Exists(DailySummary.objects.filter(counsellor=OuterRef("pk"), day=today)))
        .select_related("user")
    )
    queued = 0
    for counsellor in counsellors:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    summary = DailySummary.objects.create(counsellor=counsellor, day=today)
            except IntegrityError:
                continue  # another run has it
            sessions = list(
                Booking.objects.filter(
                    slot__counsellor=counsellor,
                    status__in=(Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED),
                    slot__start__gte=start,
                    slot__start__lt=end,
                )
                .select_related("slot")
                .order_by("slot__start")
            )
            summary.sessions = len(sessions)
            if sessions:
                summary.email = notifications.daily_summary(counsellor=counsellor, day=today, bookings=sessions)
                queued += 1
            summary.save(update_fields=["sessions", "email"])
    return queued


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


def reschedule_problem_for_client(*, booking: Booking, now: datetime | None = None) -> str | None:
    """None if the client may move this booking online now; otherwise why not, in words for them."""
    if booking.status not in RESCHEDULABLE_BY_CLIENT:
        return "Only a booking with a reserved time that is not being paid for right now can be moved."
    if not cancellation_open_for_client(booking=booking, now=now):
        return (
            f"Sessions can be moved online until {settings.CANCELLATION_CUTOFF_HOURS} hours before they "
            "start. Please contact the clinic."
        )
    if reschedule_moves_used(booking=booking) >= settings.RESCHEDULE_LIMIT:
        times = "once" if settings.RESCHEDULE_LIMIT == 1 else f"{settings.RESCHEDULE_LIMIT} times"
        return f"A booking can be moved online {times}, and this one has been. Please contact the clinic."
    return None


def _client_slot_problem(*, booking: Booking, slot: Slot, now: datetime | None = None) -> str | None:
    """Why a client may not move `booking` into `slot` (None if they may)."""
    if slot.counsellor_id != booking.counsellor_id:
        return "That time is with a different counsellor. Please choose one of your counsellor's times."
    problem = slot_is_bookable(slot=slot, session_type=booking.session_type, now=now)
    if problem:
        return problem
    try:
        _check_mode(session_type=booking.session_type, mode=booking.mode, counsellor=slot.counsellor)
    except BookingError as exc:
        return exc.message
    return None


def _moment(value: datetime) -> str:
    return f"{timezone.localtime(value):%a %d %b %Y, %H:%M %Z}"


def booking_reschedule(
    *,
    booking_id: int,
    slot_id: int,
    actor: str,
    user: Any = None,
    expected_version: int | None = None,
) -> Booking:
    """Move a booking to another free slot, keeping its status, acknowledgement ID and payment.

    The old slot is released and the new one taken by one UPDATE in one transaction, so the
    booking always holds exactly one of them. Both slots are locked first, in primary-key
    order (and before the booking, as `booking_approve` does), so two moves crossing the same
    slots queue up instead of deadlocking; the constraint `booking_one_per_slot` is the
    backstop and reads as SlotUnavailable. Clients: before the cutoff, within
    RESCHEDULE_LIMIT, same counsellor, a time they could book. Staff: any free future slot.
    """
    now = timezone.now()
    old_slot_id = Booking.objects.filter(pk=booking_id).values_list("slot_id", flat=True).first()
    if old_slot_id is None:
        raise TransitionNotAllowed("Only a booking with a reserved time can be moved to another time.")
    with transaction.atomic():
        locked: dict[int, Slot] = {}
        for pk in sorted({old_slot_id, slot_id}):
            found = Slot.objects.select_for_update(of=("self",)).select_related("counsellor").filter(pk=pk).first()
            if found is not None:
                locked[pk] = found
        new_slot = locked.get(slot_id)
        if new_slot is None:
            raise SlotUnavailable("That time is no longer offered. Please choose another.")
        booking = (
            Booking.objects.select_for_update(of=("self",)).select_related("session_type", "slot").get(pk=booking_id)
        )
        if booking.slot_id != old_slot_id or (expected_version is not None and booking.version != expected_version):
            raise StaleBooking()
        allowed = RESCHEDULABLE_BY_CLIENT if actor == Actor.CLIENT else RESCHEDULABLE_BY_STAFF
        if booking.status not in allowed:
            raise TransitionNotAllowed(
                f"A booking that is {Status(booking.status).label.lower()} cannot be moved to another time."
            )
        if booking.slot_id == new_slot.pk:
            raise BookingError("The booking is already at that time.")
        if actor == Actor.CLIENT:
            problem = reschedule_problem_for_client(booking=booking, now=now)
            if problem:
                raise TooLate(problem)
            problem = _client_slot_problem(booking=booking, slot=new_slot, now=now)
            if problem:
                raise SlotUnavailable(problem)
        else:
            _check_slot_for_staff(slot=new_slot, session_type=booking.session_type, now=now)
            _check_mode(session_type=booking.session_type, mode=booking.mode, counsellor=new_slot.counsellor)
        changes: dict[str, Any] = {"slot": new_slot, "counsellor": new_slot.counsellor}
        if booking.status in (Status.APPROVED, Status.PAYMENT_PENDING):
            # The payment deadline follows the session: never later than it allows.
            due = payment_due_at(approved_at=booking.approved_at or now, session_start=new_slot.start)
            if due <= now:
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
            reason=f"From {_moment(old_slot.start)} to {_moment(new_slot.start)}",
        )
        # Links to confirm other moves were for the old time: they stop working.
        LinkToken.objects.filter(
            booking=booking, purpose=LinkToken.Purpose.RESCHEDULE, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        notifications.rescheduled(booking=booking, old_slot=old_slot, actor=actor)
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
        link = token_claim(raw=token, purpose=LinkToken.Purpose.RESCHEDULE)
        return booking_reschedule(booking_id=link.booking_id, slot_id=link.slot_id, actor=Actor.CLIENT)


def booking_move_to_start(*, booking_id: int, start: datetime, user: Any, expected_version: int | None) -> Booking:
    """A booking dragged on the staff calendar: move it to its counsellor's free slot that
    starts exactly at `start`, or refuse."""
    booking = Booking.objects.get(pk=booking_id)
    slot = (
        selectors.slots_free(
            counsellor=booking.counsellor, start=start, end=start + timedelta(seconds=1), for_clients=False
        )
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


# --- Freed slots and the waitlist ---------------------------------------------------------

WAITLIST_LIVE = (WaitlistEntry.State.WAITING, WaitlistEntry.State.OFFERED)
WAITLIST_FINISHED_KEEP_DAYS = 30


def slots_freed(*, slot_ids: list[int]) -> None:
    """The one place that hears "these slots are free (again)": a held booking was cancelled
    or expired, moved away, or new slots were published. Call it inside the transaction
    that frees them; the waitlist is offered the slots only after that commits."""
    ids = sorted(set(slot_ids))
    if ids:
        transaction.on_commit(lambda: _waitlist_offers_enqueue(ids))


def _waitlist_offers_enqueue(slot_ids: list[int]) -> None:
    from bookings.tasks import offer_freed_slots

    try:
        offer_freed_slots.enqueue(slot_ids)
    except Exception:
        # The change itself has committed; a missed offer must never turn it into an error.
        logger.exception("could not offer freed slots %s to the waitlist", slot_ids)


def waitlist_offer_slots(*, slot_ids: list[int]) -> int:
    """Offer each slot to the waitlist; returns how many offers were emailed."""
    if not WaitlistEntry.objects.filter(status__in=WAITLIST_LIVE, verified_at__isnull=False).exists():
        return 0  # the usual case: publishing a month of slots costs one query here
    return sum(waitlist_offer_slot(slot_id=pk) for pk in slot_ids)


def waitlist_offer_slot(*, slot_id: int) -> int:
    """Email a free slot to the earliest waiting clients it suits (oldest entry first), at
    most WAITLIST_OFFERS_PER_SLOT, each at most once per slot. Returns how many were emailed.

    The link opens the wizard with the slot chosen; the first request approved gets it (the
    wizard and `booking_one_per_slot` keep it to one). The slot row is locked while offering,
    so two runs for one slot take turns, and the unique (entry, slot) offer is the backstop.
    """
    from bookings.emails import absolute_url

    with transaction.atomic():
        slot = Slot.objects.select_for_update(of=("self",)).select_related("counsellor").filter(pk=slot_id).first()
        # Only a slot a client could book online right now (free, notice, horizon, not blocked).
        if slot is None or not selectors.slots_free().filter(pk=slot.pk).exists():
            return 0
        counsellor = slot.counsellor
        modes = [
            m
            for m, on in ((Mode.ONLINE, counsellor.offers_online), (Mode.IN_PERSON, counsellor.offers_in_person))
            if on
        ]
        day = timezone.localtime(slot.start).date()
        candidates = (
            WaitlistEntry.objects.filter(
                status__in=WAITLIST_LIVE,
                verified_at__isnull=False,
                date_from__lte=day,
                date_to__gte=day,
                mode__in=modes,
                session_type__is_active=True,
                session_type__duration_minutes__lte=int(slot.duration.total_seconds() // 60),
            )
            .filter(Q(counsellor__isnull=True) | Q(counsellor=counsellor))
            .exclude(Exists(WaitlistOffer.objects.filter(entry=OuterRef("pk"), slot=slot)))
            .annotate(has_active=Exists(Booking.objects.filter(email=OuterRef("email"), status__in=ACTIVE_STATUSES)))
            .select_related("session_type")
            .order_by("created_at", "pk")
        )
        emailed: set[str] = set(WaitlistOffer.objects.filter(slot=slot).values_list("entry__email", flat=True))
        offered = 0
        for entry in candidates.iterator(chunk_size=50):
            if offered >= settings.WAITLIST_OFFERS_PER_SLOT:
                break
            if entry.has_active:
                # They have booked meanwhile (one active booking per address): their wait is over.
                WaitlistEntry.objects.filter(pk=entry.pk, status__in=WAITLIST_LIVE).update(
                    status=WaitlistEntry.State.BOOKED, updated_at=timezone.now()
                )
                continue
            if entry.email in emailed:
                continue  # one email per address per slot, whatever their number of entries
            try:
                with transaction.atomic():
                    WaitlistOffer.objects.create(entry=entry, slot=slot)
            except IntegrityError:
                continue
            WaitlistEntry.objects.filter(pk=entry.pk).update(
                status=WaitlistEntry.State.OFFERED, updated_at=timezone.now()
            )
            query = urlencode({"slot": slot.pk, "type": entry.session_type.slug})
            notifications.waitlist_offer(
                entry=entry,
                slot=slot,
                book_url=absolute_url(f"{reverse('bookings:wizard')}?{query}"),
                leave_url=_waitlist_leave_url(entry),
            )
            emailed.add(entry.email)
            offered += 1
    if offered:
        logger.info("slot %s offered to %s waiting client(s)", slot_id, offered)
    return offered


def _waitlist_leave_url(entry: WaitlistEntry) -> str:
    from bookings.emails import absolute_url

    end = timezone.make_aware(datetime.combine(entry.date_to + timedelta(days=1), time.min))
    raw = waitlist_token_create(
        entry=entry, purpose=WaitlistToken.Purpose.LEAVE, lifetime=max(end - timezone.now(), timedelta(days=1))
    )
    return absolute_url(reverse("bookings:waitlist_leave", args=[raw]))


def waitlist_join(
    *,
    client_name: str,
    email: str,
    session_type: SessionType,
    mode: str,
    counsellor: Counsellor | None,
    date_from: date,
    date_to: date,
) -> WaitlistEntry:
    """Put a client on the waitlist, unconfirmed, and email them a link to confirm the
    address. Only confirmed entries are ever offered a time."""
    today = timezone.localdate()
    if date_from < today:
        raise BookingError("Choose a first day that is today or later.")
    if date_to < date_from:
        raise BookingError("The last day must be on or after the first day.")
    if date_to > today + timedelta(days=settings.BOOKING_HORIZON_DAYS):
        raise BookingError(f"Choose days within the next {settings.BOOKING_HORIZON_DAYS} days.")
    _check_mode(session_type=session_type, mode=mode, counsellor=counsellor)
    with transaction.atomic():
        entry = WaitlistEntry.objects.create(
            client_name=client_name.strip(),
            email=email_normalise(email),
            session_type=session_type,
            mode=mode,
            counsellor=counsellor,
            date_from=date_from,
            date_to=date_to,
        )
        raw = waitlist_token_create(
            entry=entry,
            purpose=WaitlistToken.Purpose.VERIFY,
            lifetime=timedelta(hours=settings.VERIFICATION_LINK_HOURS),
        )
        notifications.waitlist_verify(entry=entry, raw_token=raw)
    return entry


def waitlist_verify(*, token: str) -> WaitlistEntry:
    """The client confirmed their address: the entry starts waiting, in the order it was made."""
    with transaction.atomic():
        link = waitlist_token_claim(raw=token, purpose=WaitlistToken.Purpose.VERIFY)
        entry = (
            WaitlistEntry.objects.select_for_update(of=("self",))
            .select_related("session_type", "counsellor")
            .get(pk=link.entry_id)
        )
        if entry.status not in WAITLIST_LIVE:
            raise BookingError("This waitlist request has ended. You are welcome to join again.")
        if entry.verified_at is None:
            entry.verified_at = timezone.now()
            entry.save(update_fields=["verified_at", "updated_at"])
            notifications.waitlist_joined(entry=entry, leave_url=_waitlist_leave_url(entry))
    return entry


def waitlist_leave(*, token: str) -> WaitlistEntry:
    """The client left the waitlist from an emailed link (a POST). Leaving twice is harmless."""
    with transaction.atomic():
        link = waitlist_token_claim(raw=token, purpose=WaitlistToken.Purpose.LEAVE)
        WaitlistEntry.objects.filter(pk=link.entry_id, status__in=WAITLIST_LIVE).update(
            status=WaitlistEntry.State.LEFT, updated_at=timezone.now()
        )
        return WaitlistEntry.objects.get(pk=link.entry_id)


def waitlist_expire(*, now: datetime | None = None) -> dict[str, int]:
    """The waitlist sweep, safe to run often and concurrently (each change is one guarded
    UPDATE or DELETE): entries whose last day has passed expire; unconfirmed entries older
    than DRAFT_RETENTION_HOURS and entries finished WAITLIST_FINISHED_KEEP_DAYS ago are
    deleted with their links, since they hold a name and an email address."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    expired = WaitlistEntry.objects.filter(status__in=WAITLIST_LIVE, date_to__lt=today).update(
        status=WaitlistEntry.State.EXPIRED, updated_at=now
    )
    stale = Q(verified_at__isnull=True, created_at__lt=now - timedelta(hours=settings.DRAFT_RETENTION_HOURS)) | (
        ~Q(status__in=WAITLIST_LIVE) & Q(updated_at__lt=now - timedelta(days=WAITLIST_FINISHED_KEEP_DAYS))
    )
    _, per_model = WaitlistEntry.objects.filter(stale).delete()
    return {"expired": expired, "deleted": per_model.get(WaitlistEntry._meta.label, 0)}
