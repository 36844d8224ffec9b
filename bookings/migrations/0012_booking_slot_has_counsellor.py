"""A booking with a time has a counsellor. Every path that gives a booking its slot gives it
the slot's counsellor too; this makes the database hold it.

A row from before that rule (a slot, no counsellor) would make adding the constraint fail and
stop the release halfway, so each such booking is first given its slot's counsellor, who is
the one holding the session."""

from django.db import migrations, models


def counsellor_from_slot(apps, schema_editor):
    Booking = apps.get_model("bookings", "Booking")
    Slot = apps.get_model("bookings", "Slot")
    slot_counsellor = Slot.objects.filter(pk=models.OuterRef("slot_id")).values("counsellor_id")[:1]
    updated = Booking.objects.filter(slot__isnull=False, counsellor__isnull=True).update(
        counsellor_id=models.Subquery(slot_counsellor)
    )
    if updated and schema_editor.connection.vendor == "postgresql":
        # The foreign keys are checked at commit; PostgreSQL will not ALTER a table with such
        # checks pending ("pending trigger events"), so they are made now.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0011_payment_refunded_earlier'),
    ]

    operations = [
        migrations.RunPython(counsellor_from_slot, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='booking',
            constraint=models.CheckConstraint(
                condition=models.Q(('slot__isnull', True), ('counsellor__isnull', False), _connector='OR'),
                name='booking_slot_has_counsellor',
            ),
        ),
    ]
