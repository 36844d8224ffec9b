"""The payment window: unpaid bookings are cancelled by the system, slots released, clients
emailed; late payments refunded; sweeps safe to run concurrently; a cancellation while a
payment confirms gives the money back."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from bookings.models import Actor, Booking, BookingEvent, LinkToken, OutboundEmail, Payment, Slot, Status
from bookings.selectors import slots_free
from bookings.services import (
    booking_cancel,
    booking_cancel_confirm,
    bookings_expire,
    payment_confirm,
    payment_refunds_retry,
    payment_start,
)
from bookings.tasks import expire_bookings
from bookings.tests.test_i18n import assert_hindi
from bookings.tests.threads import at_once, held_open
from bookings.tokens import token_create


@pytest.fixture
def overdue(make_booking, counsellor):
    """`overdue(status)`: a booking whose payment deadline passed a minute ago."""

    def make(status: str = Status.APPROVED) -> Booking:
        booking = make_booking(Status.APPROVED)
        if status == Status.PAYMENT_PENDING:
            payment_start(booking_id=booking.pk)
        Booking.objects.filter(pk=booking.pk).update(payment_due_at=timezone.now() - timedelta(minutes=1))
        return Booking.objects.get(pk=booking.pk)

    return make


@pytest.mark.parametrize("status", [Status.APPROVED, Status.PAYMENT_PENDING])
def test_an_unpaid_booking_past_its_deadline_is_cancelled_by_the_system(overdue, oncommit, status):
    booking = overdue(status)

    with oncommit():
        assert bookings_expire() == 1

    booking.refresh_from_db()
    assert booking.status == Status.CANCELLED
    event = BookingEvent.objects.get(booking=booking, to_status=Status.CANCELLED)
    assert event.actor == Actor.SYSTEM and event.from_status == status
    assert "time to pay ran out" in event.reason
    # The slot is free for others again.
    assert booking.slot in slots_free(for_clients=False)
    # Open payment attempts are closed.
    assert not booking.payments.filter(status__in=[Payment.State.CREATED, Payment.State.PENDING]).exists()
    [email] = mail.outbox
    assert email.to == [booking.email]
    assert "released" in email.subject and "we did not receive a payment before the deadline" in email.body


def test_bookings_still_in_their_window_or_paid_are_left_alone(make_booking, counsellor, oncommit):
    in_window = make_booking(Status.APPROVED)
    paid = make_booking(Status.CONFIRMED, payment_due_at=timezone.now() - timedelta(hours=1))
    pending = make_booking(Status.PENDING, payment_due_at=timezone.now() - timedelta(hours=1))

    with oncommit():
        assert bookings_expire() == 0

    for booking in (in_window, paid, pending):
        before = booking.status
        booking.refresh_from_db()
        assert booking.status == before
    assert not mail.outbox


def test_sweeping_twice_expires_once(overdue, oncommit):
    booking = overdue()
    with oncommit():
        assert bookings_expire() == 1
        assert bookings_expire() == 0
    assert BookingEvent.objects.filter(booking=booking, to_status=Status.CANCELLED).count() == 1
    assert len(mail.outbox) == 1


def test_the_management_command_and_the_task_run_the_sweep(overdue):
    first, second = overdue(), overdue()
    out = StringIO()
    call_command("expire_bookings", stdout=out)
    assert "expired 2 booking(s)" in out.getvalue()
    assert set(Booking.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        Status.CANCELLED
    }
    third = overdue()
    assert expire_bookings.enqueue().return_value == 1
    assert Booking.objects.get(pk=third.pk).status == Status.CANCELLED


def test_a_payment_arriving_after_expiry_is_refunded_and_staff_are_told(overdue, admin_user, oncommit):
    booking = overdue(Status.PAYMENT_PENDING)
    payment = booking.payments.get()
    bookings_expire()
    mail.outbox = []

    with oncommit():
        payment_confirm(
            payment_id=payment.pk,
            provider_payment_id="pay_late",
            amount=booking.amount,
            currency="INR",
            raw={},
            source="t",
        )

    payment.refresh_from_db()
    assert Booking.objects.get(pk=booking.pk).status == Status.CANCELLED
    assert payment.status == Payment.State.REFUNDED
    assert payment.refunded_amount == booking.amount
    assert payment.refund_status == Payment.RefundState.PROCESSED
    assert "after the booking was cancelled" in payment.needs_attention
    assert BookingEvent.objects.filter(booking=booking, action="late_payment").exists()
    to = Counter(m.to[0] for m in mail.outbox)
    assert to == Counter({admin_user.email: 1, booking.email: 1})


def test_a_wrong_amount_held_when_time_runs_out_is_refunded_and_the_email_says_so(
    make_booking, counsellor, admin_user, oncommit
):
    booking = make_booking(Status.APPROVED, language="hi")
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_short", amount=100, currency="INR", raw={}, source="t"
    )
    Booking.objects.filter(pk=booking.pk).update(payment_due_at=timezone.now() - timedelta(minutes=1))
    mail.outbox = []

    with oncommit():
        assert bookings_expire() == 1

    payment.refresh_from_db()
    assert Booking.objects.get(pk=booking.pk).status == Status.CANCELLED
    assert payment.status == Payment.State.REFUNDED and payment.refund_status == Payment.RefundState.PROCESSED
    assert payment.refunded_amount == 100  # what was captured
    assert BookingEvent.objects.filter(booking=booking, action="refund").count() == 1
    email = OutboundEmail.objects.get(booking=booking, kind="expired")
    for part in (email.body_text, email.body_html):
        assert "pay_short" in part
        assert_hindi("expired email with a refund", part)
    assert Counter(m.to[0] for m in mail.outbox) == Counter({admin_user.email: 1, booking.email: 1})

    # Sweeping again changes nothing.
    with oncommit():
        assert bookings_expire() == 0
    assert BookingEvent.objects.filter(booking=booking, action="refund").count() == 1


def test_the_expired_email_says_no_payment_came_only_when_none_did(overdue, oncommit):
    """Not "nothing has been charged": what the client's bank did with a payment started and
    never heard of again, the clinic cannot know."""
    booking = overdue(Status.PAYMENT_PENDING)

    with oncommit():
        bookings_expire()

    email = OutboundEmail.objects.get(booking=booking, kind="expired")
    for part in (email.body_text, email.body_html):
        assert "we did not receive a payment before the deadline" in part
        assert "If a payment does reach us after this, we will refund it in full automatically." in part
        assert "Nothing has been charged" not in part and "started a full refund" not in part


@pytest.mark.parametrize("refund", [Payment.RefundState.PROCESSED, Payment.RefundState.FAILED])
def test_the_expired_email_of_a_booking_whose_wrong_payment_staff_settled_says_it_came(overdue, oncommit, refund):
    """A wrong amount, refunded by staff (or a refund that failed), then the deadline: the
    client was told of the payment; this email must not say none came."""
    booking = overdue(Status.PAYMENT_PENDING)
    Payment.objects.filter(booking=booking).update(
        provider_payment_id="pay_short", captured_amount=100, refund_status=refund, status=Payment.State.REFUNDED
    )

    with oncommit():
        bookings_expire()

    email = OutboundEmail.objects.get(booking=booking, kind="expired")
    for part in (email.body_text, email.body_html):
        assert "the booking was not paid in full before the deadline" in part
        assert "The payment we received (reference pay_short) could not confirm your session." in part
        assert "did not receive a payment" not in part and "If a payment does reach us" not in part


def test_the_retry_sends_an_expiry_refund_whose_task_never_ran(make_booking, counsellor, admin_user):
    booking = make_booking(Status.APPROVED)
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_short", amount=100, currency="INR", raw={}, source="t"
    )
    Booking.objects.filter(pk=booking.pk).update(payment_due_at=timezone.now() - timedelta(minutes=1))

    bookings_expire()  # its after-commit work (the refund task) never runs: a worker died, say
    assert Payment.objects.get(pk=payment.pk).refund_status == Payment.RefundState.PENDING

    assert payment_refunds_retry(older_than=timedelta(0)) == 1

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == 100


# --- Real concurrency (PostgreSQL) ------------------------------------------------------


@pytest.mark.parametrize("attempt", range(5))
@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency")
@pytest.mark.django_db(transaction=True)
def test_expiry_racing_a_payment_ends_paid_or_refunded_never_both_never_neither(overdue, attempt):
    booking = overdue(Status.PAYMENT_PENDING)
    payment = booking.payments.get()

    def pay() -> str:
        return payment_confirm(
            payment_id=payment.pk,
            provider_payment_id="pay_race",
            amount=booking.amount,
            currency="INR",
            raw={},
            source="t",
        ).status

    results = at_once([pay, bookings_expire])

    assert not [r for r in results if str(r).startswith("unexpected")], results
    booking.refresh_from_db()
    payment.refresh_from_db()
    if booking.status == Status.CONFIRMED:
        assert payment.status == Payment.State.CONFIRMED and payment.refund_status == ""
        assert not BookingEvent.objects.filter(booking=booking, to_status=Status.CANCELLED).exists()
    else:
        assert booking.status == Status.CANCELLED
        assert payment.status == Payment.State.REFUNDED and payment.refund_status == Payment.RefundState.PROCESSED
        assert not BookingEvent.objects.filter(booking=booking, to_status=Status.CONFIRMED).exists()


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency")
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_expire_each_booking_once(overdue):
    bookings = [overdue() for _ in range(5)]

    results = at_once([bookings_expire for _ in range(4)])

    assert sum(r for r in results if isinstance(r, int)) == 5, results
    for booking in bookings:
        assert BookingEvent.objects.filter(booking=booking, to_status=Status.CANCELLED).count() == 1
    assert len([m for m in mail.outbox if "released" in m.subject]) == 5


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("by", ["staff", "client"])
def test_a_cancellation_while_a_payment_confirms_refunds_it(make_booking, counsellor, admin_user, by):
    """The payment confirms the booking first and the cancellation waits for it: it then
    cancels a confirmed, paid booking, and must give the money back."""
    booking = make_booking(Status.PAYMENT_PENDING, counsellor=counsellor)
    Slot.objects.filter(pk=booking.slot_id).update(
        start=booking.slot.start + timedelta(days=3), end=booking.slot.end + timedelta(days=3)
    )  # before the clients' cutoff
    payment = Payment.objects.create(
        booking=booking, provider="sandbox", amount=booking.amount, currency=booking.currency, provider_order_id="o_1"
    )
    link = token_create(booking=booking, purpose=LinkToken.Purpose.CANCEL, lifetime=timedelta(hours=1))

    def pay() -> None:
        payment_confirm(
            payment_id=payment.pk,
            provider_payment_id="pay_1",
            amount=booking.amount,
            currency="INR",
            raw={},
            source="t",
        )

    def cancel() -> None:
        if by == "staff":
            booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="The client phoned")
        else:
            booking_cancel_confirm(token=link)

    assert held_open(pay, cancel) == ("ok", "ok")
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert booking.status == Status.CANCELLED
    assert payment.refund_status != "", "the money of a cancelled booking was kept"
