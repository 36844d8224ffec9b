"""The waitlist: joining (email verified), offers when a slot frees up (earliest first, a few
at a time, never twice), booking from an offer, leaving, and expiry."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from contextlib import contextmanager
from datetime import time, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.errors import SlotUnavailable
from bookings.models import (
    Actor,
    Counsellor,
    LinkToken,
    SessionType,
    Slot,
    Status,
    WaitlistEntry,
    WaitlistOffer,
    WeeklyHours,
)
from bookings.services import (
    booking_approve,
    booking_cancel,
    booking_reject,
    booking_reschedule,
    booking_submit,
    booking_verify,
    bookings_expire,
    slot_create,
    slots_freed,
    waitlist_expire,
    waitlist_offer_slot,
)
from bookings.tasks import offer_freed_slots
from bookings.tests.journey import link_in_last_email
from bookings.tokens import token_create
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db

_seconds = itertools.count()


@pytest.fixture
def wait(session_type, slot):
    """`wait(email, ...)`: a confirmed entry whose range covers `slot`'s day, each one newer."""
    day = timezone.localtime(slot.start).date()

    def make(email: str, *, verified: bool = True, **fields) -> WaitlistEntry:
        defaults = dict(
            client_name="Waiting Client",
            email=email,
            session_type=session_type,
            mode="online",
            counsellor=None,
            date_from=day - timedelta(days=1),
            date_to=day + timedelta(days=1),
            created_at=timezone.now() - timedelta(hours=10) + timedelta(seconds=next(_seconds)),
            verified_at=timezone.now() if verified else None,
        )
        defaults.update(fields)
        return WaitlistEntry.objects.create(**defaults)

    return make


@pytest.fixture
def offer(oncommit):
    """`offer(slot_id)`: run the offer for one slot, with its emails delivered."""

    def run(slot_id: int) -> int:
        with oncommit():
            return waitlist_offer_slot(slot_id=slot_id)

    return run


def offered_to() -> list[str]:
    return [m.to[0] for m in mail.outbox if "has become free" in m.subject]


# --- Joining ------------------------------------------------------------------------------


def test_the_wizard_offers_the_waitlist_when_no_time_fits(client, session_type, counsellor):
    response = client.get("/book/")
    html = client.get(response["Location"]).content.decode()
    assert "There are no free times" in html and "Join the waitlist" in html
    assert "/waitlist/?session_type=" in html
    # Its "Back" returns to the booking as the client left it, not to a new one.
    run = parse_qs(urlsplit(response["Location"]).query)["run"][0]
    link = unescape(re.search(r'href="(/waitlist/\?[^"]+)"', html).group(1))
    page = client.get(link).content.decode()
    assert f'href="/book/?run={run}&amp;step=session"' in page
    assert f'action="/waitlist/?run={run}"' in page
    assert 'href="/book/"' in client.get("/waitlist/?run=../../etc").content.decode()  # no such run: a new one


def test_joining_needs_the_email_confirmed_then_starts_waiting(client, session_type, counsellor):
    page = client.get(f"/waitlist/?session_type={session_type.pk}&mode=online&counsellor={counsellor.pk}")
    html = page.content.decode()
    assert page.status_code == 200 and f'<option value="{counsellor.pk}" selected>' in html
    today = timezone.localdate()
    first_press = {
        "client_name": "Meera",
        "email": " Meera@Example.com ",
        "session_type": session_type.pk,
        "mode": "online",
        "counsellor": counsellor.pk,
        "date_from": (today + timedelta(days=2)).isoformat(),
        "date_to": (today + timedelta(days=20)).isoformat(),
    }
    response = client.post("/waitlist/", first_press)
    assert response.status_code == 303 and response["Location"] == "/waitlist/sent/"
    # A page of its own: reloaded, or read in another language, it joins nobody again.
    for _ in range(2):
        sent = client.get(response["Location"])
        assert sent.status_code == 200 and "Check your email" in sent.content.decode()
    assert len(mail.outbox) == 1
    # The button pressed twice (a double click): one place, one email.
    again = client.post("/waitlist/", first_press)
    assert again.status_code == 303 and WaitlistEntry.objects.count() == 1 and len(mail.outbox) == 1
    entry = WaitlistEntry.objects.get()
    assert entry.email == "meera@example.com" and entry.verified_at is None
    link = link_in_last_email("/waitlist/verify/")
    assert "Individual" not in mail.outbox[-1].subject
    # GET (a mail scanner) confirms nothing.
    assert "Confirm my email" in client.get(link).content.decode()
    entry.refresh_from_db()
    assert entry.verified_at is None
    done = client.post(link)
    assert done.status_code == 200 and "You are on the waitlist" in done.content.decode()
    entry.refresh_from_db()
    assert entry.verified_at is not None and entry.status == WaitlistEntry.State.WAITING
    assert "/waitlist/leave/" in mail.outbox[-1].body
    # Single use: pressed again (Back, a second tab), it does nothing more and says the place is kept.
    outbox = len(mail.outbox)
    again = client.post(link)
    assert again.status_code == 200 and "You are on the waitlist" in again.content.decode()
    assert len(mail.outbox) == outbox and WaitlistEntry.objects.count() == 1


def test_joining_refuses_bad_ranges_with_an_error_summary(client, session_type):
    today = timezone.localdate()
    response = client.post(
        "/waitlist/",
        {
            "client_name": "Meera",
            "email": "meera@example.com",
            "session_type": session_type.pk,
            "mode": "online",
            "date_from": (today + timedelta(days=5)).isoformat(),
            "date_to": (today + timedelta(days=2)).isoformat(),
        },
    )
    assert response.status_code == 400 and "There is a problem" in response.content.decode()
    response = client.post(
        "/waitlist/",
        {
            "client_name": "Meera",
            "email": "meera@example.com",
            "session_type": session_type.pk,
            "mode": "online",
            "date_from": (today - timedelta(days=2)).isoformat(),
            "date_to": (today + timedelta(days=2)).isoformat(),
        },
    )
    assert response.status_code == 409 and "today or later" in response.content.decode()
    # Each refusal stands beside the date it is about, as well as in the summary.
    assert 'id="id_date_from_error"' in response.content.decode()
    response = client.post(
        "/waitlist/",
        {
            "client_name": "Meera",
            "email": "meera@example.com",
            "session_type": session_type.pk,
            "mode": "online",
            "date_from": today.isoformat(),
            "date_to": (today + timedelta(days=90)).isoformat(),
        },
    )
    html = response.content.decode()
    assert response.status_code == 409 and "within the next 60 days" in html
    assert 'id="id_date_to_error"' in html and 'href="#id_date_to"' in html
    assert not WaitlistEntry.objects.exists() and not mail.outbox


def _join(client, session_type, date_from, date_to):
    return client.post(
        "/waitlist/",
        {
            "client_name": "Meera",
            "email": "meera@example.com",
            "session_type": session_type.pk,
            "mode": "online",
            "date_from": date_from.isoformat(),
            "date_to": date_to.isoformat(),
        },
        follow=True,
    )


def test_a_range_ending_before_anything_can_be_booked_is_refused_beside_its_last_day(
    client, session_type, counsellor, settings
):
    """Sessions are booked BOOKING_MIN_NOTICE_HOURS ahead: a wait for today alone (or for days
    that end inside the notice) could never be offered anything."""
    settings.BOOKING_MIN_NOTICE_HOURS = 48
    today = timezone.localdate()
    earliest = timezone.localtime(timezone.now() + timedelta(hours=48)).date()
    for last in (today, earliest - timedelta(days=1)):
        response = _join(client, session_type, today, last)
        html = response.content.decode()
        assert response.status_code == 409 and 'id="id_date_to_error"' in html and 'href="#id_date_to"' in html
        assert f"{earliest:%A} {earliest.day} {earliest:%B %Y}" in html and "48 hours" in html
    assert not WaitlistEntry.objects.exists() and not mail.outbox
    assert _join(client, session_type, today, earliest).status_code == 200
    assert WaitlistEntry.objects.get().date_to == earliest


def test_the_confirmation_says_when_free_times_already_fit_and_links_to_them(client, session_type, counsellor, slot):
    """Offers are of times that become free: one free already would never be emailed."""
    day = timezone.localtime(slot.start).date()
    for first, last, fits in (
        (day, day + timedelta(days=2), True),
        (day + timedelta(days=1), day + timedelta(days=5), False),
    ):
        mail.outbox.clear()
        WaitlistEntry.objects.all().delete()
        assert _join(client, session_type, first, last).status_code == 200
        html = client.post(link_in_last_email("/waitlist/verify/")).content.decode()
        assert "You are on the waitlist" in html
        said = "Some times in those days are free already" in html
        link = "/book/?type=individual&amp;mode=online" in html
        assert (said, link) == (fits, fits), (first, last)


# --- Offers -------------------------------------------------------------------------------


def test_a_cancelled_booking_offers_its_slot_to_the_earliest_waiting_few(make_booking, slot, wait, settings, oncommit):
    settings.WAITLIST_OFFERS_PER_SLOT = 3
    emails = [f"w{i}@example.com" for i in range(5)]
    for email in emails:
        wait(email)
    booking = make_booking(Status.CONFIRMED, slot=slot)
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, reason="Client phoned")
    assert offered_to() == emails[:3]
    message = next(m for m in mail.outbox if m.to == [emails[0]] and "free" in m.subject)
    assert f"/book/?slot={slot.pk}&type=individual&mode=online" in message.body
    assert "/waitlist/leave/" in message.body
    states = Counter(WaitlistEntry.objects.values_list("status", flat=True))
    assert states == Counter({"offered": 3, "waiting": 2})


def test_a_slot_is_never_offered_twice_to_the_same_person(offer, slot, wait, settings):
    settings.WAITLIST_OFFERS_PER_SLOT = 2
    first, second, third = wait("a@example.com"), wait("b@example.com"), wait("c@example.com")
    wait("a@example.com")  # a second entry of the same person: still one email per slot
    assert offer(slot.pk) == 2
    assert offer(slot.pk) == 1  # the hook running again reaches the next one
    assert offer(slot.pk) == 0
    assert Counter(offered_to()) == Counter({"a@example.com": 1, "b@example.com": 1, "c@example.com": 1})
    assert WaitlistOffer.objects.filter(slot=slot).count() == 3
    assert {o.entry_id for o in WaitlistOffer.objects.all()} == {first.pk, second.pk, third.pk}


def test_only_entries_the_slot_suits_are_offered(offer, slot, wait, other_counsellor, counsellor):
    day = timezone.localtime(slot.start).date()
    long_type = SessionType.objects.create(name="Long", slug="long", duration_minutes=90, price=100)
    wait("unverified@example.com", verified=False)
    wait("other@example.com", counsellor=other_counsellor)
    wait("later@example.com", date_from=day + timedelta(days=1), date_to=day + timedelta(days=3))
    wait("long@example.com", session_type=long_type)
    wait("left@example.com", status=WaitlistEntry.State.LEFT)
    counsellor.offers_in_person = False
    counsellor.save()
    wait("inperson@example.com", mode="in_person")
    wait("mine@example.com", counsellor=counsellor)
    assert offer(slot.pk) == 1
    assert offered_to() == ["mine@example.com"]


def test_a_taken_or_too_soon_slot_is_not_offered(offer, slot, wait, make_booking, counsellor):
    wait("a@example.com")
    make_booking(Status.APPROVED, slot=slot)
    assert offer(slot.pk) == 0
    soon = timezone.now() + timedelta(hours=2)
    near = Slot.objects.create(counsellor=counsellor, start=soon, end=soon + timedelta(hours=1))
    wait("b@example.com", date_from=timezone.localdate(), date_to=timezone.localdate() + timedelta(days=1))
    assert offer(near.pk) == 0
    assert not offered_to()


def test_someone_given_a_time_on_their_days_since_joining_is_marked_booked_not_offered(
    offer, slot, wait, make_booking, counsellor
):
    booked = wait("a@example.com")
    on_their_days = Slot.objects.create(
        counsellor=counsellor, start=slot.start + timedelta(hours=3), end=slot.end + timedelta(hours=3)
    )
    make_booking(Status.CONFIRMED, slot=on_their_days, email="a@example.com")
    wait("b@example.com")
    assert offer(slot.pk) == 1
    assert offered_to() == ["b@example.com"]
    booked.refresh_from_db()
    assert booked.status == WaitlistEntry.State.BOOKED


def test_someone_whose_request_waits_is_passed_by_and_keeps_their_place(
    offer, slot, other_slot, wait, make_booking, counsellor, admin_user
):
    """Their request may lose the race for an offered time, or be turned down: the offer email
    promised that they stay on the waitlist until their last day."""
    waiting = wait("a@example.com")
    request = make_booking(Status.PENDING, counsellor=counsellor, email="a@example.com")
    assert offer(slot.pk) == 0
    waiting.refresh_from_db()
    assert waiting.status == WaitlistEntry.State.WAITING
    booking_reject(booking_id=request.pk, user=admin_user, reason="No time found")
    mail.outbox = []
    assert offer(other_slot.pk) == 1
    assert offered_to() == ["a@example.com"]


def test_newly_published_expired_and_moved_away_slots_are_offered(
    counsellor, wait, make_booking, slot, oncommit, admin_user
):
    wait("a@example.com")
    with oncommit():
        slot.delete()
        published = slot_create(counsellor=counsellor, start=next_weekday_at(10), end=next_weekday_at(11))
    assert offered_to() == ["a@example.com"]

    mail.outbox = []
    wait("b@example.com")
    expiring = make_booking(Status.APPROVED, slot=published, payment_due_at=timezone.now() - timedelta(minutes=1))
    with oncommit():
        assert bookings_expire() == 1
    assert "b@example.com" in offered_to()

    mail.outbox = []
    wait("c@example.com")
    moving = make_booking(Status.CONFIRMED, slot=published, email=expiring.email)
    later = next_weekday_at(12)
    target = Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(hours=1))
    with oncommit():
        booking_reschedule(booking_id=moving.pk, slot_id=target.pk, actor=Actor.STAFF, user=admin_user)
    assert "c@example.com" in offered_to()


def test_offers_never_turn_into_a_double_booking(
    offer, client, slot, wait, admin_user, session_type, settings, oncommit
):
    settings.WAITLIST_OFFERS_PER_SLOT = 3
    for i in range(3):
        wait(f"w{i}@example.com")
    assert offer(slot.pk) == 3
    # The offer's link opens the wizard with the slot chosen.
    link = link_in_last_email("/book/")
    page = client.get(client.get(link)["Location"])
    assert f'id="slot-{slot.pk}" class="size-5 shrink-0 accent-brand-700" checked' in page.content.decode()
    # All three ask for it; each request reaches the clinic...
    bookings = []
    for i in range(3):
        with oncommit():
            draft, _ = booking_submit(
                submission_key=f"run-{i}",
                session_type=session_type,
                mode="online",
                counsellor=None,
                preferred_slot=slot,
                preferred_times="",
                client_name=f"Client {i}",
                email=f"w{i}@example.com",
                phone="",
                age_confirmation="adult",
                concerns="",
            )
        raw = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
        bookings.append(booking_verify(token=raw))
    # ...but only the first approved gets the slot.
    outcomes = []
    for booking in bookings:
        try:
            booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
            outcomes.append("ok")
        except SlotUnavailable:
            outcomes.append("taken")
    assert outcomes == ["ok", "taken", "taken"]
    assert slot.bookings.filter(status=Status.APPROVED).count() == 1


# --- Leaving and expiry -------------------------------------------------------------------


def test_leaving_from_the_email_link(offer, client, slot, wait):
    entry = wait("a@example.com")
    offer(slot.pk)
    link = link_in_last_email("/waitlist/leave/")
    page = client.get(link)
    assert page.status_code == 200 and "Leave the waitlist" in page.content.decode()
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.State.OFFERED
    done = client.post(link)
    assert done.status_code == 200 and "You have left the waitlist" in done.content.decode()
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.State.LEFT
    again = client.post(link)  # pressed again (Back, a second tab): says what the first press did
    assert again.status_code == 200 and "You have left the waitlist" in again.content.decode()
    later = next_weekday_at(15)
    again = Slot.objects.create(counsellor=slot.counsellor, start=later, end=later + timedelta(hours=1))
    assert offer(again.pk) == 0


def test_leaving_ends_every_place_of_the_address(offer, client, slot, wait, counsellor):
    """The page says no more free times are emailed: a second place (another counsellor, other
    days) must not email one the next day."""
    wait("a@example.com")
    wait("a@example.com", counsellor=counsellor)
    offer(slot.pk)
    assert client.post(link_in_last_email("/waitlist/leave/")).status_code == 200
    assert set(WaitlistEntry.objects.values_list("status", flat=True)) == {WaitlistEntry.State.LEFT}
    later = next_weekday_at(15)
    again = Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(hours=1))
    assert offer(again.pk) == 0


def _confirm_link_for(client, session_type, **changes) -> str:
    today = timezone.localdate()
    typed = {
        "client_name": "Meera",
        "email": "meera@example.com",
        "session_type": session_type.pk,
        "mode": "online",
        "date_from": (today + timedelta(days=2)).isoformat(),
        "date_to": (today + timedelta(days=20)).isoformat(),
        **changes,
    }
    assert client.post("/waitlist/", typed).status_code == 303
    return link_in_last_email("/waitlist/verify/")


def test_confirming_a_place_while_the_address_has_a_booking_says_so_instead(
    client, session_type, make_booking, counsellor
):
    """One active booking per address: the waitlist could never offer them a time, and its
    offers would pass them by without a word. Their booking's link is emailed, to move it."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, email="meera@example.com")
    link = _confirm_link_for(client, session_type)
    mail.outbox = []
    refused = client.post(link)
    html = refused.content.decode()
    assert refused.status_code == 409 and f"This email address already has a booking, {booking.ack_id}" in html
    assert "You are on the waitlist" not in html
    assert WaitlistEntry.objects.get().status == WaitlistEntry.State.CLOSED
    assert [m.to for m in mail.outbox] == [["meera@example.com"]] and booking.ack_id in mail.outbox[0].subject


def test_confirming_a_place_while_a_request_waits_for_a_time_keeps_the_place(
    client, session_type, make_booking, counsellor
):
    """The request may yet be turned down: the place waits with it, as the offers do."""
    make_booking(Status.PENDING, counsellor=counsellor, email="meera@example.com")
    link = _confirm_link_for(client, session_type)
    done = client.post(link)
    assert done.status_code == 200 and "You are on the waitlist" in done.content.decode()
    assert WaitlistEntry.objects.get().status == WaitlistEntry.State.WAITING


def test_confirming_a_place_whose_days_have_come_too_close_says_so_instead(client, session_type, settings):
    settings.BOOKING_MIN_NOTICE_HOURS = 24
    today = timezone.localdate()
    last_day = today + timedelta(days=2)
    link = _confirm_link_for(client, session_type, date_to=last_day.isoformat())
    WaitlistEntry.objects.update(date_from=today, date_to=today)  # as if confirmed days later
    refused = client.post(link)
    assert refused.status_code == 409 and "is now too soon" in refused.content.decode()
    assert WaitlistEntry.objects.get().status == WaitlistEntry.State.CLOSED


def test_a_hidden_counsellor_shown_again_has_their_free_times_offered(offer, slot, wait, counsellor, oncommit):
    from bookings.services import counsellor_save

    counsellor.is_active = False
    counsellor.save()
    wait("a@example.com")
    assert offer(slot.pk) == 0  # clients cannot book it
    counsellor.is_active = True
    with oncommit():
        counsellor_save(counsellor=counsellor)
    assert offered_to() == ["a@example.com"]


def test_a_free_time_nobody_took_reaches_the_rest_of_the_waitlist(offer, slot, wait, settings, oncommit):
    settings.WAITLIST_OFFERS_PER_SLOT = 2
    for n in range(5):
        wait(f"w{n}@example.com")
    assert offer(slot.pk) == 2
    with oncommit():
        assert waitlist_expire()["offered_again"] == 0  # too soon: the first two may yet book it
    later = timezone.now() + timedelta(hours=7)
    mail.outbox = []
    with oncommit():
        assert waitlist_expire(now=later)["offered_again"] == 2
    assert sorted(offered_to()) == ["w2@example.com", "w3@example.com"]
    WaitlistOffer.objects.update(created_at=timezone.now() - timedelta(hours=7))
    mail.outbox = []
    with oncommit():
        assert waitlist_expire(now=later)["offered_again"] == 1
    assert offered_to() == ["w4@example.com"]


def test_a_free_time_a_request_waits_for_is_not_offered_again(offer, slot, wait, make_booking, counsellor, oncommit):
    wait("w0@example.com")
    wait("w1@example.com")
    with oncommit():
        assert waitlist_offer_slot(slot_id=slot.pk) == 2
    # One of those offered it asked for it: their request waits for review.
    make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot, email="w0@example.com")
    wait("w2@example.com")
    with oncommit():
        assert waitlist_expire(now=timezone.now() + timedelta(hours=7))["offered_again"] == 0


def test_two_sweeps_at_once_offer_a_free_time_again_once(offer, slot, wait, settings, oncommit):
    """Each read the time as offered long ago; the second, finding the first's offers under
    the slot's lock, sends none."""
    settings.WAITLIST_OFFERS_PER_SLOT = 1
    for n in range(3):
        wait(f"w{n}@example.com")
    assert offer(slot.pk) == 1
    WaitlistOffer.objects.update(created_at=timezone.now() - timedelta(hours=7))
    cutoff = timezone.now() - timedelta(hours=6)
    with oncommit():
        assert waitlist_offer_slot(slot_id=slot.pk, offered_before=cutoff) == 1
        assert waitlist_offer_slot(slot_id=slot.pk, offered_before=cutoff) == 0


@pytest.fixture
def queue_down(settings):
    """`with queue_down():` the task queue refuses every task, as one that is unreachable (Redis
    down) does: here a queue that takes none of the tasks' queue. Back up after."""
    working = settings.TASKS

    @contextmanager
    def down():
        settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["elsewhere"]}}
        try:
            yield
        finally:
            settings.TASKS = working

    return down


def _cancel_losing_the_offer(booking, queue_down, oncommit, caplog) -> None:
    with queue_down(), oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, reason="Client phoned")
    assert "could not enqueue offer_freed_slots" in caplog.text


def test_a_freed_time_whose_offer_was_lost_is_offered_by_the_sweep(
    make_booking, slot, wait, queue_down, oncommit, caplog
):
    """The queue refused the task that offers a cancelled session's time to the waitlist: the
    offer owed was written down with the cancellation, and the hourly sweep makes it once
    the task has had its chance (a slow queue is not a lost one)."""
    wait("a@example.com")
    _cancel_losing_the_offer(make_booking(Status.CONFIRMED, slot=slot), queue_down, oncommit, caplog)
    assert not WaitlistOffer.objects.exists() and offered_to() == []
    with oncommit():
        assert waitlist_expire()["offered_again"] == 0  # its task may yet come
    with oncommit():
        assert waitlist_expire(now=timezone.now() + timedelta(minutes=20))["offered_again"] == 1
    assert offered_to() == ["a@example.com"]
    with oncommit():  # made once: no longer owed, and not yet offered long ago
        assert waitlist_expire(now=timezone.now() + timedelta(hours=1))["offered_again"] == 0
    assert offered_to() == ["a@example.com"]


def test_a_lost_offer_goes_only_to_places_the_freed_time_suits(
    make_booking, slot, wait, other_counsellor, queue_down, oncommit, caplog
):
    """The sweep decides in its query which owed times suit someone; those that suit nobody
    waiting when they were freed are not offered later either."""
    day = timezone.localtime(slot.start).date()
    long_type = SessionType.objects.create(name="Long", slug="long", duration_minutes=90, price=100)
    wait("other@example.com", counsellor=other_counsellor)
    wait("later@example.com", date_from=day + timedelta(days=1), date_to=day + timedelta(days=3))
    wait("long@example.com", session_type=long_type)
    wait("inperson@example.com", mode="in_person", counsellor=slot.counsellor)
    slot.counsellor.offers_in_person = False
    slot.counsellor.save()
    requested = wait("requested@example.com")
    make_booking(Status.PENDING, email="requested@example.com")  # cannot take it: passed by
    _cancel_losing_the_offer(make_booking(Status.CONFIRMED, slot=slot), queue_down, oncommit, caplog)
    # Joined since: the time was free already (the page confirming the place says so).
    wait("joined-since@example.com", verified_at=timezone.now() + timedelta(seconds=1))
    with oncommit():
        assert waitlist_expire(now=timezone.now() + timedelta(minutes=20))["offered_again"] == 0
    assert offered_to() == [] and Slot.objects.get(pk=slot.pk).freed_at is None
    requested.refresh_from_db()
    assert requested.status == WaitlistEntry.State.WAITING
    with oncommit():
        assert waitlist_expire(now=timezone.now() + timedelta(hours=7))["offered_again"] == 0
    assert offered_to() == []


def test_a_lost_offer_waits_while_a_request_asks_for_the_time(
    make_booking, slot, wait, counsellor, admin_user, queue_down, oncommit, caplog
):
    """As for offering a time again: the request is most likely from someone offered it. If it
    goes elsewhere, the time is offered then."""
    wait("a@example.com")
    _cancel_losing_the_offer(make_booking(Status.CONFIRMED, slot=slot), queue_down, oncommit, caplog)
    request = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot)
    later = timezone.now() + timedelta(minutes=20)
    with oncommit():
        assert waitlist_expire(now=later)["offered_again"] == 0
    booking_reject(booking_id=request.pk, user=admin_user, reason="No time found")
    with oncommit():
        assert waitlist_expire(now=later)["offered_again"] == 1
    assert offered_to() == ["a@example.com"]


def test_a_freed_times_task_and_the_sweep_send_one_batch_between_them(
    make_booking, slot, wait, settings, queue_down, oncommit, caplog
):
    """Whichever comes first offers the time and clears the offer owed, under the slot's lock;
    the other finds nothing owed. (Two at once on PostgreSQL: test_waitlist_concurrency.)"""
    settings.WAITLIST_OFFERS_PER_SLOT = 1
    for n in range(3):
        wait(f"w{n}@example.com")
    _cancel_losing_the_offer(make_booking(Status.CONFIRMED, slot=slot), queue_down, oncommit, caplog)
    with oncommit():
        assert waitlist_expire(now=timezone.now() + timedelta(minutes=20))["offered_again"] == 1
        # The task arrives after all (a queue slower than the sweep, or a retry).
        assert offer_freed_slots.enqueue([slot.pk]).return_value == 0
    assert offered_to() == ["w0@example.com"]
    # The other way round: freed again, its task offers it, and the sweep finds nothing owed.
    with oncommit():
        booking_cancel(booking_id=make_booking(Status.CONFIRMED, slot=slot).pk, actor=Actor.STAFF, reason="Ill")
    assert offered_to() == ["w0@example.com", "w1@example.com"]
    with oncommit():
        assert waitlist_expire(now=timezone.now() + timedelta(minutes=20))["offered_again"] == 0
    assert offered_to() == ["w0@example.com", "w1@example.com"]


def _owed_calendar(counsellors: int, days: int, freed_at) -> list[Counsellor]:
    """`counsellors` counsellors with four free times a day for `days` days, each of whose
    offers was lost when it was freed at `freed_at`."""
    made = [
        Counsellor.objects.create(display_name=f"Counsellor {n}", slug=f"counsellor-{n}") for n in range(counsellors)
    ]
    Slot.objects.bulk_create(
        Slot(counsellor=c, start=start, end=start + timedelta(minutes=60), freed_at=freed_at)
        for c in made
        for day in range(days)
        for hour in (9, 11, 14, 16)
        for start in [next_weekday_at(hour, days_ahead=3 + day)]
    )
    return made


class _Rollback(Exception):
    pass


def _sweep_queries(session_type, counsellors: int, days: int) -> int:
    """The queries of one sweep over a calendar of lost offers (then rolled back): one place
    suits the first counsellor's first day (four times); a place for any counsellor on any
    day joined after the times were freed, so none is owed to it."""
    freed_at = timezone.now() - timedelta(hours=1)
    try:
        with transaction.atomic():
            first, *_ = _owed_calendar(counsellors, days, freed_at=freed_at)
            day = timezone.localdate(next_weekday_at(9))
            common = dict(client_name="Waiting Client", session_type=session_type, mode="online")
            WaitlistEntry.objects.create(
                **common, email="a@example.com", counsellor=first, date_from=day, date_to=day, verified_at=freed_at
            )
            WaitlistEntry.objects.create(
                **common,
                email="any@example.com",
                date_from=day,
                date_to=day + timedelta(days=days),
                verified_at=timezone.now(),
            )
            with CaptureQueriesContext(connection) as queries:
                # The first of its four times to the place it suits (an address is emailed
                # once an hour, the other three freed with it shown by that email's link); not
                # to the place confirmed after they were freed.
                assert waitlist_expire()["offered_again"] == 1
            assert not Slot.objects.filter(freed_at__isnull=False).exists()  # the rest cleared
            raise _Rollback
    except _Rollback:
        return len(queries)


def test_the_sweep_picks_the_offers_owed_in_its_query_whatever_their_number(db, session_type, settings):
    """Offers lost for a whole calendar (the queue down while a month was published): the
    sweep's query picks the few times that suit someone who was waiting, so its queries do
    not grow with the calendar, only with the offers it makes."""
    settings.WAITLIST_OFFERS_PER_SLOT = 1
    small = _sweep_queries(session_type, counsellors=2, days=3)
    large = _sweep_queries(session_type, counsellors=20, days=30)  # 2,400 times owed
    assert small == large
    # The sweep's own (expire, end, anyone waiting?, lengths, the times due, clear the rest,
    # delete), then each offer's (lock, clear, free?, candidates, place, offer, email, token).
    assert large <= 10 + 4 * 20


def test_entries_expire_after_their_last_day_and_stale_ones_go(offer, wait, slot):
    today = timezone.localdate()
    past = wait("past@example.com", date_from=today - timedelta(days=5), date_to=today - timedelta(days=1))
    current = wait("current@example.com")
    wait("unconfirmed@example.com", verified=False, created_at=timezone.now() - timedelta(days=5))
    result = waitlist_expire()
    assert result == {"expired": 1, "ended": 0, "offered_again": 0, "deleted": 1}
    past.refresh_from_db()
    current.refresh_from_db()
    assert past.status == WaitlistEntry.State.EXPIRED and current.status == WaitlistEntry.State.WAITING
    assert offer(slot.pk) == 1  # only the current one
    # Finished entries are deleted a while later; the command runs the same sweep.
    WaitlistEntry.objects.filter(pk=past.pk).update(updated_at=timezone.now() - timedelta(days=40))
    call_command("expire_waitlist")
    assert not WaitlistEntry.objects.filter(pk=past.pk).exists()


def test_the_waitlist_pages_need_no_login_and_unknown_links_are_calm(client):
    assert Client().get("/waitlist/").status_code == 200
    response = client.get("/waitlist/leave/not-a-token/")
    assert response.status_code == 404 and "book a session" in response.content.decode()


def test_a_refused_request_to_join_starts_at_its_error_summary_without_javascript(client, session_type):
    assert "autofocus" not in client.get("/waitlist/").content.decode()
    empty = {"client_name": "", "email": "", "session_type": "", "mode": "", "date_from": "", "date_to": ""}
    response = client.post("/waitlist/", empty)
    assert response.status_code == 400
    assert re.search(r'<div class="error-summary"[^>]*data-error-summary autofocus>', response.content.decode())


def test_a_request_to_join_with_no_fields_at_all_says_what_is_missing(client, session_type):
    """A body without the form's fields (a hand-made request, or a browser extension that
    strips them) is answered like an empty form, not with a bare 400."""
    response = client.post("/waitlist/", {}, headers={"X-CSRFToken": "unused-in-tests"})
    html = response.content.decode()
    assert response.status_code == 400 and 'class="error-summary"' in html
    assert not WaitlistEntry.objects.exists()


def test_the_sent_page_and_email_say_how_long_the_link_works_from_the_setting(
    client, session_type, counsellor, settings
):
    settings.VERIFICATION_LINK_HOURS = 3
    today = timezone.localdate()
    response = _join(client, session_type, today + timedelta(days=5), today + timedelta(days=10))
    assert "It works once, for 3 hours." in response.content.decode()
    assert "The link works once and for 3 hours." in mail.outbox[-1].body


def test_the_waitlist_offers_no_preference_as_the_wizard_does(client, session_type, counsellor):
    html = client.get("/waitlist/").content.decode()
    assert ">No preference</option>" in html and "Any counsellor" not in html


def test_with_no_kind_of_session_to_book_there_is_no_dead_end(client, session_type, slot):
    """Every session type withdrawn while free times remain: the wizard offered those times,
    Continue and the waitlist, whose list of kinds was empty and every answer an error."""
    from bookings.models import Clinic, SessionType

    SessionType.objects.update(is_active=False)
    Clinic.objects.update_or_create(pk=1, defaults={"phone": "+91 484 000 0000"})
    step = client.get(client.get("/book/")["Location"]).content.decode()
    assert "No sessions can be booked online at the moment. Please contact the clinic." in step
    assert "+91 484 000 0000" in step
    assert "join the waitlist" not in step and 'name="slot"' not in step and ">Continue<" not in step
    page = client.get("/waitlist/").content.decode()
    assert "No sessions can be booked online at the moment" in page and "+91 484 000 0000" in page
    assert 'name="client_name"' not in page


def test_a_refused_form_keeps_what_was_typed_through_a_change_of_language(client, session_type):
    """Its errors read in the other language, nothing typed lost."""
    typed = {
        "client_name": "Meera Iyer",
        "email": "meera@example",  # not an address
        "session_type": session_type.pk,
        "mode": "online",
        "date_from": (timezone.localdate() + timedelta(days=2)).isoformat(),
        "date_to": (timezone.localdate() + timedelta(days=20)).isoformat(),
    }
    assert client.post("/waitlist/", typed).status_code == 400
    switched = client.post("/i18n/setlang/", {"language": "hi", "next": "/waitlist/"}, follow=True)
    html = switched.content.decode()
    assert '<html lang="hi"' in html and 'value="Meera Iyer"' in html and 'value="meera@example"' in html
    assert "data-error-summary" in html
    # Shown once: the form is fresh again after that.
    assert 'value="Meera Iyer"' not in client.get("/waitlist/").content.decode()


def test_times_published_by_the_dozen_send_a_waiting_client_one_email_of_the_earliest(counsellor, wait, slot, oncommit):
    """A counsellor publishes four weeks of hours: a client waiting hears once, of the soonest
    time that suits them (its link opens the booking form, which shows the others), not once
    per time. An hour later, a time freed again is news again."""
    from bookings.services import availability_generate

    day = timezone.localtime(slot.start).date()
    entry = wait("a@example.com", date_from=day, date_to=day + timedelta(days=27))
    slot.delete()
    WeeklyHours.objects.create(counsellor=counsellor, weekday=day.weekday(), start_time=time(9), end_time=time(17))
    with oncommit():
        created, _ = availability_generate(counsellor=counsellor, weeks=4, today=day)
    assert created >= 16
    assert offered_to() == ["a@example.com"]
    [offered] = WaitlistOffer.objects.filter(entry=entry)
    assert offered.slot == Slot.objects.filter(counsellor=counsellor).order_by("start").first()

    WaitlistOffer.objects.update(created_at=timezone.now() - timedelta(hours=2))
    mail.outbox = []
    later = Slot.objects.filter(counsellor=counsellor).order_by("-start").first()
    with oncommit():
        slots_freed(slot_ids=[later.pk])
    assert offered_to() == ["a@example.com"]


def test_a_time_freed_within_the_hour_after_an_offer_is_offered_once_the_hour_is_over(counsellor, wait, slot, oncommit):
    """One client waiting: offered a time, then another is freed twenty minutes later. They
    are not emailed again at once, nor passed over for good: the sweep offers it after."""
    wait("a@example.com", verified_at=timezone.now() - timedelta(hours=3))
    with oncommit():
        slots_freed(slot_ids=[slot.pk])
    assert offered_to() == ["a@example.com"]
    start = slot.start + timedelta(hours=2)
    other = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    mail.outbox = []
    with oncommit():
        slots_freed(slot_ids=[other.pk])
    assert offered_to() == []
    other.refresh_from_db()
    assert other.freed_at is not None  # still owed
    # A sweep inside their hour (offered 30 minutes ago, the other freed 20) keeps it owed.
    WaitlistOffer.objects.update(created_at=timezone.now() - timedelta(minutes=30))
    Slot.objects.filter(pk=other.pk).update(freed_at=timezone.now() - timedelta(minutes=20))
    with oncommit():
        waitlist_expire()
    assert offered_to() == [] and Slot.objects.get(pk=other.pk).freed_at is not None
    # An hour and more on: the sweep offers it.
    WaitlistOffer.objects.update(created_at=timezone.now() - timedelta(minutes=70))
    Slot.objects.filter(pk=other.pk).update(freed_at=timezone.now() - timedelta(minutes=50))
    with oncommit():
        waitlist_expire()
    assert offered_to() == ["a@example.com"]
    assert WaitlistOffer.objects.filter(slot=other).count() == 1


def test_times_freed_together_are_one_email_even_after_the_hour(counsellor, wait, slot, oncommit):
    """Five times published at once: one email, and none of the others later, hour by hour
    (that email's link showed them all)."""
    wait("a@example.com", verified_at=timezone.now() - timedelta(hours=3))
    others = [
        Slot.objects.create(
            counsellor=counsellor, start=slot.start + timedelta(hours=h), end=slot.end + timedelta(hours=h)
        )
        for h in (2, 4, 6, 8)
    ]
    with oncommit():
        slots_freed(slot_ids=[slot.pk, *(s.pk for s in others)])
    assert offered_to() == ["a@example.com"]
    assert not Slot.objects.filter(freed_at__isnull=False).exists()
    WaitlistOffer.objects.update(created_at=timezone.now() - timedelta(minutes=70))
    with oncommit():
        waitlist_expire()
    assert offered_to() == ["a@example.com"] and WaitlistOffer.objects.count() == 1


def test_a_time_owed_after_the_hour_goes_only_to_those_waiting_when_it_was_freed(counsellor, wait, slot, oncommit):
    """A time kept owed for a client in their quiet hour: a place confirmed meanwhile, while it
    was free already (and told so), is not emailed it."""
    wait("x@example.com", verified_at=timezone.now() - timedelta(hours=3))
    with oncommit():
        slots_freed(slot_ids=[slot.pk])
    start = slot.start + timedelta(hours=3)
    later = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    with oncommit():
        slots_freed(slot_ids=[later.pk])  # x is in their hour: owed
    WaitlistOffer.objects.update(created_at=timezone.now() - timedelta(minutes=70))
    Slot.objects.filter(pk=later.pk).update(freed_at=timezone.now() - timedelta(minutes=50))
    wait("z@example.com", verified_at=timezone.now() - timedelta(minutes=5))
    mail.outbox = []
    with oncommit():
        waitlist_expire()
    assert offered_to() == ["x@example.com"]
