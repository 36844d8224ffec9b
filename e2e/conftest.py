"""End-to-end fixtures: Debian's Chromium (through pytest-playwright) against Django's live
server, with the personas of the root conftest and a week of free slots.

Playwright's sync API runs an asyncio event loop in the test thread; Django refuses ORM
calls from a thread with a running loop unless told it is safe, which it is here (the loop
only talks to the browser).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from datetime import timedelta

import pytest
from django.core.cache import cache

from bookings import services
from bookings.models import Booking, Slot
from conftest import next_weekday_at
from e2e.browsing import CHROMIUM_ARGS, Tab, chromium_path, link_in, open_tab, wait_for_email
from e2e.journeys import CLIENT
from staff.tests.conftest import totp_enable


def _why_not_run() -> str:
    """Browser tests run on the SQLite pass only: they test pages, not the database, and the
    PostgreSQL pass (CI runs the suite on both) has its own concurrency tests. Set
    E2E_ON_POSTGRES=true to run them there too."""
    from django.db import connection

    if connection.vendor != "sqlite" and os.environ.get("E2E_ON_POSTGRES", "").lower() != "true":
        return "browser tests run on the SQLite pass (E2E_ON_POSTGRES=true to run them here)"
    try:
        chromium_path()
    except RuntimeError as exc:
        return str(exc)
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    why_not = _why_not_run() if browser_items else ""
    if why_not:
        for item in browser_items:
            item.add_marker(pytest.mark.skip(reason=why_not))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The heaviest measurement of each page seen in the browser tests (gzip sizes)."""
    weights: dict[str, int] = {}
    for report in terminalreporter.stats.get("passed", []):
        for name, value in getattr(report, "user_properties", []):
            if name == "page_weight":
                kind, size = value
                weights[kind] = max(size, weights.get(kind, 0))
    if weights:
        terminalreporter.section("page weight (gzip, all requests of a first visit)")
        for kind, size in sorted(weights.items()):
            terminalreporter.write_line(f"{size / 1024:7.1f} KB  {kind}")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright's launch options: Debian's Chromium, never a downloaded one."""
    return {**browser_type_launch_args, "executable_path": chromium_path(), "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(autouse=True)
def _e2e_settings(settings, live_server):
    # Emailed links must point at the live server.
    settings.SITE_URL = live_server.url
    # allauth keeps rate limits and used TOTP codes in the cache; the test database has no
    # cache table, and each test starts with a clean one.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "e2e"}}
    cache.clear()


@pytest.fixture
def tabs(request, browser, live_server):
    """`tabs()` opens a fresh browser context (its own cookies); all are closed after the test.
    Problems a page reported but no check raised yet fail the test at the end; the pages'
    weights go into the run's summary."""
    opened: list[Tab] = []

    def open_(**kwargs) -> Tab:
        tab = open_tab(browser, live_server.url, **kwargs)
        tab.report_to = request.node.user_properties
        opened.append(tab)
        return tab

    yield open_
    try:
        for tab in opened:
            tab.raise_problems()
    finally:
        for tab in opened:
            tab.page.context.close()


@pytest.fixture
def tab(tabs) -> Tab:
    return tabs()


@pytest.fixture
def slots(counsellor, session_type) -> list[Slot]:
    """Free hour-long slots of Asha three and four days ahead (past the 24-hour notice), and
    the individual session type to book into them."""
    made = []
    for days_ahead in (3, 4):
        for hour in (10, 11, 14):
            start = next_weekday_at(hour, days_ahead=days_ahead)
            made.append(Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60)))
    return made


@pytest.fixture
def counsellor_login(counsellor_user) -> dict[str, str]:
    return {
        "email": counsellor_user.email,
        "password": "a-long-counsellor-password",
        "secret": totp_enable(counsellor_user),
    }


@pytest.fixture
def admin_login(admin_user) -> dict[str, str]:
    return {"email": admin_user.email, "password": "a-long-admin-password", "secret": totp_enable(admin_user)}


@pytest.fixture
def approved_booking(slots, session_type, counsellor_user) -> Booking:
    """A request the client sent and verified and the counsellor approved into its slot:
    the "time reserved" email with the booking-page link is in the outbox."""
    booking, _ = services.booking_submit(
        submission_key="e2e-approved",
        session_type=session_type,
        mode="online",
        counsellor=None,
        preferred_slot=slots[1],
        preferred_times="",
        client_name=CLIENT["name"],
        email=CLIENT["email"],
        phone="",
        age_confirmation=Booking.AgeConfirmation.ADULT,
        concerns="",
    )
    verify_url = link_in(wait_for_email(CLIENT["email"], "Confirm your email"), "/verify/")
    services.booking_verify(token=verify_url.rstrip("/").rsplit("/", 1)[1])
    return services.booking_approve(booking_id=booking.pk, slot_id=slots[1].pk, user=counsellor_user)
