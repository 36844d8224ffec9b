"""`make test-clocks`: the test suite at the hours when date arithmetic goes wrong.

CI runs the suite at whatever time it is. A test that counts two Mondays' hours in the
next two weeks, or picks "the 9th of the month after next" against a 60-day horizon, passes
on most days and fails on some: the clock at the next run decides, not the change being tested.
This runs the suite (on SQLite, or on PostgreSQL with DATABASE_URL; without the browser
tests and those marked `postgres`, unless pytest arguments after `--` say otherwise) under
libfaketime at each of a few moments of the clinic's zone (TIME_ZONE, Asia/Kolkata by
default), all in the coming weeks, so that the code's own checks against "now" still hold:

  late evening    15 minutes before the clinic's midnight (its day is nearly over)
  after midnight  15 minutes after it (the clinic's date is a day ahead of UTC's in zones east
                  of Greenwich)
  Monday morning  10:30 on the next Monday (a week's first day, its hours started)
  Sunday          13:00 on the next Sunday
  a new month     00:15 on the 1st of next month
  a new year      23:50 on the coming 31 December

It needs `faketime` (Debian: apt-get install faketime). The clock keeps running from each
moment, as the real one would. Exit status: 1 if any moment failed.

    make test-clocks
    make test-clocks ARGS="-- staff/tests/test_availability.py"
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent


def moments(now: datetime, zone: ZoneInfo) -> list[tuple[str, datetime]]:
    """(name, UTC moment) for each moment named in the module's docstring, after `now`."""
    today = now.astimezone(zone).date()

    def at(day: date, hour: int, minute: int) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)

    tomorrow = today + timedelta(days=1)
    monday = tomorrow + timedelta(days=-tomorrow.weekday() % 7)
    sunday = tomorrow + timedelta(days=(6 - tomorrow.weekday()) % 7)
    first = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    new_year = date(today.year, 12, 31) if today < date(today.year, 12, 31) else date(today.year + 1, 12, 31)
    named = [
        ("late evening", at(tomorrow, 23, 45)),
        ("after midnight", at(tomorrow + timedelta(days=1), 0, 15)),
        ("Monday morning", at(monday, 10, 30)),
        ("Sunday", at(sunday, 13, 0)),
        ("a new month", at(first, 0, 15)),
        ("a new year", at(new_year, 23, 50)),
    ]
    by_moment: dict[datetime, list[str]] = {}  # "after midnight" may be the new month's, say
    for name, moment in named:
        by_moment.setdefault(moment, []).append(name)
    return [(" and ".join(names), moment) for moment, names in by_moment.items()]


def main(argv: list[str]) -> int:
    if shutil.which("faketime") is None:
        print("error: faketime is not installed (Debian: apt-get install faketime)", file=sys.stderr)
        return 2
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    zone = ZoneInfo(os.environ.get("TIME_ZONE") or "Asia/Kolkata")
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "worksteal"]
    if not any(not arg.startswith("-") for arg in extra) and "-m" not in extra:
        # Without the tests that start servers and workers of their own (browser, races, lost
        # connections): their sockets and waits are not all libfaketime's to fake.
        pytest += ["-m", "not browser and not postgres"]
    failed = []
    for name, moment in moments(datetime.now(UTC), zone):
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S")
        local = moment.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z")
        print(f"--- {name}: {local} ({stamp} UTC)", flush=True)
        # faketime reads the given time in the zone of TZ: UTC here, as the stamp is. (Its
        # monotonic clock is faked too: left real, subprocesses' waits failed with EINVAL.)
        env = {**os.environ, "TZ": "UTC"}
        code = subprocess.run(["faketime", stamp, *pytest, *extra], cwd=ROOT, env=env, check=False).returncode  # noqa: S603, S607
        if code != 0:
            failed.append(f"{name} ({local}): pytest exited {code}")
    print()
    print("\n".join(failed) if failed else "Every moment passed.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
