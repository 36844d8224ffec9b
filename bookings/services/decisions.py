"""Staff decisions and cancellations: approve, reject, complete, no-show, cancel; resending emails and correcting the client's address."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from bookings import notifications, selectors
from bookings.errors import (
    BookingError,
    SlotUnavailable,
    TooLate,
)
from bookings.lifecycle import STATUS_EMAILS
from bookings.models import (
    ACTIVE_STATUSES,
    CLINIC_PROVIDER,
    Actor,
    Booking,
    LinkToken,
    Mode,
    OutboundEmail,
    Payment,
    Reminder,
    Slot,
    Status,
)
from bookings.services.payments import (
    payment_alerts_answered_by_cancel,
    payment_held_refund,
    payment_refund,
    payments_taken_lock,
)
from bookings.services.transitions import (
    _check_mode,
    _check_slot_for_staff,
    _too_close_to_pay_message,
    booking_record,
    booking_transition,
    email_normalise,
    payment_due_at,
    slots_lock,
)
from bookings.tokens import (
    booking_lock_for_link,
    token_claim,
    token_create,
    token_get,
    token_just_sent,
    tokens_revoke,
)
from mindsettler.logging import redact_links

logger = logging.getLogger(__name__)


# --- Staff decisions --------------------------------------------------------------------


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
        slot = slots_lock([slot_id]).get(slot_id)
        if slot is None:
            raise SlotUnavailable("That time slot no longer exists. Choose another.")
        booking = Booking.objects.select_related("session_type", "counsellor").get(pk=booking_id)
        _check_slot_for_staff(slot=slot, session_type=booking.session_type, now=now)
        _check_mode(session_type=booking.session_type, mode=booking.mode, counsellor=slot.counsellor)
        due = payment_due_at(approved_at=now, session_start=slot.start, now=now)
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
        approved = f"Approved for {selectors.staff_moment(slot.start)}"
        handed_from = None
        if booking.counsellor is not None and booking.counsellor_id != slot.counsellor_id:
            handed_from = booking.counsellor
            # Into another counsellor's time: a handover, said as a move to one says it.
            if booking.meeting_url:
                # Most likely the first counsellor's own meeting: the session uses the new one's room.
                changes["meeting_url"] = ""
            approved += selectors.handover_words(
                old_counsellor=booking.counsellor,
                new_counsellor=slot.counsellor,
                link_cleared=bool(booking.meeting_url),
            )
        approved_booking = booking_transition(
            booking=booking_id,
            to=Status.APPROVED,
            actor=Actor.STAFF,
            user=user,
            reason=reason or approved,
            expected_version=expected_version,
            changes=changes,
        )
        if handed_from is not None:
            # The counsellor the request was made to no longer sees it (the new one hears of
            # an approval into their time, from the transition).
            notifications.session_changed(
                booking=approved_booking,
                change="handed_away",
                counsellor=handed_from,
                actor=Actor.STAFF,
                user=user,
                other=slot.counsellor,
            )
        return approved_booking


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
    """Record how a session went (completed, no-show): only once it has ended, at its start
    plus its type's length (Booking.session_end), which may be before its slot's end."""
    booking = Booking.objects.select_related("slot", "session_type").get(pk=booking_id)
    if booking.slot is not None and booking.session_end > timezone.now():
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


def cancellation_open_for_client(
    *, booking: Booking, now: datetime | None = None, asked_at: datetime | None = None
) -> bool:
    """Clients may cancel (and move) online until CANCELLATION_CUTOFF_HOURS before the session.
    `asked_at`: when they asked, for what they confirm from an emailed link. Asking in time is
    what counts: the link's minutes are theirs to confirm in, so long as the session has not
    begun (a client who asked at 24 h 05 min was refused ten minutes later)."""
    if booking.status not in ACTIVE_STATUSES:
        return False
    if booking.slot is None:
        return True
    now = now or timezone.now()
    cutoff = timedelta(hours=settings.CANCELLATION_CUTOFF_HOURS)
    if asked_at is not None:
        return booking.slot.start > now and booking.slot.start - asked_at > cutoff
    return booking.slot.start - now > cutoff


def booking_cancel(
    *,
    booking_id: int,
    actor: str,
    reason: str,
    user: Any = None,
    expected_version: int | None = None,
    client_asked: bool = False,
    asked_at: datetime | None = None,
) -> Booking:
    """Cancel an active booking. Clients only before the cutoff (judged when they asked,
    `asked_at`, for a cancellation confirmed from an emailed link); staff must give a reason.

    A paid booking's refund is started after commit (payments). Staff cancelling at the
    client's request (`client_asked`) inside the cutoff is recorded as a late cancellation.
    """
    if actor == Actor.STAFF and not reason.strip():
        raise BookingError("Give a reason for cancelling this booking.")
    with transaction.atomic():
        taken = payments_taken_lock(booking_id=booking_id)  # before the booking: the lock order
        # of=self: PostgreSQL cannot lock the nullable side of the outer join to slot.
        booking = Booking.objects.select_for_update(of=("self",)).select_related("slot").get(pk=booking_id)
        if (
            actor == Actor.CLIENT
            and booking.status in ACTIVE_STATUSES
            and not cancellation_open_for_client(booking=booking, asked_at=asked_at)
        ):
            raise TooLate(
                gettext(
                    "Sessions can be cancelled online until %(hours)s hours before they start. Please contact the clinic."
                )
                % {"hours": settings.CANCELLATION_CUTOFF_HOURS}
            )
        if booking.status == Status.CONFIRMED:
            # Money recorded at the clinic's desk while this waited for the booking: its row is
            # new, so the lock above did not see it. Nothing else locks such a payment before
            # its booking (it has no provider to hear from), so taking it now cannot deadlock.
            seen = [payment.pk for payment in taken]
            taken += (
                Payment.objects.select_for_update()
                .filter(
                    booking_id=booking_id, provider=CLINIC_PROVIDER, status=Payment.State.CONFIRMED, refund_status=""
                )
                .exclude(pk__in=seen)
            )
        from_status = booking.status
        cancelled = booking_transition(
            booking=booking,
            to=Status.CANCELLED,
            actor=actor,
            user=user,
            reason=reason.strip() or "Cancelled",
            expected_version=expected_version,
            client_asked=client_asked,
        )
        if actor == Actor.STAFF and client_asked and booking.slot is not None:
            _record_if_late(booking=cancelled, slot=booking.slot, user=user)
        reason = f"Booking cancelled by {Actor(actor).label.lower()}"
        for payment in taken:
            paid = payment.status in (Payment.State.CONFIRMED, Payment.State.PARTIALLY_REFUNDED)
            if paid and from_status == Status.CONFIRMED:
                # All of it back (the rest, if some went back already): clients get here only
                # before the cutoff (checked above), staff always.
                payment_refund(payment_id=payment.pk, reason=reason)
            elif payment.status == Payment.State.PENDING:
                # Money taken that did not confirm the booking (a wrong amount) goes back too.
                payment_held_refund(payment=payment, booking=cancelled, what_happened=reason, reason=reason)
        if from_status == Status.CONFIRMED:
            payment_alerts_answered_by_cancel(booking_id=booking_id)
        return cancelled


def booking_cancel_request(*, booking: Booking) -> None:
    """Email the client a single-use link (valid CANCELLATION_LINK_MINUTES) to confirm cancelling."""
    if not cancellation_open_for_client(booking=booking):
        raise TooLate(
            gettext(
                "Sessions can be cancelled online until %(hours)s hours before they start. Please contact the clinic."
            )
            % {"hours": settings.CANCELLATION_CUTOFF_HOURS}
        )
    with transaction.atomic():
        booking_lock_for_link(booking)
        if token_just_sent(booking=booking, purpose=LinkToken.Purpose.CANCEL):
            return
        raw = token_create(
            booking=booking,
            purpose=LinkToken.Purpose.CANCEL,
            lifetime=timedelta(minutes=settings.CANCELLATION_LINK_MINUTES),
        )
        notifications.cancel_confirmation(booking=booking, raw_token=raw)


def booking_cancel_confirm(*, token: str) -> Booking:
    """The client confirmed cancellation from the emailed link (a POST)."""
    with transaction.atomic():
        # The booking's payments before its row, which claiming the link locks (the lock order).
        payments_taken_lock(booking_id=token_get(raw=token, purpose=LinkToken.Purpose.CANCEL).booking_id)
        link = token_claim(raw=token, purpose=LinkToken.Purpose.CANCEL)
        return booking_cancel(
            booking_id=link.booking_id, actor=Actor.CLIENT, reason="Cancelled by the client", asked_at=link.created_at
        )


# --- Staff portal: emails, meeting links ------------------------------------------------


def email_to_resend(booking: Booking, emails: Iterable[OutboundEmail]) -> OutboundEmail:
    """What "Resend the last email" sends: the last status email of `emails` (the booking's,
    newest first), if it still says where the booking stands. Raises BookingError saying why
    there is none."""
    if booking.anonymised_at is not None:
        # Its emails were emptied and its address replaced: there is nobody to write to.
        raise BookingError("The client's details were erased, so there is no email to send again.")
    last = next((e for e in emails if e.kind in STATUS_EMAILS), None)
    if last is None:
        raise BookingError("No email about this booking has been sent yet, so there is nothing to resend.")
    if booking.status not in STATUS_EMAILS[last.kind]:
        raise BookingError(
            f"The last email about this booking (“{last.subject}”) no longer says where it stands: "
            f"the booking is {booking.get_status_display().lower()} now."
        )
    return last


def booking_resend_last_email(*, booking_id: int, user: Any) -> OutboundEmail:
    """Queue the booking's last status email again, to the same address, and note it in the
    audit trail. A "confirmed" email is written afresh from the booking as it is now
    (notifications.confirmed_again); the others, which tell of a change as it happened (a
    move's old time, a cancellation's refund), are sent as they were, with a new link to the
    booking's page. Single-use links (verification, cancellation) are never resent."""
    from bookings.emails import RESENT_BOOKING_LINK, enqueue_delivery
    from bookings.notifications import manage_path

    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        last = email_to_resend(
            booking,
            OutboundEmail.objects.filter(booking=booking, kind__in=STATUS_EMAILS).order_by("-created_at", "-id")[:1],
        )
        booking_record(booking=booking, action="email_resent", actor=Actor.STAFF, user=user, reason=last.subject)
        if last.kind == "confirmed":
            return notifications.confirmed_again(booking=booking)
        body_text, body_html = last.body_text, last.body_html
        if RESENT_BOOKING_LINK in body_text + body_html:
            # The sent copy kept no working link (emails._links_forgotten): a new one.
            link = manage_path(booking)
            body_text, body_html = (
                body_text.replace(RESENT_BOOKING_LINK, link),
                body_html.replace(RESENT_BOOKING_LINK, link),
            )
        copy = OutboundEmail.objects.create(
            kind=last.kind,
            booking=booking,
            to=last.to,
            subject=last.subject,
            body_text=body_text,
            body_html=body_html,
            ics=last.ics,
        )
        enqueue_delivery(copy.pk)
    return copy


def email_send_again(*, email_id: int, user: Any) -> tuple[OutboundEmail, bool]:
    """An administrator puts an email the outbox gave up on back in the queue, after a long
    mail outage or once the email settings are mended: pending again, its tries and the
    give-up clock started afresh (OutboundEmail.requeued_at), and delivered after commit as a
    new email is. Its last error stays until the next try replaces it; the log, and the
    booking's timeline when it is about one, say who sent it again and why it had been given up.

    Refused (BookingError, saying what to do instead) when it cannot hold, before anything is
    written: see _why_not_again. Its delivery checks again, as for any email, that it still
    holds. Returns the email and whether this call put it back: False when it was no longer
    given up (a second press: it is waiting already, or sent). Raises OutboundEmail.DoesNotExist."""
    from bookings.emails import enqueue_delivery

    email = OutboundEmail.objects.select_related("booking").get(pk=email_id)
    if email.status != OutboundEmail.State.FAILED:
        return email, False
    now = timezone.now()
    refused, outdated = _why_not_again(email, now=now)
    if outdated:
        # It will not hold again (its booking moved on, a later email went, its day passed):
        # its row says so, and offers no button that would only refuse again.
        OutboundEmail.objects.filter(pk=email.pk, status=OutboundEmail.State.FAILED).update(
            last_error=f"{NO_LONGER_HOLDS}{outdated}"[:200]
        )
    if refused:
        raise BookingError(refused)
    fresh = {
        "status": OutboundEmail.State.PENDING,
        "attempts": 0,
        "refusals": 0,
        "next_attempt_at": now,
        "requeued_at": now,
    }
    with transaction.atomic():
        # Only if still given up: two presses (or two administrators) put it back once.
        if not OutboundEmail.objects.filter(pk=email.pk, status=OutboundEmail.State.FAILED).update(**fresh):
            email.refresh_from_db()
            return email, False
        if email.booking is not None:
            reason = email.subject + (f" (it had been given up: {email.last_error})" if email.last_error else "")
            booking_record(booking=email.booking, action="email_resent", actor=Actor.STAFF, user=user, reason=reason)
        enqueue_delivery(email.pk)
    # Its id and kind, never its address: the outbox's own log lines say the same.
    logger.info(
        "email %s (%s) put back in the queue by staff account %s; it had been given up: %s",
        email.pk,
        email.kind,
        user.pk,
        email.last_error or "-",
    )
    for field, value in fresh.items():
        setattr(email, field, value)
    return email, True


# The start of the last error of a given-up email found no longer holding when an administrator
# tried to send it again (staff.selectors.emails_given_up offers it no button).
NO_LONGER_HOLDS = "No longer holds: "


def _why_not_again(email: OutboundEmail, *, now: datetime) -> tuple[str, str]:
    """Why an email given up cannot simply go again, or "", and, when that is because it no
    longer holds (emails._outdated), its reason, or "". Its copy keeps no working link
    once given up (emails._links_forgotten): a booking's are sent again from its page, with a
    new link (booking_resend_last_email); an erasure emptied it; a corrected address means it
    went to one the booking no longer has. Otherwise, the rules every delivery applies
    (emails._outdated): said now rather than found when it is sent, and given up again."""
    from bookings.emails import STAFF_EMAIL_KINDS, _outdated
    from mindsettler.logging import REDACTED

    subject, booking = email.subject, email.booking
    to_client = email.kind not in STAFF_EMAIL_KINDS
    on_its_page = (
        f"Use “Resend the last email” on the page of {booking.ack_id}: it sends the email that says where the "
        "booking stands now, with a new link to its page."
        if booking is not None
        else ""
    )
    if (booking is not None and booking.anonymised_at is not None) or not email.body_text:
        return f"“{subject}” cannot be sent again: the client's details were erased, and the email with them.", ""
    if booking is not None and to_client and email.to != booking.email:
        return (
            f"“{subject}” cannot be sent again: it went to an address the booking no longer has (the client's "
            f"address was corrected). {on_its_page}",
            "",
        )
    if REDACTED in email.body_text + email.body_html:
        said = f"“{subject}” cannot be sent again: its links stopped working when it was given up."
        if booking is not None and to_client:
            return f"{said} {on_its_page}", ""
        if not to_client:
            return (
                f"{said} Send a new invitation from the Staff page (“Send a new link”), or the member asks for "
                "a new link where they sign in.",
                "",
            )
        return f"{said} The client can ask for a new one on the website.", ""
    if outdated := _outdated(email, now=now):
        said = f"“{subject}” no longer holds, so it was not sent again: {outdated[0].lower()}{outdated[1:]}."
        return (f"{said} {on_its_page}" if booking is not None and to_client else said), outdated
    return "", ""


def booking_correct_email(*, booking_id: int, user: Any, email: str) -> tuple[Booking, str]:
    """Staff correct the client's address on an open booking: mistyped on the phone, or by the
    client. The links emailed so far went to the old address, which may be a stranger's: they
    stop working, and the emails still waiting to go there are given up. The new address gets
    the booking's last status email again (a "confirmed" one written afresh, as "Resend the
    last email" does), with a new link to the booking's page (or, when no status email says
    where the booking stands, that link alone). The timeline records the correction without
    either address. Returns the booking and the subject of the email sent again ("" when it
    was the link alone)."""
    from bookings.emails import RESENT_BOOKING_LINK, _links_forgotten, enqueue_delivery
    from bookings.notifications import manage_path

    email = email_normalise(email)
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.anonymised_at is not None:
            raise BookingError("The client's details were erased, so there is no address to correct.")
        if booking.status not in ACTIVE_STATUSES:
            raise BookingError(
                f"This booking is {booking.get_status_display().lower()}: only an open booking's address "
                "can be corrected."
            )
        if email == booking.email:
            raise BookingError("That is the address the booking already has.", field="email")
        if Booking.objects.filter(email=email, status__in=ACTIVE_STATUSES).exclude(pk=booking.pk).exists():
            raise BookingError(
                "That address already has another open booking, and a client has one at a time. "
                "Check the address with the client, or find their other booking in the list.",
                field="email",
            )
        old = booking.email
        booking.email = email
        try:
            with transaction.atomic():
                booking.save(update_fields=["email", "updated_at"])
        except IntegrityError as exc:  # the same address, given to another booking meanwhile
            raise BookingError(
                "That address already has another open booking, and a client has one at a time.", field="email"
            ) from exc
        tokens_revoke(booking=booking)
        waiting = OutboundEmail.objects.filter(booking=booking, to=old, status=OutboundEmail.State.PENDING)
        for given_up in waiting:
            OutboundEmail.objects.filter(pk=given_up.pk, status=OutboundEmail.State.PENDING).update(
                status=OutboundEmail.State.FAILED,
                last_error="The client's address was corrected",
                **_links_forgotten(given_up),
            )
        # A reminder that went, or was to go, to the old address is claimed no more: the next
        # run of send_reminders sends it to the new one, if it is still due (a mistyped address
        # is refused for hours, which is when staff correct it; a stranger's took it).
        Reminder.objects.filter(booking=booking, email__to=old).delete()
        booking_record(
            booking=booking,
            action="email_corrected",
            actor=Actor.STAFF,
            user=user,
            reason="Client's email address corrected; the links sent before no longer work",
        )
        emails = OutboundEmail.objects.filter(booking=booking, kind__in=STATUS_EMAILS).order_by("-created_at", "-id")
        try:
            last = email_to_resend(booking, emails[:1])
        except BookingError:
            notifications.booking_link_again(booking=booking)
            return booking, ""
        if last.kind == "confirmed":  # written afresh, as "Resend the last email" does
            return booking, notifications.confirmed_again(booking=booking).subject
        # Its links were those of the old address (revoked above), or already forgotten.
        link = manage_path(booking)
        body_text, body_html = (
            redact_links(body).replace(RESENT_BOOKING_LINK, link) for body in (last.body_text, last.body_html)
        )
        copy = OutboundEmail.objects.create(
            kind=last.kind,
            booking=booking,
            to=email,
            subject=last.subject,
            body_text=body_text,
            body_html=body_html,
            ics=last.ics,
        )
        enqueue_delivery(copy.pk)
    return booking, last.subject


def booking_set_meeting_url(*, booking_id: int, user: Any, meeting_url: str) -> Booking:
    """Set (or, with "", clear) a booking's own meeting link; empty means the counsellor's room."""
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.mode != Mode.ONLINE:
            raise BookingError("Only online sessions have a meeting link.")
        if booking.status not in ACTIVE_STATUSES or booking.anonymised_at is not None:
            # Nobody joins it any more; and an erased booking's link is gone for good.
            raise BookingError(
                f"This booking is {Status(booking.status).label.lower()}, so its meeting link can no longer be changed."
            )
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
