"""Migrations run on the data a live clinic has, not only on an empty database."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bookings.models import Status


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


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
