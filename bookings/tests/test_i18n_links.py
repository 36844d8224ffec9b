"""A client who booked in Hindi opens the links in our emails on a phone whose browser asks
for English (no language cookie from the site's switch): every page those links lead to is
in Hindi, refusals and links that no longer work included, and a waitlist offer's booking
writes to them in Hindi."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from bookings.models import Booking, LinkToken, Mode, Slot, Status, WaitlistEntry, WaitlistToken
from bookings.services import booking_cancel_request, booking_reschedule_request, privacy_request, waitlist_offer_slot
from bookings.tests.journey import ABOUT, consent, link_in_last_email, run_of, url
from bookings.tests.test_i18n import latin_words_in, names_in_the_database
from bookings.tokens import token_create, waitlist_token_create
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db
ENGLISH_BROWSER = {"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}


def lang(response) -> str | None:
    found = re.search(r'<html lang="([^"]+)"', response.content.decode())
    return found.group(1) if found else None


def in_hindi_only(response) -> bool:
    return latin_words_in(response.content.decode(), names=names_in_the_database()) == []


@pytest.fixture
def hindi_place(session_type, counsellor):
    return WaitlistEntry.objects.create(
        client_name="मीरा",
        email="meera@example.com",
        session_type=session_type,
        mode=Mode.ONLINE,
        counsellor=counsellor,
        date_from=timezone.localdate(),
        date_to=timezone.localdate() + timedelta(days=14),
        language="hi",
    )


def test_a_waitlist_offer_books_in_the_places_language(client, session_type, slot, hindi_place, oncommit):
    hindi_place.verified_at = timezone.now()
    hindi_place.save()
    with oncommit():
        assert waitlist_offer_slot(slot_id=slot.pk) == 1
    offer = re.search(r"http://testserver(/book/\?[^\s\"<]+)", mail.outbox[-1].body).group(1)
    client.defaults.update(ENGLISH_BROWSER)
    opened = client.get(offer, follow=True)
    assert lang(opened) == "hi"
    run = run_of(opened.redirect_chain[-1][0])
    chosen = {"session_type": session_type.pk, "mode": "online", "counsellor": "", "slot": slot.pk}
    assert client.post(url(run, "session"), {**chosen, "preferred_times": ""}).status_code == 303
    about = {**ABOUT, "client_name": "मीरा", "email": "meera@example.com"}
    assert client.post(url(run, "about"), about).status_code == 303
    assert client.post(url(run, "concerns"), {"concerns": ""}).status_code == 303
    client.post(url(run, "review"), consent(client, run))
    assert Booking.objects.get(email="meera@example.com").language == "hi"


def test_a_waitlist_link_pressed_twice_stays_in_hindi(client, hindi_place):
    raw = waitlist_token_create(entry=hindi_place, purpose=WaitlistToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    for _ in range(2):
        assert lang(client.post(f"/waitlist/verify/{raw}/", **ENGLISH_BROWSER)) == "hi"


def test_privacy_requests_and_their_links_are_in_hindi(client, make_booking, manage_token, oncommit):
    booking = make_booking(Status.CANCELLED, language="hi")
    token = manage_token(booking)
    asked = client.post(f"/bookings/{token}/privacy/erase/", follow=True, **ENGLISH_BROWSER)
    assert lang(asked) == "hi" and in_hindi_only(asked)
    erase = link_in_last_email("/privacy/erase/")
    with oncommit():
        privacy_request(booking=booking, purpose=LinkToken.Purpose.EXPORT)
    export = link_in_last_email("/privacy/export/")
    assert lang(client.get(erase, **ENGLISH_BROWSER)) == lang(client.get(export, **ENGLISH_BROWSER)) == "hi"


def test_links_that_no_longer_work_say_so_in_hindi(client, make_booking, manage_token, counsellor, oncommit):
    booking = make_booking(Status.APPROVED, language="hi", counsellor=counsellor)
    token = manage_token(booking)
    with oncommit():
        booking_cancel_request(booking=booking)
    cancel = link_in_last_email("/cancel/")
    LinkToken.objects.update(expires_at=timezone.now())
    for link in (cancel, f"/bookings/{token}/"):
        gone = client.get(link, **ENGLISH_BROWSER)
        assert gone.status_code == 410 and lang(gone) == "hi"
    make_booking(Status.PENDING, language="hi", email="meera@example.com")
    draft = make_booking(Status.DRAFT, language="hi", email="meera@example.com")
    raw = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=24))
    already = client.post(f"/verify/{raw}/", **ENGLISH_BROWSER)
    assert already.status_code == 409 and lang(already) == "hi"


def hindi_move_link(make_booking, counsellor, oncommit, status) -> tuple[Booking, Slot, str]:
    """A booking made in Hindi, the time asked for, and the emailed link that moves it there."""
    old_at, new_at = next_weekday_at(10, days_ahead=5), next_weekday_at(14, days_ahead=5)
    old_slot = Slot.objects.create(counsellor=counsellor, start=old_at, end=old_at + timedelta(minutes=60))
    new_slot = Slot.objects.create(counsellor=counsellor, start=new_at, end=new_at + timedelta(minutes=60))
    booking = make_booking(status, language="hi", slot=old_slot)
    with oncommit():
        booking_reschedule_request(booking=booking, slot=new_slot)
    return booking, new_slot, link_in_last_email("/reschedule/")


def test_a_move_refused_because_its_time_was_taken_is_in_hindi(client, make_booking, counsellor, oncommit):
    _booking, new_slot, link = hindi_move_link(make_booking, counsellor, oncommit, Status.CONFIRMED)
    make_booking(Status.APPROVED, slot=new_slot)  # someone else takes the time
    refused = client.post(link, **ENGLISH_BROWSER)
    assert refused.status_code == 409 and lang(refused) == "hi" and in_hindi_only(refused)


@pytest.mark.parametrize("later", [Status.PAYMENT_PENDING, Status.CANCELLED])
def test_a_move_link_after_the_booking_changed_says_why_in_hindi(client, make_booking, counsellor, oncommit, later):
    booking, _new_slot, link = hindi_move_link(make_booking, counsellor, oncommit, Status.APPROVED)
    Booking.objects.filter(pk=booking.pk).update(status=later)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    refused = client.post(link)
    assert refused.status_code == 409 and in_hindi_only(refused)


@pytest.mark.parametrize("later", [Status.REJECTED, Status.COMPLETED])
def test_a_cancel_link_after_the_booking_changed_says_why_in_hindi(client, make_booking, counsellor, oncommit, later):
    first = Status.PENDING if later == Status.REJECTED else Status.CONFIRMED
    booking = make_booking(first, language="hi", counsellor=counsellor)
    with oncommit():
        booking_cancel_request(booking=booking)
    link = link_in_last_email("/cancel/")
    Booking.objects.filter(pk=booking.pk).update(status=later)
    refused = client.post(link, **ENGLISH_BROWSER)
    assert refused.status_code == 409 and lang(refused) == "hi" and in_hindi_only(refused)


def test_a_run_opened_in_hindi_starts_again_in_hindi_after_its_session_ends(client, session_type, slot):
    opened = client.get(
        f"/book/?slot={slot.pk}&type={session_type.slug}&mode=online&lang=hi", follow=True, **ENGLISH_BROWSER
    )
    assert lang(opened) == "hi"
    action = re.search(r'<form action="([^"]+)"', opened.content.decode()).group(1).replace("&amp;", "&")
    client.cookies.pop(settings.SESSION_COOKIE_NAME)  # the page stayed open for a day
    about = {**ABOUT, "client_name": "मीरा", "email": "meera@example.com"}
    again = client.post(action, about, follow=True, **ENGLISH_BROWSER)
    assert lang(again) == "hi"
