"""A dump holds every client's data: only its owner may read it, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Stands in for pg_dump: writes its --file the way pg_dump does, under the caller's umask.
FAKE_PG_DUMP = """#!/bin/sh
for arg in "$@"; do case "$arg" in --file=*) printf 'dump' > "${arg#--file=}";; esac; done
"""


def test_a_dump_is_readable_by_its_owner_only(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text(FAKE_PG_DUMP)
    fake.chmod(0o755)
    dump = tmp_path / "mindsettler.dump"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": "postgresql://user@127.0.0.1:5432/mindsettler",
    }
    subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" dump "$1"', ROOT / "scripts/backup.sh", dump],
        env=env,
        check=True,
        capture_output=True,
    )
    assert dump.read_text() == "dump"
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
