"""Journeys 1, 3 and 4: a client books, pays, downloads the calendar file and cancels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bookings import services
from bookings.models import Booking, Payment, Status
from e2e.browsing import link_in, sign_in, wait_for_email
from e2e.journeys import (
    CLIENT,
    book_through_wizard,
    confirm_email,
    find_on_calendar,
    heading,
    look_up_status,
    open_booking_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_client_books_confirms_email_and_looks_up_the_status(tab, slots):
    book_through_wizard(tab)
    booking = Booking.objects.get(email=CLIENT["email"])
    assert booking.status == Status.DRAFT
    assert booking.preferred_slot == slots[0]

    ack_id = confirm_email(tab)
    assert ack_id == booking.ack_id
    booking.refresh_from_db()
    assert booking.status == Status.PENDING

    look_up_status(tab, ack_id, expected="Request received")


def test_client_corrects_a_mistyped_address_after_sending(tab, slots):
    page = tab.page
    book_through_wizard(tab, client={**CLIENT, "email": "priya@exmaple.com"})
    page.get_by_text("Wrong email address?").click()
    address = page.get_by_label("Email address")
    expect(address).to_have_value("priya@exmaple.com")
    tab.check()
    address.fill(CLIENT["email"])
    page.get_by_role("button", name="Send it to this address").click()
    expect(page.get_by_role("status").first).to_contain_text(f"We have sent an email to {CLIENT['email']}")
    tab.check()
    assert confirm_email(tab) == Booking.objects.get().ack_id


def test_client_corrects_a_mistyped_address_after_every_resend_is_spent(tab, slots):
    """The client most likely to press "Send the email again" is the one with a typo."""
    page = tab.page
    book_through_wizard(tab, client={**CLIENT, "email": "priya@exmaple.com"})
    resend = page.get_by_role("button", name="Send the email again")
    for _ in range(3):
        with page.expect_response(lambda r: r.request.method == "POST" and r.status == 200):
            resend.click()
        expect(page.get_by_text("We have sent the email again.")).to_be_visible()
    with tab.allowing_status(429):
        with page.expect_response(lambda r: r.status == 429):
            resend.click()
        expect(page.get_by_role("alert").filter(has_text="There is a problem")).to_contain_text(
            "We have sent this email several times already"
        )
        page.get_by_text("Wrong email address?").click()
        page.get_by_label("Email address").fill(CLIENT["email"])
        page.get_by_role("button", name="Send it to this address").click()
        expect(page.get_by_role("status").first).to_contain_text(f"We have sent an email to {CLIENT['email']}")
        expect(page.get_by_role("alert")).to_have_count(0)
        tab.check()
    assert confirm_email(tab) == Booking.objects.get().ack_id


def pay_in_sandbox(tab) -> None:
    page = tab.page
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(heading(page, re.compile("Pay for booking"))).to_be_visible()
    expect(page.get_by_text("Test payment — no money moves")).to_be_visible()
    tab.check()
    page.get_by_role("button", name=re.compile(r"^Pay .*\(test\)$")).click()
    expect(heading(page, "Your booking")).to_be_visible()
    tab.check()


def test_client_pays_in_the_sandbox_sees_confirmed_and_downloads_the_calendar_file(tab, approved_booking):
    page = tab.page
    open_booking_page(tab, email=CLIENT["email"], subject="Your session time is reserved")
    expect(page.get_by_role("heading", name=re.compile("Status"))).to_contain_text("Time reserved, waiting for payment")

    pay_in_sandbox(tab)
    expect(page.get_by_role("status").first).to_contain_text("We received your payment")
    expect(page.get_by_role("heading", name=re.compile("Status"))).to_contain_text("Confirmed")
    approved_booking.refresh_from_db()
    assert approved_booking.status == Status.CONFIRMED

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Add to calendar (.ics)").click()
    download = download_info.value
    assert download.suggested_filename == f"{approved_booking.ack_id}.ics"
    ics = Path(download.path()).read_text(encoding="utf-8")
    assert "BEGIN:VEVENT" in ics and approved_booking.ack_id in ics
    tab.raise_problems()


def test_client_sees_their_data_by_the_emailed_link_and_downloads_it(tab, approved_booking):
    page = tab.page
    open_booking_page(tab, email=CLIENT["email"], subject="Your session time is reserved")
    page.get_by_role("button", name="Email me a copy of my data").click()
    expect(page.get_by_role("status").first).to_contain_text("We have emailed you a link")
    tab.check()
    tab.goto(link_in(wait_for_email(CLIENT["email"], "Copy of your data"), "/privacy/export/"))
    expect(heading(page, "Your data")).to_be_visible()
    booking = page.get_by_role("region", name=re.compile(re.escape(approved_booking.ack_id)))
    expect(booking).to_contain_text(CLIENT["name"])
    tab.check()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download all of it (a JSON file)").click()
    download = download_info.value
    assert download.suggested_filename == "mindsettler-my-data.json"
    data = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert [b["acknowledgement_id"] for b in data["bookings"]] == [approved_booking.ack_id]
    tab.raise_problems()


def test_client_cancels_by_the_emailed_link_and_sees_the_refund(tabs, approved_booking, admin_login):
    client = tabs()
    page = client.page
    booking_url = open_booking_page(client, email=CLIENT["email"], subject="Your session time is reserved")
    pay_in_sandbox(client)
    expect(page.get_by_role("heading", name=re.compile("Status"))).to_contain_text("Confirmed")

    page.get_by_role("button", name="Cancel this booking").click()
    expect(page.get_by_role("status").first).to_contain_text("We have emailed you a link to confirm the cancellation")
    client.check()
    client.goto(link_in(wait_for_email(CLIENT["email"], "Confirm the cancellation"), "/cancel/"))
    expect(heading(page, f"Cancel booking {approved_booking.ack_id}?")).to_be_visible()
    page.get_by_role("button", name="Cancel my booking").click()
    expect(heading(page, "Your booking is cancelled")).to_be_visible()
    client.check()

    client.goto(booking_url)
    expect(page.get_by_role("heading", name=re.compile("Status"))).to_contain_text("Cancelled")
    payment = Payment.objects.exclude(refund_status="").get(booking_id=approved_booking.pk)
    assert payment.refund_status in (Payment.RefundState.PENDING, Payment.RefundState.PROCESSED)
    refund = page.get_by_role("region", name="Payment").get_by_role("paragraph").filter(has_text="refunded")
    expect(refund).to_contain_text("₹1,500")

    client.check()


def test_a_cancelled_booking_shows_as_cancelled_on_the_staff_calendar(tabs, approved_booking, admin_login):
    services.booking_cancel(booking_id=approved_booking.pk, actor="client", reason="")
    staff = tabs()
    sign_in(staff, **admin_login, next_path="/staff/calendar/")
    event = find_on_calendar(staff, approved_booking.ack_id)
    expect(event).to_have_accessible_name(re.compile("Cancelled"))
    staff.check()
