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

On SQLite the triggers are not made here but by bookings.db_rules, at the end of every
`migrate` once this migration is applied, and dropped at its start: Django rebuilds a SQLite
table for most changes to it (an AlterField, a new check constraint), and a rebuild of
bookings_slot or bookings_booking with them in place fails (each names the other table), or
drops those on the rebuilt table for good. Made here, they would be in place for every later
migration of a new database's first `migrate`.
"""

from django.db import migrations, models

from bookings.db_rules import sqlite_triggers_drop

POSTGRESQL_CREATE = """
ALTER TABLE bookings_slot ADD CONSTRAINT slot_id_counsellor_unique UNIQUE (id, counsellor_id);
ALTER TABLE bookings_booking ADD CONSTRAINT booking_slot_counsellor
    FOREIGN KEY (slot_id, counsellor_id) REFERENCES bookings_slot (id, counsellor_id);
"""
POSTGRESQL_DROP = """
ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_slot_counsellor;
ALTER TABLE bookings_slot DROP CONSTRAINT IF EXISTS slot_id_counsellor_unique;
"""

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
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_CREATE)
    # SQLite: made at the end of `migrate` (bookings.db_rules), see above.


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP)
    elif vendor == "sqlite":
        sqlite_triggers_drop(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0025_outbound_email_requeued_at")]
    operations = [
        migrations.RunPython(counsellor_from_slot, migrations.RunPython.noop),
        migrations.RunPython(forwards, backwards),
    ]
