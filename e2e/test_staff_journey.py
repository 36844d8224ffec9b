"""Journeys 2 and 5: a counsellor approves a request; an administrator books for a client who
phoned and marks a past session completed; an administrator deactivates a counsellor who left
and resets a colleague's lost second factor, who sets up a new authenticator app through the
emailed link."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from django.utils import timezone
from playwright.sync_api import expect

from bookings.models import Booking, Slot, Status
from bookings.templatetags.mindsettler import span
from e2e.browsing import link_in, sign_in, wait_for_email
from e2e.journeys import CLIENT, book_through_wizard, confirm_email, find_on_calendar, heading
from staff.models import User
from staff.tests.conftest import totp_code, totp_enable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def when_label(slot: Slot) -> str:
    """How the approve form names a slot: 'Mon 1 Jun, 11:00 to 12:00 IST', with an en dash."""
    return span(slot.start, slot.end)


def test_counsellor_signs_in_with_totp_approves_the_request_and_sees_it_on_the_calendar(tabs, slots, counsellor_login):
    client = tabs()
    book_through_wizard(client)
    ack_id = confirm_email(client)
    preferred = slots[0]

    staff = tabs()
    page = staff.page
    sign_in(staff, **counsellor_login)
    expect(heading(page, "Dashboard")).to_be_visible()
    waiting = page.get_by_role("region", name=re.compile("Waiting for review"))
    expect(waiting).to_contain_text(CLIENT["name"])
    waiting.get_by_role("link", name=ack_id).click()
    expect(heading(page, ack_id)).to_be_visible()
    staff.check()

    approve = page.get_by_role("region", name="Approve")
    slot_select = approve.get_by_label("Time slot")
    # The client's preferred time is chosen already.
    expect(slot_select.locator("option:checked")).to_have_text(re.compile(re.escape(when_label(preferred))))
    approve.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").filter(has_text="Approved.")).to_be_visible()
    expect(page.get_by_text("Approved", exact=True).first).to_be_visible()
    staff.check()

    booking = Booking.objects.get(ack_id=ack_id)
    assert booking.status == Status.APPROVED and booking.slot_id == preferred.pk
    wait_for_email(CLIENT["email"], "Your session time is reserved")

    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Calendar").click()
    expect(heading(page, "Calendar")).to_be_visible()
    event = find_on_calendar(staff, ack_id)
    expect(event).to_have_accessible_name(re.compile(r"Approved ?, with Asha Menon"))
    # The status is written on the session, not told by its colour alone.
    expect(event.locator(".ms-event-status")).to_contain_text(", Approved")
    expect(event.locator(".ms-event-status")).to_be_visible()
    # In the Week view the status has a line of its own: its comma is read out, not shown at
    # the end of the line above (where a short session would cut the status off after it).
    assert event.locator(".ms-event-sep").bounding_box()["width"] <= 1
    # The toolbar's buttons show the site's focus ring, not FullCalendar's faint shadow.
    page.locator(".fc-prev-button").focus()
    page.keyboard.press("Tab")
    assert page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return document.activeElement.classList.contains('fc-next-button')"
        " && s.outlineStyle === 'solid' && parseFloat(s.outlineWidth) >= 3; }"
    ), "the focused calendar button has no visible ring"
    staff.check()

    # Clicking the session opens the booking beside the calendar.
    event.click()
    panel = page.get_by_role("complementary", name="Booking details")
    expect(panel.get_by_role("heading", name=ack_id)).to_be_visible()
    staff.check()


@pytest.fixture
def past_confirmed_booking(make_booking, counsellor) -> Booking:
    """A paid session that ended yesterday."""
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    return make_booking(Status.CONFIRMED, slot=slot, client_name="Kiran Rao")


def test_admin_books_for_a_client_who_phoned_then_marks_a_past_session_completed(
    tab, slots, admin_login, past_confirmed_booking
):
    page = tab.page
    sign_in(tab, **admin_login)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="New booking").click()
    expect(heading(page, "New booking")).to_be_visible()
    tab.check()

    page.get_by_label("Client's name").fill("Meena Pillai")
    page.get_by_label("Client's email").fill("meena@example.com")
    page.get_by_label("Phone (optional)").fill("98450 12345")
    page.get_by_label("The client says they are 18 or over").check()
    page.get_by_label("Session type").select_option(label="Individual session")
    page.get_by_role("radio", name="Online").check()
    slot = slots[2]
    label = f"{when_label(slot)} · Asha Menon"
    # Times show once a counsellor is chosen (in place: what was typed stays).
    expect(page.get_by_label("Time slot").locator("option", has_text=label)).to_have_count(0)
    page.get_by_label("Counsellor").select_option(label="Asha Menon")
    expect(page.get_by_label("Time slot").locator("option", has_text=label)).to_have_count(1)
    expect(page.get_by_label("Client's name")).to_have_value("Meena Pillai")
    page.get_by_label("Time slot").select_option(label=label)
    page.get_by_role("radio", name="Approved: the client pays to confirm").check()
    # Not before the client agreed to the privacy notice: said next to the box, nothing lost.
    agreed = page.get_by_role("checkbox", name="I read the privacy notice summary to the client and they agreed")
    with tab.allowing_status(400):
        page.get_by_label("Phone (optional)").press("Enter")  # Enter creates it, as the button does
        expect(agreed).to_have_accessible_description(re.compile(r"Privacy notice version .+ Read the client the"))
        expect(page.get_by_role("alert")).to_contain_text("I read the privacy notice summary")
        expect(page.get_by_label("Client's name")).to_have_value("Meena Pillai")
        expect(page.get_by_label("Time slot")).to_have_value(str(slot.pk))
        tab.check()
    expect(page.get_by_role("radio", name="On the phone")).to_be_checked()
    agreed.check()
    page.get_by_label("Phone (optional)").press("Enter")

    created = Booking.objects.get(email="meena@example.com")
    expect(heading(page, created.ack_id)).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text(f"Booking {created.ack_id} created")
    tab.check()
    assert created.status == Status.APPROVED and created.slot_id == slot.pk and created.created_by is not None
    wait_for_email("meena@example.com", "Your session time is reserved")

    # Yesterday's session, found through the booking list.
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Bookings").click()
    expect(heading(page, "Bookings")).to_be_visible()
    tab.check()
    page.get_by_role("link", name=past_confirmed_booking.ack_id).click()
    expect(heading(page, past_confirmed_booking.ack_id)).to_be_visible()
    tab.check()
    page.get_by_role("button", name="Mark as completed").click()
    expect(page.get_by_role("status").filter(has_text="Marked as completed.")).to_be_visible()
    tab.check()
    past_confirmed_booking.refresh_from_db()
    assert past_confirmed_booking.status == Status.COMPLETED


def test_admin_deactivates_a_counsellor_who_left_and_resets_a_lost_second_factor(
    tabs, slots, admin_login, counsellor_login, make_booking, counsellor, other_counsellor
):
    make_booking(Status.CONFIRMED, slot=slots[0])
    totp_enable(other_counsellor.user)
    asha = tabs()
    sign_in(asha, **counsellor_login)
    tab = tabs()
    page = tab.page
    sign_in(tab, **admin_login)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Staff").click()
    expect(heading(page, "Staff")).to_be_visible()
    tab.check()

    # The confirmation is plain HTML: open the form, read what will happen, tick, confirm.
    row = page.locator("tr", has_text="asha@example.com")
    row.get_by_text("Deactivate", exact=False).first.click()
    expect(row).to_contain_text("1 open booking")
    tab.check()
    row.get_by_label("Deactivate Asha").check()
    row.get_by_role("button", name="Deactivate account").click()
    expect(page.get_by_text("Asha can no longer sign in")).to_be_visible()
    expect(page.locator("tr", has_text="asha@example.com")).to_contain_text("Deactivated")
    tab.check()
    assert not User.objects.get(email="asha@example.com").is_active
    asha.page.reload()
    expect(heading(asha.page, "Staff sign-in")).to_be_visible()

    row = page.locator("tr", has_text="rohan@example.com")
    row.get_by_text("Reset second factor", exact=False).first.click()
    row.get_by_label("Reset the second factor of Rohan").check()
    row.get_by_role("button", name="Reset second factor").click()
    expect(page.get_by_text("The second factor of Rohan was reset")).to_be_visible()
    tab.check()
    assert not Authenticator.objects.filter(user=other_counsellor.user).exists()

    # Rohan signs in with his password. It does not set up a new app on its own (someone else
    # may know it): the page emails him a link, which he opens in the same browser.
    rohan = tabs()
    mine = rohan.page
    rohan.goto("/accounts/login/?next=/staff/")
    mine.get_by_label("Email").fill("rohan@example.com")
    mine.get_by_label("Password").fill("another-long-password")
    mine.get_by_role("button", name="Sign in").click()
    expect(heading(mine, "Set up two-factor sign-in")).to_be_visible()
    expect(mine.get_by_text("we first email a link to your address")).to_be_visible()
    expect(mine.locator("#totp-secret")).to_have_count(0)
    rohan.check()
    mine.get_by_role("button", name="Email me a link").click()
    expect(mine.get_by_role("status").filter(has_text="We have emailed a link to rohan@example.com.")).to_be_visible()
    rohan.check()
    link = link_in(
        wait_for_email("rohan@example.com", "Set up two-factor sign-in"), "/accounts/2fa/totp/activate/link/"
    )
    rohan.goto(link)
    mine.get_by_role("button", name="Continue to set up the app").click()
    secret = mine.locator("#totp-secret").inner_text()
    rohan.check()
    mine.get_by_label(re.compile("code", re.I)).first.fill(totp_code(secret))
    mine.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(heading(mine, "Your recovery codes")).to_be_visible()
    rohan.check()
    assert Authenticator.objects.filter(user=other_counsellor.user, type=Authenticator.Type.TOTP).exists()
