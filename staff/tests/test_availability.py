"""Availability: weekly hours generating slots, one-off slots, blocked periods, settings."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from itertools import pairwise

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from bookings.errors import SlotsHeld
from bookings.models import BlockedPeriod, Booking, Clinic, Slot, Status, WeeklyHours
from bookings.services import availability_generate, blocked_period_create
from conftest import next_weekday_at, waiting_on


def page(counsellor) -> str:
    return reverse("staff:availability", args=[counsellor.pk])


def act(name: str, counsellor, *extra) -> str:
    return reverse(f"staff:availability_{name}", args=[counsellor.pk, *extra])


def test_weekly_hours_generate_slots_without_duplicates(counsellor_client, counsellor):
    response = counsellor_client.post(
        act("hours_add", counsellor),
        {
            "hours-weekday": 0,
            "hours-start_time": "10:00",
            "hours-end_time": "13:00",
            "hours-session_minutes": 50,
            "hours-buffer_minutes": 10,
        },
    )
    assert response.status_code == 302
    response = counsellor_client.post(act("generate", counsellor), {"generate-weeks": 2})
    assert response.status_code == 302
    slots = Slot.objects.filter(counsellor=counsellor)
    # Three sessions on each of the two Mondays of the next two weeks, but for those already
    # begun (today's, if today is a Monday: some of them, later in the day all).
    today, zone, now = timezone.localdate(), timezone.get_current_timezone(), timezone.now()
    mondays = [day for day in (today + timedelta(days=n) for n in range(14)) if day.weekday() == 0]
    every = [datetime.combine(day, time(hour), tzinfo=zone) for day in mondays for hour in (10, 11, 12)]
    assert len(every) == 6
    assert sorted(s.start for s in slots) == [start for start in every if start > now]
    before = slots.count()
    counsellor_client.post(act("generate", counsellor), {"generate-weeks": 2})
    assert Slot.objects.filter(counsellor=counsellor).count() == before
    assert "Nothing new to publish" in counsellor_client.get(page(counsellor)).content.decode()


def test_overlapping_weekly_hours_are_refused(counsellor_client, counsellor):
    WeeklyHours.objects.create(counsellor=counsellor, weekday=2, start_time=time(9), end_time=time(12))
    response = counsellor_client.post(
        act("hours_add", counsellor),
        {
            "hours-weekday": 2,
            "hours-start_time": "11:00",
            "hours-end_time": "14:00",
            "hours-session_minutes": 50,
            "hours-buffer_minutes": 10,
        },
    )
    assert response.status_code == 409
    assert "overlap" in response.content.decode()


def test_generate_slots_command_skips_blocked_periods(counsellor):
    today = timezone.localdate() + timedelta(days=1)
    WeeklyHours.objects.create(counsellor=counsellor, weekday=today.weekday(), start_time=time(9), end_time=time(12))
    day_start = next_weekday_at(0, days_ahead=1)
    BlockedPeriod.objects.create(counsellor=counsellor, start=day_start, end=day_start + timedelta(days=1))
    call_command("generate_slots", "--weeks", "2")
    days = {timezone.localtime(s.start).date() for s in Slot.objects.filter(counsellor=counsellor)}
    assert today not in days
    assert today + timedelta(days=7) in days
    assert availability_generate(counsellor=counsellor, weeks=2)[0] == 0


def test_one_off_slot_and_overlap(counsellor_client, counsellor, slot):
    start = timezone.localtime(slot.start + timedelta(hours=3))
    response = counsellor_client.post(
        act("slot_add", counsellor), {"slot-start": start.strftime("%Y-%m-%dT%H:%M"), "slot-minutes": 60}
    )
    assert response.status_code == 302
    overlapping = timezone.localtime(slot.start + timedelta(minutes=30))
    response = counsellor_client.post(
        act("slot_add", counsellor), {"slot-start": overlapping.strftime("%Y-%m-%dT%H:%M"), "slot-minutes": 60}
    )
    assert response.status_code == 409
    assert "overlaps" in response.content.decode()
    past = counsellor_client.post(act("slot_add", counsellor), {"slot-start": "2020-01-01T10:00", "slot-minutes": 60})
    assert past.status_code == 409


def test_a_slot_removed_from_the_weekly_hours_is_not_published_again(counsellor_client, counsellor):
    """Generation runs nightly (generate_slots): a free time removed from the weekly hours
    stays removed, as a blocked period the page lists, which gives the time back if removed."""
    # From tomorrow: two whole weeks ahead hold two Mondays, whatever the day and hour (from
    # today, a Monday's own hours are in the past once it is past 10:00).
    tomorrow = timezone.localdate() + timedelta(days=1)
    monday = tomorrow + timedelta(days=-tomorrow.weekday() % 7)
    WeeklyHours.objects.create(counsellor=counsellor, weekday=0, start_time=time(10), end_time=time(12))
    assert availability_generate(counsellor=counsellor, weeks=2, today=tomorrow)[0] == 4
    slot = Slot.objects.get(start=datetime.combine(monday, time(11), tzinfo=timezone.get_current_timezone()))

    response = counsellor_client.post(act("slot_delete", counsellor, slot.pk))

    assert response.status_code == 302
    blocked = BlockedPeriod.objects.get()
    assert (blocked.start, blocked.end) == (slot.start, slot.end)
    assert availability_generate(counsellor=counsellor, weeks=2, today=tomorrow)[0] == 0
    assert not Slot.objects.filter(start=slot.start).exists()
    html = counsellor_client.get(response["Location"]).content.decode()
    assert "its time is now a blocked period (under Blocked periods) and is not published again" in html
    counsellor_client.post(act("blocked_delete", counsellor, blocked.pk))
    assert availability_generate(counsellor=counsellor, weeks=2, today=tomorrow)[0] == 1


def test_a_one_off_slot_removed_leaves_no_blocked_period(counsellor_client, counsellor, slot):
    local = timezone.localtime(slot.start)
    WeeklyHours.objects.create(  # hours that end before the slot does
        counsellor=counsellor, weekday=local.weekday(), start_time=local.time(), end_time=time(local.hour, 30)
    )
    counsellor_client.post(act("slot_delete", counsellor, slot.pk))
    assert not Slot.objects.filter(pk=slot.pk).exists() and not BlockedPeriod.objects.exists()


def test_removing_a_slot_that_holds_a_booking_is_refused(counsellor_client, counsellor, make_booking, slot):
    booking = make_booking(Status.CONFIRMED, slot=slot)
    response = counsellor_client.post(act("slot_delete", counsellor, slot.pk))
    assert response.status_code == 409
    assert booking.ack_id in response.content.decode()
    assert Slot.objects.filter(pk=slot.pk).exists()


def test_removing_a_free_slot_returns_to_the_list_with_the_message_there(counsellor_client, counsellor, slot):
    response = counsellor_client.post(act("slot_delete", counsellor, slot.pk))
    assert response.status_code == 302
    page = reverse("staff:availability", args=[counsellor.pk])
    assert response["Location"] == f"{page}#slots-h"  # not the page's top, far from the list
    assert not Slot.objects.filter(pk=slot.pk).exists()
    html = counsellor_client.get(page).content.decode()
    slots = html[html.index('id="slots-h"') :]
    assert '<p class="notice mb-3" role="status">Slot removed.</p>' in slots[: slots.index("</section>")]
    assert html.count("Slot removed.") == 1


def test_the_list_shows_which_slots_are_held_or_asked_for_and_offers_to_remove_only_free_ones(
    counsellor_client, counsellor, make_booking, slot
):
    asked_for, _free = (
        Slot.objects.create(
            counsellor=counsellor, start=slot.start + timedelta(hours=h), end=slot.end + timedelta(hours=h)
        )
        for h in (2, 4)
    )
    held = make_booking(Status.APPROVED, slot=slot)
    asked = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=asked_for)
    html = counsellor_client.get(reverse("staff:availability", args=[counsellor.pk])).content.decode()
    rows = html[html.index('id="slots-h"') :].split("<li ")[1:]
    assert len(rows) == 3
    assert held.ack_id in rows[0] and "free" not in rows[0] and "Remove" not in rows[0]
    assert f"asked for by {asked.ack_id}" in rows[1] and "free" not in rows[1] and "Remove" not in rows[1]
    assert ">free<" in rows[2] and "Remove" in rows[2]


def test_the_list_is_by_day_each_days_times_under_its_heading(counsellor_client, counsellor):
    """Listed one after another, "Mon 30 Nov, 16:00" ran on into "Tue 1 Dec, 10:00" across the
    columns. Each day is a heading, its times under it, in order."""
    first = next_weekday_at(10, days_ahead=7)
    for day, hour in [(1, 14), (0, 16), (0, 10), (1, 11)]:
        start = first + timedelta(days=day, hours=hour - 10)
        Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))
    html = counsellor_client.get(page(counsellor)).content.decode()
    listed = html[html.index('id="slots-h"') : html.index("</section>", html.index('id="slots-h"'))]
    days = re.findall(r"<h3[^>]*>([^<]+)</h3>", listed)
    times = [re.findall(r"(\d\d:\d\d)\N{EN DASH}", part) for part in re.split(r"<h3[^>]*>[^<]+</h3>", listed)[1:]]
    assert days == [f"{timezone.localtime(first) + timedelta(days=n):%a %-d %b}" for n in (0, 1)]
    assert times == [["10:00", "16:00"], ["11:00", "14:00"]]


def test_a_slot_asked_for_by_a_request_approved_into_another_time_is_free_again(
    admin_client, counsellor_client, counsellor, other_counsellor, make_booking
):
    """Approved (here into another counsellor's time, a handover), a request holds the slot it
    was given: the one it first asked for may be removed or blocked again, and its owner is not
    shown a booking that is no longer theirs."""
    start = next_weekday_at(10, days_ahead=6)
    asked_for = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    elsewhere = Slot.objects.create(
        counsellor=other_counsellor, start=start + timedelta(days=1), end=start + timedelta(days=1, minutes=60)
    )
    request = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=asked_for)
    html = counsellor_client.get(reverse("staff:availability", args=[counsellor.pk])).content.decode()
    assert f"asked for by {request.ack_id}" in html  # waiting for review: it still asks for it

    approved = admin_client.post(
        reverse("staff:booking_approve", args=[request.pk]),
        {"approve-slot": elsewhere.pk, "approve-version": request.version},
    )
    assert approved.status_code == 302
    html = counsellor_client.get(reverse("staff:availability", args=[counsellor.pk])).content.decode()
    assert request.ack_id not in html
    local = timezone.localtime(start)
    blocked = counsellor_client.post(
        act("blocked_add", counsellor),
        {
            "blocked-start": (local - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "blocked-end": (local + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert blocked.status_code == 302 and not Slot.objects.filter(pk=asked_for.pk).exists()


def test_blocked_period_removes_free_slots(counsellor_client, counsellor, slot):
    start = timezone.localtime(slot.start - timedelta(hours=1))
    response = counsellor_client.post(
        act("blocked_add", counsellor),
        {
            "blocked-start": start.strftime("%Y-%m-%dT%H:%M"),
            "blocked-end": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
            "blocked-reason": "Leave",
        },
    )
    assert response.status_code == 302
    assert not Slot.objects.filter(pk=slot.pk).exists()
    assert BlockedPeriod.objects.filter(counsellor=counsellor, reason="Leave").exists()


def test_blocked_period_over_active_bookings_is_refused_with_a_list(counsellor_client, counsellor, make_booking, slot):
    free = Slot.objects.create(
        counsellor=counsellor, start=slot.start + timedelta(hours=2), end=slot.end + timedelta(hours=2)
    )
    held = make_booking(Status.APPROVED, slot=slot)
    asked = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=free)
    start = timezone.localtime(slot.start - timedelta(hours=1))
    response = counsellor_client.post(
        act("blocked_add", counsellor),
        {
            "blocked-start": start.strftime("%Y-%m-%dT%H:%M"),
            "blocked-end": (start + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert held.ack_id in html and asked.ack_id in html and "Move or cancel them first" in html
    assert Slot.objects.filter(pk=free.pk).exists()
    assert not BlockedPeriod.objects.exists()
    with pytest.raises(SlotsHeld) as info:
        blocked_period_create(counsellor=counsellor, start=slot.start, end=slot.end)
    assert {b.pk for b in info.value.bookings} == {held.pk}


def test_online_room_and_clinic_details_are_set_in_the_portal(counsellor_client, admin_client, counsellor):
    response = counsellor_client.post(
        act("room", counsellor), {"room-meeting_url": "https://meet.example/new-room", "room-offers_online": "on"}
    )
    assert response.status_code == 302
    counsellor.refresh_from_db()
    assert counsellor.meeting_url == "https://meet.example/new-room" and not counsellor.offers_in_person
    response = admin_client.post(
        reverse("staff:clinic"),
        {"name": "MindSettler", "address": "12 MG Road, Kochi", "directions": "Second floor, lift on the left."},
    )
    assert response.status_code == 302
    assert Clinic.load().address == "12 MG Road, Kochi"


TEAMS_LINK = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_" + "N" * 240 + "%40thread.v2/0?context=%7b%7d"


def test_meeting_links_may_be_long_and_must_be_https(counsellor_client, counsellor, make_booking):
    """A Teams meeting's link runs past 250 characters; a link the client's Join button opens
    is https only, said next to the field."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    assert (
        counsellor_client.post(
            act("room", counsellor), {"room-meeting_url": TEAMS_LINK, "room-offers_online": "on"}
        ).status_code
        == 302
    )
    own = reverse("staff:booking_meeting_url", args=[booking.pk])
    assert counsellor_client.post(own, {"meeting-meeting_url": TEAMS_LINK}).status_code in (302, 303)
    counsellor.refresh_from_db()
    booking.refresh_from_db()
    assert counsellor.meeting_url == booking.meeting_url == TEAMS_LINK
    said = "Enter the link as a secure web address, starting with https://."
    refused = counsellor_client.post(
        act("room", counsellor), {"room-meeting_url": "http://meet.example/room", "room-offers_online": "on"}
    )
    assert refused.status_code == 400 and said in refused.content.decode()
    refused = counsellor_client.post(own, {"meeting-meeting_url": "ftp://meet.example/room"})
    assert refused.status_code == 400 and said in refused.content.decode()
    counsellor.refresh_from_db()
    assert counsellor.meeting_url == TEAMS_LINK


def test_a_way_of_meeting_an_open_booking_is_held_stays(counsellor_client, counsellor, make_booking):
    """Unticking "in person" with an in-person session still to come would leave it unmovable
    and a request unapprovable into their times: refused next to the box, on both pages."""
    from bookings.models import Mode

    make_booking(Status.CONFIRMED, counsellor=counsellor, mode=Mode.IN_PERSON)
    message = f"An open booking with {counsellor.display_name} is held in person, so this way of meeting stays."
    response = counsellor_client.post(act("room", counsellor), {"room-offers_online": "on"})
    assert response.status_code == 400 and message in response.content.decode()
    profile = {
        "display_name": counsellor.display_name,
        "languages": "English",
        "offers_online": "on",
        "is_active": "on",
    }
    response = counsellor_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), profile)
    assert response.status_code == 400 and message in response.content.decode()
    counsellor.refresh_from_db()
    assert counsellor.offers_in_person
    # Once the session is over, the box can be unticked.
    Booking.objects.update(status=Status.COMPLETED)
    assert counsellor_client.post(act("room", counsellor), {"room-offers_online": "on"}).status_code == 302
    counsellor.refresh_from_db()
    assert not counsellor.offers_in_person


def test_generate_without_weekly_hours_says_what_to_do(counsellor_client, counsellor):
    response = counsellor_client.post(act("generate", counsellor), {"generate-weeks": 4})
    assert response.status_code == 409
    html = response.content.decode()
    assert "There are no weekly hours yet, so there is nothing to generate. Add hours above" in html
    assert "Nothing new to publish" not in html
    assert not Slot.objects.filter(counsellor=counsellor).exists()


def test_a_refused_form_is_summed_up_at_the_top_and_its_address_leads_back(counsellor_client, counsellor):
    start = (timezone.localtime() + timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0)
    response = counsellor_client.post(
        act("blocked_add", counsellor),
        {"blocked-start": start.strftime("%Y-%m-%dT%H:%M"), "blocked-end": start.strftime("%Y-%m-%dT%H:%M")},
    )
    html = response.content.decode()
    summary = html[html.index('<div class="error-summary"') :]
    assert "autofocus" in summary[: summary.index(">")]
    assert html.index("There is a problem") < html.index('id="hours-h"')  # above every section
    assert 'href="#blocked-form"' in summary and 'id="blocked-form"' in html
    # The address bar now shows the form's address: opened again, it leads back to the page.
    again = counsellor_client.get(act("blocked_add", counsellor))
    assert again.status_code == 302 and again["Location"] == reverse("staff:availability", args=[counsellor.pk])


def test_a_slot_kept_for_the_records_is_explained_once_at_the_top(counsellor_client, counsellor, make_booking):
    slot = Slot.objects.create(
        counsellor=counsellor, start=next_weekday_at(15), end=next_weekday_at(15) + timedelta(minutes=50)
    )
    make_booking(Status.CANCELLED, slot=slot)
    response = counsellor_client.post(act("slot_delete", counsellor, slot.pk))
    assert response.status_code == 409
    html = response.content.decode()
    assert html.count("Earlier bookings refer to this slot") == 1
    assert 'href="#slots-h">Earlier bookings refer to this slot' in html and 'id="slots-h"' in html


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize("typed", ["0001-01-01T00:00", "9999-12-31T23:00"])
def test_a_time_typed_far_outside_the_calendar_is_refused_next_to_its_field(
    counsellor_client, counsellor, settings, zone, typed
):
    """Year 1 read in India, or year 9999 plus a session, falls outside what a datetime holds:
    each answered 500. Now the field says which years it takes, as the calendar's publishing does."""
    settings.TIME_ZONE = zone
    response = counsellor_client.post(act("slot_add", counsellor), {"slot-start": typed, "slot-minutes": 240})
    assert response.status_code == 400
    assert re.search(
        r'id="id_slot-start-error">Enter a time (in the year 2000 or later|before the year 2100)',
        response.content.decode(),
    )
    for start, end in ((typed, "2030-01-01T10:00"), ("2030-01-01T10:00", typed)):
        response = counsellor_client.post(act("blocked_add", counsellor), {"blocked-start": start, "blocked-end": end})
        assert response.status_code == 400
        field = "start" if start == typed else "end"
        assert re.search(
            rf'id="id_blocked-{field}-error">Enter a time (in the year 2000 or later|before the year 2100)',
            response.content.decode(),
        )
    assert not Slot.objects.exists() and not BlockedPeriod.objects.exists()


def test_a_one_off_slot_inside_a_blocked_period_is_refused(counsellor_client, counsellor):
    """Clients never see a slot a blocked period overlaps (selectors.slots_free), yet the page
    said "Slot published." for one added into the counsellor's leave, even when it only
    overlapped the period's start."""
    leave = next_weekday_at(10, days_ahead=4)
    blocked_period_create(counsellor=counsellor, start=leave, end=leave + timedelta(hours=4), reason="Leave")
    for start in (leave + timedelta(hours=1), leave - timedelta(minutes=30)):
        response = counsellor_client.post(
            act("slot_add", counsellor),
            {"slot-start": timezone.localtime(start).strftime("%Y-%m-%dT%H:%M"), "slot-minutes": 60},
        )
        assert response.status_code == 409
        assert "blocked period" in response.content.decode()
    assert not Slot.objects.exists()
    # Just after it, the time is free to publish.
    after = timezone.localtime(leave + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
    assert (
        counsellor_client.post(act("slot_add", counsellor), {"slot-start": after, "slot-minutes": 60}).status_code
        == 302
    )
    assert Slot.objects.count() == 1


def test_generating_over_other_slots_and_leave_says_what_it_skipped(counsellor_client, counsellor):
    """Hours 10:00-13:00 over a one-off slot at 10:30 and leave from 12:00: 10:00 and 11:00
    overlap the one-off slot, 12:00 the leave. The page said "Nothing new to publish: every
    slot from these hours already exists", which was not so, and never said what it skipped."""
    day = next_weekday_at(10, days_ahead=3)
    Slot.objects.create(counsellor=counsellor, start=day + timedelta(minutes=30), end=day + timedelta(minutes=90))
    BlockedPeriod.objects.create(counsellor=counsellor, start=day + timedelta(hours=2), end=day + timedelta(hours=3))
    WeeklyHours.objects.create(
        counsellor=counsellor, weekday=day.weekday(), start_time=time(10), end_time=time(13), session_minutes=50
    )
    response = counsellor_client.post(act("generate", counsellor), {"generate-weeks": 1}, follow=True)
    text = response.content.decode()
    assert "already exists" not in text
    assert "Nothing new to publish" in text and "Skipped 3 (already published, in the past, blocked," in text
    assert Slot.objects.count() == 1

    Slot.objects.all().delete()
    response = counsellor_client.post(act("generate", counsellor), {"generate-weeks": 1}, follow=True)
    text = response.content.decode()
    assert "Published 2 new free slots. Skipped 1 (already published, in the past, blocked," in text


def test_the_page_lists_every_upcoming_slot_in_a_constant_number_of_queries(
    counsellor_client, counsellor, make_booking
):
    """Weekly hours generate up to 12 weeks ahead and clients book up to 60 days ahead: every
    slot is listed, four weeks at a time, in queries that do not grow with them."""

    def publish(days: int) -> None:
        for offset in range(Slot.objects.count() // 3, days):
            first = next_weekday_at(10, days_ahead=1 + offset)
            Slot.objects.bulk_create(
                Slot(
                    counsellor=counsellor, start=first + timedelta(hours=h), end=first + timedelta(hours=h, minutes=50)
                )
                for h in (0, 2, 4)
            )

    def queries_for_page(**query: str) -> tuple[int, str]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            html = counsellor_client.get(page(counsellor), query).content.decode()
        return len(queries), html

    publish(2)
    queries_for_page()  # the first request of a session reads what later ones have cached
    few, _ = queries_for_page()
    publish(60)
    far = Slot.objects.order_by("-start").first()
    make_booking(status=Status.CONFIRMED, slot=Slot.objects.order_by("-start")[1])
    many, html = queries_for_page()
    assert many == few <= 9
    assert html.count("/delete/") >= 27 * 3 - 1
    while (later := re.search(r'href="\?from=([0-9-]+)#slots-h">Later', html)) is not None:
        many, html = queries_for_page(**{"from": later.group(1)})
        assert many == few
    assert reverse("staff:availability_slot_delete", args=[counsellor.pk, far.pk]) in html


def test_removing_what_is_already_gone_says_so(counsellor_client, counsellor, other_counsellor):
    """A second click, or a colleague on the same page: the message says what happened."""
    hours = WeeklyHours.objects.create(counsellor=counsellor, weekday=2, start_time=time(9), end_time=time(12))
    start = next_weekday_at(9, days_ahead=9)
    theirs = BlockedPeriod.objects.create(counsellor=other_counsellor, start=start, end=start + timedelta(hours=2))
    ours = BlockedPeriod.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=2))

    def said(url: str) -> str:
        return counsellor_client.post(url, follow=True).content.decode()

    assert "Working hours removed" in said(act("hours_delete", counsellor, hours.pk))
    assert "Those working hours had already been removed." in said(act("hours_delete", counsellor, hours.pk))
    assert "Blocked period removed" in said(act("blocked_delete", counsellor, ours.pk))
    # Another counsellor's period, by its number: not theirs to remove, and not removed.
    assert "That blocked period had already been removed." in said(act("blocked_delete", counsellor, theirs.pk))
    assert BlockedPeriod.objects.filter(pk=theirs.pk).exists()


def test_removing_a_one_off_slot_off_the_hours_grid_keeps_the_hours_own_times(counsellor_client, counsellor):
    """Hours of 09:00 to 13:00 give 09:00, 10:00, 11:00 and 12:00. A one-off slot at 10:15,
    removed, is not a time they publish: blocking it would keep 10:00 and 11:00 off for good."""
    tomorrow = timezone.localdate() + timedelta(days=1)
    day = tomorrow + timedelta(days=-tomorrow.weekday() % 7)
    WeeklyHours.objects.create(counsellor=counsellor, weekday=0, start_time=time(9), end_time=time(13))
    zone = timezone.get_current_timezone()
    odd = Slot.objects.create(
        counsellor=counsellor,
        start=datetime.combine(day, time(10, 15), tzinfo=zone),
        end=datetime.combine(day, time(11, 15), tzinfo=zone),
    )
    counsellor_client.post(act("slot_delete", counsellor, odd.pk))
    assert not BlockedPeriod.objects.exists()
    availability_generate(counsellor=counsellor, weeks=1, today=tomorrow)
    starts = sorted(timezone.localtime(s.start).time() for s in Slot.objects.filter(start__date=day))
    assert starts == [time(9), time(10), time(11), time(12)]


def test_a_counsellor_who_has_left_has_no_new_times_published(admin_client, admin_user, counsellor):
    from staff.services import staff_deactivate

    staff_deactivate(user=counsellor.user, by=admin_user)
    WeeklyHours.objects.create(counsellor=counsellor, weekday=2, start_time=time(9), end_time=time(12))
    page = admin_client.get(reverse("staff:availability", args=[counsellor.pk])).content.decode()
    assert "staff account is deactivated:</strong> nobody can book their times" in page
    assert "Show this profile to clients" not in page
    refused = admin_client.post(act("generate", counsellor), {"generate-weeks": 2})
    assert refused.status_code == 409 and "Reactivate the account on the Team page first." in refused.content.decode()
    start = next_weekday_at(10, days_ahead=5)
    one = admin_client.post(
        act("slot_add", counsellor), {"slot-start": f"{timezone.localtime(start):%Y-%m-%dT%H:%M}", "slot-minutes": 60}
    )
    assert one.status_code == 409 and not Slot.objects.filter(counsellor=counsellor).exists()


def test_removing_a_blocked_period_offers_its_kept_times_to_the_waitlist(
    counsellor_client, counsellor, make_booking, slot, session_type, django_capture_on_commit_callbacks
):
    """A slot kept for the records (a cancelled booking refers to it) inside a blocked period
    is free again once the period goes: waiting clients hear of it, as of any time freed."""
    from django.core import mail

    make_booking(Status.CANCELLED, counsellor=counsellor, slot=slot)
    blocked_period_create(counsellor=counsellor, start=slot.start, end=slot.end)
    assert Slot.objects.filter(pk=slot.pk).exists()  # kept for the records
    waiting_on(slot, session_type, "meera@example.com")
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        counsellor_client.post(act("blocked_delete", counsellor, BlockedPeriod.objects.get().pk))
    assert not BlockedPeriod.objects.exists()
    assert [m.to for m in mail.outbox] == [["meera@example.com"]]


def test_times_clients_cannot_book_say_so_when_published_and_in_the_list(counsellor_client, counsellor, session_type):
    """The shortest kind of session lasts 50 minutes: a 30-minute slot is never offered."""
    assert session_type.duration_minutes == 50
    start = timezone.localtime(next_weekday_at(10, days_ahead=6))
    response = counsellor_client.post(
        act("slot_add", counsellor), {"slot-start": f"{start:%Y-%m-%dT%H:%M}", "slot-minutes": 30}, follow=True
    )
    html = response.content.decode()
    assert "Slot published. Clients cannot book it: the shortest kind of session with" in html
    assert "lasts 50 minutes." in html and "free, shorter than every kind of session" in html


def test_a_slot_kept_inside_a_blocked_period_is_not_shown_as_free_nor_offered_for_removal(
    counsellor_client, counsellor, make_booking, slot
):
    make_booking(Status.CANCELLED, counsellor=counsellor, slot=slot)
    blocked_period_create(counsellor=counsellor, start=slot.start, end=slot.end)
    html = counsellor_client.get(reverse("staff:availability", args=[counsellor.pk])).content.decode()
    assert "in a blocked period, not offered" in html
    assert reverse("staff:availability_slot_delete", args=[counsellor.pk, slot.pk]) not in html


def test_the_slots_are_listed_four_weeks_at_a_time(counsellor_client, counsellor):
    """Twelve weeks of half-hour sessions were two thousand rows, each with its form: the list
    shows four weeks, and "Later" goes to the next slot's weeks; a slot removed there comes
    back to them."""
    soon = Slot.objects.create(
        counsellor=counsellor, start=next_weekday_at(10, days_ahead=3), end=next_weekday_at(11, days_ahead=3)
    )
    far = Slot.objects.create(
        counsellor=counsellor, start=next_weekday_at(10, days_ahead=60), end=next_weekday_at(11, days_ahead=60)
    )
    page = reverse("staff:availability", args=[counsellor.pk])
    html = counsellor_client.get(page).content.decode()
    delete_far = reverse("staff:availability_slot_delete", args=[counsellor.pk, far.pk])
    assert reverse("staff:availability_slot_delete", args=[counsellor.pk, soon.pk]) in html and delete_far not in html
    later = timezone.localtime(far.start).date().isoformat()
    assert f'href="?from={later}#slots-h"' in html
    html = counsellor_client.get(page, {"from": later}).content.decode()
    assert delete_far in html and "Earlier weeks" in html
    removed = counsellor_client.post(f"{delete_far}?from={later}")
    assert removed["Location"] == f"{page}?from={later}#slots-h"
    # A day in the past, or not a day, is today.
    assert counsellor_client.get(page, {"from": "2001-01-01"}).status_code == 200
    assert counsellor_client.get(page, {"from": "soon"}).status_code == 200
    assert counsellor_client.get(page, {"from": "9999-12-31"}).status_code == 200


@pytest.mark.parametrize("typed", ["00:00", "24:00"])
def test_weekly_hours_may_run_until_midnight(counsellor_client, counsellor, typed):
    """Evening hours of 21:00 to midnight publish 21:00, 22:00 and 23:00, the last ending as the
    next day begins; removed, that one is not published again."""
    response = counsellor_client.post(
        act("hours_add", counsellor),
        {
            "hours-weekday": 2,
            "hours-start_time": "21:00",
            "hours-end_time": typed,
            "hours-session_minutes": 50,
            "hours-buffer_minutes": 10,
        },
    )
    assert response.status_code == 302
    hours = WeeklyHours.objects.get()
    assert hours.end_time == time(0) and hours.end_label == "24:00"
    assert "21:00\N{EN DASH}24:00" in counsellor_client.get(page(counsellor)).content.decode()
    tomorrow = timezone.localdate() + timedelta(days=1)
    wednesday = tomorrow + timedelta(days=(2 - tomorrow.weekday()) % 7)
    availability_generate(counsellor=counsellor, weeks=1, today=tomorrow)
    zone = timezone.get_current_timezone()
    starts = [timezone.localtime(s.start).time() for s in Slot.objects.order_by("start")]
    assert starts == [time(21), time(22), time(23)]
    last = Slot.objects.order_by("start").last()
    assert timezone.localtime(last.end) == datetime.combine(wednesday, time(23, 50), tzinfo=zone)
    # Overlapping hours that run on to midnight are refused; hours before them are not.
    overlapping = counsellor_client.post(
        act("hours_add", counsellor),
        {
            "hours-weekday": 2,
            "hours-start_time": "23:00",
            "hours-end_time": "00:00",
            "hours-session_minutes": 50,
            "hours-buffer_minutes": 10,
        },
    )
    assert overlapping.status_code == 409 and "overlap" in overlapping.content.decode()
    earlier = counsellor_client.post(
        act("hours_add", counsellor),
        {
            "hours-weekday": 2,
            "hours-start_time": "18:00",
            "hours-end_time": "21:00",
            "hours-session_minutes": 50,
            "hours-buffer_minutes": 10,
        },
    )
    assert earlier.status_code == 302


def test_a_slot_of_hours_until_midnight_removed_stays_removed(counsellor, counsellor_client):
    """A session of 23:00 to midnight (no buffer): the hours' own, so removing it blocks it."""
    from bookings.services import weekly_hours_add

    weekly_hours_add(
        counsellor=counsellor, weekday=4, start_time=time(22), end_time=time(0), session_minutes=60, buffer_minutes=0
    )
    tomorrow = timezone.localdate() + timedelta(days=1)
    availability_generate(counsellor=counsellor, weeks=1, today=tomorrow)
    last = Slot.objects.order_by("start").last()
    assert timezone.localtime(last.start).time() == time(23) and timezone.localtime(last.end).time() == time(0)
    counsellor_client.post(act("slot_delete", counsellor, last.pk))
    assert BlockedPeriod.objects.count() == 1
    assert availability_generate(counsellor=counsellor, weeks=1, today=tomorrow)[0] == 0


def test_earlier_weeks_go_back_to_the_last_slots_before_them(counsellor_client, counsellor):
    """ "Later" jumps over empty weeks to the next slot; "Earlier" comes back to the weeks that
    end with the last slot before, not to four empty weeks in between."""
    soon = Slot.objects.create(
        counsellor=counsellor, start=next_weekday_at(10, days_ahead=3), end=next_weekday_at(11, days_ahead=3)
    )
    Slot.objects.create(
        counsellor=counsellor, start=next_weekday_at(10, days_ahead=70), end=next_weekday_at(11, days_ahead=70)
    )
    page = reverse("staff:availability", args=[counsellor.pk])
    later = re.search(r'href="\?from=([0-9-]+)#slots-h">Later', counsellor_client.get(page).content.decode()).group(1)
    html = counsellor_client.get(page, {"from": later}).content.decode()
    earlier = re.search(r'href="\?from=([0-9-]+)#slots-h">← Earlier', html).group(1)
    html = counsellor_client.get(page, {"from": earlier}).content.decode()
    assert reverse("staff:availability_slot_delete", args=[counsellor.pk, soon.pk]) in html


def hours_posted(client, counsellor, weekday: int, start: str, end: str, session: int = 50, buffer: int = 10):
    return client.post(
        act("hours_add", counsellor),
        {
            "hours-weekday": weekday,
            "hours-start_time": start,
            "hours-end_time": end,
            "hours-session_minutes": session,
            "hours-buffer_minutes": buffer,
        },
    )


def test_weekly_hours_may_run_past_midnight_into_the_next_day(counsellor_client, counsellor):
    """Online on Friday nights, 22:00 to 01:00: one row, shown ending on Saturday."""
    assert hours_posted(counsellor_client, counsellor, 4, "22:00", "01:00").status_code == 302
    hours = WeeklyHours.objects.get()
    assert (hours.weekday, hours.start_time, hours.end_time) == (4, time(22), time(1))
    html = counsellor_client.get(page(counsellor)).content.decode()
    assert "Friday 22:00\N{EN DASH}01:00 (Saturday) · 50 min sessions" in html
    assert '<span class="sr-only"> Friday 22:00\N{EN DASH}01:00 (Saturday)</span>' in html
    # Until midnight reads as before: no next day.
    assert hours_posted(counsellor_client, counsellor, 2, "21:00", "24:00").status_code == 302
    assert "Wednesday 21:00\N{EN DASH}24:00 ·" in counsellor_client.get(page(counsellor)).content.decode()


@pytest.mark.parametrize("typed", ["22:00", "00:00"])
def test_hours_that_end_when_they_start_are_refused_beside_the_end(counsellor_client, counsellor, typed):
    response = hours_posted(counsellor_client, counsellor, 4, typed, "24:00" if typed == "00:00" else typed)
    assert response.status_code == 400
    html = response.content.decode()
    said = (
        f"The hours end when they start ({typed}). For hours past midnight, give the time they end the next day, "
        "such as 01:00."
    )
    assert f'<span class="field-error" id="id_hours-end_time-error">{said} </span>' in html
    assert f'<a href="#id_hours-end_time">To: {said}</a>' in html
    end_input = re.search(r'<input[^>]*name="hours-end_time"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in end_input and "id_hours-end_time-error" in end_input
    assert not WeeklyHours.objects.exists()


@pytest.mark.parametrize(
    ("first", "second", "overlaps"),
    [
        # Friday's night runs into Saturday's early hours.
        ((4, "22:00", "01:00"), (5, "00:30", "02:00"), "Friday 22:00\N{EN DASH}01:00 (Saturday)"),
        ((5, "00:30", "02:00"), (4, "22:00", "01:00"), "Saturday 00:30\N{EN DASH}02:00"),
        # Sunday's runs into Monday's, the week round.
        ((6, "23:00", "01:00"), (0, "00:00", "02:00"), "Sunday 23:00\N{EN DASH}01:00 (Monday)"),
        ((0, "00:30", "03:00"), (6, "23:00", "01:00"), "Monday 00:30\N{EN DASH}03:00"),
        # Two nights past midnight on the same day.
        ((4, "23:00", "02:00"), (4, "22:00", "23:30"), "Friday 23:00\N{EN DASH}02:00 (Saturday)"),
    ],
)
def test_hours_past_midnight_overlap_the_next_days(counsellor_client, counsellor, first, second, overlaps):
    assert hours_posted(counsellor_client, counsellor, *first).status_code == 302
    response = hours_posted(counsellor_client, counsellor, *second)
    assert response.status_code == 409
    assert f"These hours overlap {overlaps}, already set." in response.content.decode()
    assert WeeklyHours.objects.count() == 1


def test_hours_past_midnight_and_the_next_days_back_to_back_are_both_kept(counsellor_client, counsellor):
    assert hours_posted(counsellor_client, counsellor, 6, "22:00", "01:00").status_code == 302
    assert hours_posted(counsellor_client, counsellor, 0, "01:00", "03:00").status_code == 302
    assert hours_posted(counsellor_client, counsellor, 5, "20:00", "22:00").status_code == 302
    assert hours_posted(counsellor_client, counsellor, 1, "22:00", "01:00").status_code == 302  # Tuesday's
    assert WeeklyHours.objects.count() == 4


def test_hours_past_midnight_publish_a_session_across_it_and_the_next_days_after_it(counsellor_client, counsellor):
    """Friday 22:00 to 01:00, 50-minute sessions back to back: 22:00, 22:50, and 23:40 to 00:30
    on Saturday; 00:30 would end after the hours do. Each is the hours' own: removed, it
    stays removed."""
    assert hours_posted(counsellor_client, counsellor, 4, "22:00", "01:00", buffer=0).status_code == 302
    tomorrow = timezone.localdate() + timedelta(days=1)
    friday = tomorrow + timedelta(days=(4 - tomorrow.weekday()) % 7)
    zone = timezone.get_current_timezone()
    assert availability_generate(counsellor=counsellor, weeks=1, today=tomorrow) == (3, 0)
    at = [datetime.combine(friday, time(22), tzinfo=zone) + timedelta(minutes=50 * n) for n in range(4)]
    assert list(Slot.objects.order_by("start").values_list("start", "end")) == list(pairwise(at))
    html = counsellor_client.get(page(counsellor)).content.decode()
    assert f"{timezone.localtime(at[2]):%H:%M}" == "23:40" and timezone.localtime(at[3]).date() > friday
    for slot in Slot.objects.all():
        assert reverse("staff:availability_slot_delete", args=[counsellor.pk, slot.pk]) in html
        counsellor_client.post(act("slot_delete", counsellor, slot.pk))
    assert BlockedPeriod.objects.count() == 3
    assert availability_generate(counsellor=counsellor, weeks=1, today=tomorrow)[0] == 0


def test_generating_from_the_day_after_publishes_the_nights_sessions_after_midnight(counsellor):
    """From a Saturday: Friday night's sessions from midnight on are that Saturday's, the
    rest are before the weeks asked for."""
    from bookings.services import weekly_hours_add

    weekly_hours_add(
        counsellor=counsellor, weekday=4, start_time=time(22), end_time=time(1), session_minutes=30, buffer_minutes=0
    )
    tomorrow = timezone.localdate() + timedelta(days=1)
    saturday = tomorrow + timedelta(days=(5 - tomorrow.weekday()) % 7)
    assert availability_generate(counsellor=counsellor, weeks=1, today=saturday) == (8, 0)
    starts = [timezone.localtime(s.start) for s in Slot.objects.order_by("start")]
    assert [f"{s:%a %H:%M}" for s in starts] == [
        "Sat 00:00", "Sat 00:30",
        "Fri 22:00", "Fri 22:30", "Fri 23:00", "Fri 23:30", "Sat 00:00", "Sat 00:30",
    ]  # fmt: skip
    assert starts[0].date() == saturday and starts[-1].date() == saturday + timedelta(days=7)
    assert availability_generate(counsellor=counsellor, weeks=1, today=saturday) == (0, 6)
