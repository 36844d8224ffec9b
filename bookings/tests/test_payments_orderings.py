"""Razorpay's news in any order: webhooks come at least once, out of order and possibly
hours late, and the browser's return may come before them, after them or never.

Each test plays one ordering through the real webhook and return views (signed as Razorpay
signs them; its API answered by `responses`) and says what the money and the booking end as:
never money kept that confirms nothing, a refund asked for twice, a confirmed booking whose
money went back, or a person needed and nobody told.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import Actor, Booking, BookingEvent, Payment, RefundHeardEarly, Status
from bookings.services import booking_cancel, bookings_expire, payment_confirm, payment_refunds_retry, payment_start
from bookings.tests import test_payments_razorpay as razorpay
from bookings.tests.test_payments_razorpay import (
    API,
    PAYMENT_ID,
    checkout_result,
    order_body,
    payment_body,
    post_webhook,
    refund_body,
    start,
    webhook_event,
)
from bookings.tests.threads import held_open

# Its fixtures, here too: Razorpay's test settings (autouse), `api` (Razorpay's HTTP answered)
# and `approved` (a booking to pay, with its link's token).
_razorpay = razorpay._razorpay
api = razorpay.api
approved = razorpay.approved

REFUND_ID = "rfnd_FP8QHiV938haTz"  # refund_body's


def refund_calls(answered) -> list:
    return [call for call in answered.calls if call.request.url.endswith("/refund")]


def refund_news(client, kinds: list[str], *, amount: int, first_event: int = 1) -> None:
    """Razorpay's news of a refund of PAYMENT_ID (a refund made from its dashboard, say)."""
    for n, kind in enumerate(kinds, start=first_event):
        status = {"refund.created": "pending", "refund.processed": "processed"}.get(kind, "failed")
        body = webhook_event(kind, refund=refund_body(amount, status=status))
        assert post_webhook(client, body, event_id=f"evt_refund_{n}").status_code == 200


def captured(client, answered, booking: Booking, token: str, payment: Payment, *, how: str, amount: int) -> None:
    """Razorpay says the payment was captured: by its webhook, or by the client's browser."""
    if how == "webhook":
        body = webhook_event("payment.captured", payment=payment_body(amount))
        assert post_webhook(client, body, event_id="evt_captured").status_code == 200
    else:
        answered.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(amount))
        client.post(reverse("bookings:pay_return", args=[token, payment.pk]), checkout_result())


def ended(booking: Booking, how: str) -> None:
    if how == "client cancelled":
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    else:
        Booking.objects.filter(pk=booking.pk).update(payment_due_at=timezone.now() - timedelta(minutes=1))
        assert bookings_expire() == 1


# --- Refund news before the capture -----------------------------------------------------


@pytest.mark.parametrize(
    "news",
    [
        ["refund.processed"],
        ["refund.created"],
        ["refund.created", "refund.processed"],
        ["refund.processed", "refund.created"],  # out of order: the last word is not the latest
    ],
)
@pytest.mark.parametrize("how", ["webhook", "return"])
@pytest.mark.parametrize("end", ["client cancelled", "expired"])
def test_a_late_payment_refunded_before_we_heard_of_it_is_not_refunded_again(
    client, api, approved, admin_user, oncommit, news, how, end
):
    """The booking ended unpaid; Razorpay refunded the payment (staff from its dashboard, or
    Razorpay itself) before its capture reached us. When it does, nothing is asked of
    Razorpay (it would refuse: nothing is left), staff need not act, and the client is told
    the money goes back."""
    booking, token = approved
    payment = start(client, api, booking, token)
    with oncommit():
        ended(booking, end)
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", status=400, json={"error": {"code": "BAD_REQUEST_ERROR"}})
    refund_news(client, news, amount=booking.amount)
    mail.outbox = []

    captured(client, api, booking, token, payment, how=how, amount=booking.amount)

    payment.refresh_from_db()
    assert not refund_calls(api)
    assert payment.provider_payment_id == PAYMENT_ID and payment.status == Payment.State.REFUNDED
    assert payment.refunded_amount == booking.amount and payment.provider_refund_id == REFUND_ID
    processed = "refund.processed" in news
    assert payment.refund_status == (Payment.RefundState.PROCESSED if processed else Payment.RefundState.PENDING)
    assert not payment.needs_attention
    assert Booking.objects.get(pk=booking.pk).status == Status.CANCELLED
    assert [m.to for m in mail.outbox] == [[booking.email]]
    assert BookingEvent.objects.filter(booking=booking, action="late_payment").count() == 1
    assert not RefundHeardEarly.objects.exists()

    if not processed:
        # The refund under way is ours to follow: its news settles it.
        refund_news(client, ["refund.processed"], amount=booking.amount, first_event=9)
        payment.refresh_from_db()
        assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount
    assert not refund_calls(api) and not Payment.objects.filter(needs_attention__gt="").exists()


@pytest.mark.parametrize("news", [["refund.processed"], ["refund.created"]])
def test_a_payment_refunded_before_we_heard_of_it_confirms_nothing_and_the_client_may_pay_again(
    client, api, approved, admin_user, news
):
    """The booking still waits for payment: money already going back must not confirm it."""
    booking, token = approved
    payment = start(client, api, booking, token)
    refund_news(client, news, amount=booking.amount)

    captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)

    payment.refresh_from_db()
    assert payment.status == Payment.State.REFUNDED and payment.refunded_amount == booking.amount
    assert not refund_calls(api) and not payment.needs_attention
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED
    assert BookingEvent.objects.filter(booking=booking, action="payment_refunded").count() == 1
    # Paying again is a new attempt, whose payment confirms the booking.
    api.post(f"{API}/orders", json={**json.loads(api.calls[0].response.text), "id": "order_SecondTry00001"})
    assert client.post(reverse("bookings:pay", args=[token])).status_code == 302
    second = booking.payments.latest("pk")
    again = {**payment_body(booking.amount, payment_id="pay_SecondTry00001"), "order_id": "order_SecondTry00001"}
    post_webhook(client, webhook_event("payment.captured", payment=again), event_id="evt_second")
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert Payment.objects.get(pk=second.pk).status == Payment.State.CONFIRMED


def test_a_failed_refund_heard_before_a_late_payment_leaves_it_to_be_refunded(client, api, approved, oncommit):
    booking, token = approved
    payment = start(client, api, booking, token)
    with oncommit():
        ended(booking, "client cancelled")
    refund_news(client, ["refund.created", "refund.failed"], amount=booking.amount)
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json={**refund_body(booking.amount), "id": "rfnd_Ours0000000001"})

    captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)

    payment.refresh_from_db()
    [call] = refund_calls(api)
    assert json.loads(call.request.body)["amount"] == booking.amount
    assert payment.status == Payment.State.REFUNDED and payment.provider_refund_id == "rfnd_Ours0000000001"
    assert payment.refund_status == Payment.RefundState.PROCESSED


def test_part_refunded_before_we_heard_of_the_payment_confirms_and_a_cancellation_returns_the_rest(
    client, api, approved, oncommit
):
    """A goodwill refund of part, heard before the capture: counted as when heard after it."""
    booking, token = approved
    payment = start(client, api, booking, token)
    refund_news(client, ["refund.processed"], amount=50000)

    captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)

    payment.refresh_from_db()
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert payment.status == Payment.State.PARTIALLY_REFUNDED and payment.refunded_amount == 50000
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json={**refund_body(100000), "id": "rfnd_TheRest000001"})
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    [call] = refund_calls(api)
    assert json.loads(call.request.body)["amount"] == booking.amount - 50000
    payment.refresh_from_db()
    assert payment.refunded_amount == booking.amount and payment.status == Payment.State.REFUNDED


# --- Our own refund's news ----------------------------------------------------------------


@pytest.mark.parametrize("then", ["refund.processed", "refund.failed"])
def test_a_refund_whose_answer_was_lost_is_known_by_its_news_and_not_asked_for_again(
    client, api, approved, admin_user, oncommit, then
):
    """Razorpay took the refund on, but its answer never reached us (a timeout): its
    refund.created is ours, so the retry asks nothing more (Razorpay would refuse it, and
    staff would be told a refund failed that had not), and its outcome settles it."""
    booking, token = approved
    payment = start(client, api, booking, token)
    captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", body=requests.exceptions.ReadTimeout("slow"))
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    refund_news(client, ["refund.created"], amount=booking.amount)
    mail.outbox = []

    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with oncommit():
        payment_refunds_retry()

    payment.refresh_from_db()
    assert len(refund_calls(api)) == 1 and not mail.outbox
    assert payment.refund_status == Payment.RefundState.PENDING and payment.provider_refund_id == REFUND_ID
    assert payment.refunded_amount == booking.amount and payment.status == Payment.State.REFUNDED
    refund_news(client, [then], amount=booking.amount, first_event=2)
    payment.refresh_from_db()
    if then == "refund.processed":
        assert payment.refund_status == Payment.RefundState.PROCESSED and not mail.outbox
    else:
        assert payment.refund_status == Payment.RefundState.FAILED and payment.refunded_amount == 0
        assert [m.to for m in mail.outbox] == [[admin_user.email]]


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency")
@pytest.mark.django_db(transaction=True)
def test_news_of_a_refund_while_its_payment_is_being_recorded_waits_for_it(api, make_booking, counsellor):
    """The capture and the news of its refund (staff's, from the dashboard) at one moment: the
    news waits for the capture to be recorded and is counted on the payment, rather than kept
    for a capture that has already come."""
    booking = make_booking(Status.APPROVED)
    api.post(f"{API}/orders", json=order_body(booking))
    payment = payment_start(booking_id=booking.pk)
    news = webhook_event("refund.processed", refund=refund_body(booking.amount), payment=payment_body(booking.amount))

    def capture() -> None:
        payment_confirm(
            payment_id=payment.pk,
            provider_payment_id=PAYMENT_ID,
            amount=booking.amount,
            currency=booking.currency,
            raw={},
            source="webhook:payment.captured",
        )

    def refunded() -> None:
        assert post_webhook(Client(), news, event_id="evt_refund").status_code == 200

    assert held_open(capture, refunded) == ("ok", "ok")

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount
    assert not RefundHeardEarly.objects.exists()
