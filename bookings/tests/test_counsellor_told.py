"""A counsellor hears when a session of theirs changes and they did not change it themselves:
cancelled, moved, approved into their time, handed to them or away from them. By
acknowledgement ID and time, never the client's name or words."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from bookings import services
from bookings.models import Actor, ConsentGiven, OutboundEmail, Slot, Status
from bookings.templatetags.mindsettler import when
from conftest import next_weekday_at
from staff.models import User

pytestmark = pytest.mark.django_db

OWN_WORDS = "I cannot sleep since the accident"


def told(user) -> list[OutboundEmail]:
    return list(OutboundEmail.objects.filter(kind="session_changed", to=user.email).order_by("pk"))


def later_slot(counsellor, hours: int = 2) -> Slot:
    start = next_weekday_at(9, days_ahead=40) + timedelta(hours=hours)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


def booked(make_booking, counsellor, status=Status.CONFIRMED):
    return make_booking(status, counsellor=counsellor, client_name="Priya Sharma", concerns=OWN_WORDS)


def assert_private(email: OutboundEmail) -> None:
    everything = email.subject + email.body_text + email.body_html
    assert "Priya Sharma" not in everything and OWN_WORDS not in everything
    assert '<html lang="en">' in email.body_html  # in English, like the portal


@pytest.mark.parametrize("status", [Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED])
def test_a_client_cancelling_tells_the_counsellor(make_booking, counsellor, counsellor_user, status):
    booking = booked(make_booking, counsellor, status)
    services.booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    (email,) = told(counsellor_user)
    assert email.subject == f"Session cancelled: {booking.ack_id}, {when(booking.slot.start)}"
    assert "was cancelled by the client. That time is free again in your calendar." in email.body_text
    assert reverse("staff:booking_detail", args=[booking.pk]) in email.body_text
    assert_private(email)
    # Only the counsellor hears of it this way: the client's own email is another.
    assert not OutboundEmail.objects.filter(kind="session_changed").exclude(to=counsellor_user.email).exists()


def test_staff_cancelling_tells_the_counsellor_who_did_it_unless_they_did(
    make_booking, counsellor, counsellor_user, admin_user
):
    theirs = booked(make_booking, counsellor)
    services.booking_cancel(booking_id=theirs.pk, actor=Actor.STAFF, reason="Unwell", user=counsellor_user)
    assert told(counsellor_user) == []
    other = booked(make_booking, counsellor)
    services.booking_cancel(booking_id=other.pk, actor=Actor.STAFF, reason="Clinic closed", user=admin_user)
    (email,) = told(counsellor_user)
    assert f"was cancelled by {admin_user}." in email.body_text and other.ack_id in email.subject


def test_an_unpaid_booking_running_out_of_time_tells_nobody_on_the_staff(make_booking, counsellor, counsellor_user):
    booking = booked(make_booking, counsellor, Status.APPROVED)
    booking.payment_due_at = timezone.now() - timedelta(minutes=1)
    booking.save(update_fields=["payment_due_at"])
    assert services.bookings_expire() == 1
    assert told(counsellor_user) == []


def test_a_client_moving_their_session_tells_the_counsellor_both_times(make_booking, counsellor, counsellor_user):
    booking = booked(make_booking, counsellor)
    old_start, new = booking.slot.start, later_slot(counsellor)
    services.booking_reschedule(booking_id=booking.pk, slot_id=new.pk, actor=Actor.CLIENT)
    (email,) = told(counsellor_user)
    assert email.subject == f"Session moved: {booking.ack_id}, now {when(new.start)}"
    assert f"Was: {when(old_start)}\nNow: {when(new.start)}" in email.body_text
    assert_private(email)


def test_moving_a_session_oneself_tells_nobody(make_booking, counsellor, counsellor_user):
    booking = booked(make_booking, counsellor)
    new = later_slot(counsellor)
    services.booking_reschedule(booking_id=booking.pk, slot_id=new.pk, actor=Actor.STAFF, user=counsellor_user)
    assert told(counsellor_user) == []


def test_an_approval_into_a_counsellors_time_by_someone_else_tells_them(
    make_booking, counsellor, counsellor_user, admin_user
):
    by_admin = make_booking(Status.PENDING, counsellor=counsellor, concerns=OWN_WORDS, client_name="Priya Sharma")
    slot = later_slot(counsellor)
    services.booking_approve(booking_id=by_admin.pk, slot_id=slot.pk, user=admin_user)
    (email,) = told(counsellor_user)
    assert email.subject == f"Session booked into your time: {by_admin.ack_id}, {when(slot.start)}"
    assert f"{admin_user} approved booking {by_admin.ack_id} into your time" in email.body_text
    assert_private(email)
    # Their own approval is news to nobody.
    own = make_booking(Status.PENDING, counsellor=counsellor)
    services.booking_approve(booking_id=own.pk, slot_id=later_slot(counsellor, hours=4).pk, user=counsellor_user)
    assert len(told(counsellor_user)) == 1


def has_left(user) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


def test_a_counsellor_who_has_left_is_not_emailed_the_administrators_are(
    make_booking, counsellor, counsellor_user, admin_user
):
    """Their account deactivated, nobody on the staff would hear of their clients' changes:
    each active administrator is told instead, one message each, by acknowledgement ID."""
    second = User.objects.create_user(email="second-admin@example.com", password=None, role=User.Role.ADMINISTRATOR)
    gone = User.objects.create_user(email="gone-admin@example.com", password=None, role=User.Role.ADMINISTRATOR)
    has_left(gone)
    booking = booked(make_booking, counsellor)
    has_left(counsellor_user)
    services.booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    assert told(counsellor_user) == [] and told(gone) == []
    (email,) = told(admin_user)
    assert [e.to for e in told(second)] == [second.email]
    assert email.subject == f"Asha Menon's session cancelled: {booking.ack_id}, {when(booking.slot.start)}"
    assert f"Booking {booking.ack_id} with Asha Menon on {when(booking.slot.start)} was cancelled by the client." in (
        email.body_text
    )
    assert "Asha Menon's staff account is deactivated" in email.body_text
    assert "free again in your calendar" not in email.body_text
    assert reverse("staff:booking_detail", args=[booking.pk]) in email.body_text
    assert_private(email)


def test_an_administrator_handing_away_a_session_of_a_counsellor_who_has_left_tells_the_other_administrators(
    make_booking, counsellor, counsellor_user, other_counsellor, admin_user
):
    """Nobody is told of their own change; the other administrators hear where it went."""
    second = User.objects.create_user(email="second-admin@example.com", password=None, role=User.Role.ADMINISTRATOR)
    booking = booked(make_booking, counsellor)
    has_left(counsellor_user)
    services.booking_reschedule(
        booking_id=booking.pk, slot_id=later_slot(other_counsellor).pk, actor=Actor.STAFF, user=admin_user
    )
    assert told(admin_user) == []
    (email,) = told(second)
    assert email.subject == f"Asha Menon's session handed to Rohan Kapoor: {booking.ack_id}"
    assert f"{admin_user} handed booking {booking.ack_id}, Asha Menon's on " in email.body_text
    # Administrators may open it wherever it went.
    assert reverse("staff:booking_detail", args=[booking.pk]) in email.body_text
    (theirs,) = told(other_counsellor.user)  # the counsellor it went to, as ever
    assert theirs.subject.startswith("Session handed to you:")


def test_the_staff_booking_page_does_not_list_it_among_the_clients_emails(make_booking, counsellor, admin_client):
    booking = booked(make_booking, counsellor)
    services.booking_reschedule(booking_id=booking.pk, slot_id=later_slot(counsellor).pk, actor=Actor.CLIENT)
    assert OutboundEmail.objects.filter(kind="session_changed", booking=booking).exists()
    page = admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert "Session moved:" not in page


@pytest.mark.parametrize("by_themselves", [False, True])
def test_a_booking_staff_make_into_a_counsellors_time_tells_them_unless_they_made_it(
    counsellor, counsellor_user, admin_user, session_type, by_themselves
):
    """A client phones; staff book them straight into a counsellor's time (approved): the
    counsellor hears of it as of an approval, unless they booked it themselves."""
    slot = later_slot(counsellor)
    booking = services.booking_create_by_staff(
        user=counsellor_user if by_themselves else admin_user,
        status=Status.APPROVED,
        session_type=session_type,
        mode="online",
        client_name="Priya Sharma",
        email="priya@example.com",
        phone="",
        slot=slot,
        consent=ConsentGiven.PHONE,
        policy_version=settings.POLICY_VERSION,
    )
    if by_themselves:
        assert told(counsellor_user) == []
        return
    (email,) = told(counsellor_user)
    assert email.subject == f"Session booked into your time: {booking.ack_id}, {when(slot.start)}"
    assert f"{admin_user} approved booking {booking.ack_id} into your time" in email.body_text
    assert_private(email)


def test_a_request_approved_into_another_counsellors_time_tells_the_one_it_was_made_to(
    make_booking, counsellor, counsellor_user, other_counsellor, admin_user
):
    """The client asked for one counsellor; an administrator approves them into another's
    time. The first, whose list it leaves, hears where it went: with no time of theirs to name."""
    request = make_booking(Status.PENDING, counsellor=counsellor, concerns=OWN_WORDS, client_name="Priya Sharma")
    slot = later_slot(other_counsellor)
    services.booking_approve(booking_id=request.pk, slot_id=slot.pk, user=admin_user)
    (email,) = told(counsellor_user)
    assert email.subject == f"Session handed to {other_counsellor.display_name}: {request.ack_id}"
    said = f"{admin_user} handed booking {request.ack_id}, a request made to you, to {other_counsellor.display_name}."
    assert said in email.body_text and " on ," not in email.body_text + email.body_html
    assert "Its details are no longer yours to open." in email.body_text
    assert reverse("staff:dashboard") in email.body_text
    assert_private(email)
    # The one whose time it is hears of an approval into it.
    (theirs,) = told(other_counsellor.user)
    assert theirs.subject.startswith("Session booked into your time:")


def test_a_counsellor_who_turned_these_emails_off_is_not_emailed(make_booking, counsellor, counsellor_user):
    counsellor.change_emails = False
    counsellor.save(update_fields=["change_emails"])
    booking = booked(make_booking, counsellor)
    services.booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    assert told(counsellor_user) == []
