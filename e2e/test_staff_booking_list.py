"""The staff booking list: filters and pages, with htmx and without JavaScript."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from bookings.models import Status
from e2e.browsing import htmx_settled, network_quiet, sign_in
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-javascript"])
def test_admin_filters_the_list_and_pages_through_it(tabs, admin_login, counsellor, make_booking, javascript):
    for i in range(27):
        make_booking(Status.PENDING, counsellor=counsellor, client_name=f"Waiting Client {i:02}")
    confirmed = make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="Kiran Rao")

    tab = tabs(javascript=javascript)
    page = tab.page
    sign_in(tab, **admin_login)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Bookings").click()
    expect(heading(page, "Bookings")).to_be_visible()
    results = page.get_by_role("region", name="Results")
    expect(results.get_by_role("link", name=confirmed.ack_id)).to_be_visible()
    tab.check()

    search = page.get_by_role("search", name="Filter bookings")
    search.get_by_label("Status").select_option(label="Pending review")
    if not javascript:
        search.get_by_role("button", name="Apply filters").click()
    expect(results).to_contain_text("Bookings 1\N{EN DASH}25 · more on the next page")
    expect(results.get_by_role("link", name=confirmed.ack_id)).to_have_count(0)
    table = results.get_by_role("table", name="Bookings matching the filters")
    expect(table.get_by_role("columnheader", name="Session")).to_be_visible()
    expect(table.get_by_role("row")).to_have_count(26)  # the header and 25 bookings
    expect(page).to_have_url(re.compile(r"status=pending"))
    tab.check()

    # The next page keeps the filter.
    results.get_by_role("link", name="Next page").focus()
    page.keyboard.press("Enter")
    expect(results).to_contain_text("Bookings 26\N{EN DASH}27 of 27")
    if javascript:  # the link pressed went with the old results: focus is on the new ones
        expect(results).to_be_focused()
        page.keyboard.press("Tab")  # on into them, not back at the top of the page
        expect(results.get_by_role("link", name="Export these as CSV")).to_be_focused()
    if javascript:  # what a screen reader hears of the change: the count, in the page's status line
        expect(page.get_by_role("status")).to_have_text("Bookings 26\N{EN DASH}27 of 27")
    expect(page).to_have_url(re.compile(r"status=pending.*page=2"))
    expect(results.get_by_role("link", name="Next page")).to_have_count(0)
    expect(results.get_by_role("link", name=re.compile(r"^MS-"))).to_have_count(2)
    tab.check()
    results.get_by_role("link", name="Previous page").click()
    expect(results).to_contain_text("Bookings 1\N{EN DASH}25")


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-javascript"])
def test_filter_errors_show_next_to_their_fields_with_htmx_as_without(tabs, admin_login, counsellor, javascript):
    tab = tabs(javascript=javascript)
    page = tab.page
    sign_in(tab, **admin_login, next_path="/staff/bookings/")
    search = page.get_by_role("search", name="Filter bookings")

    def fill_in(label: str, value: str) -> None:
        """Type a filter and wait for the list it asks for: htmx asks a moment after the
        change, without JavaScript the button does."""
        field = search.get_by_label(label)
        if javascript:
            with page.expect_response(lambda r: "/staff/bookings/" in r.url):
                field.fill(value)
            htmx_settled(page)
        else:
            field.fill(value)
            search.get_by_role("button", name="Apply filters").click()
            network_quiet(page)

    # "Session to" before "Session from": said next to "Session to", not silently dropped.
    fill_in("Session from", "2026-12-10")
    fill_in("Session to", "2026-12-01")
    to = search.get_by_label("Session to")
    expect(to).to_have_accessible_description(re.compile("This is before “Session from”"))
    expect(to).to_have_attribute("aria-invalid", "true")
    expect(page).to_have_url(re.compile(r"date_to=2026-12-01"))
    tab.check()

    # A year outside 2000-2099.
    fill_in("Session from", "1999-12-10")
    expect(search.get_by_label("Session from")).to_have_accessible_description(re.compile("year 2000 or later"))
    expect(to).not_to_have_attribute("aria-invalid", "true")  # from is no longer a valid bound
    fill_in("Session from", "2026-11-01")
    expect(search.get_by_text("year 2000 or later")).to_have_count(0)
    expect(search.get_by_label("Session from")).not_to_have_attribute("aria-invalid", "true")
    tab.check()

    if javascript:
        # Typed as a person types it, with a pause inside the year: the list is asked for
        # with year 0020 (an error, its field sent back while it is being typed in), and the
        # field keeps what is typed after the pause.
        fill_in("Session to", "")
        to.focus()
        with page.expect_response(lambda r: "date_to=0020-12-20" in r.url):
            page.keyboard.type("122020", delay=120)
        expect(search.locator(".field-error")).to_have_count(1)
        page.keyboard.type("26", delay=120)
        network_quiet(page)
        expect(to).to_have_value("2026-12-20")
        expect(to).to_be_focused()
        expect(page).to_have_url(re.compile(r"date_to=2026-12-20"))
        expect(search.locator(".field-error")).to_have_count(0)
        tab.check()
