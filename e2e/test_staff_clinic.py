"""An administrator sets up what clients can book, in a browser: the session types."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from bookings.models import SessionType
from e2e.browsing import sign_in
from e2e.journeys import heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_adds_a_session_type_and_clients_see_it(tabs, admin_login):
    staff = tabs()
    page = staff.page
    sign_in(staff, **admin_login, next_path="/staff/clinic/")
    expect(page.get_by_text("There are no session types yet, so clients cannot book.")).to_be_visible()
    page.get_by_role("link", name="Add a session type").click()
    expect(heading(page, "Add a session type")).to_be_visible()
    staff.check()

    # Sent half-filled: the summary takes focus and names each problem.
    page.get_by_label("Name", exact=True).fill("Family session")
    with staff.allowing_status(400):
        page.get_by_role("button", name="Add session type").click()
        summary = page.get_by_role("alert").filter(has_text="There is a problem")
        expect(summary).to_be_focused()
        expect(summary.get_by_role("link")).to_have_count(2)  # length and price
        expect(page.get_by_label("Name", exact=True)).to_have_value("Family session")
        staff.check()

    page.get_by_label("Length (minutes)").fill("80")
    page.get_by_label("Price (₹)").fill("2400")
    page.get_by_label("Can be held in person").uncheck()
    page.get_by_role("button", name="Add session type").press("Enter")
    expect(page.get_by_text("“Family session” saved. Clients can book it.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Family session")
    expect(row).to_contain_text("80 min")
    expect(row).to_contain_text("Online")
    staff.check()
    assert SessionType.objects.get().slug == "family-session"

    client = tabs()
    wizard = client.goto("/book/")
    expect(wizard.get_by_text(re.compile(r"^Family session$"))).to_be_visible()
    client.check()
