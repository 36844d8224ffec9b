"""The staff portal on a phone (375 px): the dashboard and the calendar fit the screen (a wide
table scrolls in its own box), and a session tapped in the calendar's list opens its booking
with the heading in view."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from bookings.models import Slot, Status
from e2e.browsing import PHONE, network_quiet, sign_in, small_tap_targets
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_the_dashboard_and_the_calendar_fit_a_phone(tabs, admin_login, counsellor, make_booking):
    # A session held last week fills the table of sessions by counsellor, the widest part.
    held = timezone.now() - timedelta(days=7)
    slot = Slot.objects.create(counsellor=counsellor, start=held, end=held + timedelta(minutes=50))
    make_booking(Status.COMPLETED, slot=slot, client_name="Priya Sharma")
    make_booking(Status.PENDING, counsellor=counsellor, client_name="Kiran Rao")
    make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="Meera Iyer")

    tab = tabs(viewport=PHONE)
    page = tab.page
    sign_in(tab, **admin_login, next_path=f"/staff/?month={timezone.localtime(held):%Y-%m}")
    expect(heading(page, "Dashboard")).to_be_visible()
    table = page.get_by_role("region", name="Table of sessions by counsellor")
    expect(table.get_by_role("rowheader", name="Asha Menon")).to_be_visible()
    assert page_width(page) <= 375
    # The table scrolls sideways in its own box, which a keyboard can reach.
    assert table.evaluate("box => box.scrollWidth > box.clientWidth")
    tab.check()

    tab.goto("/staff/calendar/")
    expect(page.get_by_role("button", name="List")).to_be_visible()
    assert page_width(page) <= 375
    for view in ("Month", "Week", "Day", "List"):
        page.get_by_role("button", name=view, exact=True).click()
        network_quiet(page)
        assert page_width(page) <= 375, view


def test_a_session_tapped_in_the_list_view_opens_with_its_heading_in_view(
    tabs, counsellor_login, counsellor, make_booking
):
    booking = make_booking(Status.CONFIRMED, client_name="Kiran Rao")
    tab = tabs(viewport=PHONE)
    page = tab.page
    feed = "/staff/calendar/feed/"
    with page.expect_response(lambda r: feed in r.url):
        sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    # A phone starts in the list view, this week (weeks start on Monday, in the clinic's zone).
    expect(page.get_by_role("button", name="List")).to_have_attribute("aria-pressed", "true")
    today, day = timezone.localdate(), timezone.localdate(booking.slot.start)
    weeks = ((day - timedelta(days=day.weekday())) - (today - timedelta(days=today.weekday()))).days // 7
    for _ in range(weeks):  # each page's events are fetched after its click: wait for them
        with page.expect_response(lambda r: feed in r.url):
            page.get_by_role("button", name=re.compile(r"^Next")).click()
    session = page.get_by_role("link", name=re.compile(re.escape(booking.ack_id)))
    session.click()
    panel = page.get_by_role("complementary", name="Booking details")
    title = panel.get_by_role("heading", name=booking.ack_id, level=1)
    expect(title).to_be_visible()
    expect(page.locator("#booking-detail")).to_be_focused()
    top = title.evaluate("h => h.getBoundingClientRect().top")
    assert 0 <= top < PHONE["height"] / 2, f"the panel's heading is at {top} px"
    expect(panel).to_contain_text(re.compile("Kiran Rao"))
    tab.check()


def test_the_other_staff_pages_fit_a_phone(tabs, admin_login, counsellor, make_booking):
    from bookings.services import payment_confirm, payment_start

    pending = make_booking(Status.PENDING, counsellor=counsellor, client_name="Kiran Rao")
    confirmed = make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="Meera Iyer")
    anyone = make_booking(Status.PENDING, counsellor=None, client_name="Dev Shah")  # "Show the times of"
    # A wrong amount held: the booking's page asks an administrator what was done about it.
    held = make_booking(Status.APPROVED, counsellor=counsellor, client_name="Anu Venkataraman")
    attempt = payment_start(booking_id=held.pk)
    payment_confirm(
        payment_id=attempt.pk, provider_payment_id="pay_w", amount=99_900, currency="INR", raw={}, source="t"
    )
    tab = tabs(viewport=PHONE)
    page = tab.page
    sign_in(tab, **admin_login)
    widths = {}
    paths = (
        "/staff/bookings/",
        f"/staff/bookings/{pending.pk}/",
        f"/staff/bookings/{confirmed.pk}/",
        f"/staff/bookings/{anyone.pk}/",
        f"/staff/bookings/{held.pk}/",
        "/staff/",
        "/staff/bookings/new/",
        f"/staff/availability/{counsellor.pk}/",
        f"/staff/profile/{counsellor.pk}/",
        "/staff/team/",
        "/staff/clinic/",
        "/staff/reports/",
    )
    for path in paths:
        tab.goto(path)
        network_quiet(page)
        widths[path] = page_width(page)
        if path == "/staff/bookings/":
            # The list's rows fit too: the booking with its status, the client and the session,
            # with nothing to scroll sideways for.
            table = page.get_by_role("region", name="Table of bookings")
            assert table.evaluate("t => t.scrollWidth <= t.clientWidth"), "the booking list scrolls sideways"
            expect(table.get_by_role("row", name=re.compile(held.ack_id))).to_contain_text(
                re.compile(r"\d\d:\d\d" + "\N{EN DASH}" + r"\d\d:\d\d")  # the dash itself: JavaScript has no \N{}
            )
        # The menu, and the account's links, are a finger's height (44 px) each.
        assert not small_tap_targets(page, within="header"), (path, small_tap_targets(page, within="header"))
    assert {path: width for path, width in widths.items() if width > 375} == {}
    tab.check()


def test_the_booking_lists_filters_fold_on_a_phone_and_not_on_a_wide_screen(tabs, admin_login, counsellor):
    tab = tabs(viewport=PHONE)
    page = tab.page
    sign_in(tab, **admin_login, next_path="/staff/bookings/")
    search = page.get_by_role("search", name="Filter bookings")
    expect(search.get_by_label("Status")).to_be_visible()
    expect(search.get_by_label("Sort by")).to_be_hidden()
    search.get_by_text("More filters").click()
    expect(search.get_by_label("Sort by")).to_be_visible()
    # A filter chosen there is counted at once (htmx brings the count with the results), and
    # the fold stays open.
    search.get_by_label("Mode").select_option(label="Online")
    expect(search.get_by_text("More filters (1 in use)")).to_be_visible()
    expect(search.get_by_label("Sort by")).to_be_visible()
    tab.check()
    page.set_viewport_size({"width": 1280, "height": 900})
    tab.goto("/staff/bookings/")
    expect(search.get_by_label("Sort by")).to_be_visible()
    expect(search.get_by_text("More filters")).to_be_hidden()
