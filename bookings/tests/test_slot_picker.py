"""The day-by-day slot picker (bookings/slot_picker.py): its one query agrees with the
selectors' rules of what is free, and its markup (bookings/templatetags/slot_picker.py)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from bookings import selectors
from bookings.models import BlockedPeriod, Counsellor, Slot, Status
from bookings.selectors import FreeSlot
from bookings.slot_picker import free_days_and_times, slot_picker
from bookings.templatetags.slot_picker import day_buttons, time_radios
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


def _slot(counsellor: Counsellor, start: datetime, minutes: int = 60) -> Slot:
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=minutes))


@pytest.fixture
def calendar(counsellor, other_counsellor, session_type, make_booking) -> dict[str, object]:
    """A few days of slots with everything that makes a slot not free for a client."""
    other_counsellor.offers_in_person = False
    other_counsellor.save()
    away = Counsellor.objects.create(display_name="Gone Away", slug="gone", is_active=False)
    for days_ahead in (2, 3, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17):
        for hour in (9, 10, 11):
            _slot(counsellor, next_weekday_at(hour, days_ahead=days_ahead))
            _slot(other_counsellor, next_weekday_at(hour, days_ahead=days_ahead))
    held = Slot.objects.filter(start=next_weekday_at(10, days_ahead=3), counsellor=counsellor).get()
    make_booking(Status.APPROVED, slot=held)
    # Day 4: only a held slot, a short one, one of an inactive counsellor and one in leave.
    make_booking(Status.PENDING, slot=_slot(counsellor, next_weekday_at(9, days_ahead=4)))
    _slot(counsellor, next_weekday_at(10, days_ahead=4), minutes=30)
    _slot(away, next_weekday_at(11, days_ahead=4))
    _slot(other_counsellor, next_weekday_at(12, days_ahead=4))
    BlockedPeriod.objects.create(
        counsellor=other_counsellor, start=next_weekday_at(0, days_ahead=4), end=next_weekday_at(23, days_ahead=4)
    )
    _slot(counsellor, timezone.now() + timedelta(hours=2))  # too soon
    _slot(counsellor, timezone.now() + timedelta(days=200))  # beyond the horizon
    return {"day 4": timezone.localdate(next_weekday_at(9, days_ahead=4))}


def _by_the_selectors(*, day: date | None, **filters: object) -> tuple[list[date], date | None, list[FreeSlot]]:
    """The obvious way, fine at a test's size: every free slot a client may choose, grouped
    by its day in the clinic's zone."""
    # Ties in the counsellors' order broken by id, as the picker breaks them.
    free = [FreeSlot(*row) for row in selectors.slots_free_for_client(**filters).order_by(
        "start", "counsellor__sort_order", "pk"
    ).values_list("pk", "start", "counsellor__display_name")]  # fmt: skip
    days = sorted({timezone.localdate(slot.start) for slot in free})
    last_bookable = timezone.localdate(timezone.now() + timedelta(days=settings.BOOKING_HORIZON_DAYS))
    # A day past the window shows the last day with free times, the nearest to it.
    shown = day if day in days else (days[-1] if day and day > last_bookable else days[0]) if days else None
    return days, shown, [slot for slot in free if timezone.localdate(slot.start) == shown]


def _times(slots: list[FreeSlot], chosen: str) -> list[tuple[int, datetime, str, int]]:
    """The free slots of a day as the picker shows them: per start, the slot that stands for
    the time (the chosen one, else the first in the counsellors' order) and how many are free."""
    times: list[dict[str, object]] = []
    for slot in slots:
        if not times or times[-1]["start"] != slot.start:
            times.append({"start": slot.start, "slot": slot, "count": 0})
        times[-1]["count"] += 1  # type: ignore[operator]
        if str(slot.pk) == chosen:
            times[-1]["slot"] = slot
    return [(t["slot"].pk, t["start"], t["slot"].counsellor_name, t["count"]) for t in times]  # type: ignore[attr-defined,misc]


@pytest.mark.parametrize("mode", ["online", "in_person", None])
@pytest.mark.parametrize("one_counsellor", [False, True])
@pytest.mark.parametrize("which_day", ["none", "free", "not free", "far"])
@pytest.mark.parametrize("chosen", ["", "the last of the day"])
def test_one_query_finds_what_the_selectors_find(
    calendar, session_type, counsellor, mode, one_counsellor, which_day, chosen
):
    filters = {"session_type": session_type, "counsellor": counsellor if one_counsellor else None, "mode": mode}
    day = {
        "none": None,
        "free": timezone.localdate(next_weekday_at(9, days_ahead=10)),
        "not free": calendar["day 4"],
        "far": timezone.localdate() + timedelta(days=300),
    }[which_day]
    expected = _by_the_selectors(day=day, **filters)
    if chosen:
        # With both counsellors free, the second of its time: it stands for the time instead.
        chosen = str(expected[2][-1].pk)
    with CaptureQueriesContext(connection) as queries:
        days, shown, times = free_days_and_times(**filters, day=day, chosen=chosen)
    assert (days, shown) == expected[:2]
    assert [(t["slot"].pk, t["start"], t["slot"].counsellor_name, t["count"]) for t in times] == _times(
        expected[2], chosen
    )
    assert all(t["slot"].start == t["start"] for t in times)
    assert days and times and calendar["day 4"] not in days
    if not one_counsellor and mode != "in_person":
        assert {t["count"] for t in times} == {2}  # both counsellors are free at each time
    # One query when the day asked for has free times; a second reads the day shown instead.
    assert len(queries) == (1 if which_day == "free" else 2)


@pytest.mark.parametrize("raw", ["9999-12-31", "0001-01-01", "0001-01-01T00:00:00", "2026-02-30", "tomorrow"])
def test_a_day_outside_the_window_shows_the_nearest_page_never_an_error(calendar, session_type, raw):
    """Days whose midnight cannot be computed (OverflowError) or that are not dates at all."""
    picker = slot_picker(session_type=session_type, counsellor=None, mode=None, day=raw, chosen="")
    assert picker["times"] and picker["day"] in picker["days"]
    free_days = free_days_and_times(session_type=session_type, counsellor=None, mode=None, day=None)[0]
    # Before the window (or no date): the first page; after it: the last.
    expected = free_days[-1] if raw == "9999-12-31" else free_days[0]
    assert picker["day"] == expected
    assert free_days_and_times(session_type=session_type, counsellor=None, mode=None, day=date.max)[1] == free_days[-1]
    assert free_days_and_times(session_type=session_type, counsellor=None, mode=None, day=date.min)[1] == free_days[0]


def test_no_free_times_at_all(session_type):
    assert free_days_and_times(session_type=session_type, counsellor=None, mode=None, day=None) == ([], None, [])
    picker = slot_picker(session_type=session_type, counsellor=None, mode=None, day="", chosen="")
    assert picker["days"] == [] and picker["day"] is None and picker["times"] == []


def test_times_are_grouped_by_start_and_the_chosen_slot_stands_for_its_time(
    session_type, counsellor, other_counsellor, slot
):
    same_time = _slot(other_counsellor, slot.start)
    day = timezone.localdate(slot.start).isoformat()
    picker = slot_picker(session_type=session_type, counsellor=None, mode=None, day=day, chosen=str(same_time.pk))
    [time] = picker["times"]
    assert time["count"] == 2 and time["slot"].pk == same_time.pk and picker["chosen_elsewhere"] is None


# --- Markup -------------------------------------------------------------------------------


def test_time_radios_name_the_time_zone_and_who_is_free_escaped():
    start = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)
    times = [{"start": start, "slot": FreeSlot(7, start, "<b>Asha</b> & co"), "count": 1}]
    html = time_radios(times, "7", False)
    assert (
        '<input type="radio" name="slot" value="7" id="slot-7" class="size-5 shrink-0 accent-brand-700" checked>'
        in html
    )
    assert "10:00\N{NO-BREAK SPACE}IST" in html and "&lt;b&gt;Asha&lt;/b&gt; &amp; co" in html and "<b>" not in html
    times = [{"start": start, "slot": FreeSlot(7, start, "Asha"), "count": 3}]
    html = time_radios(times, "", True)
    assert "3 counsellors free" in html and 'accent-brand-700">' in html  # not checked
    with translation.override("hi"):
        assert "3 काउंसलर उपलब्ध" in time_radios(times, "", True)


def test_day_buttons_press_the_day_shown_in_the_active_language():
    days = [date(2026, 11, 29), date(2026, 11, 30)]
    action = "/book/?run=r&step=session#slot-picker"
    html = day_buttons(days, days[1], action)
    assert '<button type="submit" name="day" value="2026-11-29" id="day-2026-11-29" aria-pressed="false"' in html
    assert (
        'id="day-2026-11-30" aria-pressed="true" class="btn-small btn-primary"'
        ' formaction="/book/?run=r&amp;step=session#slot-picker">Mon 30 Nov</button>'
    ) in html
    with translation.override("hi"):
        # Whole names, as Hindi short dates elsewhere: 'सोम 30 नव' reads as clipped words.
        assert ">सोमवार 30 नवंबर</button>" in day_buttons(days, days[1], action)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements' plans are PostgreSQL's")
def test_the_plan_kept_for_every_call_reads_the_holding_bookings_through_their_partial_index(calendar):
    # PostgreSQL keeps one plan of a prepared statement for all calls only if it is about as
    # cheap as a plan made for each call's values. The statuses that hold a slot are literals
    # in the SQL (compiled.SqlLiteral), so that plan can use booking_one_per_slot's partial
    # index; as parameters, they made every call of the picker plan its query again.
    import psycopg

    from bookings.slot_picker import _free

    start, end = selectors.client_window()
    sql, params, _compiler = _free(None, None, by_counsellor=False).sql(start=start, end=end)
    numbered = iter(range(1, len(params) + 1))
    sql = re.sub("%s", lambda _: f"${next(numbered)}", sql)
    connection.ensure_connection()
    # Client-side binding: a PREPARE sent with server-side parameters would take its $1 as its own.
    with psycopg.ClientCursor(connection.connection) as cursor:
        cursor.execute("PREPARE free_slots AS " + sql)
        try:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            # Whether the plan kept for every call *can* read the partial index: with these few
            # rows, once the tables' statistics are fresh, reading a table whole costs less,
            # and the plan (rightly) does that instead (the test failed now and then so).
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN EXECUTE free_slots(" + ", ".join(["%s"] * len(params)) + ")", params)
            generic = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE free_slots")
    assert "booking_one_per_slot" in generic, generic


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's statement cache")
def test_the_picker_statement_is_one_psycopg_keeps_parsed(calendar, session_type):
    # psycopg parses a statement's placeholders again at every call unless it has at most 50
    # parameters and 4,096 characters; three parameters a day (180) cost 0.3 ms a call.
    from psycopg import _queries

    sent = []
    with connection.execute_wrapper(
        lambda execute, sql, params, *rest: sent.append((sql, params)) or execute(sql, params, *rest)
    ):
        days, _shown, _times = free_days_and_times(session_type=session_type, counsellor=None, mode=None, day=None)
    assert days
    for sql, params in sent:
        assert len(sql) <= _queries.MAX_CACHED_STATEMENT_LENGTH
        assert len(params) <= _queries.MAX_CACHED_STATEMENT_PARAMS
    assert "unnest(" in sent[0][0]
