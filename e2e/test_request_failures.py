"""What a person sees when a request sent in place (htmx) does not go through: a message at
the foot of the window, whatever the scroll, with focus and what was typed left where they
were; and after the staff portal's idle timeout, the sign-in page opened whole."""

from __future__ import annotations

import re
import time
from importlib import import_module

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from bookings.models import Booking, Status
from e2e.browsing import sign_in
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_window(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"]


def test_a_staff_action_that_fails_says_so_and_the_next_that_works_clears_it(
    tab, counsellor_login, make_booking, counsellor, slots
):
    pending = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slots[0])
    page = tab.page
    sign_in(tab, **counsellor_login, next_path=f"/staff/bookings/{pending.pk}/")
    reject = page.get_by_role("region", name="Reject")
    reject.get_by_label("Reason").fill("No counsellor free for this, sorry.")
    button = reject.get_by_role("button", name="Reject request")

    failures = iter(["server", "network"])

    def fail(route):
        if route.request.method != "POST":
            return route.continue_()
        if next(failures) == "server":
            return route.fulfill(status=502, body="<h1>502 Bad Gateway</h1>", content_type="text/html")
        return route.abort("internetdisconnected")

    page.route("**/reject/", fail)
    with tab.allowing_status(502):
        button.click()
        note = page.locator("#request-failed[role=alert]")
        expect(note).to_contain_text("Sorry, something went wrong on our side and that did not go through.")
        assert in_window(page, "#request-failed")
        expect(button).to_be_focused()
        button.click()
        expect(note).to_contain_text("Please check your connection and try again")
        expect(note).to_have_count(1)
    expect(reject.get_by_label("Reason")).to_have_value("No counsellor free for this, sorry.")
    page.unroute("**/reject/")
    tab.problems.clear()  # the failures this test made, reported by Chromium
    tab.check(axe=True)  # the page with the message on it

    button.click()
    expect(page.get_by_role("status").filter(has_text="Rejected")).to_be_visible()
    expect(page.locator("#request-failed")).to_have_count(0)
    assert Booking.objects.get(pk=pending.pk).status == Status.REJECTED


def test_after_the_idle_timeout_an_action_opens_the_sign_in_page_to_come_back_here(
    tab, counsellor_login, make_booking, counsellor, slots
):
    pending = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slots[0])
    page = tab.page
    here = f"/staff/bookings/{pending.pk}/"
    sign_in(tab, **counsellor_login, next_path=here)
    key = next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    session["staff_last_seen"] = int(time.time()) - settings.STAFF_SESSION_IDLE_MINUTES * 60 - 5
    session.save()

    reject = page.get_by_role("region", name="Reject")
    reject.get_by_label("Reason").fill("No counsellor free for this, sorry.")
    with tab.allowing_status(401):
        reject.get_by_role("button", name="Reject request").click()
        page.wait_for_url(re.compile(r"/accounts/login/\?next=" + re.escape(here) + "&timeout=1$"))
    expect(heading(page, "Staff sign-in")).to_be_visible()
    expect(page.locator("main")).to_have_count(1)
    expect(page.get_by_text("signed out after a period of inactivity")).to_be_visible()
    assert Booking.objects.get(pk=pending.pk).status == Status.PENDING
