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

from bookings.models import Slot
from conftest import next_weekday_at
from e2e.browsing import CHROMIUM_ARGS, Tab, chromium_path, open_tab, totp_secret_for


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("browser"):
            # One live server and one Chromium per xdist worker; keep the journeys together.
            item.add_marker(pytest.mark.xdist_group("browser"))


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
    return {"email": counsellor_user.email, "password": "a-long-counsellor-password", "secret": totp_secret_for(counsellor_user)}


@pytest.fixture
def admin_login(admin_user) -> dict[str, str]:
    return {"email": admin_user.email, "password": "a-long-admin-password", "secret": totp_secret_for(admin_user)}
