"""Steps a person takes, shared by the journeys and the screenshot tour. Elements are found by
their role and label text, as a person finds them, never by CSS classes."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from e2e.browsing import Tab, htmx_settled, link_in, network_quiet, wait_for_email

CLIENT = {"name": "Priya Sharma", "email": "priya@example.com", "phone": "98765 43210"}

Snap = Callable[[str], None]


def _no_snap(name: str) -> None:
    return None


def heading(page: Page, name: str | re.Pattern[str]):
    return page.get_by_role("heading", name=name, level=1)


def focused_id(page: Page) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def step_shown(tab: Tab, name: str, *, htmx: bool) -> None:
    """The wizard now shows step `name`; after an htmx swap, focus is on its heading."""
    page = tab.page
    expect(heading(page, name)).to_be_visible()
    if htmx:
        expect(page.locator(":focus")).to_have_attribute("id", "step-heading")
    tab.check()


def choose_session(
    page: Page,
    *,
    session: str = "Individual session",
    mode: str = "Online",
    time: str | None = "10:00",
    htmx: bool = True,
) -> None:
    """Pick the kind of session, the way of meeting and a time. With JavaScript each choice
    refreshes the free times in place: wait for that before the next choice."""
    for radio in (
        page.get_by_role("radio", name=re.compile(re.escape(session))),
        page.get_by_role("radio", name=mode, exact=True),
    ):
        if radio.is_checked():
            continue
        if htmx:
            with page.expect_response(lambda r: r.request.method == "POST" and "/book/" in r.url):
                radio.check()
            htmx_settled(page)
        else:
            radio.check()
    if not htmx:
        page.get_by_role("button", name="Show free times for these choices").click()
    # Without a time given: the first free time of the first day shown.
    pattern = r"^" + re.escape(time) if time else r"^\d\d:\d\d "
    page.get_by_role("radio", name=re.compile(pattern)).first.check()


def book_through_wizard(
    tab: Tab,
    *,
    client: dict[str, str] = CLIENT,
    concerns: str = "I have been finding it hard to sleep since changing jobs.",
    htmx: bool = True,
    snap: Snap = _no_snap,
    show_errors: bool = False,
    time: str | None = "10:00",
) -> None:
    """From the home page to "Check your email". `snap(name)` is called on each screen."""
    page = tab.page
    tab.goto("/")
    snap("home")
    page.get_by_role("main").get_by_role("link", name="Book a session").click()
    step_shown(tab, "Choose your session", htmx=False)
    choose_session(page, htmx=htmx, time=time)
    if not htmx:
        tab.check()
    snap("wizard-1-session")
    page.get_by_role("button", name="Continue").click()
    step_shown(tab, "About you", htmx=htmx)

    if show_errors:
        page.get_by_role("button", name="Continue").click()
        summary = page.get_by_role("alert").filter(has_text="There is a problem")
        expect(summary).to_be_visible()
        if htmx:
            expect(page.locator(":focus")).to_have_attribute("data-error-summary", "")
        tab.check()
        snap("wizard-error-summary")

    page.get_by_label("Your name").fill(client["name"])
    page.get_by_label("Email address").fill(client["email"])
    page.get_by_label("Phone number (optional)").fill(client["phone"])
    page.get_by_label("I am 18 or over").check()
    snap("wizard-2-about")
    page.get_by_role("button", name="Continue").click()
    step_shown(tab, "What brings you", htmx=htmx)

    page.get_by_label("What brings you to counselling? (optional)").fill(concerns)
    snap("wizard-3-concerns")
    page.get_by_role("button", name="Continue").click()
    step_shown(tab, "Check your answers and send", htmx=htmx)
    expect(page.get_by_text(client["email"])).to_be_visible()
    expect(page.get_by_text(concerns)).to_be_visible()

    page.get_by_label("I have read and agree to the privacy notice").check()
    page.get_by_label("I have read and agree to the cancellation policy").check()
    snap("wizard-4-review")
    page.get_by_role("button", name="Send my request").click()
    expect(heading(page, "Check your email")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(client["email"])
    tab.check()
    snap("wizard-5-check-email")


def confirm_email(tab: Tab, *, email: str = CLIENT["email"], snap: Snap = _no_snap) -> str:
    """Open the verification link from the email, confirm: returns the acknowledgement ID."""
    page = tab.page
    message = wait_for_email(email, "Confirm your email")
    tab.goto(link_in(message, "/verify/"))
    expect(heading(page, "Confirm your email")).to_be_visible()
    page.get_by_role("button", name="Confirm my email").click()
    expect(heading(page, re.compile("your request has been received"))).to_be_visible()
    tab.check()
    snap("verified")
    ack_id = page.locator("#ack-id").inner_text().strip()
    assert re.fullmatch(r"MS-[A-Z0-9]{6}", ack_id), ack_id
    return ack_id


def look_up_status(tab: Tab, ack_id: str, *, expected: str, snap: Snap = _no_snap) -> None:
    page = tab.page
    tab.goto("/status/")
    page.get_by_label("Acknowledgement ID", exact=True).fill(ack_id)
    page.get_by_role("button", name="Check status").click()
    result = page.get_by_role("status").filter(has_text=f"Booking {ack_id}")
    expect(result).to_contain_text(expected)
    tab.check()
    snap("status-lookup")


def open_booking_page(tab: Tab, *, email: str, subject: str) -> str:
    """Follow the booking-page link in the newest email about `subject`: returns its URL."""
    url = link_in(wait_for_email(email, subject), "/bookings/")
    tab.goto(url)
    expect(heading(tab.page, "Your booking")).to_be_visible()
    return url


def find_on_calendar(tab: Tab, ack_id: str):
    """The calendar event of booking `ack_id`, paging forward a week at a time to reach it."""
    page = tab.page
    event = page.get_by_role("link", name=re.compile(re.escape(ack_id)))
    network_quiet(page)  # the first week's events, fetched as the page loads
    for _ in range(3):
        if event.count():
            break
        # FullCalendar fetches the next week after the click: wait for that answer, not for
        # the network to be idle (it already was).
        with page.expect_response(lambda r: "/staff/calendar/feed/" in r.url) as answer:
            page.get_by_role("button", name=re.compile(r"^Next")).click()
        if ack_id in answer.value.text():
            break
    expect(event).to_be_visible()
    return event
