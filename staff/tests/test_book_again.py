"""Booking a client's next session from their last one: the new-booking form starts with
their details, asks again what is asked each time, and says at once when they cannot have
another booking yet. Nothing is booked until the form is sent."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, BookingView, Mode, SessionType, Slot, Status
from staff.tests.conftest import CONSENTED

pytestmark = pytest.mark.django_db

NEW = reverse("staff:booking_new")


def value_of(html: str, name: str) -> str:
    """The value a text input of the form starts with."""
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, name
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else ""


def chosen(html: str, name: str) -> str:
    """The value checked or selected for a radio group or a select."""
    radio = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"[^>]*checked', html)
    if radio:
        return radio.group(1)
    select = html[html.index(f'name="{name}"') :]
    option = re.search(r'<option value="([^"]*)"[^>]*selected', select[: select.index("</select>")])
    return option.group(1) if option else ""


@pytest.fixture
def held(make_booking, counsellor, session_type):
    start = timezone.now().replace(microsecond=0) - timedelta(days=1)
    return make_booking(
        Status.COMPLETED,
        slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1)),
        client_name="Ravi Kumar",
        email="ravi@example.com",
        phone="+919876543210",
        language="hi",
        mode=Mode.IN_PERSON,
    )


def test_an_ended_booking_offers_to_book_the_clients_next_session(counsellor_client, held, make_booking):
    html = counsellor_client.get(reverse("staff:booking_detail", args=[held.pk])).content.decode()
    assert f'href="{NEW}?after={held.pk}"' in html and "Book another session for this client" in html
    # Not while it is active (the client has it), nor once their details are erased.
    active = make_booking(Status.PENDING, counsellor=held.counsellor)
    html = counsellor_client.get(reverse("staff:booking_detail", args=[active.pk])).content.decode()
    assert "?after=" not in html
    Booking.objects.filter(pk=held.pk).update(anonymised_at=timezone.now())
    html = counsellor_client.get(reverse("staff:booking_detail", args=[held.pk])).content.decode()
    assert "?after=" not in html


def test_the_form_starts_with_the_clients_details_and_asks_the_rest_again(counsellor_client, held, counsellor):
    html = counsellor_client.get(f"{NEW}?after={held.pk}").content.decode()
    assert value_of(html, "client_name") == "Ravi Kumar"
    assert value_of(html, "email") == "ravi@example.com"
    assert value_of(html, "phone") == "+91 98765 43210"  # as people read it, not as stored
    assert chosen(html, "language") == "hi"
    assert chosen(html, "session_type") == str(held.session_type_id)
    assert chosen(html, "mode") == Mode.IN_PERSON
    assert chosen(html, "counsellor") == str(counsellor.pk)
    # Asked of the client each time, and the time: left for staff to ask and choose.
    assert not re.search(r'<input[^>]*name="age"[^>]*checked', html)
    assert not re.search(r'<input[^>]*name="consent"[^>]*checked', html)
    assert chosen(html, "slot") == ""
    assert f"The client&#x27;s details are from {held.ack_id}: check them with the client" in html
    # Nothing is made by opening it; it is recorded as an opening of the booking it reads.
    assert Booking.objects.count() == 1
    assert list(BookingView.objects.values_list("booking_id", "user_id")) == [(held.pk, counsellor.user_id)]


def test_sent_it_books_them_as_any_new_booking(counsellor_client, held, counsellor, session_type):
    start = timezone.now().replace(microsecond=0) + timedelta(days=5)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    html = counsellor_client.get(f"{NEW}?after={held.pk}").content.decode()
    form = {
        **CONSENTED,
        "age": "on",
        **{name: value_of(html, name) for name in ("client_name", "email", "phone")},
        **{name: chosen(html, name) for name in ("language", "session_type", "mode", "counsellor")},
        "slot": slot.pk,
        "status": Status.APPROVED,
    }
    response = counsellor_client.post(NEW, form)
    assert response.status_code == 302
    booking = Booking.objects.exclude(pk=held.pk).get()
    assert (booking.client_name, booking.email, booking.phone, booking.language) == (
        "Ravi Kumar",
        "ravi@example.com",
        "+919876543210",
        "hi",
    )
    assert (booking.status, booking.slot, booking.mode) == (Status.APPROVED, slot, Mode.IN_PERSON)


def test_a_client_with_an_active_booking_is_said_to_have_it_at_once(counsellor_client, held, make_booking):
    booked = make_booking(Status.PENDING, counsellor=held.counsellor, email="ravi@example.com")
    html = counsellor_client.get(f"{NEW}?after={held.pk}").content.decode()
    assert f"This email address already has an active booking ({booked.ack_id})." in html
    assert "details are from" not in html


def test_a_kind_of_session_or_counsellor_no_longer_offered_is_left_to_choose(
    admin_client, held, counsellor_user, session_type
):
    other = SessionType.objects.create(name="Short", slug="short", duration_minutes=30, price=80000)
    session_type.is_active = False
    session_type.save()
    counsellor_user.is_active = False
    counsellor_user.save()
    html = admin_client.get(f"{NEW}?after={held.pk}").content.decode()
    assert value_of(html, "client_name") == "Ravi Kumar"
    assert f'<option value="{other.pk}"' in html and f'<option value="{session_type.pk}"' not in html
    # No counsellor chosen: the form says to choose one to see their times, as a new form does
    # (chosen, one who has left would show none, and no reason why).
    assert chosen(html, "counsellor") == ""
    assert "Choose a counsellor to see their free times." in html


def test_only_a_booking_the_user_may_see_is_started_from(
    login, other_counsellor_user, other_counsellor, held, counsellor_client, make_booking
):
    """Another counsellor's client's details are not theirs to read; a booking still active,
    an erased one or one that does not exist starts an empty form, as without ?after=."""
    html = login(other_counsellor_user).get(f"{NEW}?after={held.pk}").content.decode()
    assert "Ravi" not in html and "ravi@example.com" not in html
    active = make_booking(Status.PENDING, counsellor=held.counsellor, client_name="Still Waiting")
    for after in (active.pk, 999999, "x"):
        html = counsellor_client.get(f"{NEW}?after={after}").content.decode()
        assert value_of(html, "client_name") == "" and "details are from" not in html
