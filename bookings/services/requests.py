"""How bookings come to exist: the client's request and verification, and bookings made by staff."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bookings import notifications, selectors
from bookings.after_commit import enqueue_on_commit
from bookings.errors import (
    ActiveBookingExists,
    BookingError,
    PolicyVersionChanged,
    RequestHeld,
    SlotUnavailable,
    TooLate,
    TransitionNotAllowed,
)
from bookings.lifecycle import STAFF_CREATED_STATUSES
from bookings.models import (
    ACTIVE_STATUSES,
    Actor,
    Booking,
    BookingEvent,
    ConsentGiven,
    Counsellor,
    LinksRequest,
    LinkToken,
    OutboundEmail,
    SessionType,
    Slot,
    Status,
)
from bookings.services.payments import payment_record_at_clinic
from bookings.services.transitions import (
    _check_mode,
    _check_slot_for_staff,
    _integrity_error_to_domain,
    _too_close_to_pay_message,
    ack_id_new,
    booking_record,
    booking_transition,
    email_normalise,
    payment_due_at,
    slot_is_bookable,
    slots_lock,
)
from bookings.tokens import token_claim, token_create, token_just_sent
from mindsettler.logging import one_of_a_batch

logger = logging.getLogger(__name__)


# --- Creating bookings ------------------------------------------------------------------


def _create_with_ack_id(**fields: Any) -> Booking:
    """Insert a booking with a fresh random acknowledgement ID, retrying on a collision."""
    for _attempt in range(10):
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
        raise BookingError(_("Choose a time, or tell us which days and times suit you."))
    if preferred_slot is not None:
        counsellor = preferred_slot.counsellor
    _check_mode(session_type=session_type, mode=mode, counsellor=counsellor)
    with transaction.atomic():
        if preferred_slot is not None:
            # Lock the slot so a concurrent approval cannot slip between check and insert.
            locked = slots_lock([preferred_slot.pk]).get(preferred_slot.pk)
            if locked is None:
                raise SlotUnavailable(_("That time is no longer offered. Please choose another."))
            preferred_slot = locked
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
        _verification_send(booking)
    return booking, True


def _verification_send(booking: Booking) -> None:
    """Inside the caller's transaction: a new verification link for the draft, emailed."""
    raw = token_create(
        booking=booking,
        purpose=LinkToken.Purpose.VERIFY,
        lifetime=timedelta(hours=settings.VERIFICATION_LINK_HOURS),
    )
    notifications.verification(booking=booking, raw_token=raw)


def booking_resend_verification(*, booking: Booking, email: str | None = None, repeat_press: bool = False) -> Booking:
    """A fresh verification link (the old ones stop working). Only for drafts: a booking
    already confirmed is returned as it is. `email`: the client corrected a mistyped address,
    and the link goes to the new one (the draft is not a booking until it is confirmed, so
    nothing else changes). `repeat_press`: nothing is sent if a link went to the same address
    within REPEAT_PRESS (a button pressed twice); the wizard's "Send the email again" asks
    for another on purpose."""
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking.pk)
        # A request held for the last session (verified_at) is confirmed: its address with it.
        if booking.status != Status.DRAFT or booking.verified_at is not None:
            return booking
        if email is not None and email_normalise(email) != booking.email:
            booking.email = email_normalise(email)
            booking.save(update_fields=["email", "updated_at"])
            logger.info("booking %s: the draft's email address corrected", booking.pk)
        elif repeat_press and token_just_sent(booking=booking, purpose=LinkToken.Purpose.VERIFY):
            return booking
        LinkToken.objects.filter(
            booking=booking, purpose=LinkToken.Purpose.VERIFY, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        _verification_send(booking)
    return booking


def booking_verify(*, token: str) -> Booking:
    """The client confirmed their email: DRAFT -> PENDING.

    If the address already has an active booking, no second one is made: that address is
    emailed a link to the existing booking and ActiveBookingExists is raised. If that booking
    is a session that has ended, waiting only for staff to record it as held or missed, the
    request is held instead (RequestHeld): the client is told, the session's counsellor is
    asked to record it, and held_requests_release makes the request once they have. If the
    session type is no longer held the way the client chose, BookingError is raised and
    nothing changes (the link still stands).
    """
    with transaction.atomic():
        link = token_claim(raw=token, purpose=LinkToken.Purpose.VERIFY)
        draft = link.booking
        try:
            return _request_make(draft, verified_at=timezone.now(), reason="Email verified")
        except ActiveBookingExists:
            pass
        existing = Booking.objects.select_related("slot").filter(email=draft.email, status__in=ACTIVE_STATUSES).first()
        if existing is not None and existing.status == Status.CONFIRMED and existing.session_over:
            # Confirmed again from a new link: held already, and the counsellor asked already.
            if draft.verified_at is None:
                Booking.objects.filter(pk=draft.pk).update(verified_at=timezone.now())
                BookingEvent.objects.create(
                    booking=draft,
                    to_status=Status.DRAFT,
                    action="held",
                    actor=Actor.CLIENT,
                    reason=f"Email verified; held until {existing.ack_id}, whose session has ended, is recorded",
                )
                # The counsellor is asked once, however many requests wait for the session.
                asked = selectors.held_requests().filter(email=draft.email).exclude(pk=draft.pk).exists()
                notifications.request_held(draft=draft, last=existing, ask_staff=not asked)
            held = True
        else:
            held = False
            if existing is not None:
                notifications.already_active(booking=existing)
    raise RequestHeld() if held else ActiveBookingExists()


def _request_make(draft: Booking, *, verified_at: datetime, reason: str) -> Booking:
    """Inside the caller's transaction: the client's confirmed draft becomes a request
    (PENDING). ActiveBookingExists if the address has an active booking; BookingError if its
    session type is no longer offered the way the client chose."""
    # A way of meeting stays offered while open bookings are held that way (see
    # session_type_save), and a draft is not one yet: checked again, under the lock that
    # save takes, so that a request nobody could approve is never made.
    session_type = SessionType.objects.select_for_update(no_key=True).get(pk=draft.session_type_id)
    _check_mode(session_type=session_type, mode=draft.mode, counsellor=None)
    if Booking.objects.filter(email=draft.email, status__in=ACTIVE_STATUSES).exclude(pk=draft.pk).exists():
        raise ActiveBookingExists()
    pending = booking_transition(
        booking=draft, to=Status.PENDING, actor=Actor.CLIENT, reason=reason, changes={"verified_at": verified_at}
    )
    selectors.preferred_slot_read(pending)
    lost = selectors.preferred_time_lost(pending, notice=True)
    if lost:
        booking_record(booking=pending, action="time_withdrawn", actor=Actor.SYSTEM, reason=_TIME_LOST_REASONS[lost])
    return pending


def held_requests_release(*, email: str | None = None, now: datetime | None = None) -> int:
    """Make the requests held for their address's last session to be recorded (see
    booking_verify), now that the address has no active booking; returns how many were made.

    `email`: that address's, as its session is recorded (booking_transition, after commit).
    Without: every address's, from the hourly sweep (purge_drafts), for a call that was lost.
    A request held HELD_REQUEST_DAYS is given up, as is one whose session type is no longer
    offered its way: the client is told, with a link to book again, and the draft is left to
    drafts_purge."""
    now = now or timezone.now()
    held = selectors.held_requests()
    if email is not None:
        held = held.filter(email=email)
    made = 0
    for pk in held.order_by("verified_at", "pk").values_list("pk", flat=True):
        with one_of_a_batch("held request", pk):
            made += _held_request_release(pk, now=now)
    return made


def _held_request_release(pk: int, *, now: datetime) -> bool:
    with transaction.atomic():
        # The booking's lock first, then its session type's (_request_make), as booking_verify
        # takes them (token_claim locks the booking): the other order deadlocked with a client
        # confirming the held request again from a new link.
        draft = (
            Booking.objects.select_for_update()
            .filter(pk=pk, status=Status.DRAFT, verified_at__isnull=False, anonymised_at__isnull=True)
            .first()
        )
        if draft is None:  # made or given up meanwhile, by the other caller
            return False
        blocked = (
            Booking.objects.select_related("slot")
            .filter(email=draft.email, status__in=ACTIVE_STATUSES)
            .exclude(pk=pk)
            .first()
        )
        if blocked is not None and not (blocked.status == Status.CONFIRMED and blocked.session_over):
            # Not the last session any more, but a new booking: another request of theirs held
            # with this one and made first, or one staff made for them. As if confirmed now.
            Booking.objects.filter(pk=pk).update(verified_at=None)
            notifications.already_active(booking=blocked)
            logger.info("held request %s given up: the address has another active booking", pk)
            return False
        if blocked is not None:
            if draft.verified_at > now - timedelta(days=settings.HELD_REQUEST_DAYS):
                return False
            why = "not_recorded"
        else:
            try:
                _request_make(
                    draft,
                    verified_at=draft.verified_at,
                    reason="Email verified earlier; held until the client's last session was recorded",
                )
            except ActiveBookingExists:  # a booking staff made for the address meanwhile
                return False
            except BookingError:
                why = "not_offered"
            else:
                return True
        Booking.objects.filter(pk=pk).update(verified_at=None)
        notifications.request_not_made(draft=draft, why=why)
    logger.info("held request %s given up: %s", pk, why)
    return False


# The event's reason, for staff, by selectors.preferred_time_lost's answer. The client's
# timeline says the same in its own words ("time_withdrawn").
_TIME_LOST_REASONS = {
    "taken": "The time the client chose was taken by another booking before they confirmed their email",
    "withdrawn": "The time the client chose was withdrawn before they confirmed their email",
    "too_soon": "The time the client chose was too soon to book online by the time they confirmed their email",
}


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
    consent: str,
    policy_version: str,
    counsellor: Counsellor | None = None,
    amount: int | None = None,
    age_confirmation: str = Booking.AgeConfirmation.ADULT,
    language: str = "en",
    paid_at_clinic: tuple[str, str] | None = None,
) -> Booking:
    """A booking for a client who phoned or walked in: starts PENDING or APPROVED.

    `paid_at_clinic`: (how, receipt number) of the price the client has just paid at the
    desk, recorded by an administrator: the booking is APPROVED with its time and at once
    confirmed by that payment (payments.payment_record_at_clinic), all or nothing. Paid, it
    may be for a time too soon to pay online, and its first email is the confirmation.

    A slot decides the counsellor; a slot of a counsellor other than the one chosen is refused.

    The client agreed to the privacy notice, told to them by `user`: `consent` says how (a
    ConsentGiven), `policy_version` which notice they heard; one no longer current is refused
    (PolicyVersionChanged), as the wizard refuses it, so the booking records the version agreed
    to. Recorded as the wizard records it (consent_policy_version, consented_at), and by an event
    naming how and who."""
    if status not in STAFF_CREATED_STATUSES:
        raise TransitionNotAllowed("Bookings made by staff start as pending or approved.")
    if paid_at_clinic is not None and (status != Status.APPROVED or slot is None):
        raise BookingError("Choose the time they have paid for.", field="slot")
    if consent not in ConsentGiven.values:
        raise BookingError("Say how the client agreed to the privacy notice.", field="consent_by")
    if policy_version != settings.POLICY_VERSION:
        raise PolicyVersionChanged(settings.POLICY_VERSION)
    problems = staff_booking_problems(
        status=status, session_type=session_type, mode=mode, counsellor=counsellor, slot=slot
    )
    if problems:
        raise BookingError(" ".join(problems.values()))
    if slot is not None:
        counsellor = slot.counsellor
    now = timezone.now()
    with transaction.atomic():
        extra: dict[str, Any] = {}
        if slot is not None:
            # Its length is read again under a lock that waits for a new length being saved
            # this moment (see session_type_save), and makes such a save wait for this one.
            session_type = SessionType.objects.select_for_update(no_key=True).get(pk=session_type.pk)
            locked = slots_lock([slot.pk]).get(slot.pk)
            if locked is None:
                raise SlotUnavailable("That time is no longer offered. Choose another.")
            slot = locked
            _check_slot_for_staff(slot=slot, session_type=session_type, now=now)
            # Refused for a request too: approving it later could only be refused the same way.
            due = payment_due_at(approved_at=now, session_start=slot.start, now=now)
            if due <= now:
                if paid_at_clinic is None:
                    raise TooLate(_too_close_to_pay_message())
                due = slot.start  # paid below, before anyone could be asked to pay by it
            if status == Status.APPROVED:
                extra = {"slot": slot, "approved_at": now, "payment_due_at": due}
        booking = _create_with_ack_id(
            status=status,
            client_name=client_name.strip(),
            email=email_normalise(email),
            phone=phone,
            age_confirmation=age_confirmation,
            consent_policy_version=policy_version,
            consented_at=now,
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
            created_at=now,
        )
        # The client's agreement, given as the booking was made (its history starts with its
        # creation, as every booking's does). Who told them is the event's user; how, its action.
        BookingEvent.objects.create(
            booking=booking,
            from_status=status,
            to_status=status,
            action=consent,
            actor=Actor.STAFF,
            actor_user=user,
            reason=f"Privacy notice version {policy_version}: its summary was read to the client, who agreed",
            created_at=now,
        )
        if paid_at_clinic is not None:
            # Confirmed now: the client is sent the confirmation, not an email asking them to
            # pay; the counsellor hears of the session in their time, as of any staff approve.
            notifications.session_changed(
                booking=booking, change="approved", counsellor=booking.counsellor, actor=Actor.STAFF, user=user
            )
            method, reference = paid_at_clinic
            payment_record_at_clinic(booking_id=booking.pk, user=user, method=method, reference=reference)
            booking.refresh_from_db()
        else:
            notifications.on_transition(booking=booking, from_status=Status.DRAFT, actor=Actor.STAFF, user=user)
    return booking


def staff_booking_problems(
    *,
    status: str,
    session_type: SessionType,
    mode: str,
    counsellor: Counsellor | None,
    slot: Slot | None,
) -> dict[str, str]:
    """What is wrong with a booking staff are making, by form field ({} if nothing).

    The staff form shows these next to its fields; `booking_create_by_staff` checks them
    again, and whether the slot is still free under a lock, when the booking is made.
    """
    problems: dict[str, str] = {}
    try:
        _check_mode(session_type=session_type, mode=mode, counsellor=None)
    except BookingError as exc:
        problems["mode"] = exc.message
    if slot is None:
        if status == Status.APPROVED:
            problems["slot"] = "Choose a time slot to approve the booking straight away, or start it as pending review."
    elif counsellor is not None and slot.counsellor_id != counsellor.pk:
        problems["slot"] = (
            f"That time is with {slot.counsellor.display_name}, not {counsellor.display_name}. "
            f"Choose one of {counsellor.display_name}'s times, or “Not decided yet” as the counsellor."
        )
    if not problems:
        try:
            _check_mode(session_type=session_type, mode=mode, counsellor=slot.counsellor if slot else counsellor)
        except BookingError as exc:
            problems["slot" if slot is not None else "counsellor"] = exc.message
    return problems


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
            problems["slot"] = _("Choose a time, or tell us which days and times suit you.")
        return problems
    if counsellor is not None and slot.counsellor_id != counsellor.pk:
        problems["slot"] = gettext(
            "That time is with a different counsellor. Choose one of %(name)s's times, or choose “No preference”."
        ) % {"name": counsellor.display_name}
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
    booking_resend_verification(booking=link.booking, repeat_press=True)
    return True


# How many bookings one "email me my links" message lists: the most recent ones.
BOOKING_LINKS_MAX = 10


def booking_links_request(*, email: str, language: str) -> LinksRequest:
    """Ask a worker to email `email` the links to its bookings, if it has any, in `language`
    (booking_links_send, by booking_links_request_handle). Writes one row and queues one task
    after commit, whatever the address holds: see LinksRequest."""
    request = LinksRequest.objects.create(email=email_normalise(email), language=language)
    enqueue_on_commit("send_booking_links", request.pk, otherwise="it stays for send_emails")
    return request


def booking_links_request_handle(*, request_id: int) -> int | None:
    """Send what a LinksRequest asked for and delete it, in one transaction: None if another
    worker has it or has handled it, else how many links were sent."""
    with transaction.atomic():
        request = LinksRequest.objects.select_for_update(skip_locked=True).filter(pk=request_id).first()
        if request is None:
            return None
        with translation.override(request.language):
            sent = booking_links_send(email=request.email)
        request.delete()
    return sent


def booking_links_requests_handle_due(*, limit: int = 200) -> int:
    """Handle requests left waiting a minute or more (their task was lost, or never queued).
    Returns how many were handled. One that has failed for a day is deleted unanswered: its
    address is kept no longer than that (the failure is in the logs, once a minute)."""
    now = timezone.now()
    given_up, _ = LinksRequest.objects.filter(created_at__lt=now - timedelta(days=1)).delete()
    if given_up:
        logger.error("%s request(s) for booking links failed for a day and were deleted unanswered", given_up)
    stale = now - timedelta(minutes=1)
    handled = 0
    for pk in list(LinksRequest.objects.filter(created_at__lte=stale).values_list("pk", flat=True)[:limit]):
        try:
            handled += booking_links_request_handle(request_id=pk) is not None
        except Exception:
            # One that fails must not hold up the others, nor the outbox after them.
            logger.exception("could not answer links request %s", pk)
    return handled


def booking_links_send(*, email: str) -> int:
    """Email the address the links to its bookings, if it has any. Returns how many.

    The caller must answer the same whatever this returns, so that nobody can learn
    whether an address has booked. Unverified drafts and anonymised bookings are left out, and
    so are bookings whose page has closed some days after the session: their link would open
    only the page that says so (selectors.booking_page_closed).
    """
    address = email_normalise(email)
    with transaction.atomic():
        bookings = list(
            selectors.bookings_page_open(Booking.objects.filter(email=address, anonymised_at__isnull=True))
            .exclude(status=Status.DRAFT)
            .order_by("-created_at")[:BOOKING_LINKS_MAX]
        )
        if bookings:
            notifications.booking_links(email=address, bookings=bookings)
    return len(bookings)


# Drafts not held for the client's last session (held_requests_release), or erased while held
# (which nothing makes or gives up: it holds nothing of anyone's any more).
_PURGEABLE = Q(verified_at__isnull=True) | Q(anonymised_at__isnull=False)


def drafts_purge(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Delete unverified drafts older than DRAFT_RETENTION_HOURS, with their events, links and
    emails, once no verification link of theirs still works, and none held for the address's
    last session (booking_verify, held_requests_release). Safe to run often and
    concurrently (cron, a task): each batch locks its rows and skips rows another run holds.
    Returns how many drafts were deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.DRAFT_RETENTION_HOURS)
    # A new link sent late in a draft's life ("Send the email again") works the hours it says.
    link_works = LinkToken.objects.filter(
        booking=OuterRef("pk"),
        purpose=LinkToken.Purpose.VERIFY,
        used_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    )
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                Booking.objects.select_for_update(skip_locked=True)
                .filter(_PURGEABLE, status=Status.DRAFT, created_at__lt=cutoff)
                .exclude(Exists(link_works))
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            # The verification email holds the client's name: it goes with the draft.
            OutboundEmail.objects.filter(booking_id__in=ids).delete()
            # Re-check the status in the delete itself: a draft verified meanwhile stays.
            _count, per_model = Booking.objects.filter(_PURGEABLE, pk__in=ids, status=Status.DRAFT).delete()
            deleted += per_model.get(Booking._meta.label, 0)
        if len(ids) < batch_size:
            return deleted
