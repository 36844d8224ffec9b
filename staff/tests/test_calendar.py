"""The calendar page and its JSON feed; publishing free slots by selecting a range."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings.models import ACK_ALPHABET, BlockedPeriod, Booking, Mode, Slot, Status
from conftest import next_weekday_at
from staff.tests.conftest import HX, seen_just_now


def feed(client, start, end, **extra):
    return client.get(reverse("staff:calendar_feed"), {"start": start.isoformat(), "end": end.isoformat(), **extra})


def sessions(events) -> dict[str, dict]:
    """The booked and cancelled sessions among `events`, by the booking page they open."""
    return {e["url"]: e for e in events if e.get("display") != "background"}


def free_starts(events) -> set[datetime]:
    """When the free slots (background events) among `events` start."""
    return {datetime.fromisoformat(e["start"]) for e in events if e.get("display") == "background"}


def detail(booking) -> str:
    return reverse("staff:booking_detail", args=[booking.pk])


def test_calendar_page_loads_fullcalendar_under_the_csp_nonce(admin_client, counsellor):
    response = admin_client.get(reverse("staff:calendar"))
    html = response.content.decode()
    csp = response["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert "unsafe-inline" not in csp
    # FullCalendar reads its <style> nonce from this meta tag.
    assert f'<meta name="csp-nonce" content="{nonce}">' in html
    assert f'<script nonce="{nonce}" src="/static/vendor/fullcalendar/index.global.min.js">' in html
    assert f'<script nonce="{nonce}" src="/static/js/calendar.js">' in html
    assert 'data-feed-url="/staff/calendar/feed/"' in html
    assert "<noscript>" in html  # the list view is the fallback


def test_the_booking_panel_is_a_labelled_region_not_a_live_one(admin_client):
    """Opening a session moves focus into the panel, which reads its start; a live region
    around the whole booking read all of it out as well, a second time, on every open."""
    html = admin_client.get(reverse("staff:calendar")).content.decode()
    panel = re.search(r'<aside id="booking-panel"[^>]*>', html).group(0)
    assert 'aria-label="Booking details"' in panel
    assert "aria-live" not in panel


def test_fullcalendar_is_loaded_only_on_the_calendar_page(admin_client):
    assert "fullcalendar" not in admin_client.get(reverse("staff:dashboard")).content.decode()


def test_vendored_bundle_ships_with_its_licence():
    from django.conf import settings

    base = settings.BASE_DIR / "static" / "vendor" / "fullcalendar"
    assert (base / "index.global.min.js").stat().st_size > 100_000
    assert "MIT" in (base / "LICENSE.md").read_text()
    # FullCalendar looks for this meta tag to give its injected styles our nonce.
    assert 'meta[name="csp-nonce"]' in (base / "index.global.min.js").read_text()


def test_feed_shows_sessions_in_range_with_initials_and_free_slots_as_background(
    admin_client, counsellor, make_booking
):
    day = next_weekday_at(9, days_ahead=4)
    held = Slot.objects.create(counsellor=counsellor, start=day, end=day + timedelta(hours=1))
    free = Slot.objects.create(counsellor=counsellor, start=day + timedelta(hours=2), end=day + timedelta(hours=3))
    far = Slot.objects.create(
        counsellor=counsellor, start=day + timedelta(days=40), end=day + timedelta(days=40, hours=1)
    )
    booking = make_booking(
        Status.CONFIRMED, slot=held, client_name="Priya Sharma", concerns="Something private", email="priya@example.com"
    )
    cancelled_slot = Slot.objects.create(
        counsellor=counsellor, start=day + timedelta(hours=4), end=day + timedelta(hours=5)
    )
    make_booking(Status.CANCELLED, slot=cancelled_slot)

    response = feed(admin_client, day - timedelta(days=1), day + timedelta(days=6))
    assert response.status_code == 200
    events = response.json()
    # Only what the calendar uses: the client's initials, never their name, contact or words.
    session = sessions(events)[detail(booking)]
    assert datetime.fromisoformat(session.pop("start")) == held.start
    # Until the session ends, its start plus its type's length (the slot is an hour).
    assert datetime.fromisoformat(session.pop("end")) == held.start + booking.session_type.duration < held.end
    assert session == {
        "title": f"{booking.ack_id} · PS",
        "url": detail(booking),
        "color": "#047857",
        "startEditable": True,
        "extendedProps": {
            "status": "Confirmed",
            "counsellor": "Asha Menon",
            "version": booking.version,
            "dropUrl": reverse("staff:booking_drop", args=[booking.pk]),
        },
    }
    # A free slot is a background event with nothing but its times.
    assert all(set(e) == {"start", "end", "display"} for e in events if e.get("display") == "background")
    # A cancelled booking frees its slot again.
    assert free_starts(events) == {free.start, cancelled_slot.start}
    assert far.start not in free_starts(events)
    body = response.content.decode()
    for secret in ("Priya", "Sharma", "priya@example.com", "Something private"):
        assert secret not in body


def test_feed_escapes_stored_markup(admin_client, counsellor, make_booking):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="<script>alert(1)</script> Zed")
    response = feed(admin_client, booking.slot.start - timedelta(hours=1), booking.slot.start + timedelta(hours=2))
    assert "<" not in response.content.decode()
    assert json.loads(response.content)[0]["title"] == f"{booking.ack_id} · Z"


def test_feed_writes_stored_text_as_json_strings(admin_client, counsellor, make_booking):
    """The feed writes its JSON itself: quotes, backslashes, line breaks, markup and letters
    beyond ASCII in stored names come out as JSON reads them back, and never as markup."""
    counsellor.display_name = 'Dr "Asha" <b>\\ Menon</b> & co\nनई'
    counsellor.save()
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="émile zola")
    response = feed(admin_client, booking.slot.start - timedelta(hours=1), booking.slot.start + timedelta(hours=2))
    body = response.content.decode()
    assert not {"<", ">", "&"} & set(body) and body.isascii()
    (event,) = sessions(response.json()).values()
    assert event["title"] == f"{booking.ack_id} · ÉZ"
    assert event["extendedProps"]["counsellor"] == counsellor.display_name


def test_feed_filters_by_counsellor_for_administrators(admin_client, counsellor, other_counsellor, make_booking):
    mine = make_booking(Status.APPROVED, counsellor=counsellor)
    theirs = make_booking(Status.APPROVED, counsellor=other_counsellor)
    start = min(mine.slot.start, theirs.slot.start) - timedelta(days=1)
    end = start + timedelta(days=14)
    shown = sessions(feed(admin_client, start, end).json())
    assert {detail(mine), detail(theirs)} <= shown.keys()
    shown = sessions(feed(admin_client, start, end, counsellor=other_counsellor.pk).json())
    assert detail(theirs) in shown and detail(mine) not in shown


def test_free_slots_inside_a_blocked_period_are_not_shown(admin_client, counsellor, make_booking):
    day = next_weekday_at(9, days_ahead=6)
    slot = Slot.objects.create(counsellor=counsellor, start=day, end=day + timedelta(hours=1))
    make_booking(Status.CANCELLED, slot=slot)  # a past booking keeps the slot in the records
    Slot.objects.create(counsellor=counsellor, start=day + timedelta(hours=1), end=day + timedelta(hours=2))  # empty
    after = Slot.objects.create(counsellor=counsellor, start=day + timedelta(hours=3), end=day + timedelta(hours=4))
    BlockedPeriod.objects.create(counsellor=counsellor, start=day - timedelta(hours=1), end=day + timedelta(hours=3))
    events = feed(admin_client, day - timedelta(days=1), day + timedelta(days=1)).json()
    assert free_starts(events) == {after.start}  # neither the cancelled booking's slot nor the empty one
    assert list(sessions(events)) == [reverse("staff:booking_detail", args=[slot.bookings.get().pk])]


def test_a_leavers_free_times_are_not_shown_or_counted_as_free_but_their_sessions_are(
    admin_client, counsellor, other_counsellor, make_booking
):
    """Nobody can take them: staff are refused a deactivated counsellor's times, clients never
    see them. Shown as free, the calendar overstated what the clinic can offer."""
    from staff.models import User

    day = next_weekday_at(9, days_ahead=4)
    free = Slot.objects.create(counsellor=counsellor, start=day, end=day + timedelta(minutes=50))
    theirs = Slot.objects.create(counsellor=other_counsellor, start=day, end=day + timedelta(minutes=50))
    later = day + timedelta(hours=2)
    session = make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(hours=1))
    )
    User.objects.filter(pk=counsellor.user_id).update(is_active=False)

    events = feed(admin_client, day - timedelta(days=1), day + timedelta(days=1)).json()
    assert free_starts(events) == {theirs.start} and free.start == theirs.start
    assert reverse("staff:booking_detail", args=[session.pk]) in sessions(events)
    month = feed(admin_client, day - timedelta(days=10), day + timedelta(days=32), summary="month").json()
    assert [e["extendedProps"]["summary"] for e in month if "ms-day-free" in e["classNames"]] == [
        "1 free slot, of 1 counsellor"
    ]


def test_the_month_of_every_counsellor_comes_as_each_days_totals(
    admin_client, counsellor, other_counsellor, make_booking
):
    """The Month view of all counsellors (summary=month): each day's sessions by status, free
    slots and of how many counsellors, cancelled bookings; counts only, no ID or name."""
    day = next_weekday_at(9, days_ahead=4)
    slot = lambda who, hours: Slot.objects.create(  # noqa: E731
        counsellor=who, start=day + timedelta(hours=hours), end=day + timedelta(hours=hours, minutes=50)
    )
    make_booking(Status.CONFIRMED, slot=slot(counsellor, 0), client_name="Priya Sharma", concerns="Private words")
    make_booking(Status.APPROVED, slot=slot(other_counsellor, 0))
    make_booking(Status.CANCELLED, slot=slot(counsellor, 1))  # its slot is free again
    rebooked = slot(other_counsellor, 1)
    make_booking(Status.CANCELLED, slot=rebooked)
    make_booking(Status.CONFIRMED, slot=rebooked)  # and booked again: not free
    slot(other_counsellor, 2)
    blocked = slot(counsellor, 3)  # free, but in a blocked period: not offered
    BlockedPeriod.objects.create(counsellor=counsellor, start=blocked.start, end=blocked.end)
    next_day = day + timedelta(days=1)
    Slot.objects.create(counsellor=counsellor, start=next_day, end=next_day + timedelta(minutes=50))

    start = day - timedelta(days=10)
    response = feed(admin_client, start, start + timedelta(days=42), summary="month")
    assert response.status_code == 200
    date, later = timezone.localdate(day).isoformat(), timezone.localdate(next_day).isoformat()
    assert response.json() == [
        {
            "title": "3 sessions",
            "start": date,
            "allDay": True,
            "classNames": ["ms-day", "ms-day-sessions"],
            "extendedProps": {"rank": 1, "summary": "3 sessions: 1 approved, 2 confirmed"},
        },
        {
            "title": "2 free slots",
            "start": date,
            "allDay": True,
            "classNames": ["ms-day", "ms-day-free"],
            "extendedProps": {"rank": 2, "summary": "2 free slots, of 2 counsellors"},
        },
        {
            "title": "2 cancelled",
            "start": date,
            "allDay": True,
            "classNames": ["ms-day", "ms-day-cancelled"],
            "extendedProps": {"rank": 3, "summary": "2 cancelled bookings"},
        },
        {
            "title": "1 free slot",
            "start": later,
            "allDay": True,
            "classNames": ["ms-day", "ms-day-free"],
            "extendedProps": {"rank": 1, "summary": "1 free slot, of 1 counsellor"},
        },
    ]
    body = response.content.decode()
    assert "MS-" not in body and "Priya" not in body and "PS" not in body and "Private" not in body

    # One counsellor's month, a week of everyone's, or no summary asked for: every session.
    month, week = (start, start + timedelta(days=42)), (day - timedelta(days=3), day + timedelta(days=4))
    for (first, last), extra in (
        (month, {"summary": "month", "counsellor": counsellor.pk}),
        (week, {"summary": "month"}),
        (month, {}),
    ):
        events = feed(admin_client, first, last, **extra).json()
        assert sessions(events) and not any(e.get("allDay") for e in events), extra


def test_a_days_totals_are_of_the_clinics_date(admin_client, counsellor, make_booking, settings):
    """A session at 00:30 in the clinic's zone is the day before in UTC: it counts on its
    clinic date (Kolkata is 5:30 ahead, so the date turns at 18:30 UTC)."""
    settings.TIME_ZONE = "Asia/Kolkata"
    with timezone.override("Asia/Kolkata"):
        day = next_weekday_at(0, days_ahead=5) + timedelta(minutes=30)
        make_booking(
            Status.CONFIRMED,
            slot=Slot.objects.create(counsellor=counsellor, start=day, end=day + timedelta(minutes=50)),
        )
        events = feed(admin_client, day - timedelta(days=20), day + timedelta(days=20), summary="month").json()
    assert [(e["title"], e["start"]) for e in events] == [
        ("1 session", timezone.localdate(day, timezone.get_fixed_timezone(330)).isoformat())
    ]


def test_each_days_totals_across_a_change_of_clocks_for_an_administrator_and_a_counsellor(
    admin_client, counsellor_client, counsellor, other_counsellor, make_booking, settings
):
    """Each day's totals on a varied clinic (held slots with cancelled bookings, slots free
    again after a cancellation, blocked periods over free, cancelled and held slots), in
    London across the end of summer time (01:00 UTC on 25 October 2026: a day of 25 hours);
    every counsellor's for an administrator, their own for a counsellor."""
    settings.TIME_ZONE = "Europe/London"
    at = lambda day, hour, minute=0: datetime(2026, 10, day, hour, minute, tzinfo=UTC)  # noqa: E731

    def slot(who, start, *bookings):
        made = Slot.objects.create(counsellor=who, start=start, end=start + timedelta(minutes=50))
        for status in bookings:  # in order: cancelled ones before the one holding it
            make_booking(status, slot=made)
        return made

    asha, rohan = counsellor, other_counsellor
    # Saturday 24 October (summer time, UTC+1).
    slot(asha, at(23, 23, 30), Status.CONFIRMED)  # 00:30 on the 24th in London
    slot(rohan, at(24, 9), Status.CANCELLED, Status.CONFIRMED)  # cancelled, then booked again
    slot(rohan, at(24, 10), Status.CANCELLED, Status.CANCELLED)  # free again
    slot(asha, at(24, 11))  # free
    slot(asha, at(24, 12))  # in a blocked period: not free
    slot(asha, at(24, 13), Status.CANCELLED)  # cancelled, in the blocked period: not free
    slot(asha, at(24, 14), Status.COMPLETED)  # held in the blocked period: still a session
    BlockedPeriod.objects.create(counsellor=asha, start=at(24, 11, 50), end=at(24, 15))
    # Sunday 25 October: 01:00 to 02:00 in London comes twice.
    slot(asha, at(24, 23, 30), Status.APPROVED)  # 00:30, summer time
    slot(asha, at(25, 0, 30), Status.PAYMENT_PENDING)  # 01:30, summer time
    slot(asha, at(25, 1, 30), Status.NO_SHOW)  # 01:30 again, winter time
    slot(asha, at(25, 10))
    slot(rohan, at(25, 10))
    slot(rohan, at(25, 23, 30))  # 23:30, winter time (UTC)
    # Monday 26 October (winter time).
    slot(rohan, at(26, 23, 30), Status.CANCELLED)  # free again
    slot(asha, at(26, 9))  # half of it blocked: not free
    BlockedPeriod.objects.create(counsellor=asha, start=at(26, 9, 30), end=at(26, 12))

    def totals(browser):
        response = feed(browser, at(20, 0), at(31, 0), summary="month")
        assert response.status_code == 200
        return [(e["start"], e["extendedProps"]["summary"]) for e in response.json()]

    assert totals(admin_client) == [
        ("2026-10-24", "3 sessions: 2 confirmed, 1 completed"),
        ("2026-10-24", "2 free slots, of 2 counsellors"),
        ("2026-10-24", "4 cancelled bookings"),
        ("2026-10-25", "3 sessions: 1 approved, 1 payment pending, 1 no-show"),
        ("2026-10-25", "3 free slots, of 2 counsellors"),
        ("2026-10-26", "1 free slot, of 1 counsellor"),
        ("2026-10-26", "1 cancelled booking"),
    ]
    assert totals(counsellor_client) == [
        ("2026-10-24", "2 sessions: 1 confirmed, 1 completed"),
        ("2026-10-24", "1 free slot, of 1 counsellor"),
        ("2026-10-24", "1 cancelled booking"),
        ("2026-10-25", "3 sessions: 1 approved, 1 payment pending, 1 no-show"),
        ("2026-10-25", "1 free slot, of 1 counsellor"),
    ]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"start": "yesterday", "end": "today"},
        {"start": "2026-01-01", "end": "2026-06-01"},
        # Well formed but impossible, or past datetime's range: refused, never a 500.
        {"start": "2024-02-30T00:00:00", "end": "2024-03-02T00:00:00"},
        {"start": "2026-01-01T00:00:00+99:00", "end": "2026-01-02T00:00:00"},
        {"start": "0001-01-01T00:00:00", "end": "0001-01-02T00:00:00"},
        {"start": "9999-12-31T00:00:00", "end": "9999-12-31T23:59:59-05:00"},
    ],
)
def test_feed_needs_a_sensible_range(admin_client, params):
    assert admin_client.get(reverse("staff:calendar_feed"), params).status_code == 400


def _ack_ids():
    for combo in itertools.product(ACK_ALPHABET, repeat=6):
        yield "MS-" + "".join(combo)


def test_feed_answers_a_month_in_constant_queries_with_ten_thousand_bookings(
    admin_client, counsellor, other_counsellor, session_type, django_assert_max_num_queries
):
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=200)
    slots = []
    for i in range(10_000):
        s = start + timedelta(hours=i)
        slots.append(Slot(counsellor=counsellor if i % 2 else other_counsellor, start=s, end=s + timedelta(minutes=50)))
    Slot.objects.bulk_create(slots, batch_size=2000)
    slots = list(Slot.objects.order_by("start"))
    acks = _ack_ids()
    statuses = [Status.CONFIRMED, Status.COMPLETED, Status.APPROVED, Status.CANCELLED]
    Booking.objects.bulk_create(
        [
            Booking(
                ack_id=next(acks),
                status=statuses[i % 4],
                slot=slot,
                counsellor_id=slot.counsellor_id,
                client_name=f"Client {i}",
                email=f"c{i}@example.com"
                if statuses[i % 4] in (Status.COMPLETED, Status.CANCELLED)
                else f"a{i}@example.com",
                session_type=session_type,
                mode=Mode.ONLINE,
                amount=100,
                approved_at=timezone.now(),
                payment_due_at=timezone.now() + timedelta(days=2),
            )
            for i, slot in enumerate(slots)
        ],
        batch_size=2000,
    )
    assert Booking.objects.count() == 10_000
    month_start = start + timedelta(days=100)
    admin_client.get(reverse("staff:dashboard"))  # the session's first request does its one-off work
    seen_just_now(admin_client)
    with django_assert_max_num_queries(3):
        response = feed(admin_client, month_start, month_start + timedelta(days=31))
    assert response.status_code == 200
    events = response.json()
    # One event per slot in range (24 a day), each once, plus the cancelled bookings that
    # used to be in those slots (shown as cancelled; their slots show as free).
    slot_events = [e for e in events if e.get("classNames") != ["ms-cancelled"]]
    assert 24 * 31 - 1 <= len(slot_events) <= 24 * 31 + 1
    cancelled = [e for e in events if e.get("classNames") == ["ms-cancelled"]]
    assert cancelled and all(e["extendedProps"]["status"] == "Cancelled" for e in cancelled)
    assert len(sessions(events)) + len(free_starts(events)) == len(events)  # each once


def test_selecting_a_range_publishes_free_slots_split_by_session_and_buffer(counsellor_client, counsellor):
    day = next_weekday_at(10, days_ahead=5)
    Slot.objects.create(counsellor=counsellor, start=day + timedelta(hours=2), end=day + timedelta(hours=3))
    data = {
        "counsellor": counsellor.pk,
        "start": day.isoformat(),
        "end": (day + timedelta(hours=4)).isoformat(),
        "session_minutes": 50,
        "buffer_minutes": 10,
    }
    response = counsellor_client.post(reverse("staff:calendar_publish"), data)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "bookingChanged"
    body = response.json()
    # 10:00, 11:00, (12:00 overlaps the existing slot), 13:00
    assert body["created"] == 3 and body["skipped"] == 1
    starts = sorted(timezone.localtime(s.start).strftime("%H:%M") for s in Slot.objects.filter(counsellor=counsellor))
    assert starts == ["10:00", "11:00", "12:00", "13:00"]
    assert all(s.duration == timedelta(minutes=50) for s in Slot.objects.exclude(start=day + timedelta(hours=2)))
    again = counsellor_client.post(reverse("staff:calendar_publish"), data).json()
    assert again["created"] == 0 and Slot.objects.count() == 4


def test_a_counsellor_cannot_publish_for_another(counsellor_client, other_counsellor):
    day = next_weekday_at(10, days_ahead=5)
    response = counsellor_client.post(
        reverse("staff:calendar_publish"),
        {
            "counsellor": other_counsellor.pk,
            "start": day.isoformat(),
            "end": (day + timedelta(hours=2)).isoformat(),
            "session_minutes": 50,
            "buffer_minutes": 10,
        },
    )
    assert response.status_code == 400
    assert not Slot.objects.filter(counsellor=other_counsellor).exists()


def test_clicking_an_event_loads_the_booking_into_the_side_panel(admin_client, counsellor, make_booking):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    # calendar.js swaps it into #booking-panel, so htmx names that target.
    response = admin_client.get(
        reverse("staff:booking_detail", args=[booking.pk]), **HX, HTTP_HX_TARGET="booking-panel"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="booking-detail"' in html and "<html" not in html
    assert "Open full page" in html


def test_cancelled_bookings_show_as_cancelled_only_to_those_who_may_see_them(
    login, counsellor_client, other_counsellor_user, other_counsellor, make_booking, slot
):
    booking = make_booking(Status.CANCELLED, slot=slot)
    start, end = slot.start - timedelta(days=1), slot.start + timedelta(days=1)
    events = feed(counsellor_client, start, end).json()
    cancelled = [e for e in events if e.get("url") == detail(booking)]
    assert len(cancelled) == 1 and cancelled[0]["extendedProps"]["status"] == "Cancelled"
    assert cancelled[0]["classNames"] == ["ms-cancelled"]
    assert "startEditable" not in cancelled[0]  # not draggable: the calendar's default
    # The slot is free again, and shows so.
    assert slot.start in free_starts(events)
    other = login(other_counsellor_user)
    assert detail(booking) not in sessions(feed(other, start, end).json())


def test_a_slot_shows_every_booking_in_it_and_is_free_only_while_none_holds_it(admin_client, counsellor, make_booking):
    day = next_weekday_at(9, days_ahead=4)
    rebooked = Slot.objects.create(counsellor=counsellor, start=day, end=day + timedelta(hours=1))
    freed = Slot.objects.create(counsellor=counsellor, start=day + timedelta(hours=2), end=day + timedelta(hours=3))
    called_off = make_booking(Status.CANCELLED, slot=rebooked)
    holding = make_booking(Status.CONFIRMED, slot=rebooked)
    twice = [make_booking(Status.CANCELLED, slot=freed) for _ in range(2)]
    events = feed(admin_client, day - timedelta(days=1), day + timedelta(days=1)).json()
    shown = sessions(events)
    assert shown.keys() == {detail(b) for b in (called_off, holding, *twice)}
    assert [shown[detail(b)].get("classNames") for b in (called_off, holding)] == [["ms-cancelled"], None]
    # The freed slot shows as free once, however many bookings in it were cancelled.
    free = [e for e in events if e.get("display") == "background"]
    assert [datetime.fromisoformat(e["start"]) for e in free] == [freed.start]


@pytest.mark.parametrize("counsellor_id", ["²", "9" * 30])
def test_a_counsellor_filter_that_is_no_id_shows_every_counsellor(admin_client, counsellor, counsellor_id):
    start = timezone.now()
    response = feed(admin_client, start, start + timedelta(days=7), counsellor=counsellor_id)
    assert response.status_code == 200


# --- The clinic's time zone, and what the calendar may publish ------------------------------


def publish(client, start, end, counsellor, *, session_minutes=50, buffer_minutes=10, as_text=None):
    """POST a selection as calendar.js does: ISO 8601 with an offset (or `as_text(datetime)`)."""
    write = as_text or (lambda moment: moment.isoformat())
    return client.post(
        reverse("staff:calendar_publish"),
        {
            "counsellor": counsellor.pk,
            "start": write(start),
            "end": write(end),
            "session_minutes": session_minutes,
            "buffer_minutes": buffer_minutes,
        },
    )


def test_calendar_page_names_the_clinic_time_zone_for_the_script(admin_client, settings):
    assert settings.TIME_ZONE == "Asia/Kolkata"
    html = admin_client.get(reverse("staff:calendar")).content.decode()
    assert 'data-time-zone="Asia/Kolkata"' in html
    assert "Times are in India Standard Time (IST)" in html


class _ShownWithoutScript(HTMLParser):
    """The text and ids of a page as a browser without JavaScript shows them: <noscript>
    content parsed as markup, elements with `hidden` (and their children) left out."""

    VOID = {"meta", "link", "input", "br", "img", "hr", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []  # per open element: hidden?
        self.text: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        hidden = any(self.stack) or any(name == "hidden" for name, _ in attrs) or tag in ("script", "style")
        if not hidden:
            self.ids.update(value for name, value in attrs if name == "id" and value)
        if tag not in self.VOID:
            self.stack.append(hidden)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not any(self.stack):
            self.text.append(data)


def test_without_javascript_the_page_shows_only_the_notice_and_its_links(admin_client, counsellor):
    html = admin_client.get(reverse("staff:calendar")).content.decode()
    shown = _ShownWithoutScript()
    shown.feed(html.split('<main id="main"')[1].split("</main>")[0])
    text = " ".join(" ".join(shown.text).split())
    assert "The calendar needs JavaScript." in text
    noscript = html.split("<noscript>")[1].split("</noscript>")[0]
    assert f'href="{reverse("staff:booking_list")}?status=active&amp;sort=session"' in noscript
    assert f'href="{reverse("staff:availability_index")}"' in noscript
    # The controls, the instructions and the calendar wait for calendar.js to show them.
    for words in ("Counsellor", "Session length", "Buffer", "drag across", "Select a session", "Times are in"):
        assert words not in text
    assert not shown.ids & {"calendar-controls", "cal-counsellor", "calendar", "booking-panel", "calendar-zone"}
    # With the script, they are all there to show.
    for part in ('id="cal-counsellor"', 'id="calendar"', "drag across empty time", "Select a session to see"):
        assert part in html


@pytest.mark.parametrize(
    ("start_hour", "end", "why"),
    [
        # A day clicked, or days dragged across, in the Month view: all-day ranges.
        (0, lambda day: day + timedelta(days=1), "within one day"),
        (0, lambda day: day + timedelta(days=3), "within one day"),
        # Dragged across days in the Week view: the nights in between would be published too.
        (10, lambda day: day + timedelta(days=2, hours=2), "within one day"),
        (10, lambda day: day - timedelta(hours=1), "must end after it starts"),
        (10, lambda day: day, "must end after it starts"),
    ],
    ids=["a day clicked in Month", "days dragged in Month", "days dragged in Week", "backwards", "empty"],
)
def test_publishing_refuses_a_range_that_is_not_within_one_clinic_day(
    counsellor_client, counsellor, start_hour, end, why
):
    day = next_weekday_at(start_hour, days_ahead=5)
    response = publish(counsellor_client, day, end(day), counsellor)
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and why in body["message"]
    assert not Slot.objects.exists()


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Europe/London"])
def test_a_selection_down_to_midnight_publishes_the_evening(counsellor_client, counsellor, settings, zone):
    """Dragged in the Week view from 22:00 to the bottom of the day, a selection ends at the next
    midnight: still one evening, but it was refused as not within one day."""
    settings.TIME_ZONE = zone
    day = next_weekday_at(22, days_ahead=5)
    response = publish(counsellor_client, day, day + timedelta(hours=2), counsellor)
    assert response.status_code == 200, response.json()
    starts = [f"{timezone.localtime(s.start):%H:%M}" for s in Slot.objects.filter(counsellor=counsellor)]
    assert starts == ["22:00", "23:00"]


def test_the_one_day_refusal_names_the_clinic_zone_and_the_way_to_publish_many_days(counsellor_client, counsellor):
    day = next_weekday_at(0, days_ahead=5)
    message = publish(counsellor_client, day, day + timedelta(days=1), counsellor).json()["message"]
    assert message == (
        "Select a time within one day (IST), for example 10:00 to 13:00, in the Week or Day view. "
        "To publish many days, use the weekly hours on the availability page."
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00+05:00", "0001-01-01T02:00:00+05:00"),
        ("9999-12-31T20:00:00-05:00", "9999-12-31T23:00:00-05:00"),
        # Backwards, the far end at the edge: both ends are checked, not only the first and last.
        ("2026-12-01T10:00:00+05:30", "0001-01-01T00:00:00+14:00"),
        ("9999-12-31T23:59:00-14:00", "2026-12-01T10:00:00+05:30"),
    ],
    ids=["year 1", "year 9999", "backwards to year 1", "backwards from year 9999"],
)
def test_publishing_refuses_a_time_at_the_edge_of_the_calendar_rather_than_failing(
    counsellor_client, counsellor, start, end
):
    """Read in the clinic's zone, these moments fall outside what a datetime can hold: a
    calm 400, never a 500."""
    response = publish(counsellor_client, start, end, counsellor, as_text=str)
    assert response.status_code == 400
    assert response.json() == {"ok": False, "message": "Select a time between the years 2000 and 2099."}
    assert not Slot.objects.exists()


def test_publishing_refuses_a_range_shorter_than_one_session(counsellor_client, counsellor):
    day = next_weekday_at(10, days_ahead=5)
    response = publish(counsellor_client, day, day + timedelta(minutes=30), counsellor, session_minutes=50)
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "message": "The selected time (10:00 to 10:30 IST) is shorter than one 50-minute session. "
        "Select a longer time, or shorten the session.",
    }
    assert not Slot.objects.exists()
    # Exactly one session's length is enough (the buffer follows a session, not the last one).
    response = publish(counsellor_client, day, day + timedelta(minutes=50), counsellor, session_minutes=50)
    assert response.status_code == 200 and response.json()["created"] == 1


def test_publishing_times_clients_cannot_book_says_so_as_the_availability_page_does(
    counsellor_client, counsellor, session_type
):
    """The shortest kind of session lasts 50 minutes: 30-minute slots are never offered."""
    assert session_type.duration_minutes == 50
    day = next_weekday_at(10, days_ahead=5)
    body = publish(counsellor_client, day, day + timedelta(hours=1), counsellor, session_minutes=30, buffer_minutes=0)
    assert body.status_code == 200
    assert body.json()["message"] == (
        "Published 2 free slots for Asha Menon. "
        "Clients cannot book them: the shortest kind of session with Asha Menon lasts 50 minutes."
    )
    one = publish(counsellor_client, day + timedelta(hours=2), day + timedelta(hours=3), counsellor, session_minutes=45)
    assert one.json()["message"] == (
        "Published 1 free slot for Asha Menon. "
        "Clients cannot book it: the shortest kind of session with Asha Menon lasts 50 minutes."
    )
    # Long enough, or nothing published: nothing more to say.
    fits = publish(counsellor_client, day + timedelta(hours=4), day + timedelta(hours=6), counsellor)
    assert fits.json()["message"] == "Published 2 free slots for Asha Menon."
    again = publish(counsellor_client, day, day + timedelta(hours=1), counsellor, session_minutes=30, buffer_minutes=0)
    assert again.json()["message"].startswith("Published 0 free slots") and "cannot book" not in again.json()["message"]
    # No kind of session offered in the ways the counsellor meets clients.
    session_type.offers_online = False
    session_type.save()
    counsellor.offers_in_person = False
    counsellor.save()
    none = publish(counsellor_client, day + timedelta(hours=7), day + timedelta(hours=8), counsellor)
    assert none.json()["message"] == (
        "Published 1 free slot for Asha Menon. "
        "Clients cannot book it: no kind of session is offered in the ways Asha Menon meets clients."
    )


def test_one_clinic_day_is_the_clinic_zones_day_not_utcs(counsellor_client, counsellor):
    """03:00 to 06:00 in Kolkata is 21:30 to 00:30 UTC, across two UTC dates: one clinic day."""
    day = next_weekday_at(3, days_ahead=5)
    assert day.astimezone(UTC).date() != (day + timedelta(hours=3)).astimezone(UTC).date()
    response = publish(
        counsellor_client, day, day + timedelta(hours=3), counsellor, session_minutes=60, buffer_minutes=0
    )
    assert response.status_code == 200 and response.json()["created"] == 3


@pytest.mark.parametrize(
    "as_text",
    [
        lambda moment: moment.isoformat(),  # FullCalendar's startStr: 2026-06-01T10:00:00+05:30
        lambda moment: moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),  # Date.toISOString()
    ],
    ids=["offset", "utc"],
)
def test_publishing_reads_the_instants_the_calendar_sends(counsellor_client, counsellor, as_text):
    day = next_weekday_at(10, days_ahead=5)
    response = publish(counsellor_client, day, day + timedelta(hours=2), counsellor, as_text=as_text)
    assert response.status_code == 200
    starts = sorted(s.start for s in Slot.objects.filter(counsellor=counsellor))
    assert starts == [day, day + timedelta(hours=1)]
    assert [timezone.localtime(s).strftime("%H:%M") for s in starts] == ["10:00", "11:00"]


def test_the_feed_reads_the_range_the_calendar_asks_for_in_the_clinic_zone(admin_client, counsellor):
    day = next_weekday_at(10, days_ahead=5)
    slot = Slot.objects.create(counsellor=counsellor, start=day, end=day + timedelta(hours=1))
    midnight = day.replace(hour=0)
    url = reverse("staff:calendar_feed")
    # FullCalendar sends the clinic's midnight with its offset (+05:30, URL-encoded); a "+"
    # left unencoded arrives as a space.
    for start, end in [
        (midnight.isoformat(), (midnight + timedelta(days=1)).isoformat()),
        (midnight.isoformat().replace("+", " "), (midnight + timedelta(days=1)).isoformat().replace("+", " ")),
        (midnight.astimezone(UTC).isoformat().replace("+00:00", "Z"), (midnight + timedelta(days=1)).isoformat()),
    ]:
        response = admin_client.get(url, {"start": start, "end": end})
        assert response.status_code == 200
        assert free_starts(response.json()) == {slot.start}
    # The day before, in the clinic's zone, does not reach 10:00.
    response = admin_client.get(url, {"start": (midnight - timedelta(days=1)).isoformat(), "end": midnight.isoformat()})
    assert free_starts(response.json()) == set()


def test_dropping_reads_the_utc_instant_the_calendar_sends(counsellor_client, counsellor, make_booking):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    free = next_weekday_at(16, days_ahead=6)
    target = Slot.objects.create(counsellor=counsellor, start=free, end=free + timedelta(minutes=60))
    response = counsellor_client.post(
        reverse("staff:booking_drop", args=[booking.pk]),
        {"start": free.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "version": booking.version},
    )
    assert response.status_code == 200, response.content
    booking.refresh_from_db()
    assert booking.slot_id == target.pk
    assert "16:00 IST" in response.json()["message"]


def test_free_time_is_shaded_as_few_background_events_as_look_the_same(
    admin_client, counsellor, other_counsellor, make_booking
):
    """Overlapping and touching free slots (every counsellor's, in the all-counsellors view)
    are one shaded stretch; a held slot between them splits it."""
    day = next_weekday_at(9, days_ahead=4)

    def hour(who, h):
        return Slot.objects.create(counsellor=who, start=day + timedelta(hours=h), end=day + timedelta(hours=h + 1))

    hour(counsellor, 0), hour(counsellor, 1), hour(other_counsellor, 0), hour(other_counsellor, 1.5)  # 9:00-11:30
    make_booking(Status.CONFIRMED, slot=hour(counsellor, 3))  # 12:00-13:00 held: not shaded
    hour(counsellor, 4)  # 13:00-14:00

    events = feed(admin_client, day - timedelta(days=1), day + timedelta(days=1)).json()
    shaded = [
        (datetime.fromisoformat(e["start"]), datetime.fromisoformat(e["end"]))
        for e in events
        if e.get("display") == "background"
    ]
    assert shaded == [
        (day, day + timedelta(hours=2.5)),
        (day + timedelta(hours=4), day + timedelta(hours=5)),
    ]
    # One counsellor's own: their touching slots are one stretch too (9:00-11:00, 13:00-14:00).
    events = feed(admin_client, day - timedelta(days=1), day + timedelta(days=1), counsellor=counsellor.pk).json()
    assert len([e for e in events if e.get("display") == "background"]) == 2
