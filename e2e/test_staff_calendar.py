"""The staff calendar in a browser: it shows the clinic's times whatever the browser's zone,
publishes free slots only for times within one day, moves a dragged session to the instant
shown, and without JavaScript shows only its notice.

Dragging needs FullCalendar's cells (by their date and time attributes): a person sees a grid
of times, which has no roles or labels to find them by."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Dialog, Page, expect

from bookings.models import Counsellor, SessionType, Slot, Status
from conftest import next_weekday_at
from e2e.browsing import Tab, network_quiet, sign_in
from e2e.journeys import find_on_calendar, heading
from staff.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Kolkata is 4:30 (summer) or 5:30 (winter) ahead of London: a 10:00 session there is before
# the calendar's 07:00 start in London time, and 16:30 there is 11:00 (or 12:00) in London.
ELSEWHERE = "Europe/London"


@pytest.fixture
def london(tabs, counsellor_login, counsellor) -> Tab:
    """Asha, signed in from a browser whose clock is set to London time."""
    tab = tabs(timezone_id=ELSEWHERE)
    sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    expect(heading(tab.page, "Calendar")).to_be_visible()
    assert tab.page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone") == ELSEWHERE
    return tab


def dialogs(page: Page, *, accept: bool) -> list[str]:
    """The messages of the confirm boxes the page opens from now on, each accepted or not."""
    seen: list[str] = []

    def answer(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.on("dialog", answer)
    return seen


def show_week_of(page: Page, day: datetime) -> None:
    """Page the Week view forward to the week with `day` (a clinic date)."""
    column = page.locator(f'td.fc-timegrid-col[data-date="{timezone.localtime(day):%Y-%m-%d}"]')
    for _ in range(3):
        network_quiet(page)
        if column.count():
            return
        page.get_by_role("button", name=re.compile(r"^Next")).click()
    expect(column).to_be_visible()


def time_cell(page: Page, day: datetime, at: str) -> dict[str, float]:
    """The middle of the half-hour row starting at `at` ("10:00") in the column of `day`."""
    column = page.locator(f'td.fc-timegrid-col[data-date="{timezone.localtime(day):%Y-%m-%d}"]').bounding_box()
    row = page.locator(f'td.fc-timegrid-slot-lane[data-time="{at}:00"]').bounding_box()
    assert column and row
    return {"x": column["x"] + column["width"] / 2, "y": row["y"] + row["height"] / 2}


def scrolled_near_the_top(event) -> None:
    """The page scrolled to put `event` a little below the top of the window: the mouse only
    reaches what is on screen, and the text above the calendar pushes its afternoon rows
    below the window's edge."""
    event.evaluate("e => window.scrollBy(0, e.getBoundingClientRect().top - 120)")


def drag(page: Page, start: dict[str, float], end: dict[str, float]) -> None:
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move((start["x"] + end["x"]) / 2, (start["y"] + end["y"]) / 2, steps=5)
    page.mouse.move(end["x"], end["y"], steps=5)
    page.mouse.up()


def test_a_browser_in_another_zone_sees_sessions_at_the_clinics_times(london, make_booking, counsellor):
    page = london.page
    morning = next_weekday_at(10, days_ahead=3)
    afternoon = morning + timedelta(hours=6, minutes=30)
    early = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=morning, end=morning + timedelta(minutes=50)),
        client_name="Priya Sharma",
    )
    late = make_booking(
        Status.APPROVED,
        slot=Slot.objects.create(counsellor=counsellor, start=afternoon, end=afternoon + timedelta(minutes=50)),
        client_name="Kiran Rao",
    )
    page.reload()
    expect(page.get_by_text("Times are in India Standard Time (IST)")).to_be_visible()

    # Each session shows at its time in Kolkata: not at 04:30 London time, before the
    # calendar's first row, nor 16:30 at 11:00.
    expect(find_on_calendar(london, early.ack_id)).to_have_accessible_name(re.compile(r"^10:00 - 10:50"))
    expect(find_on_calendar(london, late.ack_id)).to_have_accessible_name(re.compile(r"^16:30 - 17:20"))
    # Each in the column of its clinic date.
    column = page.locator(f'td.fc-timegrid-col[data-date="{timezone.localtime(morning):%Y-%m-%d}"]')
    expect(column.get_by_role("link", name=re.compile(early.ack_id))).to_be_visible()
    expect(column.get_by_role("link", name=re.compile(late.ack_id))).to_be_visible()
    london.check()

    # The list view too.
    page.get_by_role("button", name="List").click()
    row = page.get_by_role("row").filter(has_text=late.ack_id)
    expect(row).to_contain_text("16:30 - 17:20")
    london.check()


def test_the_week_takes_in_sessions_before_seven_and_after_ten(london, make_booking, counsellor):
    """The Week view shows 07:00 to 22:00, widened to whole hours for what its dates hold
    outside them, and narrows again for a week with nothing there."""
    page = london.page
    night = next_weekday_at(0, days_ahead=3) + timedelta(minutes=30)
    evening = next_weekday_at(23, days_ahead=3) + timedelta(minutes=30)  # a 50-minute session: on, past midnight
    early, late = (
        make_booking(
            Status.CONFIRMED,
            slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=length)),
            client_name=name,
        )
        for start, length, name in [(night, 50, "Priya Sharma"), (evening, 60, "Kiran Rao")]
    )
    page.reload()
    expect(find_on_calendar(london, early.ack_id)).to_have_accessible_name(re.compile(r"^00:30 - 01:20"))
    expect(page.get_by_role("link", name=re.compile(late.ack_id)).first).to_have_accessible_name(
        re.compile(r"^23:30 - 00:00")  # its part before midnight
    )
    rows = page.locator("td.fc-timegrid-slot-lane")
    expect(rows.first).to_have_attribute("data-time", "00:00:00")
    expect(rows.last).to_have_attribute("data-time", "23:30:00")

    # Six weeks on, nothing is outside the usual hours.
    for _ in range(6):
        page.get_by_role("button", name=re.compile(r"^Next")).click()
    network_quiet(page)
    expect(rows.first).to_have_attribute("data-time", "07:00:00")
    expect(rows.last).to_have_attribute("data-time", "21:30:00")
    london.check()


def test_whole_days_cannot_be_selected_and_a_time_within_a_day_publishes_at_clinic_times(london, counsellor):
    page = london.page
    asked = dialogs(page, accept=True)
    publishes: list[str] = []
    page.on("request", lambda r: publishes.append(r.post_data or "") if "/calendar/publish/" in r.url else None)
    day = next_weekday_at(10, days_ahead=2)

    # In the Month view, a day clicked or days dragged across select nothing to publish.
    page.get_by_role("button", name="Month").click()

    def month_cell(moment: datetime):
        return page.locator(f'td.fc-daygrid-day[data-date="{timezone.localtime(moment):%Y-%m-%d}"]')

    first = month_cell(day)
    if not first.count():
        page.get_by_role("button", name=re.compile(r"^Next")).click()
    second = month_cell(day + timedelta(days=1))
    if not second.count():  # the month's last cell: drag back a day instead
        second = month_cell(day - timedelta(days=1))
    first.click(position={"x": 40, "y": 50})
    box_1, box_2 = first.bounding_box(), second.bounding_box()
    assert box_1 and box_2
    drag(page, {"x": box_1["x"] + 40, "y": box_1["y"] + 50}, {"x": box_2["x"] + 40, "y": box_2["y"] + 50})
    network_quiet(page, quiet=0.5)
    expect(page.locator(".fc-highlight")).to_have_count(0)
    assert asked == [] and publishes == []

    # In the Week view, nor do times dragged across two days.
    page.get_by_role("button", name="Week").click()
    show_week_of(page, day)
    if timezone.localtime(day).weekday() < 6:  # Sunday's next day is in the next week
        drag(page, time_cell(page, day, "10:00"), time_cell(page, day + timedelta(days=1), "11:00"))
        network_quiet(page, quiet=0.5)
        assert asked == [] and publishes == []

    # 10:00 to 12:00 in Kolkata, dragged in a London browser: two 50-minute slots then.
    drag(page, time_cell(page, day, "10:00"), time_cell(page, day, "11:30"))
    expect(page.get_by_role("status").filter(has_text="Published 2 free slots")).to_be_visible()
    # The clinic offers no kind of session yet: said as on the availability page.
    expect(page.get_by_role("status")).to_contain_text(
        "Clients cannot book them: no kind of session is offered in the ways Asha Menon meets clients."
    )
    assert len(asked) == 1
    assert re.search(
        r"Publish 50-minute free slots \(10 min apart\) for Asha Menon, \w{3} \d+ \w{3}, 10:00 \u2013 12:00 IST\?",
        asked[0],
    ), asked[0]
    assert [timezone.localtime(s.start).strftime("%H:%M") for s in Slot.objects.order_by("start")] == ["10:00", "11:00"]
    assert {s.start.date() for s in Slot.objects.all()} == {day.date()}
    # The new free slots show as shaded times in the clinic's hours, with an edge at 3:1 (green
    # 700 on white is 5:1; the shade alone, FullCalendar's, was 1.1:1).
    shaded = page.locator(f'td.fc-timegrid-col[data-date="{timezone.localtime(day):%Y-%m-%d}"] .fc-bg-event')
    expect(shaded).to_have_count(2)
    style = shaded.first.evaluate("e => [getComputedStyle(e).opacity, getComputedStyle(e).boxShadow]")
    assert style[0] == "1" and "rgb(21, 128, 61)" in style[1], style
    london.check()


def test_a_session_dragged_in_another_zone_moves_to_the_clinic_time_shown(london, make_booking, counsellor):
    page = london.page
    morning = next_weekday_at(10, days_ahead=3)
    booking = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=morning, end=morning + timedelta(minutes=60)),
    )
    target = Slot.objects.create(
        counsellor=counsellor, start=morning + timedelta(hours=4), end=morning + timedelta(hours=5)
    )
    asked = dialogs(page, accept=True)
    page.reload()
    event = find_on_calendar(london, booking.ack_id)
    scrolled_near_the_top(event)
    box = event.bounding_box()
    assert box
    to = time_cell(page, morning, "14:00")
    drag(page, {"x": box["x"] + box["width"] / 2, "y": box["y"] + 8}, {"x": to["x"], "y": to["y"] - 4})
    expect(page.get_by_role("status").filter(has_text=f"{booking.ack_id} moved to")).to_be_visible()
    assert len(asked) == 1 and re.search(r", 14:00 IST\? The client will be emailed\.$", asked[0]), asked[0]
    booking.refresh_from_db()
    assert booking.slot_id == target.pk
    # The session's 50 minutes, in the hour-long slot it moved to.
    expect(find_on_calendar(london, booking.ack_id)).to_have_accessible_name(re.compile(r"^14:00 - 14:50"))
    london.check()


def test_without_javascript_the_calendar_page_shows_only_its_notice(tabs, counsellor_login):
    tab = tabs(javascript=False)
    page = tab.page
    sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    expect(heading(page, "Calendar")).to_be_visible()
    # Playwright's text and role locators skip <noscript>: read the notice's links from it.
    links = dict(re.findall(r'<a href="([^"]+)">([^<]+)</a>', page.locator("noscript").inner_html()))
    assert set(links.values()) == {"See upcoming sessions as a list", "publish free slots on the availability page"}
    # Nothing that needs the script is shown around it.
    for hidden in (
        page.get_by_label("Counsellor"),
        page.get_by_label("Session length (min)"),
        page.get_by_label("Buffer (min)"),
        page.get_by_text("Drag across empty time", exact=False),
        page.get_by_text("Select a session to see its booking here."),
        page.get_by_text("Times are in India Standard Time"),
    ):
        expect(hidden).to_be_hidden()
    # What the page shows, after the sign-in message: the heading and the notice, only.
    shown = " ".join(page.get_by_role("main").inner_text().split())
    assert shown.endswith(
        "Calendar The calendar needs JavaScript. See upcoming sessions as a list, "
        "or publish free slots on the availability page."
    ), shown
    for href in links:
        tab.goto(href.replace("&amp;", "&"))
        expect(heading(page, re.compile("Bookings|Availability"))).to_be_visible()


def test_a_session_dragged_on_an_expired_page_says_to_reload(london, make_booking, counsellor):
    """The calendar's own requests (fetch, not htmx) refused by the CSRF check: it says the
    page has expired, not "try again" (which would fail the same way), and nothing moves."""
    page = london.page
    morning = next_weekday_at(10, days_ahead=3)
    booking = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=morning, end=morning + timedelta(minutes=60)),
    )
    Slot.objects.create(counsellor=counsellor, start=morning + timedelta(hours=4), end=morning + timedelta(hours=5))
    dialogs(page, accept=True)
    page.reload()
    event = find_on_calendar(london, booking.ack_id)
    scrolled_near_the_top(event)
    box = event.bounding_box()
    assert box
    to = time_cell(page, morning, "14:00")
    page.context.clear_cookies(name="csrftoken")
    with london.allowing_status(403):
        drag(page, {"x": box["x"] + box["width"] / 2, "y": box["y"] + 8}, {"x": to["x"], "y": to["y"] - 4})
        expect(page.get_by_role("status").filter(has_text="This page has expired")).to_be_visible()
        london.check()
    booking.refresh_from_db()
    assert timezone.localtime(booking.slot.start).hour == 10


def test_a_busy_hour_shows_one_session_and_the_rest_behind_a_more_link(tabs, admin_login, make_booking, session_type):
    """A clinic of many counsellors: sessions at the same hour do not shrink to slivers (Week)
    nor stretch a day over screens (Month); the others are one keyboard press away."""
    morning = next_weekday_at(10, days_ahead=3)
    sessions = []
    for number in range(6):
        user = User.objects.create_user(
            email=f"counsellor{number}@example.com", password="x" * 20, role=User.Role.COUNSELLOR
        )
        counsellor = Counsellor.objects.create(user=user, display_name=f"Counsellor {number}", slug=f"c{number}")
        slot = Slot.objects.create(counsellor=counsellor, start=morning, end=morning + timedelta(minutes=50))
        sessions.append(make_booking(Status.CONFIRMED, slot=slot, client_name=f"Client {number}"))
    # A cancelled booking of the same time, whose title sorts first: the session taking place
    # is the one shown.
    cancelled = make_booking(Status.CANCELLED, slot=slot, ack_id="MS-222222", client_name="Gone Before")
    tab = tabs()
    page = tab.page
    sign_in(tab, **admin_login, next_path="/staff/calendar/")
    show_week_of(page, morning)  # the Week view, a desktop's first
    column = page.locator(f'td.fc-timegrid-col[data-date="{timezone.localtime(morning):%Y-%m-%d}"]')
    expect(column.locator(".fc-timegrid-event")).to_have_count(1)
    expect(column.locator(".fc-timegrid-event")).not_to_contain_text(cancelled.ack_id)
    more = column.get_by_role("button", name="+6")
    expect(more).to_have_attribute("title", "Show 6 more events")

    # The link opens a list of all six, by keyboard; a session in it opens its booking.
    more.focus()
    page.keyboard.press("Enter")
    popover = page.locator(".fc-popover")
    expect(popover.get_by_role("link")).to_have_count(6)
    # Focus goes into the list; its close button is a button; closing returns focus to "+6".
    expect(popover).to_be_focused()
    close = popover.get_by_role("button", name="Close")
    close.focus()
    page.keyboard.press("Enter")
    expect(popover).to_have_count(0)
    expect(more).to_be_focused()
    page.keyboard.press("Enter")
    expect(popover.get_by_role("link")).to_have_count(6)
    # With the one on the grid, all seven.
    shown = [column.locator(".fc-timegrid-event").inner_text(), popover.inner_text()]
    assert all(any(booking.ack_id in text for text in shown) for booking in [*sessions, cancelled]), shown
    listed = popover.get_by_role("link").last
    ack_id = re.search(r"MS-\w{6}", listed.inner_text())[0]
    listed.click()
    expect(page.locator("#booking-detail")).to_contain_text(ack_id)
    tab.check()

    # The Month view of every counsellor shows the day's totals, not its sessions one by one.
    page.get_by_role("button", name="Month").click()
    day = page.locator(f'td.fc-daygrid-day[data-date="{timezone.localtime(morning):%Y-%m-%d}"]')
    if not day.count():
        page.get_by_role("button", name=re.compile(r"^Next")).click()
    expect(day.locator(".fc-daygrid-event .fc-event-title")).to_have_text(
        ["6 sessions: 6 confirmed. Show this day.", "1 cancelled booking. Show this day."]
    )
    tab.check()


def test_the_month_of_every_counsellor_shows_each_days_totals_and_opens_the_day(
    tabs, admin_login, make_booking, session_type, counsellor
):
    """An administrator's Month view of all counsellors: each day's sessions, free slots and
    cancellations as totals, not every session (hundreds a day at a large clinic); a total
    opens that day, with its sessions; one counsellor's Month shows their sessions."""
    morning = next_weekday_at(10, days_ahead=3)
    booked = []
    for number in range(3):
        user = User.objects.create_user(
            email=f"month{number}@example.com", password="x" * 20, role=User.Role.COUNSELLOR
        )
        other = Counsellor.objects.create(user=user, display_name=f"Counsellor {number}", slug=f"m{number}")
        slot = Slot.objects.create(counsellor=other, start=morning, end=morning + timedelta(minutes=50))
        booked.append(make_booking(Status.CONFIRMED, slot=slot, client_name=f"Client {number}"))
    Slot.objects.create(counsellor=counsellor, start=morning, end=morning + timedelta(minutes=50))  # free
    tab = tabs()
    page = tab.page
    sign_in(tab, **admin_login, next_path="/staff/calendar/")
    page.get_by_role("button", name="Month").click()
    date = f"{timezone.localtime(morning):%Y-%m-%d}"
    day = page.locator(f'td.fc-daygrid-day[data-date="{date}"]')
    if not day.count():
        page.get_by_role("button", name=re.compile(r"^Next")).click()
    sessions = day.get_by_role("button", name=re.compile(r"^3 sessions"))
    expect(sessions).to_have_attribute("title", "3 sessions: 3 confirmed. Show this day.")
    expect(day.get_by_role("button", name=re.compile(r"^1 free slot"))).to_be_visible()
    expect(day).not_to_contain_text(booked[0].ack_id)
    tab.check()

    # By keyboard, a total opens its day, every session in it.
    sessions.focus()
    page.keyboard.press("Enter")
    column = page.locator(f'td.fc-timegrid-col[data-date="{date}"]')
    expect(column).to_be_visible()
    expect(page.locator(".fc-timegrid-event").first).to_be_visible()
    shown = page.locator(".fc-timegrid-event").all_inner_texts()
    more = page.locator(".fc-timegrid-more-link").all_inner_texts()
    assert any(booked[0].ack_id in text for text in shown) or more, (shown, more)
    expect(page.locator(".ms-day")).to_have_count(0)
    tab.check()

    # One counsellor's Month shows their sessions themselves.
    page.get_by_role("button", name="Month").click()
    page.get_by_label("Counsellor").select_option(label="Counsellor 1")
    expect(day.locator(".fc-daygrid-event").filter(has_text=booked[1].ack_id)).to_be_visible()
    expect(page.locator(".ms-day")).to_have_count(0)
    tab.check()


def test_a_days_heading_opens_that_day_by_keyboard(tabs, counsellor_login, counsellor):
    """The Week view's day headings and the Month view's dates were <a> without a link:
    underlined, not reachable by Tab. They are buttons that open the Day view of their day."""
    tab = tabs()
    page = tab.page
    sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    heading_of_day = page.locator(".fc-col-header-cell-cushion").nth(3)  # Thursday
    expect(heading_of_day).to_have_attribute("role", "button")
    expect(heading_of_day).to_have_attribute("tabindex", "0")
    date = page.locator(".fc-col-header-cell").nth(3).get_attribute("data-date")
    # By Tab from the one before it, then Enter.
    page.locator(".fc-col-header-cell-cushion").nth(2).focus()
    page.keyboard.press("Tab")
    expect(heading_of_day).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".fc-timeGridDay-view")).to_be_visible()
    expect(page.locator(f'td.fc-timegrid-col[data-date="{date}"]')).to_be_visible()
    tab.check()
    # The Month view's dates too, by Space.
    page.get_by_role("button", name="Month").click()
    first = page.locator("a.fc-daygrid-day-number").first
    expect(first).to_have_attribute("role", "button")
    first.focus()
    page.keyboard.press("Space")
    expect(page.locator(".fc-timeGridDay-view")).to_be_visible()
    tab.check()


def test_a_time_selected_down_to_midnight_publishes_the_evening(london, make_booking, counsellor):
    """A selection to the bottom of a day ends at the next day's 00:00: still one day (the
    server publishes it), not refused without a word as two days."""
    page = london.page
    asked = dialogs(page, accept=True)
    day = next_weekday_at(21, days_ahead=2)
    while timezone.localtime(day).weekday() == 6:  # the late session goes on the next day, in the same week
        day += timedelta(days=1)
    late = day + timedelta(days=1, hours=2)  # 23:00 the next day: the grid runs to midnight
    make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=late, end=late + timedelta(minutes=50))
    )
    page.reload()
    show_week_of(page, day)
    expect(page.locator('td.fc-timegrid-slot-lane[data-time="23:30:00"]')).to_be_attached()
    scrolled_near_the_top(page.locator('td.fc-timegrid-slot-lane[data-time="22:00:00"]'))
    drag(page, time_cell(page, day, "22:00"), time_cell(page, day, "23:30"))
    expect(page.get_by_role("status").filter(has_text="Published 2 free slots")).to_be_visible()
    assert len(asked) == 1 and "22:00 \u2013 00:00 IST?" in asked[0]
    starts = Slot.objects.filter(counsellor=counsellor, start__gte=day, start__lt=late).values_list("start", flat=True)
    assert sorted(timezone.localtime(s).strftime("%H:%M") for s in starts) == ["22:00", "23:00"]


def test_a_session_across_a_change_of_the_clocks_names_the_zone_of_each_time(
    tabs, counsellor_login, counsellor, make_booking, settings
):
    """In a zone with summer time, a session that starts before the clocks change and ends
    after ("01:30 BST to 01:20 GMT") says so: its times alone read as if it ended before it began,
    or, in the hour lived twice, as any other session at 01:30."""
    settings.TIME_ZONE, settings.TIME_ZONE_NAME = "Europe/London", "UK time"
    zone = ZoneInfo("Europe/London")
    change = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while change.astimezone(zone).utcoffset() == (change - timedelta(hours=1)).astimezone(zone).utcoffset():
        change += timedelta(hours=1)
    start = change - timedelta(minutes=30)
    booking = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50)),
    )
    tab = tabs(timezone_id="Asia/Kolkata")
    sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    page = tab.page
    page.get_by_role("button", name="Month").click()
    day = page.locator(f'td.fc-daygrid-day[data-date="{start.astimezone(zone):%Y-%m-%d}"] a.fc-daygrid-day-number')
    for _ in range(9):
        network_quiet(page)
        if day.count():
            break
        page.get_by_role("button", name=re.compile(r"^Next")).click()
    day.click()
    expect(page.locator(".fc-timeGridDay-view")).to_be_visible()

    def said(moment: datetime) -> str:
        local = moment.astimezone(zone)
        return f"{local:%H:%M} {local.tzname()}"

    session = page.get_by_role("link", name=re.compile(booking.ack_id))
    expect(session.locator(".fc-event-time")).to_have_text(
        f"{said(start)} \u2013 {said(start + timedelta(minutes=50))}"
    )
    assert said(start)[-3:] != said(start + timedelta(minutes=50))[-3:]
    tab.check()


# Each visible character of a session's box, as shown whole, cut through by the box's edge,
# or moved out of sight; what only screen readers hear is left out.
LINES_OF_A_SESSION = """event => {
  const frame = event.querySelector(".fc-event-main-frame").getBoundingClientRect();
  const seen = {shown: "", cut: ""};
  const walker = document.createTreeWalker(event, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode()); ) {
    if (node.parentElement.closest(".sr-only, .ms-event-sep")) continue;
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const box = range.getBoundingClientRect();
      if (!box.width || !node.data[i].trim()) continue;
      // A letter's box stands a pixel or so beyond its line's (a line is 1.2 letters high).
      const out = box.left >= frame.right || box.top >= frame.bottom;
      const inside = box.right <= frame.right + 2 && box.top >= frame.top - 2 && box.bottom <= frame.bottom + 2;
      if (inside) seen.shown += node.data[i];
      else if (!out) seen.cut += node.data[i];
    }
  }
  return seen;
}"""


def test_a_sessions_box_shows_whole_lines_its_id_and_then_the_clients_initials(
    tabs, counsellor_login, make_booking, counsellor
):
    """FullCalendar cuts a session's box off at its height, often through a line of letters:
    the initials of an hour's session were a row of half letters. The box shows whole lines
    only: half an hour its time and ID, an hour its initials too, a longer one its status."""
    day = next_weekday_at(10, days_ahead=3)
    sessions = {}
    for hour, minutes in [(10, 30), (12, 50), (14, 80)]:
        kind = SessionType.objects.create(
            name=f"{minutes} minutes", slug=f"m{minutes}", duration_minutes=minutes, price=1
        )
        start = day.replace(hour=hour)
        slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=minutes))
        sessions[minutes] = make_booking(Status.CONFIRMED, slot=slot, session_type=kind, client_name="Priya Sharma")
    tab = tabs()
    page = tab.page
    sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    show_week_of(page, day)
    seen = {
        minutes: find_on_calendar(tab, booking.ack_id).evaluate(LINES_OF_A_SESSION)
        for minutes, booking in sessions.items()
    }
    assert all(not each["cut"] for each in seen.values()), seen
    # The initials, on the ID's line if the column is wide enough; else on a line of their own,
    # which half an hour has no room for (not a line ending in "·").
    assert seen[30]["shown"] in (f"10:00-10:30{sessions[30].ack_id}", f"10:00-10:30{sessions[30].ack_id}·PS"), seen
    assert seen[50]["shown"] == f"12:00-12:50{sessions[50].ack_id}·PS", seen
    assert seen[80]["shown"] == f"14:00-15:20{sessions[80].ack_id}·PSConfirmed", seen
    tab.check()
