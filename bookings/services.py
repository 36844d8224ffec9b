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

import phonenumbers
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from bookings import notifications
from bookings.errors import (
    ActiveBookingExists,
    BookingError,
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
    LinkToken,
    Mode,
    OutboundEmail,
    SessionType,
    Slot,
    Status,
    WeeklyHours,
)
from bookings.tokens import token_claim, token_create

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


def booking_complete(*, booking_id: int, user: Any, expected_version: int | None = None) -> Booking:
    booking = Booking.objects.select_related("slot").get(pk=booking_id)
    if booking.slot is not None and booking.slot.end > timezone.now():
        raise TooLate("A session can be marked completed only after it has ended.")
    return booking_transition(
        booking=booking_id,
        to=Status.COMPLETED,
        actor=Actor.STAFF,
        user=user,
        reason="Session completed",
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
) -> Booking:
    """Cancel an active booking. Clients only before the cutoff; staff must give a reason.

    A paid booking's refund is started after commit (payments).
    """
    if actor == Actor.STAFF and not reason.strip():
        raise BookingError("Give a reason for cancelling this booking.")
    with transaction.atomic():
        booking = Booking.objects.select_for_update().select_related("slot").get(pk=booking_id)
        if (
            actor == Actor.CLIENT
            and booking.status in ACTIVE_STATUSES
            and not cancellation_open_for_client(booking=booking)
        ):
            raise TooLate(
                f"Sessions can be cancelled online until {settings.CANCELLATION_CUTOFF_HOURS} hours "
                "before they start. Please contact the clinic."
            )
        return booking_transition(
            booking=booking,
            to=Status.CANCELLED,
            actor=actor,
            user=user,
            reason=reason.strip() or "Cancelled",
            expected_version=expected_version,
        )


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
                return Slot.objects.create(counsellor=counsellor, start=start, end=end)
        except IntegrityError as exc:
            raise SlotUnavailable("That time overlaps another of this counsellor's slots.") from exc


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
