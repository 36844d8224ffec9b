"""A form whose page has been open too long (Django's CSRF check refuses it) says so with
htmx as it does without JavaScript: "This form has expired", in place of the page's content,
on the staff portal and in the client's wizard; reloading brings a working form back.

Expiry is made by removing the CSRF cookie, as a browser does when it was cleared or never
kept: the refusal is the same page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from bookings.models import Booking, Status
from e2e.browsing import Tab, sign_in
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def expire_forms(page: Page) -> None:
    page.context.clear_cookies(name="csrftoken")


def expired_page_shown(tab: Tab, address: str) -> None:
    page = tab.page
    expect(heading(page, "This form has expired")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was sent or saved.")
    expect(page.locator("#main")).to_be_focused()
    assert page.title().startswith("This form has expired")
    assert page.url == address  # reloading it brings the form back
    expect(page.get_by_text("did not go through")).to_have_count(0)


def test_an_expired_staff_form_says_so(tabs, counsellor_login, counsellor, make_booking):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    tab = tabs()
    page = tab.page
    sign_in(tab, **counsellor_login, next_path=f"/staff/bookings/{booking.pk}/")
    expect(heading(page, booking.ack_id)).to_be_visible()
    address = page.url
    expire_forms(page)
    reject = page.get_by_role("region", name="Reject")
    reject.get_by_label("Reason").fill("No counsellor free for this.")
    with tab.allowing_status(403):
        with page.expect_response(lambda r: r.status == 403):
            reject.get_by_role("button", name="Reject request").click()
        expired_page_shown(tab, address)
        tab.check()
    booking.refresh_from_db()
    assert booking.status == Status.PENDING

    page.reload()
    expect(heading(page, booking.ack_id)).to_be_visible()
    expect(page.get_by_role("button", name="Reject request")).to_be_visible()
    tab.check()


def test_an_expired_wizard_step_says_so_not_that_the_connection_failed(tab, slots):
    page = tab.page
    tab.goto("/book/")
    expect(heading(page, re.compile("session", re.I))).to_be_visible()
    address = page.url
    expire_forms(page)
    with tab.allowing_status(403):
        with page.expect_response(lambda r: r.status == 403):
            # click, not check(): the radio is gone (the page replaced) before check() sees it ticked
            page.get_by_role("radio", name="Online", exact=True).click()
        expired_page_shown(tab, address)
        tab.check()
    assert not Booking.objects.exists()

    page.reload()
    expect(page.get_by_role("radio", name="Online", exact=True)).to_be_visible()
    tab.check()
