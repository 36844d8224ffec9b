"""Blocking time off while a slot inside it is being taken (PostgreSQL, real threads): each
waits for the other and ends in a clear refusal, never an error at commit or a deadlock.

Everything that takes a slot locks the slot's counsellor first, as blocking time off does
(services.slots_lock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from bookings import services
from bookings.errors import BookingError
from bookings.models import BlockedPeriod, Booking, Counsellor, LinkToken, Slot, Status
from bookings.tests.threads import backend_pid, held_open, waits_on_a_lock
from bookings.tokens import token_create

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


def block(slot: Slot) -> Callable[[], object]:
    return lambda: services.blocked_period_create(
        counsellor=slot.counsellor, start=slot.start - timedelta(minutes=30), end=slot.end + timedelta(minutes=30)
    )


@pytest.fixture
def takers(make_booking, slot, admin_user, session_type):
    """Every way a slot is taken, as a call taking `slot`."""
    pending = make_booking(Status.PENDING, email="pending@example.com")
    moved = make_booking(Status.CONFIRMED, counsellor=slot.counsellor, email="moved@example.com")
    by_client = make_booking(Status.CONFIRMED, counsellor=slot.counsellor, email="client@example.com")
    raw = token_create(
        booking=by_client, purpose=LinkToken.Purpose.RESCHEDULE, lifetime=timedelta(minutes=30), slot=slot
    )
    return {
        "approve": lambda: services.booking_approve(booking_id=pending.pk, slot_id=slot.pk, user=admin_user),
        "staff move": lambda: services.booking_reschedule(
            booking_id=moved.pk, slot_id=slot.pk, actor="staff", user=admin_user
        ),
        "client move": lambda: services.booking_reschedule_confirm(token=raw),
        "phone booking": lambda: services.booking_create_by_staff(
            user=admin_user,
            status=Status.APPROVED,
            session_type=session_type,
            mode="online",
            client_name="Phoned Client",
            email="phoned@example.com",
            phone="",
            slot=slot,
            consent="consent_by_phone",
            policy_version=settings.POLICY_VERSION,
        ),
    }


TAKERS = ["approve", "staff move", "client move", "phone booking"]


@pytest.mark.parametrize("taker", TAKERS)
def test_a_block_waits_for_a_slot_being_taken_and_is_refused(takers, slot, taker):
    assert held_open(takers[taker], block(slot)) == ("ok", "slots_held")
    assert Booking.objects.filter(slot=slot).count() == 1 and not BlockedPeriod.objects.exists()


# A client's link to move into a slot goes with the slot: the same as when the block came first.
REFUSED = {
    "approve": "slot_unavailable",
    "staff move": "slot_unavailable",
    "client move": "token_invalid",
    "phone booking": "slot_unavailable",
}


@pytest.mark.parametrize("taker", TAKERS)
def test_taking_a_slot_a_block_is_removing_waits_and_is_refused(takers, slot, taker):
    assert held_open(block(slot), takers[taker]) == ("ok", REFUSED[taker])
    assert not Slot.objects.filter(pk=slot.pk).exists() and BlockedPeriod.objects.count() == 1


@pytest.mark.parametrize("taker", TAKERS)
def test_a_slot_taken_while_a_block_holds_its_counsellor_does_not_deadlock(takers, slot, taker):
    """A block locks the counsellor, then finds no booking in its period and removes the free
    slots. A taker that locked the slot before the counsellor would hold the one the block
    removes while waiting for the one it holds: PostgreSQL would end one of them in an error."""
    counsellor_locked = threading.Event()
    outcomes: dict[str, str] = {}
    pids: dict[str, int] = {}

    def run(name: str, call: Callable[[], object]) -> None:
        try:
            with transaction.atomic():
                pids[name] = backend_pid()
                call()
            outcomes[name] = "ok"
        except BookingError as error:
            outcomes[name] = error.code
        except Exception as error:  # a deadlock: the test shows it
            outcomes[name] = f"unexpected {type(error).__name__}: {error}"
        finally:
            connections.close_all()

    def blocker() -> None:
        Counsellor.objects.select_for_update().filter(pk=slot.counsellor_id).first()
        counsellor_locked.set()
        deadline = time.monotonic() + 10
        while not ("taker" in pids and waits_on_a_lock(pids["taker"])) and time.monotonic() < deadline:
            time.sleep(0.005)  # until the taker waits for the counsellor this holds
        block(slot)()

    first = threading.Thread(target=run, args=("block", blocker))
    first.start()
    assert counsellor_locked.wait(timeout=10)
    second = threading.Thread(target=run, args=("taker", takers[taker]))
    second.start()
    first.join(timeout=20)
    second.join(timeout=20)
    assert outcomes == {"block": "ok", "taker": REFUSED[taker]}


@pytest.mark.parametrize("taker", TAKERS)
def test_removing_a_free_time_and_taking_it_wait_for_each_other(takers, slot, taker):
    """Removing a slot locks its counsellor before it, as everything that takes a slot does:
    whichever comes first, the other waits and is refused, never a deadlock."""
    remove = lambda: services.slot_delete(slot_id=slot.pk)  # noqa: E731
    assert held_open(takers[taker], remove) == ("ok", "slots_held")
    assert Booking.objects.filter(slot=slot).count() == 1


def test_taking_a_free_time_being_removed_waits_and_is_refused(takers, slot):
    assert held_open(lambda: services.slot_delete(slot_id=slot.pk), takers["approve"]) == ("ok", "slot_unavailable")
    assert not Slot.objects.filter(pk=slot.pk).exists()
