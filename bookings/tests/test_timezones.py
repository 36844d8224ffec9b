"""Times shown to a client in a zone with daylight saving (display only: the clinic's zone,
Asia/Kolkata, has none). Around the UK's changes (last Sunday of October and of March) the
same wall-clock time can mean two moments; each must name its own zone. Slots published over
a change last their real length."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.template import Context, Template
from django.template.loader import render_to_string
from django.utils import timezone, translation

from bookings.models import Booking, Counsellor, SessionType, Slot, Status
from bookings.selectors import FreeSlot
from bookings.templatetags.mindsettler import clock_span, span, when, when_short

LONDON = "Europe/London"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # 25 October 2026: clocks go back at 02:00 BST, so 01:30 happens twice.
        (utc(2026, 10, 25, 0, 30), "Sunday 25 October 2026, 01:30 BST"),
        (utc(2026, 10, 25, 1, 30), "Sunday 25 October 2026, 01:30 GMT"),
        # 28 March 2027: clocks go forward at 01:00 GMT, so 01:30 never happens.
        (utc(2027, 3, 28, 0, 30), "Sunday 28 March 2027, 00:30 GMT"),
        (utc(2027, 3, 28, 1, 30), "Sunday 28 March 2027, 02:30 BST"),
    ],
)
def test_when_names_the_right_zone_on_each_side_of_a_change(moment, expected):
    with timezone.override(LONDON):
        assert when(moment) == expected
    # The clinic's own zone has no daylight saving: always IST, +05:30.
    assert when(moment).endswith("IST")
    assert when(moment + timedelta(days=180)).endswith("IST")


def test_when_short_too():
    with timezone.override(LONDON):
        assert when_short(utc(2026, 10, 25, 0, 30)) == "Sun 25 Oct, 01:30 BST"
        assert when_short(utc(2026, 10, 25, 1, 30)) == "Sun 25 Oct, 01:30 GMT"


def test_a_period_names_its_zone_once_and_each_time_its_own_across_a_change():
    with timezone.override(LONDON):
        # 01:30 BST to 50 minutes later, across the change: 01:20 GMT.
        assert span(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 20)) == "Sun 25 Oct, 01:30 BST\N{EN DASH}01:20 GMT"
        assert span(utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 20)) == "Sun 25 Oct, 01:30\N{EN DASH}02:20 GMT"
    assert span(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 20)) == "Sun 25 Oct, 06:00\N{EN DASH}06:50 IST"


def test_a_period_within_a_day_names_its_zone_once_and_each_time_its_own_across_a_change():
    with timezone.override(LONDON):
        assert clock_span(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 20)) == "01:30 BST\N{EN DASH}01:20 GMT"
        assert clock_span(utc(2026, 10, 26, 10, 0), utc(2026, 10, 26, 10, 50)) == "10:00\N{EN DASH}10:50 GMT"
        assert clock_span(utc(2026, 10, 26, 10, 0), None) == "10:00 GMT"


TIMES_AND_ZONES = "{{ t|when }} | {{ t|when_short }} | {{ t|clock }} | {{ t|span:e }} | {{ t|clock_span:e }}"


@pytest.mark.parametrize("language", ["en", "hi"])
def test_in_html_a_time_keeps_its_zone_on_its_line_and_plain_text_has_a_space(language):
    """A narrow line must not leave the zone alone on the next ("10:00" above "IST"): in HTML
    (pages and HTML emails) a no-break space joins them; text emails keep a plain space."""
    html = Template("{% load mindsettler %}" + TIMES_AND_ZONES)
    text = Template("{% load mindsettler %}{% autoescape off %}" + TIMES_AND_ZONES + "{% endautoescape %}")
    start, end = utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 20)  # 01:30 BST to 01:20 GMT
    with translation.override(language):
        for zone in ("Asia/Kolkata", LONDON):
            with timezone.override(zone):
                shown = html.render(Context({"t": start, "e": end}))
                written = text.render(Context({"t": start, "e": end}))
            assert written == shown.replace("\N{NO-BREAK SPACE}", " ")
            zones = {"Asia/Kolkata": ["IST"] * 5, LONDON: ["BST"] * 4 + ["GMT", "BST", "GMT"]}[zone]
            assert re.findall(r"\d\d:\d\d\N{NO-BREAK SPACE}([A-Z]+)", shown) == zones, shown
            assert re.findall(r"\d\d:\d\d ([A-Z]+)", written) == zones, written


def test_the_booking_page_keeps_the_time_with_its_zone_in_english_and_hindi(client, make_booking, manage_token, slot):
    booking = make_booking(Status.CONFIRMED, slot=slot)
    url = f"/bookings/{manage_token(booking)}/"
    local = timezone.localtime(slot.start)
    for language in ("en", "hi"):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        html = client.get(url).content.decode()
        with translation.override(language):
            assert f"{local.year}, {local:%H:%M}\N{NO-BREAK SPACE}IST</dd>" in html
            assert when(slot.start, autoescape=True) in html
        assert f"{local:%H:%M} IST" not in html


def test_when_short_in_hindi_writes_whole_day_and_month_names():
    """Hindi has no customary short forms of day and month names: "मंगल 1 दिस" reads as
    clipped words, so a reminder's subject gives them whole."""
    with translation.override("hi"):
        assert when_short(utc(2026, 12, 1, 6, 30)) == "मंगलवार 1 दिसंबर, 12:00 IST"
    assert when_short(utc(2026, 12, 1, 6, 30)) == "Tue 1 Dec, 12:00 IST"


def _slot(pk: int, start: datetime) -> Slot:
    counsellor = Counsellor(pk=1, display_name="Asha Menon", slug="asha")
    return Slot(pk=pk, counsellor=counsellor, start=start, end=start + timedelta(minutes=50))


def test_the_shared_picker_labels_each_time_with_its_own_zone():
    first, second = _slot(1, utc(2026, 10, 25, 0, 30)), _slot(2, utc(2026, 10, 25, 1, 30))
    context = {
        "days": [first.start.date()],
        "day": first.start.date(),
        "times": [
            {"start": s.start, "slot": FreeSlot(s.pk, s.start, s.counsellor.display_name), "count": 1}
            for s in (first, second)
        ],
        "chosen": "",
        "any_counsellor": False,
    }
    with timezone.override(LONDON):
        html = render_to_string("bookings/_slot_picker.html", context)
    assert "01:30\N{NO-BREAK SPACE}BST" in html and "01:30\N{NO-BREAK SPACE}GMT" in html


def test_the_rescheduled_email_shows_both_times_in_the_clients_zone():
    session_type = SessionType(name="Individual session", slug="individual", duration_minutes=50, price=1)
    old, new = _slot(1, utc(2026, 10, 24, 9, 0)), _slot(2, utc(2026, 10, 26, 9, 0))
    booking = Booking(
        ack_id="MS-ABCDEF",
        client_name="Priya",
        session_type=session_type,
        counsellor=old.counsellor,
        mode="online",
        status="confirmed",
        slot=new,
    )
    context = {"booking": booking, "slot": new, "old_slot": old, "booking_url": "x", "clinic_name": "MindSettler"}
    with timezone.override(LONDON):
        text = render_to_string("emails/rescheduled-body.txt", context)
    assert "Old time: Saturday 24 October 2026, 10:00 BST" in text
    assert "New time: Monday 26 October 2026, 09:00 GMT" in text


def test_iso_writes_what_date_c_writes():
    moment = timezone.now()
    both = Template("{% load mindsettler %}{{ moment|date:'c' }} {{ moment|iso }}").render(Context({"moment": moment}))
    django_c, ours = both.split()
    assert ours == django_c and ours.endswith("+05:30")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("day", "starts"),
    [
        # Forward at 01:00 GMT: 00:00 GMT, then 02:00 and 03:00 BST (three real hours).
        ((2027, 3, 28), ["00:00 GMT", "02:00 BST", "03:00 BST"]),
        # Back at 02:00 BST: 00:00 and 01:00 BST, 01:00 and 02:00 GMT (five real hours).
        ((2026, 10, 25), ["00:00 BST", "01:00 BST", "01:00 GMT", "02:00 GMT", "03:00 GMT"]),
    ],
    ids=["clocks-forward", "clocks-back"],
)
def test_publishing_a_night_across_a_change_steps_in_real_time(counsellor, day, starts):
    """Hour-long sessions from 00:00 to 04:00 on the night of a change: one per real hour,
    each lasting an hour. A step in wall-clock time made two slots of one instant in spring
    (refused as overlapping, so the night could never be published) and lost one in autumn."""
    from bookings.services import slots_publish

    with timezone.override(LONDON):
        zone = timezone.get_current_timezone()
        start = timezone.make_aware(datetime(*day, 0, 0), zone)
        end = timezone.make_aware(datetime(*day, 4, 0), zone)
        created, skipped = slots_publish(
            counsellor=counsellor, start=start, end=end, session_minutes=60, now=start - timedelta(days=1)
        )
        assert skipped == 0
        assert [f"{timezone.localtime(s.start):%H:%M %Z}" for s in created] == starts
    assert all(s.end - s.start == timedelta(hours=1) for s in Slot.objects.filter(counsellor=counsellor))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("zone", "day", "hours", "starts"),
    [
        # London, 28 March 2027: 01:00 GMT becomes 02:00 BST, so 01:30 never happens.
        # Hours until 01:30 end when the clocks jump: no session at 02:00 BST, after them.
        (LONDON, (2027, 3, 28), ((0, 0), (1, 30)), ["00:00 GMT", "00:30 GMT"]),
        # Hours from 01:30 start when the clocks jump, at 02:00 BST, not an hour after 01:30 GMT.
        (LONDON, (2027, 3, 28), ((1, 30), (3, 0)), ["02:00 BST", "02:30 BST"]),
        # New York, 14 March 2027: 02:00 EST becomes 03:00 EDT.
        ("America/New_York", (2027, 3, 14), ((1, 0), (2, 30)), ["01:00 EST", "01:30 EST"]),
        ("America/New_York", (2027, 3, 14), ((2, 30), (4, 0)), ["03:00 EDT", "03:30 EDT"]),
        # 01:30 that happens twice: hours from the first 01:30 (BST) to 03:00 GMT, real time.
        (LONDON, (2027, 10, 31), ((1, 30), (3, 0)), ["01:30 BST", "01:00 GMT", "01:30 GMT", "02:00 GMT", "02:30 GMT"]),
        # Hours wholly in the hour that never happens have none that night (generating all of
        # the counsellor's times was refused, and the nightly command stopped there).
        (LONDON, (2027, 3, 28), ((1, 10), (1, 50)), []),
    ],
    ids=[
        "london-ends-in-gap",
        "london-starts-in-gap",
        "new-york-ends-in-gap",
        "new-york-starts-in-gap",
        "london-back",
        "london-wholly-in-gap",
    ],
)
def test_weekly_hours_that_begin_or_end_in_the_hour_that_never_happens(counsellor, settings, zone, day, hours, starts):
    """A wall-clock time the clocks skip was read as if they had not gone forward yet: an hour
    later than the moment the clocks jump. Hours ending then got sessions after they end;
    hours starting then lost the first hour."""
    from datetime import date, time

    from bookings.models import WeeklyHours
    from bookings.services import availability_generate

    settings.TIME_ZONE = zone
    first = date(*day)
    (sh, sm), (eh, em) = hours
    WeeklyHours.objects.create(
        counsellor=counsellor,
        weekday=first.weekday(),
        start_time=time(sh, sm),
        end_time=time(eh, em),
        session_minutes=30,
        buffer_minutes=0,
    )
    availability_generate(counsellor=counsellor, weeks=1, today=first)
    slots = Slot.objects.filter(counsellor=counsellor).order_by("start")
    assert [f"{timezone.localtime(s.start):%H:%M %Z}" for s in slots] == starts


@pytest.mark.django_db
def test_the_wizards_hint_names_both_abbreviations_of_a_zone_with_daylight_saving(client, settings, session_type, slot):
    """It named today's ('London time (GMT)') above times of summer days marked BST."""
    settings.TIME_ZONE, settings.TIME_ZONE_NAME = LONDON, "London time"
    html = client.get("/book/", follow=True).content.decode()
    assert "Times are shown in London time (GMT/BST)." in html
    assert f"{timezone.localtime(slot.start):%H:%M\N{NO-BREAK SPACE}%Z}" in html
