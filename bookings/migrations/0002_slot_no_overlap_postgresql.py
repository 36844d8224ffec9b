"""On PostgreSQL, the database itself refuses overlapping slots for one counsellor.

SQLite has no exclusion constraints; there `services.slot_create` serialises publishing per
counsellor and checks for overlaps.
"""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE bookings_slot ADD CONSTRAINT slot_no_overlap
    EXCLUDE USING gist (counsellor_id WITH =, tstzrange("start", "end", '[)') WITH &&);
"""
DROP = "ALTER TABLE bookings_slot DROP CONSTRAINT IF EXISTS slot_no_overlap;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
