"""Migrations run on the data a live clinic has, not only on an empty database."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from bookings.db_rules import sqlite_triggers_sync
from bookings.models import Booking, Status


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    sqlite_triggers_sync(connection)  # as `migrate` does at its end (bookings.apps)


@pytest.mark.django_db(transaction=True)
def test_0012_gives_a_booking_with_a_slot_and_no_counsellor_its_slots_counsellor(make_booking, counsellor):
    """A booking from before the rule (a slot, no counsellor) would make adding the
    constraint fail, and the release stop halfway."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    untouched = make_booking(Status.PENDING)
    migrate([("bookings", "0011_payment_refunded_earlier")])
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE bookings_booking SET counsellor_id = NULL WHERE id = %s", [booking.pk])
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    booking.refresh_from_db()
    untouched.refresh_from_db()
    assert booking.counsellor_id == booking.slot.counsellor_id == counsellor.pk
    assert untouched.slot_id is None and untouched.counsellor_id is None


@pytest.mark.django_db(transaction=True)
def test_0026_gives_a_booking_in_another_counsellors_time_that_counsellor_and_can_be_undone(
    make_booking, counsellor, other_counsellor
):
    """A booking from before the rule whose counsellor is not its slot's would make adding it
    fail; the release can also be rolled back past it, and forward again."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    untouched = make_booking(Status.PENDING, counsellor=other_counsellor)
    migrate([("bookings", "0025_outbound_email_requeued_at")])
    try:
        with connection.cursor() as cursor:  # refused while 0026 is applied
            cursor.execute(
                "UPDATE bookings_booking SET counsellor_id = %s WHERE id = %s", [other_counsellor.pk, booking.pk]
            )
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    booking.refresh_from_db()
    untouched.refresh_from_db()
    assert booking.counsellor_id == booking.slot.counsellor_id == counsellor.pk
    assert untouched.slot_id is None and untouched.counsellor_id == other_counsellor.pk
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(counsellor=other_counsellor)
