"""static/js/clinic-zone.js, the staff calendar's time zone, in Chromium: wall clocks and
offsets of zones with clock changes (the clinic's default, India, has none), including the
hour that happens twice and the hour that never happens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "static" / "js" / "clinic-zone.js"


@pytest.fixture
def zone(tab):
    page = tab.page
    page.set_content("<!doctype html><title>zone</title>")
    page.add_script_tag(content=SCRIPT.read_text())

    def ask(name: str, method: str, arg):
        return page.evaluate("([n, m, a]) => new window.ClinicZone(n)[m](a)", [name, method, arg])

    return ask


def utc_ms(*parts: int) -> int:
    """Date.UTC: month 1-12 here, as people write it."""
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def test_the_wall_clock_of_an_instant(zone):
    assert zone("Asia/Kolkata", "timestampToArray", utc_ms(2026, 11, 30, 4, 30)) == [2026, 10, 30, 10, 0, 0, 0]
    # London, the night the clocks go forward (29 March 2026, 01:00 GMT becomes 02:00 BST).
    assert zone("Europe/London", "timestampToArray", utc_ms(2026, 3, 29, 0, 30)) == [2026, 2, 29, 0, 30, 0, 0]
    assert zone("Europe/London", "timestampToArray", utc_ms(2026, 3, 29, 1, 30)) == [2026, 2, 29, 2, 30, 0, 0]
    # Midnight is hour 0, not 24.
    assert zone("America/New_York", "timestampToArray", utc_ms(2026, 7, 1, 4, 0)) == [2026, 6, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("name", "wall", "offset"),
    [
        ("Asia/Kolkata", [2026, 10, 30, 10, 0], 330),
        ("Europe/London", [2026, 2, 29, 0, 30], 0),  # before the change
        ("Europe/London", [2026, 2, 29, 3, 0], 60),  # after it
        # 01:30 never happens: read with the offset before the change, so it becomes 02:30 BST.
        ("Europe/London", [2026, 2, 29, 1, 30], 0),
        # 25 October 2026, 01:30 happens twice: the first, still BST.
        ("Europe/London", [2026, 9, 25, 1, 30], 60),
        ("Europe/London", [2026, 9, 25, 3, 0], 0),
        ("America/New_York", [2026, 2, 8, 2, 30], -300),  # the skipped hour, 8 March 2026
        ("America/New_York", [2026, 6, 1, 12, 0], -240),
    ],
)
def test_the_offset_at_a_wall_clock_time(zone, name, wall, offset):
    assert zone(name, "offsetForArray", wall) == offset
