"""The verification email through Django's SMTP backend to a real SMTP server on loopback,
and the link in the received message followed to a verified booking."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from bookings.emails import email_deliver
from bookings.models import Booking, OutboundEmail, Status
from bookings.tests.journey import submit, walk_to_review

pytestmark = pytest.mark.django_db


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        message["X-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_inbox(settings) -> Iterator[Inbox]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "use_tls": False, "timeout": 5},
        }
    }
    try:
        yield inbox
    finally:
        controller.stop()


def _text_body(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_verification_email_over_smtp_and_its_link_verifies(client, session_type, slot, smtp_inbox):
    submit(client, walk_to_review(client, session_type=session_type, slot=slot))
    assert len(smtp_inbox.messages) == 1
    received = smtp_inbox.messages[0]
    assert received["X-Rcpt-To"] == "priya@example.com"
    assert received["To"] == "priya@example.com"
    assert "Confirm your email" in received["Subject"]
    assert received.get_body(preferencelist=("html",)) is not None
    body = _text_body(received)
    assert "Trouble sleeping" not in body
    assert OutboundEmail.objects.get().status == OutboundEmail.State.SENT

    path = re.search(r"http://testserver(/verify/[^\s]+/)", body).group(1)
    assert client.get(path).status_code == 200
    assert Booking.objects.get().status == Status.DRAFT
    response = client.post(path)
    booking = Booking.objects.get()
    assert response.status_code == 200 and booking.ack_id in response.content.decode()
    assert booking.status == Status.PENDING

    # The client's "request received", and staff's "new booking request" (by ID only).
    to_client = [m for m in smtp_inbox.messages if m["X-Rcpt-To"] == "priya@example.com"]
    assert len(to_client) == 2 and len(smtp_inbox.messages) == 3
    welcome = to_client[1]
    assert booking.ack_id in welcome["Subject"]
    page = re.search(r"http://testserver(/bookings/[^\s]+/)", _text_body(welcome)).group(1)
    assert booking.ack_id in client.get(page).content.decode()


def test_an_smtp_failure_keeps_the_draft_and_the_email_for_a_retry(client, session_type, slot, settings):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": _free_port(), "use_tls": False, "timeout": 2},
        }
    }
    response = submit(client, walk_to_review(client, session_type=session_type, slot=slot))
    assert response.status_code == 303
    assert Booking.objects.get().status == Status.DRAFT
    queued = OutboundEmail.objects.get()
    assert queued.status == OutboundEmail.State.PENDING and queued.attempts == 1 and queued.last_error


def test_a_long_hindi_subject_arrives_with_every_space(smtp_inbox, make_booking, counsellor):
    """Folded by Python before 3.13, it lost the space at each fold: "समयआरक्षित"."""
    booking = make_booking(Status.APPROVED, language="hi")
    subject = f"आपके सेशन का समय आरक्षित है: {booking.ack_id} — कृपया भुगतान करके इसे पक्का करें"
    queued = OutboundEmail.objects.create(
        kind="approved", booking=booking, to=booking.email, subject=subject, body_text="नमस्ते", body_html=""
    )
    assert email_deliver(email_id=queued.pk)
    (received,) = smtp_inbox.messages
    assert received["Subject"] == subject
