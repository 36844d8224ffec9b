"""Backup and restore: a dump restored into a fresh database has every booking."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from bookings.models import Booking, BookingEvent, Status

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="backups are pg_dump / pg_restore"),
    pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed"),
    pytest.mark.django_db(transaction=True),
]


def _url(name: str) -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgresql://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"


def test_dump_and_restore_into_a_fresh_database(make_booking, counsellor, tmp_path):
    made = [make_booking(status, counsellor=counsellor) for status in Status.values]
    BookingEvent.objects.create(booking=made[0], to_status=made[0].status, actor="client")
    dump = tmp_path / "mindsettler.dump"
    env = {**os.environ, "DATABASE_URL": _url(connection.settings_dict["NAME"])}
    subprocess.run([ROOT / "scripts/backup.sh", "dump", dump], env=env, check=True, capture_output=True)

    fresh = f"restore_check_{os.getpid()}"
    with psycopg.connect(_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
        admin.execute(f'CREATE DATABASE "{fresh}"')
    try:
        env["DATABASE_URL"] = _url(fresh)
        subprocess.run([ROOT / "scripts/backup.sh", "restore", dump], env=env, check=True, capture_output=True)
        with psycopg.connect(_url(fresh)) as restored:
            rows = restored.execute("SELECT ack_id, status FROM bookings_booking ORDER BY ack_id").fetchall()
            events = restored.execute("SELECT count(*) FROM bookings_bookingevent").fetchone()[0]
            constraints = {
                r[0] for r in restored.execute("SELECT conname FROM pg_constraint WHERE conname LIKE 'slot_%'")
            }
    finally:
        with psycopg.connect(_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
    assert rows == sorted((b.ack_id, b.status) for b in Booking.objects.all())
    assert len(rows) == len(Status.values)
    assert events == 1
    assert "slot_no_overlap" in constraints  # the exclusion constraint came back too
