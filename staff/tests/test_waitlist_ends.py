"""A waitlist place the clinic can no longer serve ends, and the client is told why: their
session type is no longer offered or held their way, or the counsellor they asked for is
hidden from clients or no longer meets their way. Whichever portal page made the change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings.models import Mode, OutboundEmail, SessionType, Slot, WaitlistEntry
from bookings.services import waitlist_end_unserved, waitlist_expire, waitlist_offer_slot
from conftest import next_weekday_at
from staff.tests.test_profile import VALID as PROFILE
from staff.tests.test_session_types import edit, edit_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def wait(session_type):
    """`wait(email, ...)`: a confirmed place for the next fortnight, online, with anyone."""

    def make(email: str, **fields: object) -> WaitlistEntry:
        defaults: dict[str, object] = dict(
            client_name="Waiting Client",
            email=email,
            session_type=session_type,
            mode=Mode.ONLINE,
            date_from=timezone.localdate(),
            date_to=timezone.localdate() + timedelta(days=14),
            verified_at=timezone.now(),
        )
        return WaitlistEntry.objects.create(**(defaults | fields))

    return make


def statuses() -> dict[str, str]:
    return dict(WaitlistEntry.objects.values_list("email", "status"))


def told() -> dict[str, str]:
    """Who was emailed that their place ended, and the sentence saying why."""
    return {email.to: email.body_text.split("\n\n")[1] for email in OutboundEmail.objects.filter(kind="waitlist_ended")}


def test_retiring_a_type_tells_who_is_waiting_for_it_that_their_place_has_ended(admin_client, session_type, wait):
    wait("priya@example.com", client_name="Priya")
    wait("nobody@example.com", verified_at=None)  # never confirmed: not counted, not written to
    page = admin_client.get(edit(session_type)).content.decode()
    assert "1 client is on the waitlist for it: if you untick it, they are emailed that their place has ended." in page
    assert "Priya" not in page  # who, is not the point here
    response = admin_client.post(edit(session_type), edit_data(admin_client, session_type, is_active=None), follow=True)
    assert "Clients no longer see it. 1 client on the waitlist was emailed that their place has ended." in (
        response.content.decode()
    )
    assert statuses() == {"priya@example.com": "closed", "nobody@example.com": "closed"}
    assert list(told()) == ["priya@example.com"]


def test_a_session_type_no_longer_held_online_ends_the_online_places_only(admin_client, session_type, wait):
    wait("online@example.com")
    wait("room@example.com", mode=Mode.IN_PERSON)
    response = admin_client.post(
        edit(session_type), edit_data(admin_client, session_type, offers_online=None), follow=True
    )
    assert "1 client on the waitlist was emailed that their place has ended." in response.content.decode()
    assert statuses() == {"online@example.com": "closed", "room@example.com": "waiting"}
    (sentence,) = told().values()
    assert sentence.startswith(f"We no longer hold “{session_type.name}” online, so your place on our waitlist for")
    assert sentence.endswith("has ended. We are sorry for the change.")


def test_hiding_a_counsellor_ends_the_places_waiting_for_them_not_for_anyone(
    admin_client, counsellor, other_counsellor, wait
):
    wait("them@example.com", counsellor=counsellor)
    wait("anyone@example.com")
    wait("other@example.com", counsellor=other_counsellor)
    data = {**PROFILE, "slug": counsellor.slug, "offers_in_person": "on"}  # "is_active" left out: hidden
    response = admin_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), data, follow=True)
    assert "It is hidden from clients. 1 client on the waitlist was emailed" in response.content.decode()
    assert statuses() == {"them@example.com": "closed", "anyone@example.com": "waiting", "other@example.com": "waiting"}
    assert told()["them@example.com"].startswith(f"{PROFILE['display_name']} is not taking bookings at the moment")


def test_a_counsellor_who_stops_meeting_online_ends_the_online_places_with_them(counsellor_client, counsellor, wait):
    wait("online@example.com", counsellor=counsellor)
    wait("room@example.com", counsellor=counsellor, mode=Mode.IN_PERSON)
    response = counsellor_client.post(
        reverse("staff:availability_room", args=[counsellor.pk]), {"room-offers_in_person": "on"}, follow=True
    )
    assert "Online room and modes saved. 1 client on the waitlist was emailed" in response.content.decode()
    assert statuses() == {"online@example.com": "closed", "room@example.com": "waiting"}
    assert told()["online@example.com"].startswith(f"{counsellor.display_name} no longer meets clients online")


def test_deactivating_a_counsellor_ends_the_places_waiting_for_them(admin_client, counsellor_user, counsellor, wait):
    wait("them@example.com", counsellor=counsellor)
    response = admin_client.post(
        reverse("staff:team_deactivate", args=[counsellor_user.pk]), {"confirm": "on"}, follow=True
    )
    assert "Their profile is hidden from clients. 1 client on the waitlist was emailed" in response.content.decode()
    assert statuses() == {"them@example.com": "closed"}


def test_the_type_comes_first_unconfirmed_places_end_silently_and_finished_ones_stay(
    session_type, counsellor, wait, oncommit
):
    wait("both@example.com", counsellor=counsellor)
    wait("unconfirmed@example.com", verified_at=None)
    wait("left@example.com", status=WaitlistEntry.State.LEFT)
    SessionType.objects.filter(pk=session_type.pk).update(is_active=False)
    counsellor.__class__.objects.filter(pk=counsellor.pk).update(is_active=False)
    with oncommit():
        assert waitlist_end_unserved() == 1
    assert statuses() == {"both@example.com": "closed", "unconfirmed@example.com": "closed", "left@example.com": "left"}
    (email,) = mail.outbox
    assert email.to == ["both@example.com"] and email.subject.startswith("Your place on the")
    assert f"We no longer offer “{session_type.name}”, so your place" in email.body
    assert reverse("bookings:wizard") in email.body and "Waiting Client" in email.body
    assert waitlist_end_unserved() == 0  # ended once


def test_a_place_the_session_type_cannot_hold_is_never_offered_a_time(session_type, counsellor, wait):
    """Should one be left live (changed outside the portal), offers still pass it by."""
    wait("room@example.com", mode=Mode.IN_PERSON)
    SessionType.objects.filter(pk=session_type.pk).update(offers_in_person=False)
    start = next_weekday_at(10)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    assert waitlist_offer_slot(slot_id=slot.pk) == 0
    SessionType.objects.filter(pk=session_type.pk).update(offers_in_person=True)
    assert waitlist_offer_slot(slot_id=slot.pk) == 1


def test_a_page_ends_only_the_places_its_change_concerns_and_the_daily_sweep_the_rest(
    counsellor_client, counsellor, other_counsellor, wait
):
    wait("theirs@example.com", counsellor=other_counsellor)
    other_counsellor.__class__.objects.filter(pk=other_counsellor.pk).update(is_active=False)  # not by the portal
    response = counsellor_client.post(
        reverse("staff:availability_room", args=[counsellor.pk]),
        {"room-offers_online": "on", "room-offers_in_person": "on"},
        follow=True,
    )
    assert "Online room and modes saved." in response.content.decode()
    assert "on the waitlist" not in response.content.decode()
    assert statuses() == {"theirs@example.com": "waiting"}
    assert waitlist_expire() == {"expired": 0, "ended": 1, "offered_again": 0, "deleted": 0}
    assert statuses() == {"theirs@example.com": "closed"}


def test_an_active_profile_saved_without_a_way_of_meeting_says_who_was_told(admin_client, counsellor, wait):
    wait("room@example.com", counsellor=counsellor, mode=Mode.IN_PERSON)
    data = {**PROFILE, "slug": counsellor.slug, "is_active": "on"}  # online only: no in-person field sent
    response = admin_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), data, follow=True)
    assert "Clients see it on the “Our counsellors” page. 1 client on the waitlist was emailed" in (
        response.content.decode()
    )
