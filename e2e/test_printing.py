"""Printed pages keep what they say and leave out what is only for acting on them: a client's
booking (its session, payment and what has happened) and a booking in the staff portal."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from bookings.models import Status
from e2e.browsing import sign_in
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What a printed page must not show: ways to act or to go elsewhere.
ACTING = "header nav, form, button, .btn-primary, .btn-secondary"


def shown(page: Page, selector: str) -> list[str]:
    """The text of the elements matching `selector` that a printer would print."""
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => e.checkVisibility()).map(e => e.innerText.trim().slice(0, 40))"
    )


def test_a_clients_booking_prints_its_session_and_story_without_its_actions(
    tab, make_booking, manage_token, counsellor
):
    booking = make_booking(Status.CONFIRMED, client_name="Kiran Rao")
    page = tab.page
    tab.goto(f"/bookings/{manage_token(booking)}/")
    expect(page.get_by_role("region", name="Cancel this booking")).to_be_visible()
    page.emulate_media(media="print")
    for section in ("Your session", "What has happened"):
        expect(page.get_by_role("region", name=section)).to_be_visible()
    for section in ("Cancel this booking", "Your data", "Move to another time"):
        expect(page.get_by_role("region", name=section)).to_be_hidden()
    assert shown(page, ACTING) == []


def test_a_booking_in_the_portal_prints_its_details_without_the_portals_menus_or_actions(
    tab, counsellor_login, make_booking, counsellor
):
    booking = make_booking(Status.PENDING, counsellor=counsellor, client_name="Kiran Rao")
    page = tab.page
    sign_in(tab, **counsellor_login, next_path=f"/staff/bookings/{booking.pk}/")
    page.emulate_media(media="print")
    expect(heading(page, booking.ack_id)).to_be_visible()
    expect(page.get_by_role("region", name="Client and session")).to_contain_text("Kiran Rao")
    expect(page.locator("#actions")).to_be_hidden()
    expect(page.get_by_text("Sign out")).to_be_hidden()
    assert shown(page, ACTING) == []
