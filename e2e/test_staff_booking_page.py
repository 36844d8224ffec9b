"""The booking page's actions in place (htmx) on the full page and in the calendar's side panel:
the layout stays, focus goes to what changed; and each label focuses its own field."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from bookings.models import Booking, Status
from e2e.browsing import sign_in
from e2e.journeys import find_on_calendar, heading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def focused(page: Page):
    return page.locator(":focus")


def side_by_side(page: Page) -> bool:
    """The actions column stands right of the booking's details (the full page's two columns)."""
    details = page.get_by_role("region", name="Client and session").bounding_box()
    actions = page.locator("#booking-detail [aria-label='Actions']").bounding_box()
    return actions["x"] > details["x"] + details["width"] - 1


def test_actions_on_the_full_page_keep_its_layout_and_move_focus(
    tab, counsellor_login, make_booking, counsellor, slots
):
    pending = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slots[0])
    page = tab.page
    sign_in(tab, **counsellor_login, next_path=f"/staff/bookings/{pending.pk}/")
    expect(heading(page, pending.ack_id)).to_be_visible()
    assert side_by_side(page)

    # Each label focuses its own field (the reasons of Reject and Cancel were one id).
    page.get_by_role("region", name="Cancel booking").get_by_text("Reason", exact=True).click()
    expect(focused(page)).to_have_attribute("id", "id_cancel-reason")
    page.get_by_role("region", name="Reject").get_by_text("Reason", exact=True).click()
    expect(focused(page)).to_have_attribute("id", "id_reject-reason")

    # A refusal: the page keeps its columns, focus is on the summary of the problem.
    page.get_by_role("button", name="Reject request").click()
    summary = page.get_by_role("region", name="Reject").get_by_role("alert")
    expect(summary).to_contain_text("Give a reason for rejecting")
    expect(summary).to_be_focused()
    assert side_by_side(page)
    expect(page.get_by_role("link", name="Open full page")).to_have_count(0)
    tab.check()

    # Success: the notice has focus, the page its layout.
    page.get_by_role("region", name="Approve").get_by_role("button", name="Approve").click()
    notice = page.get_by_role("status").filter(has_text="Approved.")
    expect(notice).to_be_focused()
    assert side_by_side(page)
    expect(page.get_by_role("link", name="Open full page")).to_have_count(0)
    tab.check()
    assert Booking.objects.get(pk=pending.pk).status == Status.APPROVED


def test_actions_in_the_calendars_side_panel_stay_there_and_move_focus(tab, counsellor_login, make_booking, slots):
    booking = make_booking(Status.APPROVED, slot=slots[0])
    page = tab.page
    sign_in(tab, **counsellor_login, next_path="/staff/calendar/")
    expect(heading(page, "Calendar")).to_be_visible()
    find_on_calendar(tab, booking.ack_id).click()
    panel = page.get_by_role("complementary", name="Booking details")
    expect(panel.get_by_role("heading", name=booking.ack_id)).to_be_visible()

    panel.get_by_label("Reason").fill("   ")  # passes the browser's check, not the server's
    panel.get_by_role("button", name="Cancel booking").click()
    summary = panel.get_by_role("alert").filter(has_text="Give a reason for cancelling")
    expect(summary).to_be_focused()
    expect(panel.get_by_role("link", name="Open full page")).to_be_visible()

    panel.get_by_label("Reason").fill("Counsellor unwell")
    panel.get_by_role("button", name="Cancel booking").click()
    expect(panel.get_by_role("status").filter(has_text="Cancelled.")).to_be_focused()
    expect(panel.get_by_role("link", name="Open full page")).to_be_visible()
    expect(page.get_by_role("heading", name="Calendar", level=1)).to_be_visible()  # still the calendar
    tab.check()
    assert Booking.objects.get(pk=booking.pk).status == Status.CANCELLED


def test_availability_labels_focus_their_own_fields(tab, counsellor_login, counsellor):
    page = tab.page
    sign_in(tab, **counsellor_login, next_path=f"/staff/availability/{counsellor.pk}/")
    expect(heading(page, re.compile("Availability"))).to_be_visible()
    page.get_by_role("region", name=re.compile("Blocked periods")).get_by_text("From", exact=True).click()
    expect(focused(page)).to_have_attribute("id", "id_blocked-start")
    page.get_by_role("region", name="Add a one-off slot").get_by_text("Starts", exact=True).click()
    expect(focused(page)).to_have_attribute("id", "id_slot-start")
    tab.check()


def test_an_administrator_settles_a_payment_from_the_dashboard(tab, admin_login, make_booking, counsellor):
    """The dashboard lists a payment that needs attention; its link opens the booking at the
    form; saying what was done (keyboard only) clears it, in place, with focus on the notice."""
    from bookings.models import Payment
    from bookings.services import payment_confirm, payment_start

    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_wrong", amount=99_900, currency="INR", raw={}, source="test"
    )
    page = tab.page
    sign_in(tab, **admin_login)
    attention = page.get_by_role("region", name="Payments that need attention")
    expect(attention).to_contain_text("but the booking costs")
    attention.get_by_role("link", name=booking.ack_id).click()
    expect(heading(page, booking.ack_id)).to_be_visible()
    tab.check()

    form = page.locator(f"#settle-{payment.pk}")
    expect(form).to_be_in_viewport()
    choice = form.get_by_role("radio", name=re.compile("I refunded ₹999"))
    choice.focus()
    page.keyboard.press("Space")
    expect(choice).to_be_checked()
    form.get_by_label("Refund reference").fill("rfnd_Dash00000001")
    form.get_by_role("textbox", name=re.compile("Note for the team")).fill("Refunded from the dashboard.")
    form.get_by_role("button", name="Save").press("Enter")

    notice = page.get_by_role("status").filter(has_text="Refund recorded.")
    expect(notice).to_be_focused()
    expect(page.locator(f"#settle-{payment.pk}")).to_have_count(0)
    assert side_by_side(page)
    tab.check()
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and not payment.needs_attention


def test_a_request_without_a_counsellor_shows_one_counsellors_times_at_a_time(
    tab, admin_login, make_booking, slots, other_counsellor
):
    from datetime import timedelta

    from bookings.models import Slot
    from bookings.templatetags.mindsettler import span

    start = slots[0].start + timedelta(days=1)
    rohans = Slot.objects.create(counsellor=other_counsellor, start=start, end=start + timedelta(minutes=60))
    pending = make_booking(Status.PENDING, counsellor=None, preferred_slot=slots[0])
    page = tab.page
    sign_in(tab, **admin_login, next_path=f"/staff/bookings/{pending.pk}/")
    approve = page.get_by_role("region", name="Approve")
    times = approve.get_by_label("Time slot")
    expect(times.locator("option")).to_have_count(len(slots))  # Asha's: the client asked for one of hers
    expect(times).to_have_value(str(slots[0].pk))

    chooser = approve.get_by_label("Show the times of")
    chooser.focus()
    chooser.select_option(label="Rohan Kapoor")
    # None of Rohan's times is the client's: one must be chosen, none is chosen for them.
    expect(times.locator("option")).to_have_text(["Choose a time", f"{span(rohans.start, rohans.end)} · Rohan Kapoor"])
    expect(times).to_have_value("")
    expect(chooser).to_be_focused()  # the list changed in place; the keyboard stays where it was
    tab.check()
    times.select_option(str(rohans.pk))

    approve.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").filter(has_text="Approved.")).to_be_focused()
    pending.refresh_from_db()
    assert pending.slot_id == rohans.pk and pending.counsellor_id == other_counsellor.pk


def test_a_booking_handed_over_meanwhile_says_so_in_place_of_the_action(
    tab, counsellor_login, make_booking, counsellor, other_counsellor, admin_user, slots
):
    """Asha has a booking open and types a reason; meanwhile an administrator hands it to
    Rohan. Her Cancel is answered in the portal's words, not a silent click: it is no longer
    hers, nothing was changed, and where to go from here."""
    from datetime import timedelta

    from bookings.models import Actor, Slot
    from bookings.services import booking_reschedule

    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    page = tab.page
    sign_in(tab, **counsellor_login, next_path=f"/staff/bookings/{booking.pk}/")
    expect(heading(page, booking.ack_id)).to_be_visible()
    page.get_by_role("region", name="Cancel booking").get_by_label("Reason").fill("The client asked us to")

    start = booking.slot.start + timedelta(days=1)
    rohans = Slot.objects.create(counsellor=other_counsellor, start=start, end=start + timedelta(minutes=60))
    booking_reschedule(booking_id=booking.pk, slot_id=rohans.pk, actor=Actor.STAFF, user=admin_user)

    with tab.allowing_status(404):  # the answer it is
        page.get_by_role("button", name="Cancel booking").click()
        gone = page.get_by_role("alert").filter(has_text="This is not here for you")
        expect(gone).to_be_visible()
    expect(gone).to_contain_text("handed to another counsellor")
    expect(gone.get_by_role("link", name="Go to your bookings")).to_be_visible()
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED


def test_a_clients_next_session_is_booked_from_their_last(tab, counsellor_login, make_booking, counsellor, slots):
    """From a session held, the new-booking form opens with the client's details; the staff
    member asks the rest and chooses a time."""
    held = make_booking(Status.COMPLETED, slot=slots[0], client_name="Kiran Rao", email="kiran@example.com")
    page = tab.page
    sign_in(tab, **counsellor_login, next_path=f"/staff/bookings/{held.pk}/")
    page.get_by_role("link", name="Book another session for this client").click()
    expect(heading(page, "New booking")).to_be_visible()
    expect(page.get_by_label("Client's name")).to_have_value("Kiran Rao")
    expect(page.get_by_label("Client's email")).to_have_value("kiran@example.com")
    expect(page.get_by_role("status")).to_contain_text(f"The client's details are from {held.ack_id}")
    tab.check()
    page.get_by_label("The client says they are 18 or over").check()
    page.get_by_label("I read the privacy notice summary to the client and they agreed").check()
    page.get_by_label("Time slot").select_option(index=1)
    page.get_by_role("button", name="Create booking").click()
    expect(page.get_by_role("status").filter(has_text="created")).to_be_visible()
    assert Booking.objects.filter(email="kiran@example.com", status=Status.PENDING).exists()
    tab.check()
