"""The clinic's name is the CLINIC_NAME setting: the model forgets its `name` column.

Safe while the previous release still runs (docs/deployment.md): the column stays in the
database, now with a database default, so the old code still reads and writes it and the new
code's inserts leave it to the default. A later release may drop it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0005_payment_captured_amount"),
    ]

    operations = [
        migrations.AlterField(
            model_name="clinic",
            name="name",
            field=models.CharField(max_length=120, default="MindSettler", db_default="MindSettler"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveField(model_name="clinic", name="name")],
        ),
    ]
