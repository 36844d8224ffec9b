"""Online sessions need a link to join: staff see those without one, and the client is told
what to expect rather than that a link is already there."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from bookings.models import Mode, Status
from bookings.services import payment_confirm, payment_start
from staff.selectors import online_without_link

pytestmark = pytest.mark.django_db


def test_the_dashboard_lists_upcoming_online_sessions_with_no_link(
    admin_client, admin_user, counsellor, other_counsellor, counsellor_client, make_booking
):
    counsellor.meeting_url = ""
    counsellor.save()
    bare = make_booking(Status.CONFIRMED, counsellor=counsellor)
    own_link = make_booking(Status.CONFIRMED, counsellor=counsellor, meeting_url="https://meet.example/room-9")
    in_person = make_booking(Status.CONFIRMED, counsellor=counsellor, mode=Mode.IN_PERSON)
    roomed = make_booking(Status.APPROVED, counsellor=other_counsellor)
    other_counsellor.meeting_url = "https://meet.example/rohan"
    other_counsellor.save()
    assert [b.pk for b in online_without_link(user=admin_user)] == [bare.pk]

    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    section = html[html.index("Online sessions without a link to join") :]
    assert f"{reverse('staff:booking_detail', args=[bare.pk])}#meeting" in section
    for fine in (own_link, in_person, roomed):
        assert fine.ack_id not in section
    # A counsellor sees their own.
    assert bare.ack_id in counsellor_client.get(reverse("staff:dashboard")).content.decode()
    # Given a room, the session leaves the list.
    counsellor.meeting_url = "https://meet.example/asha"
    counsellor.save()
    assert "Online sessions without a link to join" not in admin_client.get(reverse("staff:dashboard")).content.decode()


def test_a_confirmed_client_without_a_link_is_told_it_will_come(
    client, counsellor, make_booking, manage_token, oncommit
):
    counsellor.meeting_url = ""
    counsellor.save()
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    attempt = payment_start(booking_id=booking.pk)
    mail.outbox = []
    with oncommit():
        payment_confirm(
            payment_id=attempt.pk,
            provider_payment_id="pay_1",
            amount=booking.amount,
            currency="INR",
            raw={},
            source="t",
        )
    confirmed = next(m for m in mail.outbox if "confirmed" in m.subject.lower())
    assert "the link to join will be added there before your session" in confirmed.body
    assert "has the details and the link to join" not in confirmed.body
    page = client.get(f"/bookings/{manage_token(booking)}/").content.decode()
    assert "The clinic is preparing the link to join and will put it here before your session." in page
    assert "once your session is confirmed" not in page
