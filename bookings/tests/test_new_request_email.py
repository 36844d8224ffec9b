"""Staff hear of a client's request as soon as the client has confirmed their email: the
counsellor the client chose, else the administrators. By acknowledgement ID only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail

from bookings import services
from bookings.models import Booking, ConsentGiven, LinkToken, OutboundEmail, Status
from bookings.tokens import token_create

pytestmark = pytest.mark.django_db

OWN_WORDS = "I cannot sleep since the accident"


def submit_and_verify(*, session_type, counsellor=None, preferred_slot=None, oncommit) -> Booking:
    booking = submit(session_type=session_type, counsellor=counsellor, preferred_slot=preferred_slot, oncommit=oncommit)
    verify(booking, oncommit=oncommit)
    return booking


def submit(*, session_type, counsellor=None, preferred_slot=None, oncommit) -> Booking:
    """A client's request, its email not yet confirmed."""
    with oncommit():
        booking, _ = services.booking_submit(
            submission_key=f"key-{counsellor}-{preferred_slot}",
            session_type=session_type,
            mode="online",
            counsellor=counsellor,
            preferred_slot=preferred_slot,
            preferred_times="" if preferred_slot else "Weekday evenings",
            client_name="Priya Sharma",
            email="priya@example.com",
            phone="",
            age_confirmation=Booking.AgeConfirmation.ADULT,
            concerns=OWN_WORDS,
        )
    return booking


def verify(booking: Booking, *, oncommit) -> None:
    """The client confirms their email, by a link like the one emailed."""
    raw = token_create(booking=booking, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    with oncommit():
        services.booking_verify(token=raw)


def staff_emails() -> list[OutboundEmail]:
    return list(OutboundEmail.objects.filter(kind="new_request").order_by("pk"))


def test_the_chosen_counsellor_hears_of_the_request(session_type, counsellor, admin_user, slot, oncommit):
    booking = submit_and_verify(
        session_type=session_type, counsellor=counsellor, preferred_slot=slot, oncommit=oncommit
    )
    (email,) = staff_emails()
    assert email.to == counsellor.user.email
    assert email.subject == f"New booking request: {booking.ack_id}"
    assert f"/staff/bookings/{booking.pk}/" in email.body_text and "Asha Menon" in email.body_text
    for part in (email.subject, email.body_text, email.body_html):
        assert "Priya" not in part and "priya@" not in part and OWN_WORDS not in part
    assert any(m.to == [counsellor.user.email] for m in mail.outbox)


def test_without_a_chosen_counsellor_the_administrators_hear(session_type, counsellor, admin_user, oncommit):
    submit_and_verify(session_type=session_type, oncommit=oncommit)
    assert [e.to for e in staff_emails()] == [admin_user.email]
    assert "no time yet" in staff_emails()[0].body_text


def test_a_deactivated_counsellors_request_goes_to_the_administrators(session_type, counsellor, admin_user, oncommit):
    counsellor.user.is_active = False
    counsellor.user.save()
    submit_and_verify(session_type=session_type, counsellor=counsellor, oncommit=oncommit)
    assert [e.to for e in staff_emails()] == [admin_user.email]


def test_a_request_staff_make_for_a_counsellor_tells_only_that_counsellor(
    session_type, counsellor, admin_user, oncommit
):
    with oncommit():
        services.booking_create_by_staff(
            user=admin_user,
            status="pending",
            session_type=session_type,
            mode="online",
            client_name="Kiran Rao",
            email="kiran@example.com",
            phone="",
            slot=None,
            consent=ConsentGiven.PHONE,
            policy_version=settings.POLICY_VERSION,
            counsellor=counsellor,
        )
    assert [e.to for e in staff_emails()] == [counsellor.user.email]


def test_the_request_email_says_when_the_time_asked_for_was_taken_meanwhile(
    session_type, counsellor, admin_user, slot, make_booking, oncommit
):
    """The client confirmed their email after staff had given the time to another booking:
    the counsellor is told to offer another time, not that it is the time to approve."""
    booking = submit(session_type=session_type, counsellor=counsellor, preferred_slot=slot, oncommit=oncommit)
    make_booking(Status.APPROVED, slot=slot, email="someone.else@example.com")
    verify(booking, oncommit=oncommit)
    (email,) = staff_emails()
    for body in (email.body_text, email.body_html):
        assert "with Asha Menon (since taken by another booking: offer another time)" in body


def test_the_request_email_says_when_the_time_asked_for_was_withdrawn_meanwhile(
    session_type, counsellor, admin_user, slot, oncommit
):
    """The time is gone from the booking (the slot deleted): not "no time yet; their preferred
    days are in the portal", which the client did not give."""
    booking = submit(session_type=session_type, counsellor=counsellor, preferred_slot=slot, oncommit=oncommit)
    services.slot_delete(slot_id=slot.pk)
    verify(booking, oncommit=oncommit)
    (email,) = staff_emails()
    for body in (email.body_text, email.body_html):
        assert "Asked for: a time no longer offered (offer another time)" in body
        assert "preferred days" not in body


def test_the_request_email_points_to_preferred_days_only_when_there_are_some(session_type, admin_user, oncommit):
    submit_and_verify(session_type=session_type, oncommit=oncommit)  # "Weekday evenings", no time
    (email,) = staff_emails()
    assert "Asked for: no time yet; their preferred days are in the portal" in email.body_text
    assert OWN_WORDS not in email.body_text and "Weekday evenings" not in email.body_text


def test_a_time_with_a_counsellor_who_has_left_is_no_longer_offered(
    session_type, counsellor, admin_user, slot, oncommit
):
    """Deactivated between the client's choosing and confirming: approving into that time is
    refused, so the administrators (told in the counsellor's place) are told to offer another."""
    booking = submit(session_type=session_type, counsellor=counsellor, preferred_slot=slot, oncommit=oncommit)
    type(counsellor).objects.filter(pk=counsellor.pk).update(is_active=False)
    type(counsellor.user).objects.filter(pk=counsellor.user_id).update(is_active=False)
    verify(booking, oncommit=oncommit)
    (email,) = staff_emails()
    assert email.to == admin_user.email
    assert "with Asha Menon (no longer offered: offer another time)" in email.body_text
