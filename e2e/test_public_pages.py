"""The public pages outside the journeys pass the same checks: no console errors or CSP
violations, no other origins, within the page-weight budget, no serious axe-core findings."""

from __future__ import annotations

import pytest
from django.utils import translation
from playwright.sync_api import expect

from bookings.lifecycle import CLIENT_LABELS
from bookings.models import Status
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_information_pages(tab, slots):
    for path, title in (
        ("/", "Talk to someone who listens"),
        ("/privacy/", None),
        ("/policies/", None),
        ("/counsellors/", None),
        (f"/counsellors/{slots[0].counsellor.slug}/", slots[0].counsellor.display_name),
    ):
        page = tab.goto(path)
        expect(page.get_by_role("heading", level=1)).to_have_count(1)
        if title:
            expect(heading(page, title)).to_be_visible()


def test_status_lookup_error_summary_and_a_broken_link(tab, db):
    page = tab.goto("/status/")
    page.get_by_role("button", name="Check status").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_be_visible()
    tab.check()
    # The summary's link takes the keyboard to the field.
    summary.get_by_role("link").first.click()
    expect(page.get_by_label("Acknowledgement ID", exact=True)).to_be_focused()

    with tab.allowing_status(404):
        page = tab.goto("/verify/this-link-is-not-real-at-all-0123456789/")
        expect(heading(page, "This link does not work")).to_be_visible()
        tab.goto("/no-such-page/")


def test_finding_a_counsellor_by_language_and_way_of_meeting(tab, slots, other_counsellor):
    """With the keyboard, as on a phone without a mouse: the choices stay in the address."""
    asha = slots[0].counsellor
    asha.languages, asha.offers_in_person = "English, Hindi", False
    asha.save()
    other_counsellor.languages = "English, Tamil"
    other_counsellor.save()
    page = tab.goto("/counsellors/")
    page.get_by_label("Language spoken").select_option("Hindi")
    page.get_by_role("button", name="Show counsellors").press("Enter")
    expect(page.get_by_role("status")).to_have_text("1 counsellor fits your choices.")
    expect(page.get_by_role("heading", name=asha.display_name)).to_be_visible()
    expect(page.get_by_role("heading", name=other_counsellor.display_name)).to_have_count(0)
    tab.check()

    page.get_by_label("How you would like to meet").select_option(label="In person")
    page.get_by_role("button", name="Show counsellors").press("Enter")
    expect(page.get_by_text("None of our counsellors fits these choices.")).to_be_visible()
    assert "language=Hindi" in page.url and "mode=in_person" in page.url
    page.get_by_role("link", name="see all our counsellors").click()
    expect(page.get_by_role("heading", name=other_counsellor.display_name)).to_be_visible()
    tab.check()


@pytest.mark.parametrize("javascript", [True, False])
def test_changing_the_language_after_a_status_lookup_keeps_its_answer(tabs, make_booking, counsellor, javascript):
    """The lookup answers a POST (the ID stays out of URLs): the browser posts it again after
    the language switch, with or without JavaScript."""
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    tab = tabs(javascript=javascript)
    page = tab.goto("/status/")
    page.get_by_label("Acknowledgement ID", exact=True).fill(booking.ack_id)
    page.get_by_role("button", name="Check status").click()
    expect(page.locator("#status-result")).to_contain_text(str(CLIENT_LABELS[Status.APPROVED]))

    page.get_by_label("Language").select_option("hi")
    page.get_by_role("button", name="Change language").click()

    expect(page.locator("html")).to_have_attribute("lang", "hi")
    with translation.override("hi"):
        expect(page.locator("#status-result")).to_contain_text(str(CLIENT_LABELS[Status.APPROVED]))
    expect(page.locator("#status-result")).to_contain_text(booking.ack_id)
    assert page.url.endswith("/status/")
