"""A session ends at its start plus its session type's length, not at its slot's end: a
50-minute session in a 90-minute slot ends after 50 minutes (as the client's calendar file
says), although the whole slot stays held. Staff screens and the "only once it has ended"
rule read the session's end; free slots still show their whole extent."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, Slot, Status
from bookings.services import booking_complete, booking_no_show
from bookings.templatetags.mindsettler import span, when_short
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db

SLOT = timedelta(minutes=90)  # the session type of the fixtures lasts 50 minutes
SESSION = timedelta(minutes=50)


def long_slot(counsellor, start: datetime) -> Slot:
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + SLOT)


@pytest.fixture
def over(make_booking, counsellor):
    """A confirmed session that started an hour ago: over after 50 minutes, its slot not yet."""
    start = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    return make_booking(Status.CONFIRMED, slot=long_slot(counsellor, start))


def test_a_session_can_be_recorded_once_it_has_ended_though_its_slot_has_not(
    over, make_booking, counsellor, admin_user
):
    assert over.slot.end > timezone.now()
    assert booking_complete(booking_id=over.pk, user=admin_user).status == Status.COMPLETED
    other = make_booking(Status.CONFIRMED, slot=long_slot(counsellor, over.slot.start - timedelta(days=1)))
    assert booking_no_show(booking_id=other.pk, user=admin_user).status == Status.NO_SHOW


def test_the_detail_page_says_when_the_session_ends_and_offers_recording_once_it_has(
    admin_client, over, make_booking, counsellor
):
    html = admin_client.get(reverse("staff:booking_detail", args=[over.pk])).content.decode()
    assert "Mark as completed" in html and "after the session ends" not in html
    upcoming = make_booking(Status.CONFIRMED, slot=long_slot(counsellor, next_weekday_at(12, days_ahead=4)))
    html = admin_client.get(reverse("staff:booking_detail", args=[upcoming.pk])).content.decode()
    ends = upcoming.slot.start + SESSION
    assert f"after the session ends ({when_short(ends, autoescape=True)})" in html
    assert when_short(upcoming.slot.end) not in html


def test_the_detail_page_gives_the_session_and_the_time_asked_for_from_start_to_end(
    admin_client, make_booking, counsellor
):
    """'Mon 30 Nov, 10:00 to 10:50 IST' (an en dash for 'to'), as the list and the calendar: not the start alone in a
    longer form ('Monday 30 November 2026, 10:00 IST') that hid when the session ends."""
    slot = long_slot(counsellor, next_weekday_at(12, days_ahead=4))
    asked = long_slot(counsellor, slot.start + timedelta(days=1))
    moved = make_booking(Status.CONFIRMED, slot=slot, preferred_slot=asked)
    html = admin_client.get(reverse("staff:booking_detail", args=[moved.pk])).content.decode()
    assert f"<dd>{span(slot.start, slot.start + SESSION, autoescape=True)}</dd>" in html
    assert f"<dd>{span(asked.start, asked.start + SESSION, autoescape=True)}</dd>" in html
    # Reserved at the time asked for: said so, not the same time twice.
    kept = make_booking(Status.CONFIRMED, slot=asked, preferred_slot=asked)
    html = admin_client.get(reverse("staff:booking_detail", args=[kept.pk])).content.decode()
    assert "Client asked for</dt><dd>The same time</dd>" in html
    pending = make_booking(Status.PENDING, preferred_slot=slot)
    html = admin_client.get(reverse("staff:booking_detail", args=[pending.pk])).content.decode()
    assert f"Client asked for</dt><dd>{span(slot.start, slot.start + SESSION, autoescape=True)}</dd>" in html


def test_the_dashboard_lists_a_session_to_record_once_it_has_ended(admin_client, over):
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert f'id="record-{over.pk}"' in html


def test_the_calendar_shows_a_session_until_it_ends_and_a_free_slot_whole(admin_client, make_booking, counsellor):
    start = next_weekday_at(12, days_ahead=4)
    booking = make_booking(Status.CONFIRMED, slot=long_slot(counsellor, start))
    cancelled = make_booking(Status.CANCELLED, slot=long_slot(counsellor, start + timedelta(hours=2)))
    free = long_slot(counsellor, start + timedelta(hours=4))
    response = admin_client.get(
        reverse("staff:calendar_feed"),
        {"start": (start - timedelta(days=1)).isoformat(), "end": (start + timedelta(days=1)).isoformat()},
    )
    events = response.json()
    detail = reverse("staff:booking_detail", args=[0])[:-2]
    shown = {e["url"]: e for e in events if "url" in e}
    for b in (booking, cancelled):
        event = shown[f"{detail}{b.pk}/"]
        assert datetime.fromisoformat(event["start"]) == b.slot.start
        assert datetime.fromisoformat(event["end"]) == b.slot.start + SESSION
    background = {
        (datetime.fromisoformat(e["start"]), datetime.fromisoformat(e["end"]))
        for e in events
        if e.get("display") == "background"
    }
    # The cancelled booking's slot is free again, whole; so is the one never booked.
    assert background == {(cancelled.slot.start, cancelled.slot.end), (free.start, free.end)}


def test_the_daily_summary_gives_each_session_its_own_end(make_booking, counsellor, oncommit):
    from django.core import mail

    from bookings.services import daily_summaries_send

    counsellor.daily_summary = True
    counsellor.save()
    start = timezone.make_aware(datetime(2031, 1, 14, 12, 30), timezone.get_current_timezone())
    booking = make_booking(Status.CONFIRMED, slot=long_slot(counsellor, start))
    with oncommit():
        assert daily_summaries_send(today=start.date()) == 1
    [line] = [line for line in mail.outbox[0].body.splitlines() if booking.ack_id in line]
    assert line.startswith("12:30\u201313:20 IST")


def test_a_sessions_end_is_its_start_plus_its_types_length(make_booking, counsellor):
    booking = make_booking(Status.CONFIRMED, slot=long_slot(counsellor, next_weekday_at(12)))
    assert Booking.objects.get(pk=booking.pk).session_end == booking.slot.start + SESSION
    assert make_booking(Status.PENDING, counsellor=counsellor).session_end is None


def test_the_dashboard_gives_sessions_waiting_for_payment_and_times_asked_for_start_to_end(
    admin_client, make_booking, counsellor
):
    slot = long_slot(counsellor, next_weekday_at(12, days_ahead=4))
    asked = long_slot(counsellor, slot.start + timedelta(days=1))
    make_booking(Status.APPROVED, slot=slot, payment_due_at=slot.start - timedelta(days=1))
    make_booking(Status.PENDING, preferred_slot=asked)
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert f" · {span(slot.start, slot.start + SESSION, autoescape=True)}</span>" in html
    assert f"asked for {span(asked.start, asked.start + SESSION, autoescape=True)}" in html


def test_the_dashboard_says_a_request_just_arrived_rather_than_waiting_0_minutes(admin_client, make_booking):
    fresh = make_booking(Status.PENDING)
    older = make_booking(Status.PENDING)
    Booking.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=3, minutes=5))
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert "0\xa0minutes" not in html and "just arrived" in html
    assert "waiting 3\xa0hours, 5\xa0minutes" in html
    assert fresh.ack_id in html
