"""Journeys 6 and 7, and the keyboard: the wizard without JavaScript, on a phone, and with
the keyboard alone."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django.utils.formats import date_format
from playwright.sync_api import Page, expect

from bookings.models import Booking, LinkToken, Status
from bookings.tokens import token_create
from e2e.browsing import PHONE, Tab, cut_off_elements, htmx_settled, is_scrolling_sideways, small_tap_targets
from e2e.journeys import CLIENT, book_through_wizard, confirm_email, focused_id, heading, open_booking_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_whole_wizard_works_without_javascript(tabs, slots):
    tab = tabs(javascript=False)
    book_through_wizard(tab, htmx=False, show_errors=True)
    booking = Booking.objects.get(email=CLIENT["email"])
    assert booking.status == Status.DRAFT and booking.preferred_slot == slots[0]
    confirm_email(tab)
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


@pytest.mark.parametrize("path", ["/book/", "/waitlist/", "/status/"])
def test_without_javascript_a_refused_form_starts_at_its_error_summary(tabs, slots, path):
    tab = tabs(javascript=False)
    page = tab.page
    tab.goto(path)
    # Sent empty: the page comes back with its errors, focus on the summary (autofocus).
    with tab.allowing_status(400):
        page.locator("main form[method=post] button[type=submit]").last.click()
        summary = page.locator("[data-error-summary]")
        expect(summary).to_contain_text("There is a problem")
        expect(summary).to_be_focused()
        tab.check()


def test_without_javascript_another_day_opens_at_its_times(tabs, slots):
    tab = tabs(javascript=False, viewport=PHONE)
    page = tab.page
    tab.goto("/book/")
    other_day = page.locator('#slot-picker button[id^="day-2"][aria-pressed="false"]').first
    other_day.click()
    expect(page).to_have_url(re.compile(r"#slot-picker$"))
    expect(page.locator('#slot-picker button[aria-pressed="true"]')).to_have_count(1)
    # The answer opens at the picker, not at the top of a page a phone shows a screen of.
    # Asked from here, not by a script of the page's: without JavaScript, its timers do not run.
    for _ in range(50):
        top = page.locator("#slot-picker").evaluate("e => e.getBoundingClientRect().top")
        if -1 < top < PHONE["height"] / 2:  # a pixel of rounding: fonts differ from one machine to another
            break
        time.sleep(0.1)
    assert -1 < top < PHONE["height"] / 2, f"the picker is at {top} px"
    tab.check()


def reload_is_a_get(page: Page) -> None:
    """Reload (and Back, before it) load the page again with a GET: no "Confirm Form
    Resubmission", and nothing the form did is done twice."""
    response = page.reload()
    assert response is not None and response.request.method == "GET", "a reload sends the form again"


def test_without_javascript_the_session_steps_buttons_leave_nothing_to_resend(tabs, slots):
    tab = tabs(javascript=False)
    page = tab.page
    tab.goto("/book/")
    first_url = page.url
    later = timezone.localdate(slots[3].start)
    page.get_by_role("button", name=date_format(later, "D j M")).click()
    expect(page).to_have_url(re.compile(r"&step=session#slot-picker$"))
    pressed = page.locator('#slot-picker button[aria-pressed="true"]')
    expect(pressed).to_have_id(f"day-{later.isoformat()}")
    reload_is_a_get(page)
    expect(pressed).to_have_id(f"day-{later.isoformat()}")  # the day chosen is kept

    page.get_by_role("radio", name="Online", exact=True).check()
    page.get_by_role("button", name="Show free times for these choices").click()
    expect(page).to_have_url(re.compile(r"&step=session$"))
    reload_is_a_get(page)
    expect(page.get_by_role("radio", name="Online", exact=True)).to_be_checked()
    # Back goes through the pages the redirects led to, each loaded again with a GET.
    for _ in range(2):
        response = page.go_back()
        assert response is None or response.request.method == "GET"
    assert page.url == first_url
    tab.check()


def test_without_javascript_sending_the_email_again_is_not_repeated_by_a_reload(tabs, slots):
    tab = tabs(javascript=False)
    page = tab.page
    book_through_wizard(tab, htmx=False)
    page.get_by_role("button", name="Send the email again").click()
    expect(page.get_by_text("We have sent the email again.")).to_be_visible()
    assert [m.to for m in mail.outbox] == [[CLIENT["email"]]] * 2
    reload_is_a_get(page)
    expect(heading(page, "Check your email")).to_be_visible()
    expect(page.get_by_text("We have sent the email again.")).to_have_count(0)  # said once
    assert len(mail.outbox) == 2
    tab.check()


def test_without_javascript_the_move_pages_day_buttons_leave_nothing_to_resend(tabs, approved_booking, slots):
    tab = tabs(javascript=False)
    page = tab.page
    booking_url = open_booking_page(tab, email=CLIENT["email"], subject="Your session time is reserved")
    tab.goto(booking_url + "reschedule/")
    page.get_by_role("radio", name=re.compile(r"^10:00")).first.check()
    later = timezone.localdate(slots[3].start)
    page.get_by_role("button", name=date_format(later, "D j M")).click()
    expect(page).to_have_url(re.compile(rf"/reschedule/\?day={later.isoformat()}&slot=\d+#slot-picker$"))
    expect(page.locator('#slot-picker button[aria-pressed="true"]')).to_have_id(f"day-{later.isoformat()}")
    expect(page.get_by_text("Your chosen time")).to_be_visible()  # the time chosen on the first day
    reload_is_a_get(page)
    expect(page.get_by_text("Your chosen time")).to_be_visible()
    tab.check()


def assert_fits_the_screen(tab: Tab, name: str) -> None:
    page = tab.page
    assert not is_scrolling_sideways(page), f"{name}: the page scrolls sideways at 375 px"
    assert not cut_off_elements(page), f"{name}: cut off at the right edge: {cut_off_elements(page)}"
    # 44 px: what a fingertip hits without care (Apple's and WCAG 2.5.5's size).
    assert not small_tap_targets(page), f"{name}: too small to tap: {small_tap_targets(page)}"


def test_wizard_and_booking_page_fit_a_phone(tabs, approved_booking):
    tab = tabs(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    screens: list[str] = []

    def snap(name: str) -> None:
        screens.append(name)
        assert_fits_the_screen(tab, name)

    book_through_wizard(tab, client={**CLIENT, "email": "asha.k@example.com"}, snap=snap, show_errors=True)
    assert "wizard-4-review" in screens and "wizard-error-summary" in screens

    open_booking_page(tab, email=CLIENT["email"], subject="Your session time is reserved")
    assert_fits_the_screen(tab, "booking page")
    # The Pay button is whole and on screen.
    pay = tab.page.get_by_role("button", name=re.compile(r"^Pay "))
    box = pay.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    # The (sandbox) checkout: its long attempt ID wraps instead of widening the page.
    pay.click()
    expect(heading(tab.page, re.compile(r"^Pay for booking"))).to_be_visible()
    tab.check()
    assert_fits_the_screen(tab, "checkout")


# --- Keyboard ------------------------------------------------------------------------------


def tab_to(tab: Tab, name: str | re.Pattern[str], *, role: str, limit: int = 80) -> None:
    """Press Tab until the control with this role and name has focus; every stop on the way
    must show where focus is."""
    page = tab.page
    target = page.get_by_role(role, name=name).first  # type: ignore[arg-type]
    for _ in range(limit):
        page.keyboard.press("Tab")
        state = tab.focus_is_visible()
        if state is not None:
            assert state["visible"], f"focus is not visible on {state['what']}"
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached the {role} {name!r}")


def type_into(page: Page, text: str) -> None:
    page.keyboard.type(text)


def focus_moved_to(tab: Tab, attribute: str, value: str) -> None:
    """After an htmx swap: focus is on the new step's heading or the error summary, visibly."""
    expect(tab.page.locator(":focus")).to_have_attribute(attribute, value)
    state = tab.focus_is_visible()
    assert state is not None and state["visible"], f"focus is not visible on {state}"


def test_the_wizard_can_be_completed_with_the_keyboard_alone(tab, slots):
    page = tab.page
    tab.goto("/book/")
    expect(heading(page, "Choose your session")).to_be_visible()

    # Step 1: the only session type is chosen already; choose "Online", then the first time.
    tab_to(tab, "Online", role="radio")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.keyboard.press("Space")
    htmx_settled(page)
    expect(page.get_by_role("radio", name="Online", exact=True)).to_be_checked()
    # htmx refreshed the free times and kept focus where it was.
    assert focused_id(page).startswith("id_mode_")
    # Another day: only the picker is replaced (the heading above is the same element), and
    # focus stays on the day's button.
    page.evaluate("() => { document.getElementById('step-heading').dataset.before = 'yes'; }")
    later = timezone.localdate(slots[3].start)
    tab_to(tab, date_format(later, "D j M"), role="button")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.keyboard.press("Enter")
    htmx_settled(page)
    expect(page.get_by_role("button", name=date_format(later, "D j M"))).to_have_attribute("aria-pressed", "true")
    assert focused_id(page) == f"day-{later.isoformat()}"
    expect(page.locator("#step-heading")).to_have_attribute("data-before", "yes")
    tab_to(tab, re.compile(r"^10:00"), role="radio")
    page.keyboard.press("Space")
    expect(page.get_by_role("radio", name=re.compile(r"^10:00"))).to_be_checked()
    tab_to(tab, "Continue", role="button")
    page.keyboard.press("Enter")
    expect(heading(page, "About you")).to_be_visible()
    focus_moved_to(tab, "id", "step-heading")
    tab.check()

    # Step 2: Continue with nothing filled in: focus goes to the error summary.
    tab_to(tab, "Continue", role="button")
    page.keyboard.press("Enter")
    focus_moved_to(tab, "data-error-summary", "")
    tab.check()
    # Shift+Tab from the name field's error link target comes back; fill in each field.
    tab_to(tab, "Your name", role="textbox")
    type_into(page, CLIENT["name"])
    tab_to(tab, "Email address", role="textbox")
    type_into(page, CLIENT["email"])
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("textbox", name="Your name")).to_be_focused()
    tab_to(tab, "I am 18 or over", role="checkbox")
    page.keyboard.press("Space")
    expect(page.get_by_role("checkbox", name="I am 18 or over")).to_be_checked()
    tab_to(tab, "Continue", role="button")
    page.keyboard.press("Enter")
    expect(heading(page, "What brings you")).to_be_visible()
    focus_moved_to(tab, "id", "step-heading")

    # Step 3: say nothing; step 4: agree to both and send.
    tab_to(tab, "Continue", role="button")
    page.keyboard.press("Enter")
    expect(heading(page, "Check your answers and send")).to_be_visible()
    focus_moved_to(tab, "id", "step-heading")
    for label in ("I have read and agree to the privacy notice", "I have read and agree to the cancellation policy"):
        tab_to(tab, label, role="checkbox")
        page.keyboard.press("Space")
    tab_to(tab, "Send my request", role="button")
    page.keyboard.press("Enter")
    expect(heading(page, "Check your email")).to_be_visible()
    focus_moved_to(tab, "id", "step-heading")
    tab.check()
    booking = Booking.objects.get(email=CLIENT["email"])
    assert booking.status == Status.DRAFT and booking.preferred_slot == slots[3]  # 10:00 on the later day


def test_the_date_pickers_button_shows_the_focus_ring(tab, session_type):
    """Chromium's date input ends with a calendar button of its own: tabbed to, the input is
    no longer :focus-visible, and the site's ring vanished (assets/app.css: :focus-within)."""
    page = tab.page
    tab.goto("/waitlist/")
    date_from = page.locator("#id_date_from")
    date_from.focus()
    on_button = "e => document.activeElement === e && !e.matches(':focus-visible')"
    for _ in range(5):  # day, month, year, then the button
        if date_from.evaluate(on_button):
            break
        page.keyboard.press("Tab")
    assert date_from.evaluate(on_button), "the picker's button never took focus"
    ring = date_from.evaluate("e => [getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineWidth]")
    assert ring == ["solid", "3px"]


LONG_EMAIL = "priyanka.raghunathan-subramaniam.counselling@example-mailbox.co.in"


def test_pages_that_name_a_long_email_address_fit_a_phone(tabs, make_booking, counsellor, slots):
    """The data export page and the waitlist's "Check your email" put the address in a
    sentence: a long one wraps instead of pushing the page sideways."""
    tab = tabs(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    booking = make_booking(Status.COMPLETED, counsellor=counsellor, email=LONG_EMAIL)
    raw = token_create(booking=booking, purpose=LinkToken.Purpose.EXPORT, lifetime=timedelta(hours=1))
    page = tab.goto(f"/privacy/export/{raw}/")
    expect(page.get_by_text(LONG_EMAIL).first).to_be_visible()
    tab.check()
    assert_fits_the_screen(tab, "data export")

    page = tab.goto("/waitlist/")
    page.get_by_label("Your name").fill("Priyanka")
    page.get_by_label("Email address").fill(LONG_EMAIL)
    page.get_by_role("button", name=re.compile("waitlist", re.I)).click()
    expect(heading(page, "Check your email")).to_be_visible()
    tab.check()
    assert_fits_the_screen(tab, "waitlist sent")
