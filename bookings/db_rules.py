"""Rules the database keeps that Django cannot declare in a model, on SQLite: triggers.

PostgreSQL keeps them as constraints (migrations 0002 and 0026). On SQLite, migration 0026's
rules are triggers, made here at the end of every `migrate` once 0026 is applied, and dropped
at its start (bookings.apps): Django rebuilds a SQLite table for most changes to it, and a
rebuild of bookings_slot or bookings_booking with these in place fails (each names the other
table) or drops those on the rebuilt table for good. A test database is made by `migrate` too.

Each refuses a write with RAISE(ABORT), which Python's sqlite3 raises as an IntegrityError,
as a constraint's refusal. Django stores an aware datetime in SQLite as text in UTC,
'YYYY-MM-DD HH:MM:SS' with '.ffffff' only when there are microseconds, so comparing the text as
stored orders the times correctly, as the ORM's own lookups do.
"""

from __future__ import annotations

from typing import Any

from django.db.migrations.recorder import MigrationRecorder

# The migration that brought the rules: without it applied (migrated back past it), none.
RULES_MIGRATION = ("bookings", "0026_booking_slot_counsellor_and_sqlite_overlap")

# `<>` leaves a booking with a slot and no counsellor to booking_slot_has_counsellor, and one
# whose slot does not exist to the foreign key on slot_id, each refused under its own name.
_BOOKING_COUNSELLOR_IS_THE_SLOTS = """
    SELECT RAISE(ABORT, 'booking_slot_counsellor: a booking''s counsellor must be its slot''s counsellor')
    WHERE EXISTS (SELECT 1 FROM bookings_slot WHERE id = NEW.slot_id AND counsellor_id <> NEW.counsellor_id);
"""
SQLITE_TRIGGERS = {
    "booking_slot_counsellor_insert": f"""
CREATE TRIGGER booking_slot_counsellor_insert BEFORE INSERT ON bookings_booking
WHEN NEW.slot_id IS NOT NULL
BEGIN {_BOOKING_COUNSELLOR_IS_THE_SLOTS} END
""",
    "booking_slot_counsellor_update": f"""
CREATE TRIGGER booking_slot_counsellor_update BEFORE UPDATE OF slot_id, counsellor_id ON bookings_booking
WHEN NEW.slot_id IS NOT NULL
BEGIN {_BOOKING_COUNSELLOR_IS_THE_SLOTS} END
""",
    "slot_counsellor_kept": """
CREATE TRIGGER slot_counsellor_kept BEFORE UPDATE OF counsellor_id ON bookings_slot
WHEN NEW.counsellor_id IS NOT OLD.counsellor_id
BEGIN
    SELECT RAISE(ABORT, 'booking_slot_counsellor: a slot with bookings cannot change counsellor')
    WHERE EXISTS (SELECT 1 FROM bookings_booking WHERE slot_id = OLD.id);
END
""",
    # The counsellor's other slots do not overlap one another, so the later one starts, the
    # later it ends: of those starting before the new one ends, only the last can overlap it.
    # Read so, the unique (counsellor_id, start) index finds it at once; asked of every one,
    # each slot published read all of the counsellor's before it (a second for a month of
    # times, once they have a few years of slots). On insert the new row is not in the table.
    "slot_no_overlap_insert": """
CREATE TRIGGER slot_no_overlap_insert BEFORE INSERT ON bookings_slot
BEGIN
    SELECT RAISE(ABORT, 'slot_no_overlap: a counsellor''s slots cannot overlap')
    WHERE (
        SELECT "end" FROM bookings_slot
        WHERE counsellor_id = NEW.counsellor_id AND "start" < NEW."end"
        ORDER BY "start" DESC LIMIT 1
    ) > NEW."start";
END
""",
    "slot_no_overlap_update": """
CREATE TRIGGER slot_no_overlap_update BEFORE UPDATE OF "start", "end", counsellor_id ON bookings_slot
BEGIN
    SELECT RAISE(ABORT, 'slot_no_overlap: a counsellor''s slots cannot overlap')
    WHERE (
        SELECT "end" FROM bookings_slot
        WHERE counsellor_id = NEW.counsellor_id AND id <> OLD.id AND "start" < NEW."end"
        ORDER BY "start" DESC LIMIT 1
    ) > NEW."start";
END
""",
}


def sqlite_triggers_drop(connection: Any) -> None:
    with connection.cursor() as cursor:
        for name in SQLITE_TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


def sqlite_triggers_sync(connection: Any) -> None:
    """On SQLite, the triggers made (if not there) once RULES_MIGRATION is applied, else dropped."""
    if connection.vendor != "sqlite":
        return
    if RULES_MIGRATION not in MigrationRecorder(connection).applied_migrations():
        sqlite_triggers_drop(connection)
        return
    with connection.cursor() as cursor:
        for sql in SQLITE_TRIGGERS.values():
            cursor.execute(sql.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1))
