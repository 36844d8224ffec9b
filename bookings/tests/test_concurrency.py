"""Real concurrency on PostgreSQL: threads with their own connections race for one slot or
one email address. The database constraints and row locks must let exactly one through."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
from django.db import connection

from bookings.errors import BookingError
from bookings.models import LinkToken, Status
from bookings.services import booking_approve, booking_verify
from bookings.tests.threads import at_once
from bookings.tokens import token_create

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


def race(calls: list[Callable[[], object]]) -> Counter:
    """Run `calls` at once, one thread each; count outcomes by result or error code."""
    return Counter(at_once([partial(_outcome, call) for call in calls]))


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except BookingError as exc:
        return exc.code
    return "ok"


def test_twenty_approvals_into_one_slot_let_exactly_one_through(make_booking, slot, admin_user):
    bookings = [make_booking(Status.PENDING, counsellor=slot.counsellor) for _ in range(20)]
    outcomes = race([lambda b=b: booking_approve(booking_id=b.pk, slot_id=slot.pk, user=admin_user) for b in bookings])
    assert outcomes == Counter({"ok": 1, "slot_unavailable": 19})
    statuses = Counter(b.status for b in type(bookings[0]).objects.filter(pk__in=[b.pk for b in bookings]))
    assert statuses == Counter({Status.APPROVED: 1, Status.PENDING: 19})


def test_twenty_verifications_for_one_email_make_exactly_one_active_booking(make_booking, counsellor):
    tokens = []
    for _ in range(20):
        draft = make_booking(Status.DRAFT, email="same@example.com", counsellor=counsellor)
        tokens.append(token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1)))
    outcomes = race([lambda t=t: booking_verify(token=t) for t in tokens])
    assert outcomes == Counter({"ok": 1, "active_booking_exists": 19})
    from bookings.models import Booking

    assert Booking.objects.filter(email="same@example.com", status=Status.PENDING).count() == 1
    assert Booking.objects.filter(email="same@example.com", status=Status.DRAFT).count() == 19
