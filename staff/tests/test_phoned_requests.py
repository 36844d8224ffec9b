"""Bookings staff make for a client who phoned or came in, as requests and straight into a
time: what the form warns of, who is told, and what is refused before anything is made."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, Mode, Slot, Status
from staff.tests.conftest import CONSENTED

pytestmark = pytest.mark.django_db


def typed(session_type, **changes):
    return {
        **CONSENTED,
        "age": "on",
        "language": "en",
        "client_name": "Ravi Kumar",
        "email": "ravi@example.com",
        "session_type": session_type.pk,
        "mode": Mode.ONLINE,
        "status": Status.PENDING,
        "amount": "",
        **changes,
    }


def test_a_request_made_for_a_counsellor_emails_them_as_a_clients_own_does(
    admin_client, admin_user, session_type, counsellor, counsellor_user
):
    mail.outbox.clear()
    response = admin_client.post(reverse("staff:booking_new"), typed(session_type, counsellor=counsellor.pk))
    assert response.status_code == 302
    booking = Booking.objects.get(email="ravi@example.com")
    told = [m for m in mail.outbox if m.to == [counsellor_user.email]]
    assert len(told) == 1 and told[0].subject == f"New booking request: {booking.ack_id}"
    assert f"{admin_user} has made a request for a client who contacted the clinic: booking {booking.ack_id}" in (
        told[0].body
    )
    assert "Ravi" not in told[0].body
    # Its maker is not told of it.
    assert not [m for m in mail.outbox if m.to == [admin_user.email]]


def test_a_counsellors_own_request_tells_nobody_on_the_staff(counsellor_client, counsellor_user, session_type):
    mail.outbox.clear()
    response = counsellor_client.post(reverse("staff:booking_new"), typed(session_type))
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [["ravi@example.com"]]


def test_the_form_says_which_times_another_request_asked_for(
    admin_client, session_type, counsellor, slot, make_booking
):
    make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot, email="first@example.com")
    html = admin_client.post(
        reverse("staff:booking_new"), {**typed(session_type, counsellor=counsellor.pk), "_refresh": "1"}
    ).content.decode()
    assert f'value="{slot.pk}"' in html
    assert "another request asked for it" in html


@pytest.mark.parametrize(
    ("who", "chosen", "hint"),
    [
        (
            "admin",
            False,
            "Choose a counsellor to see their free times. Needed to start it approved or paid at the clinic.",
        ),
        ("admin", True, "Needed to start it approved or paid at the clinic."),
        ("counsellor", True, "Needed to start it approved."),  # only administrators record money
    ],
)
def test_the_time_is_not_called_optional_and_says_when_it_is_needed(
    admin_client, counsellor_client, session_type, counsellor, who, chosen, hint
):
    """A request may wait for review without a time, but approving it or confirming it paid at
    the clinic needs one: "(optional)" next to it read as if it never did."""
    client = admin_client if who == "admin" else counsellor_client
    if chosen:  # the times of the counsellor chosen, as the form asks for them
        page = client.post(
            reverse("staff:booking_new"), {**typed(session_type, counsellor=counsellor.pk), "_refresh": "1"}
        )
    else:
        page = client.get(reverse("staff:booking_new"))
    html = page.content.decode()
    label = html[html.index('<label class="field-label" for="id_slot">') :]
    assert label[: label.index("</label>")].endswith(">Time slot")  # not "(optional)"
    assert f'<span class="field-hint" id="id_slot-hint">{hint}</span>' in html
    assert 'aria-describedby="id_slot-hint"' in html


def test_a_request_for_a_time_too_soon_to_pay_for_is_refused_as_an_approval_is(admin_client, session_type, counsellor):
    start = (timezone.now() + timedelta(hours=6)).replace(second=0, microsecond=0)
    soon = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    for status in (Status.PENDING, Status.APPROVED):
        response = admin_client.post(
            reverse("staff:booking_new"), typed(session_type, counsellor=counsellor.pk, slot=soon.pk, status=status)
        )
        assert response.status_code == 400
        assert "leaves the client no time to pay online" in response.content.decode()
    assert not Booking.objects.filter(email="ravi@example.com").exists()


def test_a_request_for_a_hidden_counsellors_time_is_not_called_withdrawn(
    admin_client, client, session_type, counsellor, slot, manage_token
):
    """Staff may book a counsellor clients do not see (just joined): the client's page must
    not say the time they were given is no longer offered."""
    counsellor.is_active = False
    counsellor.save()
    response = admin_client.post(
        reverse("staff:booking_new"), typed(session_type, counsellor=counsellor.pk, slot=slot.pk)
    )
    assert response.status_code == 302
    booking = Booking.objects.get(email="ravi@example.com")
    page = client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    assert "no longer offered" not in page


def test_a_request_staff_make_inside_the_online_notice_is_not_called_too_soon(
    admin_client, session_type, counsellor, counsellor_user, settings
):
    """Staff may choose a time a client could not book online any more (notice), as long as
    there is time to pay for it."""
    settings.BOOKING_MIN_NOTICE_HOURS = 72
    start = (timezone.now() + timedelta(hours=48)).replace(second=0, microsecond=0)
    soon = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    mail.outbox.clear()
    response = admin_client.post(
        reverse("staff:booking_new"), typed(session_type, counsellor=counsellor.pk, slot=soon.pk)
    )
    assert response.status_code == 302
    (told,) = [m for m in mail.outbox if m.to == [counsellor_user.email]]
    assert "too soon" not in told.body and "offer another time" not in told.body
