"""scripts/backup.sh with stand-ins for pg_dump and pg_restore: a dump holds every client's
data, so only its owner may read it, whatever the umask; and the database's password never
goes on a command line, where `ps` shows it to every user of the machine."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Stands in for pg_dump and pg_restore: writes its --file the way pg_dump does, under the
# caller's umask, and records its arguments and the password it was given in the environment.
FAKE_PG = """#!/bin/sh
for arg in "$@"; do case "$arg" in --file=*) printf 'dump' > "${arg#--file=}";; esac; done
printf '%s\\n' "$@" > "$FAKE_PG_LOG.args"
printf '%s' "${PGPASSWORD-unset}" > "$FAKE_PG_LOG.password"
"""


def backup(tmp_path: Path, *args: str, url: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("pg_dump", "pg_restore"):
        fake = bin_dir / name
        fake.write_text(FAKE_PG)
        fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": url,
        "FAKE_PG_LOG": str(tmp_path / "pg"),
    }
    env.pop("PGPASSWORD", None)
    return subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" "$@"', ROOT / "scripts/backup.sh", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


def test_a_dump_is_readable_by_its_owner_only(tmp_path):
    dump = tmp_path / "mindsettler.dump"
    backup(tmp_path, "dump", str(dump), url="postgresql://user@127.0.0.1:5432/mindsettler")
    assert dump.read_text() == "dump"
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600


@pytest.mark.parametrize("command", ["dump", "restore"])
def test_the_password_goes_in_the_environment_not_on_the_command_line(tmp_path, command):
    # Percent-encoded in the URL as it must be ("@" is %40), decoded for libpq.
    url = "postgres://mindsettler:s3cr%40t%5Cpw@db.internal:5432/mindsettler?sslmode=require"
    result = backup(tmp_path, command, str(tmp_path / "mindsettler.dump"), url=url)
    args = (tmp_path / "pg.args").read_text()
    assert "s3cr" not in args
    assert "--dbname=postgres://mindsettler@db.internal:5432/mindsettler?sslmode=require" in args.splitlines()
    assert (tmp_path / "pg.password").read_text() == "s3cr@t\\pw"
    assert "s3cr" not in result.stdout + result.stderr


def test_a_url_without_a_password_is_passed_as_it_is(tmp_path):
    backup(tmp_path, "dump", str(tmp_path / "d"), url="postgresql://mindsettler@/mindsettler")
    assert "--dbname=postgresql://mindsettler@/mindsettler" in (tmp_path / "pg.args").read_text().splitlines()
    assert (tmp_path / "pg.password").read_text() == "unset"
