"""The portal's date-and-time inputs in a clinic whose zone has daylight saving (TIME_ZONE
overridden: the default, Asia/Kolkata, has none). In 2027 London's clocks go forward from 01:00
to 02:00 on 28 March (01:30 never happens) and back from 02:00 to 01:00 on 31 October (01:30
happens twice, BST then GMT); New York's go forward from 02:00 to 03:00 on 14 March and back
from 02:00 to 01:00 on 7 November."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from bookings.clinic_time import SkippedTime, clinic_moment, wall_clock_moment, zone_abbreviations
from bookings.models import BlockedPeriod, LinkToken, Slot, Status, WeeklyHours
from bookings.services import availability_generate, reminders_send
from bookings.tokens import token_create
from staff.forms import clinic_time_hint

LONDON, NEW_YORK = "Europe/London", "America/New_York"
# (zone, zone's words, a skipped wall-clock time, the message refusing it)
SKIPPED = [
    (
        LONDON,
        "UK time",
        "2027-03-28T01:30",
        "01:30 on 28 March does not exist in UK time: clocks go forward from 01:00 to 02:00. Choose another time.",
    ),
    (
        NEW_YORK,
        "New York time",
        "2027-03-14T02:30",
        "02:30 on 14 March does not exist in New York time: clocks go forward from 02:00 to 03:00."
        " Choose another time.",
    ),
]
# (zone, a wall-clock time shown twice, its first occurrence in UTC)
REPEATED = [
    (LONDON, "2027-10-31T01:30", datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),  # 01:30 BST
    (NEW_YORK, "2027-11-07T01:30", datetime(2027, 11, 7, 5, 30, tzinfo=UTC)),  # 01:30 EDT
]


@pytest.fixture
def clinic_zone(settings):
    def use(zone: str, words: str = "") -> None:
        settings.TIME_ZONE = zone
        settings.TIME_ZONE_NAME = words or zone

    return use


def act(name: str, counsellor) -> str:
    return reverse(f"staff:availability_{name}", args=[counsellor.pk])


def field_error(html: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error">([^<]*)<', html)
    assert found, f"no error next to {field_id}"
    return found.group(1).replace("&#x27;", "'").strip()


# --- One reading for every wall-clock time ----------------------------------------------


def test_clinic_moment_reads_a_repeated_time_as_its_first_occurrence_and_refuses_a_skipped_one(settings):
    settings.TIME_ZONE_NAME = "UK time"
    with timezone.override(LONDON):
        assert clinic_moment(datetime(2027, 10, 31, 1, 30)) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
        assert clinic_moment(datetime(2027, 10, 31, 2, 0)) == datetime(2027, 10, 31, 2, 0, tzinfo=UTC)
        assert clinic_moment(datetime(2027, 7, 1, 9, 0)) == datetime(2027, 7, 1, 8, 0, tzinfo=UTC)
        with pytest.raises(SkippedTime) as refused:
            clinic_moment(datetime(2027, 3, 28, 1, 0))
        assert (refused.value.jump_from, refused.value.jump_to) == (
            datetime(2027, 3, 28, 1, 0),
            datetime(2027, 3, 28, 2, 0),
        )
        # Weekly hours that name a skipped time start or end when the clocks jump.
        assert wall_clock_moment(date(2027, 3, 28), time(1, 30)) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    with pytest.raises(SkippedTime):
        clinic_moment(datetime(2027, 3, 14, 2, 59), ZoneInfo(NEW_YORK))


# --- The availability page's one-off slot and blocked period ----------------------------


@pytest.mark.parametrize(("zone", "words", "typed", "message"), SKIPPED, ids=["london", "new-york"])
def test_a_slot_in_the_hour_the_clocks_skip_is_refused_saying_when_they_jump(
    counsellor_client, counsellor, clinic_zone, zone, words, typed, message
):
    """Django's field refused it as '2027-03-28 01:30:00 couldn't be interpreted in time zone
    Europe/London; it may be ambiguous or it may not exist.'"""
    clinic_zone(zone, words)
    response = counsellor_client.post(act("slot_add", counsellor), {"slot-start": typed, "slot-minutes": 50})
    assert response.status_code == 400
    assert field_error(response.content.decode(), "id_slot-start") == message
    assert not Slot.objects.exists()


@pytest.mark.parametrize(("zone", "typed", "first"), REPEATED, ids=["london", "new-york"])
def test_a_slot_in_the_hour_the_clocks_repeat_is_published_at_its_first_occurrence(
    counsellor_client, counsellor, clinic_zone, zone, typed, first
):
    """It was refused, as a skipped time was, and could not be published at all."""
    clinic_zone(zone)
    response = counsellor_client.post(act("slot_add", counsellor), {"slot-start": typed, "slot-minutes": 50})
    assert response.status_code == 302
    [slot] = Slot.objects.all()
    assert (slot.start, slot.end) == (first, first + timedelta(minutes=50))


@pytest.mark.parametrize(("zone", "words", "typed", "message"), SKIPPED, ids=["london", "new-york"])
@pytest.mark.parametrize("field", ["start", "end"])
def test_a_blocked_period_from_or_until_a_skipped_time_is_refused_next_to_that_field(
    counsellor_client, counsellor, clinic_zone, zone, words, typed, message, field
):
    clinic_zone(zone, words)
    other = "2027-03-27T09:00" if field == "end" else "2027-03-29T09:00"
    data = {"blocked-start": typed, "blocked-end": other} if field == "start" else {"blocked-start": other}
    data.setdefault("blocked-end", typed)
    response = counsellor_client.post(act("blocked_add", counsellor), data)
    assert response.status_code == 400
    assert field_error(response.content.decode(), f"id_blocked-{field}") == message
    assert not BlockedPeriod.objects.exists()


@pytest.mark.parametrize(("zone", "typed", "first"), REPEATED, ids=["london", "new-york"])
def test_a_blocked_period_from_or_until_a_repeated_time_reads_its_first_occurrence(
    counsellor_client, counsellor, clinic_zone, zone, typed, first
):
    clinic_zone(zone)
    day = typed[:10]
    response = counsellor_client.post(
        act("blocked_add", counsellor), {"blocked-start": typed, "blocked-end": f"{day}T12:00"}
    )
    assert response.status_code == 302
    response = counsellor_client.post(
        act("blocked_add", counsellor), {"blocked-start": f"{day}T00:00", "blocked-end": typed}
    )
    assert response.status_code == 302
    assert sorted(BlockedPeriod.objects.values_list("start", flat=True))[1] == first
    assert first in BlockedPeriod.objects.values_list("end", flat=True)


# --- A range selected on the calendar -----------------------------------------------------


def publish(browser, counsellor, start: str, end: str):
    data = {"counsellor": counsellor.pk, "start": start, "end": end, "session_minutes": 50, "buffer_minutes": 10}
    return browser.post(reverse("staff:calendar_publish"), data)


@pytest.mark.parametrize(("zone", "words", "typed", "message"), SKIPPED, ids=["london", "new-york"])
def test_a_calendar_range_from_a_skipped_time_without_an_offset_is_refused_saying_when_the_clocks_jump(
    counsellor_client, counsellor, clinic_zone, zone, words, typed, message
):
    clinic_zone(zone, words)
    response = publish(counsellor_client, counsellor, typed, f"{typed[:10]}T06:00")
    assert response.status_code == 400
    assert response.json()["message"] == message


@pytest.mark.parametrize(("zone", "typed", "first"), REPEATED, ids=["london", "new-york"])
def test_a_calendar_range_across_the_repeated_hour_publishes_every_real_hour(
    counsellor_client, counsellor, clinic_zone, zone, typed, first
):
    """From the first 01:30 (read without an offset) to 03:30: an hour more than the clock
    says, so three hour-long steps, then the fourth at the second 02:30 ends at 03:20."""
    clinic_zone(zone)
    response = publish(counsellor_client, counsellor, typed, f"{typed[:10]}T03:30")
    assert response.status_code == 200, response.json()
    slots = list(Slot.objects.order_by("start"))
    assert [s.start for s in slots] == [first + timedelta(hours=h) for h in range(len(slots))]
    assert all(s.end - s.start == timedelta(minutes=50) for s in slots)
    # With its offset, as the calendar sends it, the second 01:30 is the second.
    second = first + timedelta(hours=1)
    offset = timezone.localtime(second).strftime("%z")
    Slot.objects.all().delete()
    response = publish(counsellor_client, counsellor, f"{typed}:00{offset}", f"{typed[:10]}T03:30")
    assert response.status_code == 200, response.json()
    assert Slot.objects.order_by("start").first().start == second


# --- Weekly hours across a change ---------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "starts"),
    [
        # Forward: 00:00 to 04:00 is three real hours; no session in the hour that never is.
        (LONDON, date(2027, 3, 28), ["00:00 GMT", "02:00 BST", "03:00 BST"]),
        (NEW_YORK, date(2027, 3, 14), ["00:00 EST", "01:00 EST", "03:00 EDT"]),
        # Back: five real hours, the repeated hour's sessions once in each zone.
        (LONDON, date(2027, 10, 31), ["00:00 BST", "01:00 BST", "01:00 GMT", "02:00 GMT", "03:00 GMT"]),
        (NEW_YORK, date(2027, 11, 7), ["00:00 EDT", "01:00 EDT", "01:00 EST", "02:00 EST", "03:00 EST"]),
    ],
    ids=["london-forward", "new-york-forward", "london-back", "new-york-back"],
)
def test_weekly_hours_over_a_change_give_sessions_of_their_length_at_their_wall_clock_times(
    counsellor, clinic_zone, zone, day, starts
):
    clinic_zone(zone)
    WeeklyHours.objects.create(
        counsellor=counsellor,
        weekday=day.weekday(),
        start_time=time(0),
        end_time=time(4),
        session_minutes=50,
        buffer_minutes=10,
    )
    for _ in range(2):  # generating again adds nothing
        availability_generate(counsellor=counsellor, weeks=1, today=day)
    slots = list(Slot.objects.order_by("start"))
    assert [f"{timezone.localtime(s.start):%H:%M %Z}" for s in slots] == starts
    assert all(s.end - s.start == timedelta(minutes=50) for s in slots)
    assert all(a.end <= b.start for a, b in pairwise(slots))


@pytest.mark.parametrize(
    ("zone", "night", "hours", "starts"),
    [
        # Saturday 23:30 to 02:30 on Sunday: two real hours, none in the hour that never is.
        (LONDON, date(2027, 3, 27), (time(23, 30), time(2, 30)), ["23:30 GMT", "00:00 GMT", "00:30 GMT", "02:00 BST"]),
        # Until 01:30, which never happens: they end when the clocks jump, at 02:00 BST.
        (LONDON, date(2027, 3, 27), (time(23), time(1, 30)), ["23:00 GMT", "23:30 GMT", "00:00 GMT", "00:30 GMT"]),
        (NEW_YORK, date(2027, 3, 13), (time(23), time(4)), ["23:00 EST", "23:30 EST", "00:00 EST", "00:30 EST",
                                                            "01:00 EST", "01:30 EST", "03:00 EDT", "03:30 EDT"]),
        # Back: 23:00 BST to 02:00 GMT is four real hours, the repeated hour's once in each zone.
        (LONDON, date(2027, 10, 30), (time(23), time(1, 30)), ["23:00 BST", "23:30 BST", "00:00 BST", "00:30 BST",
                                                              "01:00 BST"]),
        (LONDON, date(2027, 10, 30), (time(23), time(2)), ["23:00 BST", "23:30 BST", "00:00 BST", "00:30 BST",
                                                          "01:00 BST", "01:30 BST", "01:00 GMT", "01:30 GMT"]),
    ],
    ids=["london-forward", "london-ends-in-gap", "new-york-forward", "london-back-first-0130", "london-back"],
)  # fmt: skip
def test_weekly_hours_past_midnight_over_a_change_give_each_session_once_at_its_wall_clock_time(
    counsellor, clinic_zone, zone, night, hours, starts
):
    """Read as every weekly hour is: each end in the clinic's zone on its own day, stepped in
    real time. Each session, removed, is the hours' own and stays removed."""
    from bookings.services import slot_delete

    clinic_zone(zone)
    start, end = hours
    WeeklyHours.objects.create(
        counsellor=counsellor,
        weekday=night.weekday(),
        start_time=start,
        end_time=end,
        session_minutes=30,
        buffer_minutes=0,
    )
    for _ in range(2):  # generating again adds nothing
        availability_generate(counsellor=counsellor, weeks=1, today=night)
    slots = list(Slot.objects.order_by("start"))
    assert [f"{timezone.localtime(s.start):%H:%M %Z}" for s in slots] == starts
    assert timezone.localtime(slots[0].start).date() == night
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    assert all(a.end == b.start for a, b in pairwise(slots))
    assert all(slot_delete(slot_id=s.pk) is not None for s in slots)
    assert availability_generate(counsellor=counsellor, weeks=1, today=night)[0] == 0


# --- What hints say of every date ---------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [(LONDON, "GMT/BST"), (NEW_YORK, "EST/EDT"), ("Australia/Sydney", "AEST/AEDT"), ("Asia/Kolkata", "IST")],
)
@pytest.mark.parametrize("today", [datetime(2027, 1, 15, tzinfo=UTC), datetime(2027, 7, 15, tzinfo=UTC)])
def test_a_hint_names_the_zones_abbreviations_of_the_whole_year_whatever_the_season_today(
    monkeypatch, zone, expected, today
):
    """The hint named today's: 'In London time (GMT).' next to an input for a date in July."""
    monkeypatch.setattr(timezone, "now", lambda: today)
    with timezone.override(zone):
        assert zone_abbreviations() == expected
        assert clinic_time_hint() == f"In India Standard Time ({expected})."


def test_the_availability_pages_hints_and_the_calendars_name_both_of_a_zone_with_daylight_saving(
    counsellor_client, counsellor, clinic_zone
):
    clinic_zone(LONDON, "UK time")
    WeeklyHours.objects.create(counsellor=counsellor, weekday=0, start_time=time(9), end_time=time(12))
    html = counsellor_client.get(reverse("staff:availability", args=[counsellor.pk])).content.decode()
    for field in ("hours-start_time", "hours-end_time", "slot-start", "blocked-start", "blocked-end"):
        assert f'id="id_{field}-hint">In UK time (GMT/BST).</span>' in html, field
    hours = html[html.index('id="hours-h"') :]
    assert "In UK time (GMT/BST)." in hours[: hours.index("Monday 09:00")]
    html = counsellor_client.get(reverse("staff:calendar")).content.decode()
    assert "Times are in UK time (GMT/BST), whatever your device's time zone." in html


# --- Times shown around a change ----------------------------------------------------------


def test_sessions_in_the_repeated_hour_show_their_own_dates_zone_everywhere(
    admin_client, client, clinic_zone, counsellor, make_booking, oncommit
):
    """Two confirmed sessions at 01:30 on the night the clocks go back, and one in winter and
    one in summer: the client's booking page, the reminder, the staff list and the booking's
    page each name each session's own zone (already so; this keeps it)."""
    clinic_zone(LONDON, "UK time")
    expected = {
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC): "01:30 BST",
        datetime(2027, 10, 31, 1, 30, tzinfo=UTC): "01:30 GMT",
        datetime(2027, 1, 12, 9, 0, tzinfo=UTC): "09:00 GMT",
        datetime(2027, 7, 13, 9, 0, tzinfo=UTC): "10:00 BST",
    }
    bookings = {}
    for start, shown in expected.items():
        slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))
        bookings[shown] = make_booking(Status.CONFIRMED, slot=slot)
    # The list and the booking's page give each session's span, its zone named once at the
    # end, or each time's own across the change.
    spans = {
        "01:30 BST": "Sun 31 Oct, 01:30 BST\N{EN DASH}01:20 GMT",
        "01:30 GMT": "Sun 31 Oct, 01:30\N{EN DASH}02:20 GMT",
        "09:00 GMT": "Tue 12 Jan, 09:00\N{EN DASH}09:50 GMT",
        "10:00 BST": "Tue 13 Jul, 10:00\N{EN DASH}10:50 BST",
    }
    # (The list keeps the day and the times each on one line: its cells are read as text.)
    # Pages keep each zone with its time, by a no-break space.
    listing = strip_tags(admin_client.get(reverse("staff:booking_list") + "?status=confirmed").content.decode())
    for shown, booking in bookings.items():
        span, time = (
            text.replace(" BST", "\N{NO-BREAK SPACE}BST").replace(" GMT", "\N{NO-BREAK SPACE}GMT")
            for text in (spans[shown], shown)
        )
        assert span in listing
        assert span in admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
        token = token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=30))
        assert time in client.get(f"/bookings/{token}/").content.decode()
    with oncommit():
        reminders_send(now=datetime(2027, 10, 30, 2, 0, tzinfo=UTC))
    texts = [message.subject + message.body for message in mail.outbox]
    assert sum("01:30 BST" in text for text in texts) >= 1 and sum("01:30 GMT" in text for text in texts) >= 1
