"""Paid at the clinic, at the same moment as something else (PostgreSQL, real threads): one
confirmation, no deadlock, and no money kept in silence."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from functools import partial

import pytest
from django.db import connection
from django.utils import timezone

from bookings.errors import BookingError, PaymentError
from bookings.models import CLINIC_PROVIDER, Actor, Payment, Status
from bookings.services import (
    PAYMENT_OPEN,
    booking_cancel,
    bookings_expire,
    payment_confirm,
    payment_record_at_clinic,
    payment_start,
)
from bookings.tests.threads import at_once, held_open

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]

ROUNDS = 15


def _outcome(call, **kwargs) -> str:
    try:
        call(**kwargs)
    except (BookingError, PaymentError) as exc:
        return type(exc).__name__
    return "ok"


def _both(first, second) -> list[object]:
    results = at_once([first, second], ordered=True)
    assert not any(str(r).startswith("unexpected") for r in results), results  # a deadlock shows here
    return results


def _at_clinic(booking, user):
    return partial(_outcome, payment_record_at_clinic, booking_id=booking.pk, user=user, method="cash")


def test_the_desk_and_an_online_capture_at_once_confirm_once(make_booking, counsellor, admin_user):
    seen = Counter()
    for n in range(ROUNDS):
        booking = make_booking(Status.APPROVED, counsellor=counsellor)
        attempt = payment_start(booking_id=booking.pk)
        online = partial(
            _outcome,
            payment_confirm,
            payment_id=attempt.pk,
            provider_payment_id=f"pay_{n}",
            amount=booking.amount,
            currency=booking.currency,
            raw={},
            source="test",
        )
        seen[tuple(_both(_at_clinic(booking, admin_user), online))] += 1
        booking.refresh_from_db()
        attempt.refresh_from_db()
        assert booking.status == Status.CONFIRMED
        assert booking.payments.filter(status=Payment.State.CONFIRMED).count() == 1
        if booking.payments.filter(provider=CLINIC_PROVIDER).exists():
            assert attempt.refund_status  # the online money, too late, goes back


def test_two_administrators_recording_at_once_record_once(make_booking, counsellor, admin_user):
    for _ in range(ROUNDS):
        booking = make_booking(Status.APPROVED, counsellor=counsellor)
        assert sorted(_both(_at_clinic(booking, admin_user), _at_clinic(booking, admin_user))) == ["BookingError", "ok"]
        assert Payment.objects.filter(booking=booking).count() == 1


def test_the_desk_and_the_expiry_sweep_at_once(make_booking, counsellor, admin_user):
    seen = Counter()
    for _ in range(ROUNDS):
        booking = make_booking(
            Status.APPROVED, counsellor=counsellor, payment_due_at=timezone.now() - timedelta(minutes=1)
        )
        results = _both(_at_clinic(booking, admin_user), partial(_outcome, bookings_expire))
        booking.refresh_from_db()
        seen[(booking.status, *results)] += 1
        paid_at_clinic = Payment.objects.filter(booking=booking, provider=CLINIC_PROVIDER).exists()
        assert (booking.status, paid_at_clinic) in ((Status.CANCELLED, False), (Status.CONFIRMED, True))


def test_the_desk_and_the_client_pressing_pay_at_once(make_booking, counsellor, admin_user):
    seen = Counter()
    for _ in range(ROUNDS):
        booking = make_booking(Status.APPROVED, counsellor=counsellor)
        results = _both(_at_clinic(booking, admin_user), partial(_outcome, payment_start, booking_id=booking.pk))
        booking.refresh_from_db()
        seen[(booking.status, *results, booking.payments.filter(PAYMENT_OPEN).count())] += 1
    assert all(key[0] == Status.CONFIRMED and key[-1] == 0 for key in seen), seen


def test_a_client_cancelling_while_the_desk_records_the_money_is_refunded(make_booking, counsellor, admin_user):
    """The client confirms their cancellation link while an administrator records the price
    taken at the desk. The cancellation locked the booking's payments before the clinic's
    payment existed and waited for the booking: it then finds the new payment too, and its
    money is marked to give back, administrators told (it was kept in silence)."""
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    first, second = held_open(
        lambda: payment_record_at_clinic(booking_id=booking.pk, user=admin_user, method="cash", reference="R-1"),
        lambda: booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="Cancelled by the client"),
    )
    assert (first, second) == ("ok", "ok")
    booking.refresh_from_db()
    assert booking.status == Status.CANCELLED
    clinic = Payment.objects.get(booking=booking, provider=CLINIC_PROVIDER)
    assert clinic.refund_status == Payment.RefundState.FAILED and clinic.needs_attention, (
        clinic.status,
        clinic.refund_status,
    )
