"""Outgoing email: one small function per message, rendered from three templates.

`email_queue` writes the message to the outbox inside the caller's transaction and enqueues
its delivery after commit. Templates live in templates/emails/<kind>-subject.txt,
-body.txt and -body.html. No email ever carries the client's own words.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone, translation

from bookings import selectors
from bookings.after_commit import enqueue_on_commit
from bookings.context_processors import crisis_help_text
from bookings.lifecycle import STATUS_EMAILS
from bookings.models import Booking, Clinic, DailySummary, Mode, OutboundEmail, Reminder, Status, WaitlistOffer
from mindsettler.logging import REDACTED, one_of_a_batch, redact_links

logger = logging.getLogger(__name__)


class Message(EmailMultiAlternatives):
    """Headers written each on one line (RFC 5322 allows 998 characters). Python before 3.13
    drops the space where it folds a long non-ASCII header between two encoded words, so a
    Hindi subject arrived as "आपके सेशन का समयआरक्षित है"."""

    def message(self, *, policy: email.policy.Policy = email.policy.default) -> email.message.EmailMessage:
        return super().message(policy=policy.clone(max_line_length=998))


def absolute_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


# Emails to staff: in English, like the portal, and without the clients' crisis help line.
# Those about a booking are kept with it in the outbox, but not listed among its client's.
# "staff_account" is allauth's about a member's sign-in (a password-reset link), written by
# staff.adapters from templates/account/email/ and queued with email_queue_rendered.
STAFF_EMAIL_KINDS = frozenset(
    {
        "new_request",
        "record_to_rebook",
        "payment_attention",
        "session_changed",
        "daily_summary",
        "staff_invite",
        "staff_setup_link",
        "staff_account",
        "api_token_expiring",
    }
)


def email_queue(
    *,
    kind: str,
    to: str,
    context: dict[str, object],
    booking: Booking | None = None,
    ics: str = "",
    language: str | None = None,
) -> OutboundEmail:
    """Render `kind` for one recipient and queue it for delivery after commit.

    The message is rendered in `language` (the one the client booked in), else the
    booking's, else the language active now: a reminder sent by a background sweep must not
    fall back to whatever the worker happens to have active. A client's email ends, as the
    site's pages do, with where to turn in a crisis; one to staff (STAFF_EMAIL_KINDS) is in
    English and does not.
    """
    to_staff = kind in STAFF_EMAIL_KINDS
    if to_staff:
        language = settings.LANGUAGE_CODE
    clinic = Clinic.load()
    ctx = {
        "clinic": clinic,
        "clinic_name": settings.CLINIC_NAME,
        "site_url": settings.SITE_URL,
        "to_staff": to_staff,
        **context,
    }
    language = language or (booking.language if booking is not None else None) or translation.get_language()
    with translation.override(language):
        subject = " ".join(render_to_string(f"emails/{kind}-subject.txt", ctx).split())
        body_text = render_to_string(f"emails/{kind}-body.txt", ctx).rstrip() + "\n"
        if not to_staff:
            ctx["crisis_help_text"] = crisis_help_text()
            body_text += "\n-- \n" + render_to_string("emails/_crisis.txt", ctx)
        body_html = render_to_string(f"emails/{kind}-body.html", ctx)
    return email_queue_rendered(
        kind=kind, to=to, subject=subject, body_text=body_text, body_html=body_html, booking=booking, ics=ics
    )


def email_queue_rendered(
    *,
    kind: str,
    to: str,
    subject: str,
    body_text: str,
    body_html: str = "",
    booking: Booking | None = None,
    ics: str = "",
) -> OutboundEmail:
    """Queue an email already rendered (email_queue's, or allauth's password-reset email, by
    staff.adapters) for delivery after commit. Through the outbox, a mail server that is
    down, slow or refuses the address neither fails nor holds up the request that asked, and
    the email is retried; once sent, its copy keeps no working link (_links_forgotten)."""
    email = OutboundEmail.objects.create(
        kind=kind,
        booking=booking,
        to=to,
        subject=" ".join(subject.split())[:200],
        body_text=body_text,
        body_html=body_html,
        ics=ics,
    )
    enqueue_delivery(email.pk)
    return email


def enqueue_delivery(email_id: int) -> None:
    """Deliver the outbox's email `email_id` once the caller's transaction commits."""
    enqueue_on_commit("deliver_email", email_id, otherwise="it stays pending for send_emails")


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(2**attempts, 240))


def _refused(exc: Exception) -> bool:
    """Whether a failed send was the message's own doing, which sending it again will not
    mend: the mail server refused this recipient or this message for good (a 5xx answer), or
    the message could not be written at all (an address that is no address). Anything else
    is the server's, the connection's or the settings': refused, reset, timed out, a 4xx "try
    again later" (greylisting, a full queue), our login refused or required (530), our sender
    address refused (DEFAULT_FROM_EMAIL, the same for every email: the EMAIL_ settings are
    wrong), all mended in time without the message changing."""

    def permanent(code: int) -> bool:
        return 500 <= code < 600 and code != 530

    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(permanent(code) for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return False
    if isinstance(exc, smtplib.SMTPDataError):
        return permanent(exc.smtp_code)
    return not isinstance(exc, OSError)  # smtplib's errors are OSErrors, as the socket's are


def email_deliver(*, email_id: int) -> bool:
    """Send one queued email if it is due. True if it was sent by this call.

    No transaction is held while the mail server answers (up to EMAIL_TIMEOUT a step): on
    SQLite an open write transaction would stop every other write, bookings among them, for
    that long. Instead one short UPDATE claims the row, moving its next attempt past any
    send's end, so a second worker or the retry sweep leaves it alone; a worker that dies
    mid-send leaves it to be retried once that time has passed.
    """
    now = timezone.now()
    pending = OutboundEmail.objects.filter(pk=email_id, status=OutboundEmail.State.PENDING)
    if not pending.filter(next_attempt_at__lte=now).update(
        attempts=F("attempts") + 1, next_attempt_at=now + SENDING_LEASE
    ):
        return False
    email = OutboundEmail.objects.get(pk=email_id)
    if outdated := _outdated(email, now=now):
        # A retry hours later must not tell of a booking as it no longer is: remind the client
        # of a session cancelled, moved or begun meanwhile, or arrive after the email about
        # what happened next.
        pending.update(status=OutboundEmail.State.FAILED, last_error=outdated, **_links_forgotten(email))
        logger.info("email %s (%s) given up: %s", email.pk, email.kind, outdated)
        return False
    # Emails say "contact us": a reply reaches the clinic's own address, when it has one,
    # rather than the sending address, which may be read by no one.
    clinic_email = Clinic.load().email
    message = Message(
        subject=email.subject,
        body=email.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
        reply_to=[clinic_email] if clinic_email else None,
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    if email.ics:
        # The part's method must be the file's own (RFC 6047): PUBLISH or CANCEL.
        method = "CANCEL" if "METHOD:CANCEL" in email.ics else "PUBLISH"
        message.attach("session.ics", email.ics, f"text/calendar; method={method}; charset=utf-8")
    try:
        message.send()
    except Exception as exc:  # kept and retried later, until it is given up (below)
        # The type only: a refusal's message quotes the address.
        error = type(exc).__name__
        failed_at = timezone.now()
        changes = {"last_error": error, "next_attempt_at": failed_at + _backoff(email.attempts)}
        refusals = email.refusals + 1 if _refused(exc) else email.refusals
        if refusals != email.refusals:
            changes["refusals"] = refusals
        # Refused that often, it will not be taken. An outage does not count: it would give up
        # every email written during one longer than the retries' few hours, for good, with
        # nothing to send them once the server or its settings are mended. Only age ends those
        # (counted from when an administrator sent it again, if they did: email_send_again).
        queued_at = email.requeued_at or email.created_at
        given_up = refusals >= settings.EMAIL_MAX_ATTEMPTS or failed_at - queued_at >= settings.EMAIL_GIVE_UP_AFTER
        if given_up:
            changes |= {"status": OutboundEmail.State.FAILED, **_links_forgotten(email)}
        # Only while still pending: an erasure meanwhile gave it up and emptied it.
        pending.update(**changes)
        logger.warning("email %s (%s) not sent: %s%s", email.pk, email.kind, error, "; given up" if given_up else "")
        return False
    sent = {"status": OutboundEmail.State.SENT, "sent_at": timezone.now(), "last_error": ""}
    if not pending.update(**sent, **_links_forgotten(email)):
        # An erasure gave it up and emptied it while the mail server was taking it (nothing
        # else ends a claimed email): it did go out, and says so, still empty.
        OutboundEmail.objects.filter(pk=email_id, status=OutboundEmail.State.FAILED).update(**sent)
    logger.info("email %s (%s) sent", email.pk, email.kind)
    return True


# The emails about a booking's course, each of which tells its reader of a later change than
# the one before: the client's (STATUS_EMAILS, but for "you already have a booking", which
# tells of none) and its counsellor's.
_COURSE_EMAILS = frozenset({*STATUS_EMAILS, "new_request", "session_changed"} - {"already_active"})


def _link_lives() -> dict[str, timedelta]:
    """How long the link of each kind of email with a short-lived one works: sent later, it
    would bring a link that no longer opens (the client asks for a new one, or staff do)."""
    from bookings.services.privacy import PRIVACY_LINK_HOURS  # the services import this module
    from staff.services import SETUP_LINK_MINUTES

    verification = timedelta(hours=settings.VERIFICATION_LINK_HOURS)
    return {
        "verify": verification,
        "waitlist_verify": verification,
        "cancel_confirm": timedelta(minutes=settings.CANCELLATION_LINK_MINUTES),
        "reschedule_confirm": timedelta(minutes=settings.RESCHEDULE_LINK_MINUTES),
        "privacy_erase": timedelta(hours=PRIVACY_LINK_HOURS),
        "privacy_export": timedelta(hours=PRIVACY_LINK_HOURS),
        "staff_setup_link": timedelta(minutes=SETUP_LINK_MINUTES),
        # allauth's password links (an invitation is one): Django's own lifetime of them.
        "staff_invite": timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
        "staff_account": timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
    }


def _outdated(email: OutboundEmail, *, now: datetime) -> str:
    """Why an email about to go out no longer holds, or "". Only an email retried late
    (the mail server was down) can be: one sent at once went out with its change."""
    if email.kind == "reminder":
        return _reminder_outdated(email, now=now)
    life = _link_lives().get(email.kind)
    if life is not None and email.created_at + life <= now:
        return "The link it carries had expired before it could be sent"
    if email.kind == "waitlist_offer":
        slot_id = WaitlistOffer.objects.filter(email=email).values_list("slot_id", flat=True).first()
        if slot_id is not None and not selectors.slots_free().filter(pk=slot_id).exists():
            return "The time it offers was taken, or too near, before it could be sent"
        return ""
    if email.kind == "daily_summary":
        day = DailySummary.objects.filter(email=email).values_list("day", flat=True).first()
        if day is not None and day < timezone.localdate(now):
            return "Its day had passed before it could be sent"
        return ""
    if email.kind == "request_held":
        if not selectors.held_requests().filter(pk=email.booking_id).exists():  # made or given up
            return "The request had been made or given up before it was sent"
        return ""
    if email.kind == "record_to_rebook":
        status = Booking.objects.filter(pk=email.booking_id).values_list("status", flat=True).first()
        if status != Status.CONFIRMED:
            return "The session had been recorded before it was sent"
        return ""
    if email.kind not in _COURSE_EMAILS or email.booking_id is None:
        return ""
    if email.kind == "new_request":
        status = Booking.objects.filter(pk=email.booking_id).values_list("status", flat=True).first()
        if status != Status.PENDING:
            return "The request had been decided or withdrawn before it was sent"
    if email.kind in STATUS_EMAILS:
        status = Booking.objects.filter(pk=email.booking_id).values_list("status", flat=True).first()
        if status not in STATUS_EMAILS[email.kind]:
            return "The booking had changed before it was sent"
    # Sent after a later one, it would undo what that one said (its calendar entry among it).
    if OutboundEmail.objects.filter(
        booking_id=email.booking_id,
        to=email.to,
        kind__in=_COURSE_EMAILS,
        status=OutboundEmail.State.SENT,
        pk__gt=email.pk,
    ).exists():
        return "A later email about the booking had gone out before it"
    return ""


def _reminder_outdated(email: OutboundEmail, *, now: datetime) -> str:
    reminder = (
        Reminder.objects.filter(email=email).select_related("booking__counsellor__user", "booking", "slot").first()
    )
    if reminder is None:
        return ""
    booking = reminder.booking
    if booking.status != Status.CONFIRMED or booking.slot_id != reminder.slot_id:
        return "The session was cancelled or moved before it was sent"
    if reminder.slot.start <= now:
        return "The session had begun before it could be sent"
    left = booking.counsellor is not None and not selectors.counsellor_at_work(booking.counsellor)
    if left or (booking.mode == Mode.ONLINE and booking.join_url not in email.body_text):
        # Its counsellor has left, or the link to join changed (the booking's own, or their
        # room): it would send the client to the wrong room. Its claim goes with it, so that
        # the next run of send_reminders does it again as things are now: held back and the
        # administrators told, or with the new link.
        Reminder.objects.filter(pk=reminder.pk).delete()
        return "The session's counsellor or link to join had changed before it was sent"
    return ""


# How long a claimed email is left to its sender before it may be tried again: well past
# the longest send (EMAIL_TIMEOUT for each of SMTP's few steps).
SENDING_LEASE = timedelta(minutes=15)


def _links_forgotten(email: OutboundEmail) -> dict[str, str]:
    """Once an email will not be sent again, its copy keeps no working link: links carry
    secrets, stored only as hashes (a resend makes a new booking-page link: see
    RESENT_BOOKING_LINK). The fields to store."""
    return {"body_text": redact_links(email.body_text), "body_html": redact_links(email.body_html)}


# Where a sent email's booking-page link was; a resend puts a new one there.
RESENT_BOOKING_LINK = f"/bookings/{REDACTED}/"


def emails_send_due(*, limit: int = 200) -> int:
    """Retry every pending email whose time has come. Returns how many were sent."""
    due = OutboundEmail.objects.filter(
        status=OutboundEmail.State.PENDING, next_attempt_at__lte=timezone.now()
    ).values_list("pk", flat=True)[:limit]
    sent = 0
    for pk in list(due):
        with one_of_a_batch("email", pk):
            sent += email_deliver(email_id=pk)
    return sent
