"""Real concurrency on PostgreSQL: threads with their own connections race for one slot or
one email address. The database constraints and row locks must let exactly one through."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bookings.errors import BookingError, TokenInvalid
from bookings.models import Booking, LinkToken, Payment, Status
from bookings.services import (
    booking_approve,
    booking_resend_verification,
    booking_verify,
    payment_confirm,
    payment_fail,
    payment_start,
)
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
    assert Booking.objects.filter(email="same@example.com", status=Status.PENDING).count() == 1
    assert Booking.objects.filter(email="same@example.com", status=Status.DRAFT).count() == 19


# --- Lock order: the same rows locked in the same order everywhere, or a deadlock ---------


def first_holds_booking(booking_id: int, then: Callable[[], object], other: Callable[[], object]) -> list[str]:
    """Lock the booking's row (in a transaction), let `other` start in a second thread, and
    half a second later run `then` in the same transaction, as a request that locked the
    booking first goes on to the rows `other` may be holding. Both outcomes, first's first."""
    locked = threading.Event()

    def first() -> str:
        with transaction.atomic():
            Booking.objects.select_for_update().filter(pk=booking_id).first()
            locked.set()
            time.sleep(0.5)
            then()
        return "ok"

    def second() -> str:
        assert locked.wait(timeout=10)
        return other()

    return at_once([lambda: _outcome_or_token(first), lambda: _outcome_or_token(second)], ordered=True)


def _outcome_or_token(call: Callable[[], object]) -> str:
    try:
        return str(call())
    except TokenInvalid as exc:
        return f"link {exc.reason}"
    except BookingError as exc:
        return exc.code


def test_a_verification_while_a_new_link_is_sent_waits_for_it(make_booking, counsellor):
    """The client opens the emailed link just as "Send the email again" revokes it: the link
    is refused as replaced, rather than both requests deadlocking (a 503)."""
    draft = make_booking(Status.DRAFT, counsellor=counsellor)
    token = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    outcomes = first_holds_booking(
        draft.pk,
        then=lambda: booking_resend_verification(booking=draft),
        other=lambda: booking_verify(token=token) and "ok",
    )
    assert outcomes == ["ok", "link revoked"]
    assert Booking.objects.get(pk=draft.pk).status == Status.DRAFT


def test_a_payment_arriving_while_the_client_presses_pay_again_confirms_the_booking(make_booking, counsellor):
    """An abandoned attempt's money arrives while the client starts another (its row locked,
    the booking next): the payment confirms the booking without waiting for the new attempt,
    which then finds the booking paid."""
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    earlier = payment_start(booking_id=booking.pk)
    payment_fail(payment_id=earlier.pk, reason="Checkout closed")
    again = Payment.objects.create(booking=booking, provider=earlier.provider, amount=booking.amount)
    locked = threading.Event()

    def press_pay_again() -> str:  # payment_start's transaction: its attempt, then the booking
        with transaction.atomic():
            Payment.objects.select_for_update().get(pk=again.pk)
            locked.set()
            time.sleep(0.5)
            status = Booking.objects.select_for_update().get(pk=booking.pk).status
        return f"then read {status}"

    def money_arrives() -> str:
        assert locked.wait(timeout=10)
        payment_confirm(
            payment_id=earlier.pk,
            provider_payment_id="pay_late",
            amount=booking.amount,
            currency=booking.currency,
            raw={},
            source="webhook:payment.captured",
        )
        return "ok"

    outcomes = at_once([press_pay_again, money_arrives], ordered=True)
    assert outcomes == ["then read confirmed", "ok"]
    assert Payment.objects.get(pk=earlier.pk).status == Payment.State.CONFIRMED


def test_making_a_held_request_locks_its_booking_before_its_session_type(make_booking, counsellor, session_type):
    """booking_verify locks the draft (token_claim), then its session type: the release of a
    held request (held_requests_release) must take them in that order too, or the two deadlock."""
    from bookings.models import SessionType, Slot
    from bookings.services import held_requests_release

    start = timezone.now() - timedelta(hours=2)
    ended = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    last = make_booking(Status.CONFIRMED, slot=ended, email="held@example.com")
    draft = make_booking(Status.DRAFT, email="held@example.com", verified_at=timezone.now())
    Booking.objects.filter(pk=last.pk).update(status=Status.COMPLETED)

    def then() -> None:
        SessionType.objects.select_for_update(no_key=True).filter(pk=session_type.pk).exists()

    outcomes = first_holds_booking(draft.pk, then=then, other=lambda: held_requests_release(email="held@example.com"))
    assert outcomes == ["ok", "1"]
    assert Booking.objects.get(pk=draft.pk).status == Status.PENDING
