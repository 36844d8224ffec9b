"""What docs/deployment.md tells a clinic's operator to run: the commands exist, and every
command meant to run on a schedule is in its cron table."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]

# Our commands that a person runs by hand, when needed: everything else runs on a schedule.
BY_HAND = {"api_token", "invite_staff", "seed_demo", "seed_bench", "staff_setup_link"}


def _ours() -> set[str]:
    return {name for name, app in get_commands().items() if app in ("bookings", "staff")}


def _cron_table() -> str:
    deployment = (ROOT / "docs/deployment.md").read_text()
    table = re.search(r"## 4\. Cron.*?```cron\n(.*?)```", deployment, re.S)
    assert table, "docs/deployment.md lost its cron table"
    return table[1]


def test_every_scheduled_command_is_in_the_cron_table():
    scheduled = _ours() - BY_HAND
    assert not BY_HAND - _ours(), "a command run by hand is gone: update BY_HAND"
    cron = _cron_table()
    missing = sorted(name for name in scheduled if not re.search(rf"manage\.py {name}\b", cron))
    assert not missing, f"not in docs/deployment.md's cron table: {missing}"


def test_the_cron_table_runs_only_commands_that_exist():
    named = set(re.findall(r"manage\.py (\w+)", _cron_table()))
    assert named <= _ours(), named - _ours()
