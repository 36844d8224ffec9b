"""A button that emails a link, pressed twice (a double-click, a reload that posts the form
again): one email, whose link works.

Each press made a link and an email. Where only the newest link works (erasure, export, a
new verification link), the first email, which arrives first and is the one the client
opens, held a dead link; elsewhere (cancelling, moving) the client got the same email twice.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bookings.models import Booking, LinkToken, Slot, Status
from bookings.tests.journey import link_in_last_email, submit, walk_to_review
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


def the_one_link(prefix: str) -> str:
    assert len(mail.outbox) == 1, [m.subject for m in mail.outbox]
    return link_in_last_email(prefix)


@pytest.fixture
def booking_page(make_booking, manage_token, counsellor):
    def make(status: str) -> tuple[Booking, str]:
        booking = make_booking(status)
        return booking, f"/bookings/{manage_token(booking)}/"

    return make


def test_cancel_pressed_twice_sends_one_email_whose_link_cancels(client, booking_page):
    booking, page = booking_page(Status.APPROVED)
    for _ in range(2):
        assert client.post(page + "cancel/").status_code == 303

    link = the_one_link("/cancel/")
    assert client.post(link).status_code == 200
    assert Booking.objects.get(pk=booking.pk).status == Status.CANCELLED


@pytest.mark.parametrize("kind", ["erase", "export"])
def test_a_privacy_request_pressed_twice_sends_one_email_whose_link_works(client, booking_page, kind):
    _, page = booking_page(Status.CANCELLED)
    for _ in range(2):
        assert client.post(page + f"privacy/{kind}/").status_code == 303

    link = the_one_link(f"/privacy/{kind}/")
    assert client.get(link).status_code == 200


def test_a_new_time_chosen_twice_sends_one_email_whose_link_moves(client, booking_page, counsellor):
    booking, page = booking_page(Status.APPROVED)
    start = next_weekday_at(14, days_ahead=6)
    later = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    for _ in range(2):
        assert client.post(page + "reschedule/", {"slot": later.pk, "move": "1"}).status_code in (302, 303)

    link = the_one_link("/reschedule/")
    assert client.post(link).status_code == 200
    assert Booking.objects.get(pk=booking.pk).slot_id == later.pk


def test_another_time_chosen_at_once_is_emailed(client, booking_page, counsellor):
    """Only the same request is held back: a different time is a new question."""
    _, page = booking_page(Status.APPROVED)
    for hour in (14, 16):
        start = next_weekday_at(hour, days_ahead=6)
        slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
        client.post(page + "reschedule/", {"slot": slot.pk, "move": "1"})
    assert len(mail.outbox) == 2


def test_a_new_verification_link_asked_for_twice_sends_one_that_works(client, session_type, slot):
    submit(client, walk_to_review(client, session_type=session_type, slot=slot))
    expired = link_in_last_email("/verify/")
    LinkToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    mail.outbox = []
    for _ in range(2):
        assert client.post(expired + "resend/").status_code == 200

    link = the_one_link("/verify/")
    assert client.post(link).status_code == 200
    assert Booking.objects.get().status == Status.PENDING


def test_a_minute_later_the_button_emails_again(client, booking_page, presses_apart):
    _, page = booking_page(Status.CANCELLED)
    client.post(page + "privacy/export/")
    presses_apart()
    client.post(page + "privacy/export/")
    assert len(mail.outbox) == 2
    assert re.search(r"/privacy/export/", mail.outbox[1].body)
