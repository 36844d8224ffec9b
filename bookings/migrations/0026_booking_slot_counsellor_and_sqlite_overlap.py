"""The database itself keeps two rules that only the services kept until now.

1. A booking with a time belongs to the counsellor whose time it is: booking.counsellor is
   booking.slot.counsellor. The services always write the two together (approval, a move, a
   staff booking: one UPDATE or INSERT each), and the staff pages, the calendar feed and the
   daily summaries rely on it: a booking whose counsellor is not its slot's would be shown to
   one counsellor and held in another's time.

   PostgreSQL: a composite foreign key, (slot_id, counsellor_id) referencing the slot's
   (id, counsellor_id), which needs a unique constraint on those two (cheap: id alone is
   unique). Django's own foreign key on slot_id stays as it is. The key is checked at each
   statement, not deferred like Django's: every path writes both columns in one statement,
   and the error then comes from the statement that broke the rule. It also refuses giving a
   booked slot to another counsellor (no code does; ON UPDATE NO ACTION). A booking with a
   slot and no counsellor is not checked by the key (MATCH SIMPLE); the check constraint
   booking_slot_has_counsellor refuses it.

   SQLite: ALTER TABLE cannot add a foreign key, so triggers refuse the same writes, with
   RAISE(ABORT), which Python's sqlite3 raises as an IntegrityError like a constraint's.

2. On SQLite too, one counsellor's slots never overlap ([start, end) half-open: back to back
   is fine). PostgreSQL has had an exclusion constraint since migration 0002; SQLite has none,
   so triggers refuse an overlapping insert, or an update of start, end or counsellor into an
   overlap. The services check first (under a lock on the counsellor); this is the last line,
   and raises an IntegrityError as PostgreSQL's constraint does, which slot_create and
   slots_publish already turn into SlotUnavailable. Django stores an aware datetime in SQLite
   as text in UTC, 'YYYY-MM-DD HH:MM:SS' with '.ffffff' only when there are microseconds, so
   comparing the text as stored orders the times correctly, as the ORM's own lookups do.
   Existing rows are not re-checked (the services kept them apart).

A booking from before the first rule whose counsellor is not its slot's would make adding the
foreign key fail and stop the release halfway, so each such booking is first given its slot's
counsellor, the one holding the session (as migration 0012 did for those with none).

On SQLite, a later migration that makes Django rebuild bookings_slot or bookings_booking
(most AlterField, or adding a check constraint) drops their triggers with the old table: such a
migration must create them again (bookings/tests/test_constraints.py fails without them).
"""

from django.db import migrations, models

POSTGRESQL_CREATE = """
ALTER TABLE bookings_slot ADD CONSTRAINT slot_id_counsellor_unique UNIQUE (id, counsellor_id);
ALTER TABLE bookings_booking ADD CONSTRAINT booking_slot_counsellor
    FOREIGN KEY (slot_id, counsellor_id) REFERENCES bookings_slot (id, counsellor_id);
"""
POSTGRESQL_DROP = """
ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_slot_counsellor;
ALTER TABLE bookings_slot DROP CONSTRAINT IF EXISTS slot_id_counsellor_unique;
"""

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
    # On insert the new row's id is not known yet, and the row is not in the table: any
    # overlapping slot of the counsellor is another one.
    "slot_no_overlap_insert": """
CREATE TRIGGER slot_no_overlap_insert BEFORE INSERT ON bookings_slot
BEGIN
    SELECT RAISE(ABORT, 'slot_no_overlap: a counsellor''s slots cannot overlap')
    WHERE EXISTS (
        SELECT 1 FROM bookings_slot
        WHERE counsellor_id = NEW.counsellor_id AND "start" < NEW."end" AND "end" > NEW."start"
    );
END
""",
    "slot_no_overlap_update": """
CREATE TRIGGER slot_no_overlap_update BEFORE UPDATE OF "start", "end", counsellor_id ON bookings_slot
BEGIN
    SELECT RAISE(ABORT, 'slot_no_overlap: a counsellor''s slots cannot overlap')
    WHERE EXISTS (
        SELECT 1 FROM bookings_slot
        WHERE counsellor_id = NEW.counsellor_id AND id <> OLD.id AND "start" < NEW."end" AND "end" > NEW."start"
    );
END
""",
}


def counsellor_from_slot(apps, schema_editor):
    Booking = apps.get_model("bookings", "Booking")
    Slot = apps.get_model("bookings", "Slot")
    slot_counsellor = Slot.objects.filter(pk=models.OuterRef("slot_id")).values("counsellor_id")[:1]
    updated = (
        Booking.objects.filter(slot__isnull=False)
        .exclude(counsellor_id=models.F("slot__counsellor_id"))
        .update(counsellor_id=models.Subquery(slot_counsellor))
    )
    if updated and schema_editor.connection.vendor == "postgresql":
        # Django's foreign keys are checked at commit; PostgreSQL will not ALTER a table with
        # such checks pending ("pending trigger events"), so they are made now.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_CREATE)
    elif vendor == "sqlite":
        for sql in SQLITE_TRIGGERS.values():
            schema_editor.execute(sql)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP)
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0025_outbound_email_requeued_at")]
    operations = [
        migrations.RunPython(counsellor_from_slot, migrations.RunPython.noop),
        migrations.RunPython(forwards, backwards),
    ]
