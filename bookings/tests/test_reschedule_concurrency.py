"""Rescheduling under real concurrency (PostgreSQL, threads with their own connections):
clients racing for one new slot, and moves crossing the same slots. Never both slots, never
neither, never a deadlock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from bookings.models import Actor, Booking, BookingEvent, Slot, Status
from bookings.services import booking_reschedule
from bookings.tests.test_concurrency import race
from conftest import next_weekday_at

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


def _slot(counsellor, hour: int, days_ahead: int = 6) -> Slot:
    # Even hours: make_booking's own hour-long slots are at odd hours, and slots may not overlap.
    start = next_weekday_at(hour, days_ahead=days_ahead)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))


def test_ten_clients_racing_for_one_new_slot_let_exactly_one_through(make_booking, counsellor):
    target = _slot(counsellor, 20, days_ahead=9)
    bookings = [make_booking(Status.CONFIRMED, counsellor=counsellor) for _ in range(10)]
    before = {b.pk: b.slot_id for b in bookings}
    outcomes = race(
        [lambda b=b: booking_reschedule(booking_id=b.pk, slot_id=target.pk, actor=Actor.CLIENT) for b in bookings]
    )
    assert outcomes == Counter({"ok": 1, "slot_unavailable": 9})
    rows = {b.pk: b.slot_id for b in Booking.objects.filter(pk__in=before)}
    winners = [pk for pk, slot_id in rows.items() if slot_id == target.pk]
    assert len(winners) == 1
    # Everyone else still holds exactly their own old slot.
    assert all(rows[pk] == before[pk] for pk in rows if pk not in winners)
    assert BookingEvent.objects.filter(action="rescheduled").count() == 1


def test_moves_crossing_the_same_slots_never_deadlock_or_double_book(make_booking, counsellor):
    for round_ in range(5):
        s1, s2, s3 = (_slot(counsellor, 6 + 2 * i, days_ahead=10 + round_) for i in range(3))
        a = make_booking(Status.CONFIRMED, slot=s1)
        b = make_booking(Status.CONFIRMED, slot=s2)
        # A leaves s1 for s3 while B tries to take s1: locks {s1, s3} and {s1, s2}.
        outcomes = race(
            [
                lambda a=a, s3=s3: booking_reschedule(booking_id=a.pk, slot_id=s3.pk, actor=Actor.STAFF),
                lambda b=b, s1=s1: booking_reschedule(booking_id=b.pk, slot_id=s1.pk, actor=Actor.STAFF),
            ]
        )
        assert set(outcomes) <= {"ok", "slot_unavailable"}, outcomes
        a.refresh_from_db()
        b.refresh_from_db()
        assert a.slot_id == s3.pk
        assert b.slot_id in (s1.pk, s2.pk)
        holders = Counter(Booking.objects.filter(status=Status.CONFIRMED).values_list("slot_id", flat=True))
        assert max(holders.values()) == 1


def test_a_move_meeting_a_cancellation_of_the_same_booking_does_not_deadlock(make_booking, counsellor, monkeypatch):
    """The move holds the counsellor and the slots and waits for the booking; the cancellation
    holds the booking, frees its slot and commits. The offer the freed slot is owed is written
    after that commit (services.slots_freed), not while the booking is held: written there, it
    waited on the move's slot while the move waited on the booking."""
    import threading

    from django.db import connections

    from bookings.services import booking_cancel, rescheduling

    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    target = _slot(counsellor, 16, days_ahead=8)
    locked = threading.Event()
    slots_lock = rescheduling.slots_lock

    def slow(ids):  # the move pauses once it holds the slots, so that the cancellation comes between
        held = slots_lock(ids)
        locked.set()
        threading.Event().wait(1.0)
        return held

    monkeypatch.setattr(rescheduling, "slots_lock", slow)
    outcomes: dict[str, str] = {}

    def run(name, call, wait_first):
        if wait_first:
            locked.wait(timeout=10)
        try:
            call()
            outcomes[name] = "ok"
        except Exception as error:  # a deadlock would be an OperationalError
            outcomes[name] = type(error).__name__
        finally:
            connections.close_all()

    move = lambda: booking_reschedule(booking_id=booking.pk, slot_id=target.pk, actor=Actor.STAFF)  # noqa: E731
    cancel = lambda: booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, reason="Phoned")  # noqa: E731
    threads = [
        threading.Thread(target=run, args=("move", move, False)),
        threading.Thread(target=run, args=("cancel", cancel, True)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert "OperationalError" not in outcomes.values(), outcomes
    assert outcomes["cancel"] == "ok" or outcomes["move"] == "ok"
