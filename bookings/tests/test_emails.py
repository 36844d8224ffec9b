"""The outbox: emails leave only after commit, survive an SMTP outage, and are sent once."""

from __future__ import annotations

import io
import logging
import logging.config
import re
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from bookings.emails import STAFF_EMAIL_KINDS, email_deliver, email_queue, emails_send_due
from bookings.models import Actor, Clinic, OutboundEmail, Slot, Status
from bookings.services import (
    booking_approve,
    booking_cancel,
    booking_reject,
    booking_reschedule,
    payment_confirm,
    payment_start,
)
from mindsettler.logging import RequestIDFilter

pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_log(settings) -> Iterator[io.StringIO]:
    """What the app logs through the handler production uses (mindsettler.logging's filter),
    into a buffer: the lines of the app's own loggers, not those of the test's mail server."""
    logging.config.dictConfig(settings.LOGGING)
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RequestIDFilter) for f in h.filters))
    buffer = io.StringIO()
    handler.setStream(buffer)
    yield buffer
    logging.config.dictConfig(settings.LOGGING)


def app_lines(log: io.StringIO) -> list[str]:
    return [line for line in log.getvalue().splitlines() if " mail.log " not in line]


def smtp_at(settings, port: int, *, timeout: int = 5) -> None:
    """Email goes by SMTP to `port` on loopback: a test's own server there, or none (an outage)."""
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "use_tls": False, "timeout": timeout},
        }
    }


@pytest.fixture
def smtp_settings(settings):
    port = free_port()
    smtp_at(settings, port)
    return port


def test_nothing_is_sent_for_a_change_that_rolls_back(make_booking, counsellor, django_capture_on_commit_callbacks):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                email_queue(kind="rejected", to=booking.email, booking=booking, context={"booking": booking})
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
    assert mail.outbox == []
    assert not OutboundEmail.objects.exists()


def test_an_smtp_outage_keeps_the_change_and_delivers_once_the_server_is_back(
    make_booking, counsellor, admin_user, smtp_settings, oncommit
):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with oncommit():
        booking_reject(booking_id=booking.pk, user=admin_user, reason="No availability")
    # The server was down: the rejection stands, the email waits.
    booking.refresh_from_db()
    assert booking.status == Status.REJECTED
    email = OutboundEmail.objects.get(booking=booking)
    assert (email.status, email.attempts, email.last_error) == ("pending", 1, "ConnectionRefusedError")

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_settings)
    controller.start()
    try:
        OutboundEmail.objects.update(next_attempt_at=email.created_at)  # its retry time has come
        assert emails_send_due() == 1
        assert emails_send_due() == 0  # never twice
        assert email_deliver(email_id=email.pk) is False
        for _ in range(50):
            if inbox.messages:
                break
            time.sleep(0.05)
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert b"No availability" not in inbox.messages[0]  # staff's reason stays on the booking page
    email.refresh_from_db()
    assert email.status == "sent" and email.attempts == 2


@pytest.mark.parametrize("later", ["cancelled", "moved"])
def test_an_email_retried_after_a_later_change_went_out_is_given_up(
    make_booking, counsellor, slot, admin_user, smtp_settings, oncommit, later
):
    """Approved while the mail server was down, then cancelled (or moved) once it was back:
    the approval's retry, hours later, would ask the client to pay for a session they were told
    is cancelled (or at its old time), to the client and to the counsellor alike."""
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with oncommit():
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    waiting = list(OutboundEmail.objects.filter(status="pending"))
    assert {e.kind for e in waiting} == {"approved", "session_changed"}

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_settings)
    controller.start()
    try:
        with oncommit():
            if later == "cancelled":
                booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Unwell")
            else:
                other = Slot.objects.create(
                    counsellor=counsellor, start=slot.start + timedelta(days=1), end=slot.end + timedelta(days=1)
                )
                booking_reschedule(booking_id=booking.pk, slot_id=other.pk, actor=Actor.STAFF, user=admin_user)
        sent_later = len(inbox.messages)
        OutboundEmail.objects.filter(status="pending").update(next_attempt_at=timezone.now())
        assert emails_send_due() == 0
    finally:
        controller.stop()
    assert sent_later >= 1 and len(inbox.messages) == sent_later
    given_up = OutboundEmail.objects.filter(pk__in=[e.pk for e in waiting])
    assert {(e.status, e.last_error) for e in given_up} <= {
        ("failed", "A later email about the booking had gone out before it"),
        ("failed", "The booking had changed before it was sent"),
    }
    assert given_up.get(kind="approved").last_error == (
        "The booking had changed before it was sent"
        if later == "cancelled"
        else "A later email about the booking had gone out before it"
    )


def test_an_email_retried_while_it_still_holds_goes_out(make_booking, counsellor, slot, admin_user, oncommit):
    """Approved, then paid for before the approval's retry: "pay to confirm" still holds while
    a payment is under way."""
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)  # no commit: not delivered
    payment_start(booking_id=booking.pk)
    assert emails_send_due() == 2  # the approval, and the counsellor's notice
    (to_client,) = (m.subject for m in mail.outbox if booking.email in m.to)
    assert to_client.startswith("Your session time is reserved")


# --- Failures: the message's own, or the mail server's -----------------------------------------


class MailServer:
    """A mail server on loopback that answers `reply` at one step of each message (MAIL,
    RCPT or DATA) and takes everything else; it may also refuse every login."""

    def __init__(self, step: str = "", reply: str = "") -> None:
        self.step, self.reply = step, reply
        self.messages: list[bytes] = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.step == "MAIL":
            return self.reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.step == "RCPT":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.step == "DATA":
            return self.reply
        self.messages.append(envelope.content)
        return "250 OK"


def login_refused(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=False, handled=False)


@pytest.fixture
def mail_server(smtp_settings, settings):
    """`mail_server(step, reply)` starts a MailServer at smtp_settings' address; `login=False`
    one that refuses the login the settings then give."""
    started = []

    def start(step: str = "", reply: str = "", *, login: bool = True) -> MailServer:
        handler = MailServer(step, reply)
        options = {"authenticator": login_refused, "auth_require_tls": False} if not login else {}
        controller = Controller(handler, hostname="127.0.0.1", port=smtp_settings, **options)
        controller.start()
        started.append(controller)
        if not login:
            settings.MAILERS["default"]["OPTIONS"] |= {"username": "bookings", "password": "wrong"}
        return handler

    yield start
    for controller in started:
        controller.stop()


def queued_with_a_link(make_booking, oncommit) -> OutboundEmail:
    """A rejection, its booking-page link in it, sent at once (and failing, in these tests)."""
    booking = make_booking(Status.REJECTED)
    link = f"http://testserver/bookings/{'T' * 32}/"
    with oncommit():
        email = email_queue(
            kind="rejected", to=booking.email, booking=booking, context={"booking": booking, "booking_url": link}
        )
    email.refresh_from_db()
    return email


def try_again(email: OutboundEmail) -> OutboundEmail:
    """Its retry's time comes, and the sweep runs."""
    OutboundEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
    emails_send_due()
    email.refresh_from_db()
    return email


@pytest.mark.parametrize(
    "step, reply, error",
    [
        ("RCPT", "550 5.1.1 No such mailbox", "SMTPRecipientsRefused"),
        ("DATA", "554 5.7.1 Message rejected as spam", "SMTPDataError"),
    ],
)
def test_a_message_the_server_refuses_for_itself_is_given_up_after_the_maximum_attempts(
    make_booking, oncommit, mail_server, settings, step, reply, error
):
    settings.EMAIL_MAX_ATTEMPTS = 2
    mail_server(step, reply)
    email = queued_with_a_link(make_booking, oncommit)
    assert (email.status, email.attempts, email.last_error) == ("pending", 1, error)  # refused once
    email = try_again(email)
    assert (email.status, email.attempts, email.refusals, email.last_error) == ("failed", 2, 2, error)
    assert "T" * 32 not in email.body_text and "/bookings/[redacted]/" in email.body_text


# The mail server down, unreachable, asking us to come back later, or refusing our login.
OUTAGES = {
    "down": ((), "ConnectionRefusedError"),
    "greylisting at RCPT (451)": (("RCPT", "451 4.7.1 Greylisted, try again later"), "SMTPRecipientsRefused"),
    "closing at DATA (421)": (("DATA", "421 4.3.2 Shutting down"), "SMTPDataError"),
    "login refused (535)": ((), "SMTPAuthenticationError"),
    "login required (530)": (("MAIL", "530 5.7.0 Authentication required"), "SMTPSenderRefused"),
    # DEFAULT_FROM_EMAIL, the sender of every email, not one the server takes: the settings.
    "sender refused (553)": (("MAIL", "553 5.7.1 Sender address rejected"), "SMTPSenderRefused"),
}


@pytest.mark.parametrize("outage", OUTAGES)
def test_an_outage_longer_than_the_attempts_keeps_the_email_until_it_is_too_old(
    make_booking, oncommit, mail_server, settings, outage, app_log
):
    """EMAIL_MAX_ATTEMPTS failures (2 here; 8 by default, some 4 hours of retries) used to give
    up every email of a longer outage, for good. Only EMAIL_GIVE_UP_AFTER ends those."""
    settings.EMAIL_MAX_ATTEMPTS = 2
    settings.EMAIL_GIVE_UP_AFTER = timedelta(days=3)
    server, error = OUTAGES[outage]
    if outage != "down":
        mail_server(*server, login=not outage.startswith("login refused"))
    email = queued_with_a_link(make_booking, oncommit)
    for _ in range(11):
        email = try_again(email)
    assert (email.status, email.attempts, email.refusals, email.last_error) == ("pending", 12, 0, error)
    # Tried again every 4 hours at most, the growing delay's cap.
    assert timedelta(minutes=239) < email.next_attempt_at - timezone.now() <= timedelta(minutes=240)

    OutboundEmail.objects.filter(pk=email.pk).update(created_at=timezone.now() - timedelta(days=3, minutes=1))
    email = try_again(email)
    assert (email.status, email.last_error) == ("failed", error)
    assert "T" * 32 not in email.body_text and "/bookings/[redacted]/" in email.body_text
    # Each failure logged by the error's type, never the address.
    logs = app_lines(app_log)
    assert sum(f"not sent: {error}" in line for line in logs) == 13 and "; given up" in logs[-1]
    assert not [line for line in logs if email.to in line]


def test_an_email_kept_through_a_long_outage_goes_once_the_server_is_back(
    make_booking, oncommit, mail_server, settings
):
    settings.EMAIL_MAX_ATTEMPTS = 2
    email = queued_with_a_link(make_booking, oncommit)
    for _ in range(9):
        email = try_again(email)
    assert (email.status, email.attempts) == ("pending", 10)
    inbox = mail_server()  # back up, 10 tries on
    email = try_again(email)
    assert (email.status, email.attempts) == ("sent", 11)
    [received] = inbox.messages
    assert b"T" * 32 in received and b"T" * 32 not in email.body_text.encode()
    assert emails_send_due() == 0 and len(inbox.messages) == 1  # once


def test_a_refusal_after_an_outage_counts_only_itself(make_booking, oncommit, mail_server, settings):
    """Tries lost to an outage spend none of the refusals a message is allowed."""
    settings.EMAIL_MAX_ATTEMPTS = 2
    email = queued_with_a_link(make_booking, oncommit)
    for _ in range(4):
        email = try_again(email)
    mail_server("RCPT", "550 5.1.1 No such mailbox")
    email = try_again(email)
    assert (email.status, email.attempts, email.refusals) == ("pending", 6, 1)
    email = try_again(email)
    assert (email.status, email.refusals) == ("failed", 2)


# --- What the emails say ----------------------------------------------------------------


def pay_in_full(booking) -> None:
    """The client pays the booking's amount: it is confirmed, and its email sent."""
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk,
        provider_payment_id="pay_ok",
        amount=booking.amount,
        currency=booking.currency,
        raw={},
        source="t",
    )


@pytest.mark.parametrize("hours", [24, 48])
def test_the_confirmation_states_the_cancellation_cutoff_in_force_in_both_parts(
    settings, make_booking, counsellor, oncommit, hours
):
    settings.CANCELLATION_CUTOFF_HOURS = hours
    booking = make_booking(Status.APPROVED)

    with oncommit():
        pay_in_full(booking)

    email = OutboundEmail.objects.get(booking=booking, kind="confirmed")
    policy = f"You can cancel online until {hours} hours before the session, with a full refund."
    assert policy in email.body_text and policy in email.body_html


def test_a_session_paid_for_inside_the_cutoff_is_not_promised_an_online_cancellation(
    make_booking, counsellor, oncommit
):
    """Approved two days ahead, paid the evening before: cancelling online has closed."""
    start = timezone.now().replace(microsecond=0) + timedelta(hours=20)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    booking = make_booking(Status.APPROVED, slot=slot, payment_due_at=start - timedelta(hours=12))
    with oncommit():
        pay_in_full(booking)
    email = OutboundEmail.objects.get(booking=booking, kind="confirmed")
    closed = (
        "Your session is less than 24 hours away, so it can no longer be cancelled online. Please contact the clinic."
    )
    for part in (email.body_text, email.body_html):
        assert closed in part and "You can cancel online" not in part


def test_the_calendar_attachment_declares_the_method_its_file_uses(make_booking, counsellor, oncommit):
    """RFC 6047: the attachment's `method` parameter must be the file's METHOD. A file that
    PUBLISHes an event but is labelled REQUEST makes mail apps show it as a meeting invitation
    to accept or decline, answered to the clinic's address."""
    booking = make_booking(Status.APPROVED)
    with oncommit():
        pay_in_full(booking)
    confirmed = [m for m in mail.outbox if m.attachments]
    assert len(confirmed) == 1
    _name, content, mimetype = confirmed[0].attachments[0]
    assert "METHOD:PUBLISH" in content
    assert mimetype.startswith("text/calendar; method=PUBLISH;"), mimetype


def test_a_reply_goes_to_the_clinics_address_when_it_has_one(make_booking, counsellor, oncommit):
    """Emails say "please contact us"; they come from the booking system's address, which
    may be read by no one. A reply reaches the address the clinic gives in its settings."""
    booking = make_booking(Status.PENDING)
    with oncommit():
        booking_reject(booking_id=booking.pk, user=None, reason="Not a fit")
    assert mail.outbox[-1].reply_to == []  # none set: replies go to the sender, as before

    Clinic.objects.update_or_create(pk=1, defaults={"email": "hello@clinic.example"})
    booking = make_booking(Status.PENDING)
    with oncommit():
        booking_reject(booking_id=booking.pk, user=None, reason="Not a fit")
    message = mail.outbox[-1]
    assert message.reply_to == ["hello@clinic.example"]
    assert message.message()["Reply-To"] == "hello@clinic.example"


LINK = re.compile(r"http://testserver(/(?:bookings|verify)/[A-Za-z0-9_-]{16,}/)")


def test_a_sent_email_keeps_no_working_link_in_the_outbox(client, make_booking, counsellor, slot, oncommit):
    """Links carry secrets, stored only as hashes: once an email has left, the outbox's copy
    (kept a month) holds no link that works. The client's copy does."""
    from bookings.services import booking_approve

    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with oncommit():
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=None)
    [message] = [m for m in mail.outbox if m.to == [booking.email]]  # the counsellor is told too
    [path] = LINK.findall(message.body)
    assert client.get(path).status_code == 200  # the link the client got works
    stored = OutboundEmail.objects.get(booking=booking, kind="approved")
    assert stored.status == OutboundEmail.State.SENT
    token = path.strip("/").split("/")[-1]
    for part in (stored.body_text, stored.body_html):
        assert "/bookings/" in part and token not in part


def test_a_verification_link_is_not_kept_in_the_outbox_once_sent(client, make_booking, counsellor, oncommit):
    from bookings import notifications
    from bookings.models import LinkToken
    from bookings.tokens import token_create

    booking = make_booking(Status.DRAFT, counsellor=counsellor)
    with oncommit(), transaction.atomic():
        raw = token_create(booking=booking, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
        notifications.verification(booking=booking, raw_token=raw)
    assert raw in mail.outbox[0].body
    stored = OutboundEmail.objects.get(booking=booking, kind="verify")
    assert raw not in stored.body_text and raw not in stored.body_html


# --- How long a link works: the settings, not numbers written in the text --------------------


def _said(email) -> str:
    import html
    import re

    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", email.body_html)).split())


def test_each_links_life_in_an_email_follows_its_setting(settings, make_booking, counsellor, oncommit, monkeypatch):
    from bookings import notifications
    from bookings.models import LinkToken
    from bookings.services import privacy

    settings.VERIFICATION_LINK_HOURS, settings.CANCELLATION_LINK_MINUTES = 1, 90
    monkeypatch.setattr(privacy, "PRIVACY_LINK_HOURS", 48)
    draft = make_booking(Status.DRAFT)
    booking = make_booking(Status.APPROVED)
    with oncommit():
        notifications.verification(booking=draft, raw_token="t")
        notifications.cancel_confirmation(booking=booking, raw_token="t")
        notifications.privacy_link(booking=booking, purpose=LinkToken.Purpose.ERASE, raw_token="t")
        notifications.privacy_link(booking=booking, purpose=LinkToken.Purpose.EXPORT, raw_token="t")
    said = {
        "verify": "The link works once and for 1 hour.",
        "cancel_confirm": "The link works once and for 90 minutes.",
        "privacy_erase": "The link works once, for 48 hours.",
        "privacy_export": "download all of it as a file, for the next 48 hours",
    }
    for kind, words in said.items():
        email = OutboundEmail.objects.get(kind=kind)
        assert words in email.body_text and words in _said(email), kind
        assert "24 hours" not in email.body_text and "one hour" not in email.body_text, kind


def test_a_duration_reads_in_hours_when_it_is_whole_hours():
    from bookings.templatetags.mindsettler import hours, link_minutes

    assert hours(2) == "2 hours" and hours(1) == "1 hour"
    assert link_minutes(60) == "1 hour" and link_minutes(120) == "2 hours" and link_minutes(45) == "45 minutes"


@pytest.mark.parametrize("hours", [20, 72])
def test_already_active_offers_cancelling_online_only_while_it_is_open(make_booking, counsellor, oncommit, hours):
    from bookings import notifications

    start = timezone.now().replace(microsecond=0) + timedelta(hours=hours)
    booking = make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    )
    with oncommit():
        notifications.already_active(booking=booking)
    email = OutboundEmail.objects.get(booking=booking, kind="already_active")
    for part in (email.body_text, email.body_html):
        assert ("you can cancel that booking from its page and book again" in part) is (hours == 72)
        assert ("please contact the clinic: that session is too close to cancel online" in part) is (hours == 20)


def test_a_move_while_a_payment_is_under_way_does_not_simply_ask_to_pay(make_booking, counsellor, admin_user, oncommit):
    """The client may have paid a minute ago: "please pay" would have them pay twice."""
    from bookings.models import Actor
    from bookings.services import booking_reschedule

    booking = make_booking(Status.PAYMENT_PENDING, counsellor=counsellor)
    start = booking.slot.start + timedelta(hours=2)
    later = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    with oncommit():
        booking_reschedule(booking_id=booking.pk, slot_id=later.pk, actor=Actor.STAFF, user=admin_user)
    email = OutboundEmail.objects.get(booking=booking, kind="rescheduled")
    for part in (email.body_text, email.body_html):
        assert "If you have already paid, there is nothing more to do" in part
        assert "Please pay from your booking page by" not in part


# --- Emails that no longer hold when the mail server is back -----------------------------


def test_a_request_s_notice_to_staff_is_given_up_once_the_request_is_decided(make_booking, counsellor, admin_user):
    from bookings import notifications

    booking = make_booking(Status.PENDING, counsellor=counsellor)
    notifications.new_request(booking=booking)  # no commit: the mail server is down
    booking_reject(booking_id=booking.pk, user=admin_user, reason="No availability")
    emails_send_due()
    notice = OutboundEmail.objects.get(kind="new_request")
    assert notice.status == "failed"
    assert notice.last_error == "The request had been decided or withdrawn before it was sent"
    assert not any(m.subject.startswith("New booking request") for m in mail.outbox)


def test_a_link_that_has_expired_before_its_email_could_go_is_not_sent(make_booking, counsellor, settings):
    from bookings import notifications

    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    notifications.cancel_confirmation(booking=booking, raw_token="x" * 43)
    email = OutboundEmail.objects.get(kind="cancel_confirm")
    OutboundEmail.objects.filter(pk=email.pk).update(
        created_at=email.created_at - timedelta(minutes=settings.CANCELLATION_LINK_MINUTES)
    )
    assert emails_send_due() == 0 and mail.outbox == []
    email.refresh_from_db()
    assert (email.status, email.last_error) == ("failed", "The link it carries had expired before it could be sent")
    assert "x" * 43 not in email.body_text


def test_a_waitlist_offer_of_a_time_taken_meanwhile_is_not_sent(make_booking, counsellor, slot, session_type):
    from bookings.models import WaitlistOffer
    from bookings.services import waitlist_offer_slot
    from conftest import waiting_on

    waiting_on(slot, session_type)
    assert waitlist_offer_slot(slot_id=slot.pk) == 1  # queued; the mail server is down
    offer = WaitlistOffer.objects.get()
    assert offer.email is not None and offer.email.kind == "waitlist_offer"
    make_booking(Status.APPROVED, counsellor=counsellor, slot=slot)  # someone else took it
    assert emails_send_due() == 0 and mail.outbox == []
    offer.email.refresh_from_db()
    assert offer.email.status == "failed"
    assert offer.email.last_error == "The time it offers was taken, or too near, before it could be sent"


# --- allauth's emails: "Forgotten your password?" in the staff portal ------------------------


@pytest.fixture(autouse=True)
def _reset_limits_start_afresh():
    """allauth counts password-reset requests per address in the cache, which outlives a test
    when it is Redis (CI's scale-out run): each test starts with none counted."""
    from django.core.cache import cache

    cache.clear()


def reset_asked(client, address: str) -> tuple[int, str, str]:
    """What asking for a password reset for `address` answers: the status, where it leads, and
    the page there (but for the tokens each response makes anew)."""
    response = client.post(reverse("account_reset_password"), {"email": address})
    page = client.get(response["Location"]).content.decode() if response.status_code == 302 else ""
    return response.status_code, response.get("Location", ""), re.sub(r"[A-Za-z0-9_-]{16,}", "-", page)


@pytest.mark.parametrize("server", ["working", "down", "refusing the address (550)"])
def test_the_reset_page_answers_alike_for_a_staff_address_and_an_unknown_one(
    client, counsellor_user, mail_server, server, app_log
):
    """It used to answer 500 for a staff address when the mail server failed: the email lost,
    the address in the error's traceback, and which addresses are staff's told to anyone."""
    client.raise_request_exception = False
    if server == "working":
        mail_server()
    elif server.startswith("refusing"):
        mail_server("RCPT", "550 5.1.1 No such mailbox")
    staff = reset_asked(client, counsellor_user.email)
    unknown = reset_asked(client, "nobody@example.com")
    assert staff[0] == 302 and staff == unknown
    email = OutboundEmail.objects.get()  # kept in the outbox, and retried if it did not go
    assert (email.kind, email.to) == ("staff_account", counsellor_user.email)
    assert email.status == ("sent" if server == "working" else "pending")
    assert not [line for line in app_lines(app_log) if " ERROR " in line or counsellor_user.email in line]


def test_a_staff_password_reset_goes_out_from_the_outbox_as_a_staff_email(client, counsellor_user):
    """In English and without the clients' crisis footer (a staff kind), its link whole and
    working for the member, and in the outbox's copy, once sent, no longer there."""
    client.post(reverse("account_reset_password"), {"email": counsellor_user.email}, HTTP_ACCEPT_LANGUAGE="hi")
    [message] = mail.outbox
    stored = OutboundEmail.objects.get()
    assert stored.kind in STAFF_EMAIL_KINDS and (stored.status, stored.booking) == ("sent", None)
    assert message.subject == stored.subject == "Choose a new password for the MindSettler staff portal"
    assert "\n-- \n" not in message.body
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", message.body).group(1)
    assert f"http://testserver{link}\n" in message.message().as_string()
    key = link.strip("/").split("/")[-1]
    assert key not in stored.body_text and "/accounts/password/reset/key/[redacted]/" in stored.body_text
    response = client.get(link)
    assert response.status_code == 302 and "/accounts/password/reset/key/" in response["Location"]


def test_the_reset_page_leaves_the_sending_to_the_task_worker(client, counsellor_user, settings, mail_server):
    """A slow mail server holds up no web worker (nor times the answer by whether the address
    is staff's): the page writes the email to the outbox, a task worker sends it, and the
    send_emails cron line does if no worker did (none runs here)."""
    from bookings.tests.test_reliability_faults import use_task_backend

    inbox = mail_server()
    use_task_backend(settings, {"BACKEND": "django.tasks.backends.dummy.DummyBackend"})
    try:
        assert client.post(reverse("account_reset_password"), {"email": counsellor_user.email}).status_code == 302
    finally:
        use_task_backend(settings, None)
    assert inbox.messages == [] and OutboundEmail.objects.get().status == "pending"
    call_command("send_emails")
    assert len(inbox.messages) == 1 and OutboundEmail.objects.get().status == "sent"
