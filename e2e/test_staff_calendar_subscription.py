"""A counsellor's calendar subscription in a browser: the address made from the Calendar page,
copied with the button (or by hand without JavaScript), read by a calendar app, and stopped."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from e2e.browsing import sign_in
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_counsellor_makes_copies_and_stops_a_calendar_address(tabs, counsellor_login, counsellor, javascript):
    tab = tabs(javascript=javascript)
    sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    page = tab.page
    section = page.get_by_role("region", name="Your calendar app")
    section.get_by_role("button", name="Make a calendar address").click()
    expect(heading(page, "Your calendar address")).to_be_visible()
    tab.check()

    field = page.get_by_label("Calendar address")
    url = field.input_value()
    assert re.fullmatch(r"https?://[^/]+/staff/calendar/[A-Za-z0-9_-]{43}\.ics", url), url
    expect(field).to_have_attribute("readonly", "")
    copy = page.get_by_role("button", name="Copy the address")
    if javascript:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        copy.click()
        expect(page.get_by_text("Copied. Paste it into your calendar app.")).to_be_visible()
        assert page.evaluate("() => navigator.clipboard.readText()") == url
    else:
        expect(copy).to_be_hidden()  # a person selects the field and copies it

    # What a calendar app reads from it.
    path = urlsplit(url).path
    feed = page.request.get(path)
    assert feed.status == 200 and feed.headers["content-type"] == "text/calendar; charset=utf-8"
    assert feed.text().startswith("BEGIN:VCALENDAR")

    tab.goto("/staff/calendar/")
    expect(section).to_contain_text("A calendar app last read it on")
    section.get_by_role("button", name="Stop the subscription").click()
    expect(page.get_by_text("Your calendar subscription is stopped")).to_be_visible()
    tab.check()
    expect(section.get_by_role("button", name="Make a calendar address")).to_be_visible()
    assert page.request.get(path).status == 404
