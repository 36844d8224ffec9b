"""Rescheduling: a client moves their own session (picker on the booking page, then an
emailed single-use link), and the one service every move goes through."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.db.models import F
from django.utils import timezone, translation
from icalendar import Calendar

from bookings.errors import BookingError, SlotUnavailable, StaleBooking, TooLate, TransitionNotAllowed
from bookings.models import Actor, BlockedPeriod, Booking, BookingEvent, LinkToken, Payment, Slot, Status
from bookings.services import (
    booking_cancel,
    booking_reschedule,
    booking_reschedule_request,
    booking_transition,
    slot_is_bookable,
)
from bookings.templatetags.mindsettler import link_minutes, minutes, when, when_short
from bookings.tests.journey import link_in_last_email, skipped_heading_levels
from bookings.tokens import token_create
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


@pytest.fixture
def free_slot(counsellor):
    # At an even hour: `make_booking` makes its hour-long slots at odd hours, and one
    # counsellor's slots may not overlap (an exclusion constraint on PostgreSQL).
    start = next_weekday_at(14, days_ahead=6)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


@pytest.fixture
def confirmed(make_booking, counsellor, slot):
    booking = make_booking(Status.CONFIRMED, slot=slot, version=4)
    Payment.objects.create(
        booking=booking,
        provider="sandbox",
        provider_payment_id="pay_1",
        amount=booking.amount,
        currency=booking.currency,
        status=Payment.State.CONFIRMED,
        confirmed_at=timezone.now(),
    )
    return booking


def page_url(booking) -> str:
    return f"/bookings/{token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=30))}/"


def ics_event(text: str):
    return next(c for c in Calendar.from_ical(text).walk() if c.name == "VEVENT")


# --- The service ------------------------------------------------------------------------


def test_a_move_keeps_id_status_and_payment_swaps_the_slots_and_says_so(confirmed, slot, free_slot, oncommit):
    ack_id, version = confirmed.ack_id, confirmed.version
    with oncommit():
        moved = booking_reschedule(booking_id=confirmed.pk, slot_id=free_slot.pk, actor=Actor.CLIENT)
    moved.refresh_from_db()
    assert (moved.ack_id, moved.status, moved.slot_id) == (ack_id, Status.CONFIRMED, free_slot.pk)
    assert moved.version == version + 1
    assert moved.payments.get().status == Payment.State.CONFIRMED
    # The old slot is free for anyone; the new one is held.
    assert not Booking.objects.filter(slot=slot, status__in=[Status.CONFIRMED]).exists()
    event = BookingEvent.objects.get(booking=moved, action="rescheduled")
    assert event.actor == Actor.CLIENT and event.from_status == event.to_status == Status.CONFIRMED
    old, new = timezone.localtime(slot.start), timezone.localtime(free_slot.start)
    assert f"{old:%H:%M}" in event.reason and f"{new:%H:%M}" in event.reason
    message = mail.outbox[-1]
    assert message.to == [moved.email] and "new time" in message.subject and ack_id in message.subject
    assert "Individual" not in message.subject  # no session type in subjects


def test_the_calendar_invite_keeps_its_uid_and_raises_its_sequence(confirmed, free_slot, oncommit):
    from bookings.calendar import booking_ics

    before = ics_event(booking_ics(booking=confirmed))
    with oncommit():
        booking_reschedule(booking_id=confirmed.pk, slot_id=free_slot.pk, actor=Actor.CLIENT)
    attachment = mail.outbox[-1].attachments[0]
    after = ics_event(attachment[1])
    assert str(after["UID"]) == str(before["UID"])
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert after.decoded("DTSTART") == free_slot.start
    assert "METHOD:PUBLISH" in attachment[1]


def test_an_approved_booking_gets_a_payment_deadline_that_fits_the_new_time(make_booking, counsellor, slot):
    booking = make_booking(Status.APPROVED, slot=slot)
    soon = timezone.now() + timedelta(hours=30)
    near = Slot.objects.create(counsellor=counsellor, start=soon, end=soon + timedelta(minutes=60))
    moved = booking_reschedule(booking_id=booking.pk, slot_id=near.pk, actor=Actor.STAFF)
    assert moved.payment_due_at <= near.start - timedelta(hours=12)
    assert moved.status == Status.APPROVED


def test_a_client_whose_time_to_pay_ran_out_is_told_so_in_their_language(make_booking, counsellor, slot, free_slot):
    """Before the sweep expires it, an approved booking whose payment window has passed
    cannot move: the client reads why in their own words and language, not staff's."""
    long_ago = timezone.now() - timedelta(days=5)
    booking = make_booking(Status.APPROVED, slot=slot, approved_at=long_ago, payment_due_at=long_ago)
    for language, words in (("en", "The time to pay for this booking has run out"), ("hi", "भुगतान का समय निकल चुका है")):
        with translation.override(language), pytest.raises(TooLate, match=words):
            booking_reschedule(booking_id=booking.pk, slot_id=free_slot.pk, actor=Actor.CLIENT)
    assert Booking.objects.get(pk=booking.pk).slot_id == slot.pk


def test_clients_may_move_only_up_to_the_limit_staff_moves_do_not_count(confirmed, counsellor, settings, admin_user):
    settings.RESCHEDULE_LIMIT = 2
    starts = [next_weekday_at(8 + 2 * i, days_ahead=7) for i in range(4)]
    slots = [Slot.objects.create(counsellor=counsellor, start=t, end=t + timedelta(minutes=60)) for t in starts]
    booking_reschedule(booking_id=confirmed.pk, slot_id=slots[0].pk, actor=Actor.CLIENT)
    booking_reschedule(booking_id=confirmed.pk, slot_id=slots[1].pk, actor=Actor.STAFF, user=admin_user)
    booking_reschedule(booking_id=confirmed.pk, slot_id=slots[2].pk, actor=Actor.CLIENT)
    with pytest.raises(TooLate, match="moved online 2 times"):
        booking_reschedule(booking_id=confirmed.pk, slot_id=slots[3].pk, actor=Actor.CLIENT)
    confirmed.refresh_from_db()
    assert confirmed.slot_id == slots[2].pk
    # Staff may still move it.
    booking_reschedule(booking_id=confirmed.pk, slot_id=slots[3].pk, actor=Actor.STAFF, user=admin_user)


def test_clients_cannot_move_inside_the_cutoff(make_booking, counsellor, free_slot, settings):
    settings.CANCELLATION_CUTOFF_HOURS = 24
    soon = timezone.now() + timedelta(hours=20)
    near = Slot.objects.create(counsellor=counsellor, start=soon, end=soon + timedelta(minutes=60))
    booking = make_booking(Status.CONFIRMED, slot=near)
    with pytest.raises(TooLate, match="24 hours"):
        booking_reschedule(booking_id=booking.pk, slot_id=free_slot.pk, actor=Actor.CLIENT)
    with pytest.raises(TooLate):
        booking_reschedule_request(booking=booking, slot=free_slot)
    booking.refresh_from_db()
    assert booking.slot_id == near.pk and booking.version == 1


def test_a_move_asked_for_in_time_is_confirmed_after_the_cutoff(client, make_booking, counsellor, free_slot, oncommit):
    """Asked for at 24 h 05 min before the session, confirmed from the email ten minutes later."""
    soon = timezone.now() + timedelta(hours=24, minutes=5)
    booking = make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=soon, end=soon + timedelta(hours=1))
    )
    with oncommit():
        booking_reschedule_request(booking=booking, slot=free_slot)
    path = re.search(r"http://testserver(/reschedule/[^\s]+/)", mail.outbox[-1].body).group(1)
    LinkToken.objects.filter(purpose=LinkToken.Purpose.RESCHEDULE).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )
    start = timezone.now() + timedelta(hours=23, minutes=55)  # ten minutes on, as the clock would
    Slot.objects.filter(pk=booking.slot_id).update(start=start, end=start + timedelta(hours=1))
    assert "Sessions can be moved online until" not in client.get(path).content.decode()
    assert client.post(path).status_code in (200, 303)
    booking.refresh_from_db()
    assert booking.slot_id == free_slot.pk


def test_a_stale_version_is_refused_and_nothing_moves(confirmed, free_slot, admin_user):
    with pytest.raises(StaleBooking):
        booking_reschedule(
            booking_id=confirmed.pk,
            slot_id=free_slot.pk,
            actor=Actor.STAFF,
            user=admin_user,
            expected_version=confirmed.version - 1,
        )
    confirmed.refresh_from_db()
    assert confirmed.slot_id != free_slot.pk
    assert not BookingEvent.objects.filter(action="rescheduled").exists()


def test_a_taken_slot_is_refused_clearly(confirmed, free_slot, make_booking):
    make_booking(Status.APPROVED, slot=free_slot)
    with pytest.raises(SlotUnavailable) as caught:
        booking_reschedule(booking_id=confirmed.pk, slot_id=free_slot.pk, actor=Actor.STAFF)
    assert "taken" in caught.value.message


def test_a_time_the_counsellor_has_blocked_off_is_refused(confirmed, free_slot, make_booking):
    """Leave added after a slot was published keeps the slot (a cancelled booking may point
    at it) but hides it from every list: a client posting its id is refused too."""
    make_booking(Status.CANCELLED, slot=free_slot)
    BlockedPeriod.objects.create(
        counsellor=free_slot.counsellor, start=free_slot.start - timedelta(hours=1), end=free_slot.end, reason="Leave"
    )
    with pytest.raises(SlotUnavailable) as caught:
        booking_reschedule_request(booking=confirmed, slot=free_slot)
    assert caught.value.message == "That time is no longer available. Please choose another time."
    assert slot_is_bookable(slot=free_slot, session_type=confirmed.session_type) == caught.value.message


def test_the_database_constraint_is_the_backstop(confirmed, free_slot, make_booking):
    """Even a move that skips every Python check (a direct update) cannot put two bookings in
    one slot; under concurrency (test_reschedule_concurrency) this is what refuses the loser."""
    from django.db import IntegrityError, transaction

    make_booking(Status.APPROVED, slot=free_slot)
    with pytest.raises(IntegrityError), transaction.atomic():
        type(confirmed).objects.filter(pk=confirmed.pk).update(slot=free_slot)
    confirmed.refresh_from_db()
    assert confirmed.slot_id != free_slot.pk and confirmed.version == 4


def test_clients_stay_with_their_counsellor_and_statuses_are_checked(confirmed, other_slot, make_booking, free_slot):
    with pytest.raises(SlotUnavailable, match="different counsellor"):
        booking_reschedule(booking_id=confirmed.pk, slot_id=other_slot.pk, actor=Actor.CLIENT)
    paying = make_booking(Status.PAYMENT_PENDING, counsellor=confirmed.counsellor)
    with pytest.raises(TransitionNotAllowed, match="“Payment started”, so it can no longer be moved"):
        booking_reschedule(booking_id=paying.pk, slot_id=free_slot.pk, actor=Actor.CLIENT)
    booking_cancel(booking_id=confirmed.pk, actor=Actor.STAFF, reason="Clinic closed")
    with pytest.raises(TransitionNotAllowed):
        booking_reschedule(booking_id=confirmed.pk, slot_id=free_slot.pk, actor=Actor.STAFF)


def test_moving_to_the_same_slot_changes_nothing(confirmed, slot):
    with pytest.raises(BookingError):
        booking_reschedule(booking_id=confirmed.pk, slot_id=slot.pk, actor=Actor.STAFF)
    confirmed.refresh_from_db()
    assert confirmed.version == 4


def test_a_move_leaves_the_old_slot_to_be_booked_by_someone_else(confirmed, slot, free_slot, make_booking, admin_user):
    booking_reschedule(booking_id=confirmed.pk, slot_id=free_slot.pk, actor=Actor.CLIENT)
    other = make_booking(Status.PENDING, counsellor=slot.counsellor)
    from bookings.services import booking_approve

    approved = booking_approve(booking_id=other.pk, slot_id=slot.pk, user=admin_user)
    assert approved.slot_id == slot.pk


# --- The client's pages -----------------------------------------------------------------


def test_the_booking_page_offers_a_move_before_the_cutoff_only(client, confirmed, make_booking, counsellor):
    html = client.get(page_url(confirmed)).content.decode()
    assert 'id="reschedule"' in html and "Choose a new time" in html
    soon = timezone.now() + timedelta(hours=5)
    near = Slot.objects.create(counsellor=counsellor, start=soon, end=soon + timedelta(minutes=60))
    late = make_booking(Status.CONFIRMED, slot=near)
    html = client.get(page_url(late)).content.decode()
    assert 'id="reschedule"' in html and "Choose a new time" not in html and "contact the clinic" in html
    pending = make_booking(Status.PENDING, counsellor=counsellor)
    assert 'id="reschedule"' not in client.get(page_url(pending)).content.decode()


def test_a_client_whose_counsellor_has_left_is_told_to_contact_the_clinic_not_offered_a_dead_end(
    client, confirmed, counsellor, free_slot, admin_user, oncommit
):
    """None of the counsellor's times can be chosen once they have left (their profile is
    hidden at deactivation): the page says to contact the clinic instead of offering a
    picker with nothing in it, and a move link emailed before they left no longer moves."""
    from staff.services import staff_deactivate

    with oncommit():
        booking_reschedule_request(booking=confirmed, slot=free_slot)
    link = link_in_last_email("/reschedule/")
    staff_deactivate(user=counsellor.user, by=admin_user)
    base = page_url(confirmed)
    html = client.get(base).content.decode()
    said = "Times with Asha Menon can no longer be chosen online. Please contact the clinic to move this session."
    assert 'id="reschedule"' in html and "Choose a new time" not in html and said in html
    assert said in client.get(base + "reschedule/").content.decode()
    response = client.post(link)
    assert response.status_code == 409 and said in response.content.decode()
    confirmed.refresh_from_db()
    assert confirmed.slot_id != free_slot.pk
    with pytest.raises(TooLate, match="contact the clinic"):
        booking_reschedule_request(booking=confirmed, slot=free_slot)
    # In the language the client reads.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    with translation.override("hi"):
        hindi = translation.gettext(
            "Times with %(name)s can no longer be chosen online. Please contact the clinic to move this session."
        ) % {"name": "Asha Menon"}
    assert hindi != said and hindi in client.get(base).content.decode()


@pytest.mark.parametrize("language", ["en", "hi"])
def test_the_move_page_and_its_message_tell_the_links_life_as_the_booking_page_does(
    client, confirmed, free_slot, language
):
    """The move-time page and the message after asking said '60 minutes' (60 मिनट) where the
    booking page and the emails say '1 hour' (1 घंटे)."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    base = page_url(confirmed)
    with translation.override(language):
        life, other = link_minutes(settings.RESCHEDULE_LINK_MINUTES), minutes(settings.RESCHEDULE_LINK_MINUTES)
    assert life != other
    page = client.get(base + "reschedule/").content.decode()
    message = client.post(base + "reschedule/", {"slot": free_slot.pk, "move": "1"}, follow=True).content.decode()
    for text in (page, message):
        assert life in text and other not in text


def test_the_whole_move_by_email_link(client, confirmed, slot, free_slot):
    base = page_url(confirmed)
    picker = client.get(base + "reschedule/")
    html = picker.content.decode()
    assert picker.status_code == 200 and f'id="slot-{free_slot.pk}"' in html
    assert f'id="slot-{slot.pk}"' not in html  # its own time is not offered
    assert "IST" in html
    # A day button only shows that day: nothing is sent.
    response = client.post(base + "reschedule/", {"day": timezone.localtime(free_slot.start).date().isoformat()})
    assert response.status_code == 303 and not mail.outbox
    response = client.post(base + "reschedule/", {"slot": free_slot.pk, "move": "1"})
    assert response.status_code == 303
    link = link_in_last_email("/reschedule/")
    assert "Confirm the new time" in mail.outbox[-1].subject
    confirmed.refresh_from_db()
    assert confirmed.slot_id == slot.pk  # nothing moved yet
    # GET (a mail scanner) changes nothing.
    page = client.get(link)
    assert page.status_code == 200 and "Move my session" in page.content.decode()
    confirmed.refresh_from_db()
    assert confirmed.slot_id == slot.pk
    done = client.post(link)
    assert done.status_code == 200 and "Your session has moved" in done.content.decode()
    confirmed.refresh_from_db()
    assert confirmed.slot_id == free_slot.pk
    again = client.post(link)
    assert again.status_code == 410 and "already been used" in again.content.decode()
    assert (
        f"your booking {confirmed.ack_id} has moved to {when(free_slot.start, autoescape=True)}"
        in again.content.decode()
    )
    assert "has not changed" not in again.content.decode()
    # The booking page tells the story.
    html = client.get(base).content.decode()
    assert "You moved your session to a new time" in html


def test_a_link_for_a_time_taken_meanwhile_changes_nothing(client, confirmed, slot, free_slot, make_booking, oncommit):
    with oncommit():
        booking_reschedule_request(booking=confirmed, slot=free_slot)
    link = link_in_last_email("/reschedule/")
    make_booking(Status.APPROVED, slot=free_slot)
    response = client.post(link)
    assert response.status_code == 409 and "not moved" in response.content.decode()
    confirmed.refresh_from_db()
    assert confirmed.slot_id == slot.pk
    assert LinkToken.objects.get(purpose=LinkToken.Purpose.RESCHEDULE).used_at is None


def test_other_move_links_stop_working_after_a_move(client, confirmed, counsellor, free_slot, oncommit):
    later = next_weekday_at(16, days_ahead=8)
    second = Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(minutes=60))
    with oncommit():
        booking_reschedule_request(booking=confirmed, slot=free_slot)
    first_link = link_in_last_email("/reschedule/")
    with oncommit():
        booking_reschedule_request(booking=confirmed, slot=second)
    second_link = link_in_last_email("/reschedule/")
    assert client.post(second_link).status_code == 200
    response = client.post(first_link)
    assert response.status_code == 410 and "moved since" in response.content.decode()


def test_the_picker_refuses_a_missing_choice_with_an_error_summary(client, confirmed, free_slot):
    response = client.post(page_url(confirmed) + "reschedule/", {"move": "1"})
    html = response.content.decode()
    assert response.status_code == 400 and "There is a problem" in html and "Choose a new time" in html
    # Beside the times too (on a phone they are far below the summary), and named by them.
    assert 'aria-describedby="slot-hint id_slot_error"' in html
    assert re.search(r'<p id="id_slot_error" class="field-error">.*Choose a new time\.</p>', html)
    assert not mail.outbox


def test_the_picker_answers_htmx_with_its_fragment(client, confirmed, free_slot):
    response = client.post(
        page_url(confirmed) + "reschedule/",
        {"day": timezone.localtime(free_slot.start).date().isoformat()},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'id="reschedule-picker"' in html and "<html" not in html


HX = {"HX-Request": "true"}


def test_without_javascript_a_day_button_redirects_to_that_day_at_the_picker(client, confirmed, free_slot, counsellor):
    """Post/redirect/get: Back and reload never ask to send the form again."""
    later_start = next_weekday_at(16, days_ahead=8)
    later = Slot.objects.create(counsellor=counsellor, start=later_start, end=later_start + timedelta(minutes=60))
    picker_url = page_url(confirmed) + "reschedule/"
    day = timezone.localdate(later.start).isoformat()
    response = client.post(picker_url, {"day": day, "slot": free_slot.pk})
    assert response.status_code == 303
    assert response["Location"] == f"{picker_url}?day={day}&slot={free_slot.pk}#slot-picker"
    html = client.get(response["Location"]).content.decode()
    assert f'id="slot-{later.pk}"' in html  # that day's times
    assert re.search(rf'value="{free_slot.pk}" id="slot-{free_slot.pk}"[^>]*checked', html)  # the choice kept
    assert "Your chosen time" in html
    # Without a time chosen, only the day is carried.
    response = client.post(picker_url, {"day": day})
    assert response["Location"] == f"{picker_url}?day={day}#slot-picker"
    assert not mail.outbox


@pytest.mark.parametrize("kind", ["none-of-these-times", "not-yet-approved"])
def test_a_booking_without_a_time_says_why_it_cannot_be_moved(client, make_booking, counsellor, free_slot, kind):
    if kind == "none-of-these-times":
        booking = make_booking(Status.PENDING, preferred_times="Weekday evenings")
    else:
        booking = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=free_slot)
    assert booking.slot is None
    picker_url = page_url(booking) + "reschedule/"
    why = "Only a booking with a reserved time that is not being paid for right now can be moved."
    shown = client.get(picker_url)
    html = shown.content.decode()
    assert shown.status_code == 200 and why in html and "Now:" not in html and 'name="slot"' not in html
    for data, headers in (({"slot": free_slot.pk, "move": "1"}, {}), ({"slot": free_slot.pk, "move": "1"}, HX)):
        refused = client.post(picker_url, data, headers=headers)
        assert refused.status_code == 409 and why in refused.content.decode()
    # A day button without JavaScript leads to the page, which says the same.
    day = client.post(picker_url, {"day": timezone.localdate(free_slot.start).isoformat()}, follow=True)
    assert day.status_code == 200 and why in day.content.decode()
    assert not mail.outbox
    booking.refresh_from_db()
    assert booking.slot is None and booking.status == Status.PENDING


def test_htmx_refusals_come_back_as_the_picker_with_its_summary_and_title(client, confirmed, free_slot, make_booking):
    """wizard.js swaps 400, 409 and 429 answers when they are the fragment asked for: each
    is the picker, with the error summary and the page's title saying "Error:"."""
    picker_url = page_url(confirmed) + "reschedule/"
    missing = client.post(picker_url, {"move": "1"}, headers=HX)
    make_booking(Status.APPROVED, slot=free_slot)
    taken = client.post(picker_url, {"slot": free_slot.pk, "move": "1"}, headers=HX)
    for response, status in ((missing, 400), (taken, 409)):
        html = response.content.decode()
        assert response.status_code == status and "<html" not in html
        assert html.lstrip().startswith("<title>Error: Move your session") and 'id="reschedule-picker"' in html
        assert "data-error-summary" in html and 'href="#slot-picker"' in html
    day = client.post(picker_url, {"day": timezone.localdate(free_slot.start).isoformat()}, headers=HX)
    assert "<title>Move your session" in day.content.decode()  # the title loses "Error:" again


def test_the_move_page_loads_the_journey_script_that_shows_refusals(client, confirmed, free_slot):
    html = client.get(page_url(confirmed) + "reschedule/").content.decode()
    assert re.search(r'<script nonce="[^"]+" src="/static/js/wizard.js" defer></script>', html)
    assert 'hx-post="' in html


def test_the_move_page_headings_skip_no_level(client, confirmed, free_slot):
    html = client.get(page_url(confirmed) + "reschedule/").content.decode()
    assert 'id="day-heading"' in html and skipped_heading_levels(html) == []


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "0001-01-01T00:00:00", "31-12-9999"])
def test_a_day_outside_the_window_shows_the_nearest_days(client, confirmed, free_slot, day):
    picker_url = page_url(confirmed) + "reschedule/"
    for response in (client.get(picker_url, {"day": day}), client.post(picker_url, {"day": day}, headers=HX)):
        assert response.status_code == 200 and f'id="slot-{free_slot.pk}"' in response.content.decode()


def test_the_page_after_a_move_links_to_the_booking_page(client, confirmed, free_slot, oncommit):
    with oncommit():
        booking_reschedule_request(booking=confirmed, slot=free_slot)
    html = client.post(link_in_last_email("/reschedule/")).content.decode()
    booking_url = re.search(r'<a href="(/bookings/[^/"]+/)">Your booking page</a> shows the new time', html).group(1)
    page = client.get(booking_url)
    assert page.status_code == 200 and confirmed.ack_id in page.content.decode()


def test_the_timeline_words_a_move_in_the_pages_language(client, confirmed, slot, free_slot, oncommit):
    with oncommit():
        booking_reschedule(booking_id=confirmed.pk, slot_id=free_slot.pk, actor=Actor.CLIENT)
    old, new = timezone.localtime(slot.start), timezone.localtime(free_slot.start)
    # Staff read the event as before, in English.
    event = BookingEvent.objects.get(booking=confirmed, action="rescheduled")
    reason = event.reason
    assert reason == f"From {when_short(old)} to {when_short(new)}"  # as the portal writes dates
    assert (event.moved_from, event.moved_to) == (slot.start, free_slot.start)  # for the client's page
    html = client.get(page_url(confirmed)).content.decode()
    assert reason not in html
    assert (
        f"From {when(slot.start, autoescape=True)} to {when(free_slot.start, autoescape=True)}" in html
    )  # the site's own dates
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"  # the client chose Hindi on the site
    with translation.override("hi"):
        hindi = client.get(page_url(confirmed)).content.decode()
        assert when(free_slot.start, autoescape=True) in hindi  # Hindi day and month names
    assert "From " not in hindi.split('id="timeline"')[1]


def test_moves_recorded_before_get_their_times_from_the_reason_and_odd_ones_stay_as_written(
    client, confirmed, slot, free_slot
):
    """Migration 0003 reads the times of moves recorded before out of their English reason."""
    import importlib

    from django.apps import apps

    BookingEvent.objects.create(
        booking=confirmed,
        action="rescheduled",
        actor=Actor.STAFF,
        from_status=Status.CONFIRMED,
        to_status=Status.CONFIRMED,
        reason="From Sat 28 Nov 2026, 11:00 IST to Tue 01 Dec 2026, 11:00 IST",
    )
    BookingEvent.objects.create(
        booking=confirmed,
        action="rescheduled",
        actor=Actor.STAFF,
        from_status=Status.CONFIRMED,
        to_status=Status.CONFIRMED,
        reason="From Sat 28 Nov 2026, 11:00 CET to Tue 01 Dec 2026, 11:00 CET",  # another zone
    )
    importlib.import_module("bookings.migrations.0003_event_move_times").times_from_reasons(apps, None)

    read, odd = BookingEvent.objects.filter(booking=confirmed, action="rescheduled").order_by("pk")
    assert (read.moved_from, read.moved_to) == (
        datetime(2026, 11, 28, 5, 30, tzinfo=UTC),
        datetime(2026, 12, 1, 5, 30, tzinfo=UTC),
    )
    assert (odd.moved_from, odd.moved_to) == (None, None)
    html = client.get(page_url(confirmed)).content.decode()
    assert (
        "From Saturday 28 November 2026, 11:00\N{NO-BREAK SPACE}IST to Tuesday 1 December 2026, 11:00\N{NO-BREAK SPACE}IST"
        in html
    )
    assert "From Sat 28 Nov 2026, 11:00 CET to Tue 01 Dec 2026, 11:00 CET" in html


def test_the_rescheduled_email_is_calm_and_has_no_client_words(confirmed, free_slot, oncommit):
    Booking.objects.filter(pk=confirmed.pk).update(concerns="Private worries", preferred_times="Evenings")
    with oncommit():
        booking_reschedule(booking_id=confirmed.pk, slot_id=free_slot.pk, actor=Actor.STAFF)
    message = mail.outbox[-1]
    html = message.alternatives[0][0]
    for body in (message.body, html):
        assert "Private worries" not in body and "Evenings" not in body
        assert "clinic has moved" in body
    assert re.search(r"http://testserver/bookings/[^/\s]+/", message.body)


def test_expired_bookings_release_their_slot_through_the_same_transition(make_booking, slot):
    """Cancelling still works as before (the freed-slot hook must not get in the way)."""
    booking = make_booking(Status.APPROVED, slot=slot)
    booking_transition(booking=booking, to=Status.CANCELLED, actor=Actor.SYSTEM, reason="expired")
    booking.refresh_from_db()
    assert booking.status == Status.CANCELLED


@pytest.mark.parametrize(
    ("limit", "says"),
    [
        (2, "You can move your session up to 2 times to another free time with the same counsellor"),
        (1, "You can move your session once to another free time with the same counsellor"),
        (0, "To move your session to another time, please contact the clinic."),
    ],
)
def test_the_policy_clients_agree_to_says_what_moving_and_missing_a_session_do(client, settings, limit, says):
    """The policy agreed to in the wizard says what the code does: moves (RESCHEDULE_LIMIT, up
    to the cutoff, the payment going with it), a cancellation by the clinic close to the
    session (refunded in full, as booking_cancel by staff does), and a missed session (no
    refund, as booking_no_show)."""
    settings.RESCHEDULE_LIMIT = limit
    html = re.sub(r"\s+", " ", client.get("/policies/").content.decode())
    assert says in html
    if limit:
        assert f"until {settings.CANCELLATION_CUTOFF_HOURS} hours before it. What you have paid goes with it." in html
    assert "if the clinic cancels it for you, the full amount is refunded too." in html
    assert "it is recorded as missed and is not refunded." in html
    assert f"Version {settings.POLICY_VERSION}" in html


def _moved_by_link(client, confirmed, free_slot) -> str:
    base = page_url(confirmed)
    client.post(base + "reschedule/", {"slot": free_slot.pk, "move": "1"})
    link = link_in_last_email("/reschedule/")
    assert client.post(link).status_code == 200
    return link


def test_a_used_move_link_of_a_booking_cancelled_since_does_not_say_it_moved(client, confirmed, free_slot, admin_user):
    link = _moved_by_link(client, confirmed, free_slot)
    booking_cancel(booking_id=confirmed.pk, actor=Actor.STAFF, reason="Counsellor ill", user=admin_user)
    html = client.post(link).content.decode()
    assert "already been used" in html and "has moved to" not in html and when(free_slot.start) not in html


def test_a_used_move_link_after_the_booking_page_closed_shows_no_session_time(client, confirmed, free_slot):
    link = _moved_by_link(client, confirmed, free_slot)
    # Time passes, and nobody records how the session went: it was longer ago than the page
    # stays open.
    ago = free_slot.end - timezone.now() + timedelta(days=settings.BOOKING_LINK_DAYS_AFTER_SESSION, hours=1)
    Slot.objects.filter(pk=free_slot.pk).update(start=F("start") - ago, end=F("end") - ago)
    html = client.post(link).content.decode()
    free_slot.refresh_from_db()
    assert "already been used" in html and confirmed.ack_id not in html and when(free_slot.start) not in html
