"""The public pages outside the journeys pass the same checks: no console errors or CSP
violations, no other origins, within the page-weight budget, no serious axe-core findings."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

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
