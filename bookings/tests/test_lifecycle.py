"""The state machine: every (from, to) pair, by every actor, against DESIGN.md's table."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.errors import TransitionNotAllowed
from bookings.lifecycle import TRANSITIONS, allowed_targets
from bookings.models import SLOTTED_STATUSES, Actor, Booking, BookingEvent, Payment, Slot, Status
from bookings.services import booking_transition
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db

ALL_PAIRS = [(a, b) for a, b in itertools.product(Status.values, Status.values)]
ALLOWED = [(frm, to, actor) for (frm, to), actors in TRANSITIONS.items() for actor in sorted(actors)]
REFUSED = [(frm, to) for frm, to in ALL_PAIRS if (frm, to) not in TRANSITIONS]
WRONG_ACTOR = [
    (frm, to, actor) for (frm, to), actors in TRANSITIONS.items() for actor in Actor.values if actor not in actors
]


def _changes_for(booking: Booking, to: str) -> dict:
    """What the service making the move saves with it: the reserved time, and (on approval)
    the time to pay by."""
    if to in SLOTTED_STATUSES and booking.slot_id is None:
        start = next_weekday_at(15, days_ahead=6)
        return {
            "slot": Slot.objects.create(counsellor=booking.counsellor, start=start, end=start.replace(hour=16)),
            "approved_at": timezone.now(),
            "payment_due_at": timezone.now() + timedelta(hours=24),
        }
    return {}


def test_the_table_is_the_one_in_the_design():
    s = Status
    assert set(TRANSITIONS) == {
        (s.DRAFT, s.PENDING),
        (s.PENDING, s.APPROVED),
        (s.PENDING, s.REJECTED),
        (s.APPROVED, s.PAYMENT_PENDING),
        (s.PAYMENT_PENDING, s.CONFIRMED),
        (s.PAYMENT_PENDING, s.APPROVED),
        (s.CONFIRMED, s.COMPLETED),
        (s.CONFIRMED, s.NO_SHOW),
        (s.PENDING, s.CANCELLED),
        (s.APPROVED, s.CANCELLED),
        (s.PAYMENT_PENDING, s.CANCELLED),
        (s.CONFIRMED, s.CANCELLED),
    }
    assert allowed_targets(s.PENDING, Actor.STAFF) == [s.APPROVED, s.REJECTED, s.CANCELLED]
    assert allowed_targets(s.CONFIRMED, Actor.STAFF) == [s.COMPLETED, s.NO_SHOW, s.CANCELLED]


def _paid_if_confirming(booking: Booking, to: str) -> None:
    """What the service confirming a booking has made first: a confirmed payment of its
    amount (online, or recorded at the clinic). Without it no move confirms a booking."""
    if to == Status.CONFIRMED:
        Payment.objects.create(
            booking=booking,
            provider="sandbox",
            provider_payment_id=f"pay_{booking.pk}",
            amount=booking.amount,
            currency=booking.currency,
            captured_amount=booking.amount,
            status=Payment.State.CONFIRMED,
            confirmed_at=timezone.now(),
        )


@pytest.mark.parametrize(("frm", "to", "actor"), ALLOWED)
def test_allowed_move_succeeds_and_writes_one_event(frm, to, actor, make_booking, counsellor, admin_user, oncommit):
    booking = make_booking(frm, counsellor=counsellor)
    _paid_if_confirming(booking, to)
    with oncommit():
        moved = booking_transition(
            booking=booking, to=to, actor=actor, user=admin_user, reason="test", changes=_changes_for(booking, to)
        )
    booking.refresh_from_db()
    assert booking.status == to == moved.status
    assert booking.version == 2
    events = list(BookingEvent.objects.filter(booking=booking))
    assert len(events) == 1
    event = events[0]
    assert (event.from_status, event.to_status, event.actor, event.reason) == (frm, to, actor, "test")
    assert event.actor_user == (admin_user if actor == Actor.STAFF else None)


@pytest.mark.parametrize(("frm", "to", "actor"), ALLOWED)
def test_repeating_a_move_is_refused(frm, to, actor, make_booking, counsellor):
    booking = make_booking(frm, counsellor=counsellor)
    _paid_if_confirming(booking, to)
    booking_transition(booking=booking, to=to, actor=actor, changes=_changes_for(booking, to))
    if (to, to) in TRANSITIONS:  # pragma: no cover - the table has no self-loops
        pytest.skip("self-loop")
    with pytest.raises(TransitionNotAllowed):
        booking_transition(booking=booking, to=to, actor=actor)
    assert BookingEvent.objects.filter(booking=booking).count() == 1


@pytest.mark.parametrize(("frm", "to"), REFUSED)
def test_every_other_move_is_refused_and_changes_nothing(frm, to, make_booking, counsellor):
    booking = make_booking(frm, counsellor=counsellor)
    changes = _changes_for(booking, to)
    for actor in Actor.values:
        with pytest.raises(TransitionNotAllowed) as excinfo:
            booking_transition(booking=booking, to=to, actor=actor, changes=changes)
        assert excinfo.value.message  # a sentence a person can read
    fresh = Booking.objects.get(pk=booking.pk)
    assert (fresh.status, fresh.version, fresh.slot_id) == (frm, 1, booking.slot_id)
    assert not BookingEvent.objects.filter(booking=booking).exists()


@pytest.mark.parametrize(("frm", "to", "actor"), WRONG_ACTOR)
def test_the_right_move_by_the_wrong_actor_is_refused(frm, to, actor, make_booking, counsellor):
    booking = make_booking(frm, counsellor=counsellor)
    # A client's refusal is worded for their page, in their language; staff's names the move.
    said = "so that can no longer be done" if actor == Actor.CLIENT else "cannot become"
    with pytest.raises(TransitionNotAllowed, match=said):
        booking_transition(booking=booking, to=to, actor=actor, changes=_changes_for(booking, to))
    assert Booking.objects.get(pk=booking.pk).status == frm
    assert not BookingEvent.objects.filter(booking=booking).exists()


def test_status_is_never_assigned_outside_the_transition_function():
    """A guard against drift: grep the code for writes to `status` on bookings."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    offenders = []
    pattern = re.compile(r"\b(booking|locked|existing|draft|b)\.status\s*=[^=]|\.update\(\s*status=")
    for path in [
        *root.glob("bookings/*.py"),
        *root.glob("bookings/services/*.py"),
        *root.glob("staff/*.py"),
        *root.glob("bookings/api/*.py"),
    ]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "payment" not in line.lower() and "email" not in line.lower():
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    allowed = {"bookings/services/transitions.py"}
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []
    assert sum(1 for o in offenders if o.startswith("bookings/services/transitions.py")) == 1
