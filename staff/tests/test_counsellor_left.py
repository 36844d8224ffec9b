"""A counsellor has left (their account deactivated) while sessions of theirs are still
booked, until an administrator hands each to someone else: clients are not sent to their
room, and who the session is with now is said plainly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings.models import Actor, Slot, Status
from bookings.services import booking_approve, booking_reschedule, reminders_send
from staff.services import staff_deactivate, staff_reactivate

pytestmark = pytest.mark.django_db


@pytest.fixture
def soon(counsellor):
    start = (timezone.now() + timedelta(hours=20)).replace(second=0, microsecond=0)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


def test_no_reminder_sends_the_client_to_a_leavers_room_and_administrators_are_told(
    make_booking, soon, counsellor_user, admin_user, other_slot, oncommit
):
    booking = make_booking(Status.CONFIRMED, slot=soon, email="kavya@example.com")
    with oncommit():
        staff_deactivate(user=counsellor_user, by=admin_user)
    mail.outbox.clear()
    with oncommit():
        assert reminders_send() == 0
    assert not [m for m in mail.outbox if m.to == ["kavya@example.com"]]
    (alert,) = [m for m in mail.outbox if m.to == [admin_user.email]]
    assert alert.subject.startswith(f"Asha Menon's session is coming up, and they have left: {booking.ack_id}")
    assert "The client's reminder is held back" in alert.body and "meet.example" not in alert.body
    # Told once per reminder, however often the sweep runs.
    mail.outbox.clear()
    with oncommit():
        reminders_send()
    assert not mail.outbox
    # Handed to another counsellor, the client is told by the move's email (a reminder is
    # not sent for a session moved inside its window: that email has just said it all).
    other_slot.start, other_slot.end = soon.start + timedelta(hours=1), soon.end + timedelta(hours=1)
    other_slot.save()
    mail.outbox.clear()
    with oncommit():
        booking_reschedule(booking_id=booking.pk, slot_id=other_slot.pk, actor=Actor.STAFF, user=admin_user)
    (moved,) = [m for m in mail.outbox if m.to == ["kavya@example.com"]]
    assert "Rohan Kapoor, instead of Asha Menon" in moved.body and "meet.example/asha" not in moved.body


def test_the_booking_page_gives_no_link_to_a_leavers_room(
    client, make_booking, counsellor, counsellor_user, admin_user, manage_token, oncommit
):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, email="k2@example.com")
    url = reverse("bookings:booking_page", args=[manage_token(booking)])
    assert "https://meet.example/asha" in client.get(url).content.decode()
    with oncommit():
        staff_deactivate(user=counsellor_user, by=admin_user)
    page = client.get(url).content.decode()
    assert "meet.example/asha" not in page


def test_a_request_made_to_a_leaver_approved_into_anothers_time_names_both(
    make_booking, counsellor, counsellor_user, other_slot, admin_user, oncommit
):
    request = make_booking(Status.PENDING, counsellor=counsellor, preferred_times="Mornings", email="kav@example.com")
    with oncommit():
        staff_deactivate(user=counsellor_user, by=admin_user)
    mail.outbox.clear()
    with oncommit():
        booking_approve(booking_id=request.pk, slot_id=other_slot.pk, user=admin_user)
    (approved,) = [m for m in mail.outbox if m.to == ["kav@example.com"]]
    assert "Rohan Kapoor, instead of Asha Menon" in approved.body


def test_a_request_for_anyone_approved_names_only_who_it_is_with(make_booking, other_slot, admin_user, oncommit):
    request = make_booking(Status.PENDING, counsellor=None, preferred_times="Mornings", email="kav@example.com")
    mail.outbox.clear()
    with oncommit():
        booking_approve(booking_id=request.pk, slot_id=other_slot.pk, user=admin_user)
    (approved,) = [m for m in mail.outbox if m.to == ["kav@example.com"]]
    assert "With: Rohan Kapoor\n" in approved.body


def test_a_reminder_held_back_goes_after_all_if_the_counsellor_comes_back(
    make_booking, soon, counsellor_user, admin_user, oncommit
):
    make_booking(Status.CONFIRMED, slot=soon, email="kavya@example.com")
    with oncommit():
        staff_deactivate(user=counsellor_user, by=admin_user)
    with oncommit():
        assert reminders_send() == 0
    with oncommit():
        staff_reactivate(user=counsellor_user, by=admin_user)
    mail.outbox.clear()
    with oncommit():
        assert reminders_send() == 1
    (reminder,) = [m for m in mail.outbox if m.to == ["kavya@example.com"]]
    assert "Asha Menon" in reminder.body


def test_a_link_set_for_a_leavers_session_is_the_one_the_client_gets(
    admin_client, client, make_booking, counsellor, counsellor_user, admin_user, manage_token, oncommit
):
    """Their sessions' own links go with them (most likely their rooms); one an administrator
    sets afterwards (a colleague's room) is the session's link."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, meeting_url="https://meet.example/asha-2")
    with oncommit():
        staff_deactivate(user=counsellor_user, by=admin_user)
    booking.refresh_from_db()
    assert booking.meeting_url == ""
    response = admin_client.post(
        reverse("staff:booking_meeting_url", args=[booking.pk]),
        {"meeting-meeting_url": "https://meet.example/stand-in-room"},
    )
    assert response.status_code in (200, 302, 303)
    page = client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    assert "https://meet.example/stand-in-room" in page and "meet.example/asha" not in page
