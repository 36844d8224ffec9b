"""scripts/test_clocks.py: the moments `make test-clocks` runs the suite at."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scripts.test_clocks import moments

KOLKATA = ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 11, 29, 4, 41, tzinfo=UTC),  # a Sunday morning
        datetime(2026, 11, 30, 18, 40, tzinfo=UTC),  # just after midnight on the 1st, in Kolkata
        datetime(2026, 12, 31, 19, 0, tzinfo=UTC),  # New Year's Day in Kolkata, not yet in UTC
    ],
)
def test_every_moment_is_ahead_of_now_each_once_at_its_local_hour(now):
    found = dict(moments(now, KOLKATA))
    assert all(moment > now for moment in found.values())
    assert len(set(found.values())) == len(found)
    local = {name: moment.astimezone(KOLKATA) for name, moment in found.items()}
    for name, when in local.items():
        if "late evening" in name:
            assert (when.hour, when.minute) == (23, 45)
        if "Monday" in name:
            assert (when.weekday(), when.hour, when.minute) == (0, 10, 30)
        if "Sunday" in name:
            assert when.weekday() == 6
        if "new month" in name:
            assert (when.day, when.hour, when.minute) == (1, 0, 15)
        if "new year" in name:
            assert (when.month, when.day, when.hour, when.minute) == (12, 31, 23, 50)


def test_a_moment_that_is_two_is_run_once_under_both_names():
    # From 29 November, the midnight after tomorrow's is the 1st of December's.
    found = dict(moments(datetime(2026, 11, 29, 4, 41, tzinfo=UTC), KOLKATA))
    assert "after midnight and a new month" in found
    assert found["after midnight and a new month"].astimezone(KOLKATA) == datetime(2026, 12, 1, 0, 15, tzinfo=KOLKATA)
