"""The client journey with JavaScript on behaves as it does without: refusals (400, 409,
429) show their error summary with focus on it, a choice in the wizard keeps the reader's
place, a time taken meanwhile sends the client back with an error, and the language switch
returns to the step shown (static/js/wizard.js)."""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Error, expect

from bookings.models import SessionType, Slot, Status
from bookings.slot_picker import DAYS_PER_PAGE
from bookings.tests.test_i18n import assert_hindi
from conftest import next_weekday_at
from e2e.browsing import PHONE, network_quiet
from e2e.journeys import CLIENT, book_through_wizard, choose_session, heading, open_booking_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def summary_has_focus(page, text: str) -> None:
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_contain_text(text)
    expect(page.locator(":focus")).to_have_attribute("data-error-summary", "")


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG"])
def test_the_move_page_shows_its_refusals_with_javascript(tab, approved_booking, make_booking, slots, settings, debug):
    # With DEBUG, django-htmx's script would put any 400 answer in place of the whole page.
    settings.DEBUG = debug
    page = tab.page
    booking_url = open_booking_page(tab, email=CLIENT["email"], subject="Your session time is reserved")
    tab.goto(booking_url + "reschedule/")
    expect(heading(page, "Move your session")).to_be_visible()
    if debug:
        expect(page.locator("script[data-debug='True']")).to_have_count(1)

    # Chromium logs each refusal as an error: expected here.
    with tab.allowing_status(400, 409):
        # No time chosen: 400.
        with page.expect_response(lambda r: r.status == 400):
            page.get_by_role("button", name="Email me a link to confirm").click()
        summary_has_focus(page, "Choose a new time.")
        expect(heading(page, "Move your session")).to_be_visible()  # the page, not a bare fragment
        assert page.title().startswith("Error: Move your session")

        # The time is taken by someone else before "Email me a link": 409.
        page.get_by_role("radio", name=re.compile(r"^10:00")).check()
        make_booking(Status.APPROVED, slot=slots[0], email="someone.else@example.com")
        with page.expect_response(lambda r: r.status == 409):
            page.get_by_role("button", name="Email me a link to confirm").click()
        summary_has_focus(page, "taken")
        assert page.title().startswith("Error: Move your session")
        tab.check()


def test_the_wizard_shows_a_rate_limit_with_its_summary(tab, slots, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "wizard_submit_ip": (0, 3600)}
    page = tab.page
    with tab.allowing_status(429):
        book_through_wizard_to_review(tab)
        with page.expect_response(lambda r: r.status == 429):
            page.get_by_role("button", name="Send my request").click()
        summary_has_focus(page, "several booking requests")
        expect(heading(page, "Check your answers and send")).to_be_visible()
        assert page.title().startswith("Error: ")
        tab.check()


def test_a_refused_address_correction_is_shown_in_its_open_panel(tab, slots, settings):
    page = tab.page
    book_through_wizard(tab, client={**CLIENT, "email": "priya@exmaple.com"})
    page.get_by_text("Wrong email address?").click()
    # The new address has had as many requests as an hour allows (say, from another tab).
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "wizard_submit_email": (0, 3600)}
    page.get_by_label("Email address").fill(CLIENT["email"])
    with tab.allowing_status(429):
        with page.expect_response(lambda r: r.status == 429):
            page.get_by_role("button", name="Send it to this address").click()
        summary_has_focus(page, "We have sent several emails in a short time")
        expect(page.locator("#correct-email")).to_have_attribute("open", "")
        address = page.get_by_label("Email address")
        expect(address).to_be_visible()
        expect(address).to_have_value(CLIENT["email"])
        expect(page.locator("#id_email_error")).to_contain_text("Please try again in")
        tab.check()


def test_sending_the_email_again_reads_out_that_it_was_sent(tab, slots):
    page = tab.page
    book_through_wizard(tab)
    send_again = page.get_by_role("button", name="Send the email again")
    send_again.focus()
    page.keyboard.press("Enter")
    # The step is the same, so nothing else moves focus: the notice takes it, and is read.
    notice = page.locator("[data-notice]")
    expect(notice).to_contain_text("We have sent the email again")
    expect(notice).to_be_focused()
    tab.check()


def test_a_choice_that_rules_out_the_chosen_time_reads_out_why(tab, slots):
    # An 80-minute session does not fit the hour-long slots: choosing it un-chooses the time.
    SessionType.objects.create(name="Couples session", slug="couples", duration_minutes=80, price=250000)
    page = tab.page
    tab.goto("/book/")
    choose_session(page, time="10:00")
    couples = page.get_by_role("radio", name=re.compile("Couples session"))
    couples.focus()
    with page.expect_response(lambda r: r.request.method == "POST" and "/book/" in r.url):
        page.keyboard.press("Space")
    # The notice arrives with the refreshed step: it takes focus, so it is read out.
    notice = page.locator("[data-notice]")
    expect(notice).to_contain_text("The time you had chosen")
    expect(notice).to_be_focused()
    tab.check()


def test_the_move_page_reads_out_that_the_chosen_time_went(tab, approved_booking, make_booking, slots):
    page = tab.page
    booking_url = open_booking_page(tab, email=CLIENT["email"], subject="Your session time is reserved")
    tab.goto(booking_url + "reschedule/")
    page.get_by_role("radio", name=re.compile(r"^10:00")).first.check()
    # Taken by someone else while the client looks at another day.
    make_booking(Status.APPROVED, slot=slots[0], email="someone.else@example.com")
    day = page.locator("[name=day]").last
    day.focus()
    page.keyboard.press("Enter")
    notice = page.locator("[data-notice]")
    expect(notice).to_contain_text("no longer available")
    expect(notice).to_be_focused()
    # htmx settles the day buttons' new state through their colour transition: checked after it.
    page.wait_for_function("() => document.getAnimations().length === 0")
    tab.check()


def test_a_day_pressed_while_the_step_refreshes_is_the_day_shown(tab, slots):
    """Another kind of session chosen, then a day pressed before the refresh came back: the
    two requests overlapped and the later answer to arrive (the refresh's) took the day away.
    The form serialises them (hx-sync): the day pressed replaces the refresh."""
    SessionType.objects.create(name="Short session", slug="short", duration_minutes=30, price=90000)
    page = tab.page
    tab.goto("/book/")
    choose_session(page, time=None)
    held = []

    def hold_refresh(route):
        # The server answers the refresh at once; its answer reaches the page last.
        if "_refresh=1" in (route.request.post_data or ""):
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page.route("**/book/**", hold_refresh)
    # Whether the failure message ever appears, however briefly (the next answer clears it).
    page.evaluate(
        """() => { window.failureShown = false; new MutationObserver(() => {
            if (document.getElementById("request-failed")) { window.failureShown = true; }
        }).observe(document.body, { childList: true }); }"""
    )
    page.get_by_role("radio", name=re.compile("Short session")).check()
    # The refresh reaches the route when the browser sends it: sooner or later on a busy machine.
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    day = page.locator('#slot-picker button[name="day"][aria-pressed="false"]').first
    day_id = day.get_attribute("id")
    with page.expect_response(lambda r: r.request.method == "POST" and "_refresh" not in (r.request.post_data or "")):
        day.click()
    for route, answer in held:
        with contextlib.suppress(Error):  # aborted by the page: nothing to answer
            route.fulfill(response=answer)
    network_quiet(page)
    page.wait_for_timeout(300)
    expect(page.locator(f"#{day_id}")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("radio", name=re.compile("Short session"))).to_be_checked()
    expect(page.get_by_role("radio", name="Online", exact=True)).to_be_checked()
    # The refresh replaced is aborted, which htmx logs as an error; it is not a failure to show.
    expect(page.locator("#request-failed")).to_have_count(0)
    assert page.evaluate("window.failureShown") is False
    tab.problems = [p for p in tab.problems if "htmx:sendAbort" not in p and "htmx:afterRequest" not in p]
    page.unroute("**/book/**")
    tab.check()


def test_the_move_pages_later_dates_keep_the_keyboard_in_the_picker(tab, approved_booking, counsellor, slots):
    # More days with free times than the picker shows at once, so it offers "Later dates".
    for days_ahead in range(5, 5 + DAYS_PER_PAGE + 2):
        start = next_weekday_at(10, days_ahead=days_ahead)
        Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    page = tab.page
    booking_url = open_booking_page(tab, email=CLIENT["email"], subject="Your session time is reserved")
    tab.goto(booking_url + "reschedule/")
    for button in ("Later dates", "Earlier dates"):
        page.get_by_role("button", name=button).focus()
        page.keyboard.press("Enter")
        # The button pressed is gone with the dates it led away from: focus goes to the
        # picker, where the next Tab continues, not back to the top of the page.
        expect(page.locator("#slot-picker")).to_be_focused()
    tab.check()


def book_through_wizard_to_review(tab) -> None:
    tab.goto("/book/")
    choose_session(tab.page)
    continue_to_review(tab.page)


def continue_to_concerns(page) -> None:
    """From the session step, with a time chosen: "About you" filled in, to the concerns step."""
    page.get_by_role("button", name="Continue").click()
    expect(heading(page, "About you")).to_be_visible()
    page.get_by_label("Your name").fill(CLIENT["name"])
    page.get_by_label("Email address").fill(CLIENT["email"])
    page.get_by_label("I am 18 or over").check()
    page.get_by_role("button", name="Continue").click()
    expect(heading(page, "What brings you")).to_be_visible()
    # htmx notes each field's value as it takes the step in ("blur changed" compares with it):
    # text typed before that would not count as a change.
    settled(page)


def continue_to_review(page) -> None:
    """From the session step, with a time chosen: the later steps filled in, to the review."""
    continue_to_concerns(page)
    page.get_by_role("button", name="Continue").click()
    expect(heading(page, "Check your answers and send")).to_be_visible()
    page.get_by_label("I have read and agree to the privacy notice").check()
    page.get_by_label("I have read and agree to the cancellation policy").check()


def test_a_time_taken_meanwhile_is_an_error_on_its_day_and_leads_back_to_the_review(tab, slots, make_booking):
    page = tab.page
    tab.goto("/book/")
    choose_session(page, time=None)
    # The second day's 14:00, so the day kept is not simply the first.
    later = timezone.localdate(slots[3].start)
    day_button = page.locator(f"#day-{later.isoformat()}")
    with page.expect_response(lambda r: r.request.method == "POST"):
        day_button.click()
    page.get_by_role("radio", name=re.compile(r"^14:00")).check()
    continue_to_review(page)

    make_booking(Status.APPROVED, slot=slots[5], email="someone.else@example.com")  # day 4, 14:00
    page.get_by_role("button", name="Send my request").click()
    expect(heading(page, "Choose your session")).to_be_visible()
    summary_has_focus(page, "taken")
    assert page.title().startswith("Error: Choose your session")
    expect(page.locator(f"#day-{later.isoformat()}")).to_have_attribute("aria-pressed", "true")
    tab.check()

    page.get_by_role("radio", name=re.compile(r"^10:00")).check()
    page.get_by_role("button", name="Continue").click()
    expect(heading(page, "Check your answers and send")).to_be_visible()
    expect(page.get_by_text(CLIENT["email"])).to_be_visible()
    tab.check()


def settled(page) -> None:
    """htmx has swapped and settled, and the page has stopped scrolling (a busy machine is slow
    at both)."""
    busy = "() => !!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    for _ in range(50):
        y = page.evaluate("() => scrollY")
        page.wait_for_timeout(150)
        if not page.evaluate(busy) and page.evaluate("() => scrollY") == y:
            return
    raise AssertionError("the page did not settle")


def test_a_choice_in_the_wizard_keeps_the_readers_place_on_a_phone(tabs, slots):
    SessionType.objects.create(name="Couples session", slug="couples", duration_minutes=50, price=250000)
    tab = tabs(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = tab.page
    tab.goto("/book/")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("radio", name=re.compile("Individual session")).check()
    network_quiet(page)
    settled(page)  # the step swapped in: the radio below is the new one, not one about to go
    online = page.get_by_role("radio", name="Online", exact=True)
    online.scroll_into_view_if_needed()
    page.mouse.wheel(0, 150)  # the way of meeting in the middle of the screen, as one scrolls to it
    settled(page)
    before = page.evaluate("() => window.scrollY")
    assert before > 100, before  # well down the page (how far depends on the machine's fonts)
    box = online.bounding_box()
    assert box is not None and 0 < box["y"] < PHONE["height"]
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    network_quiet(page)
    expect(online).to_be_checked()
    settled(page)
    after = page.evaluate("() => window.scrollY")
    assert abs(after - before) < 40, f"the page moved from {before} to {after}"

    # Another day: the picker is swapped in place, where the reader is (its button's
    # #slot-picker is for pages without JavaScript).
    day_id = page.locator('#slot-picker button[id^="day-2"][aria-pressed="false"]').first.get_attribute("id")
    day = page.locator(f"#{day_id}")  # found again by its id, whatever swap comes between
    day.scroll_into_view_if_needed()
    settled(page)
    before = page.evaluate("() => window.scrollY")
    box = day.bounding_box()
    assert box is not None
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    network_quiet(page)
    expect(page.locator(f"#{day_id}")).to_have_attribute("aria-pressed", "true")
    settled(page)
    after = page.evaluate("() => window.scrollY")
    assert abs(after - before) < 40, f"the page moved from {before} to {after}"
    tab.check()


def test_switching_language_mid_wizard_returns_to_the_same_step(tab, slots):
    page = tab.page
    tab.goto("/book/")
    choose_session(page)
    continue_to_concerns(page)
    assert "step=concerns" in page.url  # pushed by htmx, after the footer was written
    concerns = page.get_by_label("What brings you to counselling? (optional)")
    concerns.fill("Hard to sleep since the move.")

    language = page.get_by_label("Language")
    # Going to the language menu, focus leaves the text: it is saved (checked on blur).
    with page.expect_response(lambda r: r.request.method == "POST" and "_validate" in (r.request.post_data or "")):
        language.focus()
    language.select_option("hi")
    page.get_by_role("button", name="Change language").click()
    network_quiet(page)
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    assert "step=concerns" in page.url
    expect(page.locator("textarea[name='concerns']")).to_have_value("Hard to sleep since the move.")
    tab.check()

    # On in Hindi, with htmx: the step swapped in, its title, and what the scripts write.
    page.get_by_role("button", name="आगे बढ़ें").click()
    expect(page.get_by_text("4 में से चरण 4")).to_be_visible()
    assert "step=review" in page.url and page.title().startswith("अपने उत्तर जाँचें और भेजें")
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    assert_hindi("review step, swapped in", page.content(), names={CLIENT["name"], "Hard to sleep since the move."})
    tab.check()
    page.get_by_label("मैंने गोपनीयता सूचना पढ़ ली है और मैं उससे सहमत हूँ").check()
    page.get_by_label("मैंने रद्द करने की नीति पढ़ ली है और मैं उससे सहमत हूँ").check()
    page.route("**/book/**", lambda route: route.abort() if route.request.method == "POST" else route.continue_())
    page.get_by_role("button", name="मेरा अनुरोध भेजें").click()
    expect(page.locator("#request-failed[role=alert] p")).to_have_text(
        "माफ़ कीजिए, यह नहीं पहुँच सका। कृपया अपना इंटरनेट कनेक्शन देखें और फिर से कोशिश करें: आपने जो भी लिखा है, वह सुरक्षित है।"
    )
    tab.problems.clear()  # the request this test cut off, reported by Chromium
