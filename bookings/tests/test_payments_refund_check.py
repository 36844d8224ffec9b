"""Refunds whose outcome never arrived by webhook: `payment_refunds_check` asks the provider.

Razorpay's HTTP is answered by `responses` (through the real `razorpay` client), as in
test_payments_razorpay.py, whose fixtures and payload helpers this file reuses.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import requests
import responses
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from bookings.models import Actor, Booking, BookingEvent, OutboundEmail, Payment, Status
from bookings.services import (
    booking_cancel,
    payment_confirm,
    payment_refunds_check,
    payment_refunds_retry,
    payment_start,
)
from bookings.tasks import expire_bookings
from bookings.tests import test_payments_razorpay as razorpay
from bookings.tests.test_payments_razorpay import API, order_body, payment_body, refund_body

# Its fixtures, here too: Razorpay's test settings (autouse) and `api`, Razorpay's HTTP answered.
_razorpay = razorpay._razorpay
api = razorpay.api

ON_ITS_WAY = "is on its way"
REFUNDED = "has been refunded to the account you paid from"
ARRANGING = "Our team is arranging your refund and will contact you."


@pytest.fixture
def refund_pending(api, make_booking, counsellor, oncommit):
    """`refund_pending(name)`: a Razorpay payment (IDs ending in `name`) for a booking the
    client cancelled, whose refund Razorpay accepted as "pending" two hours ago and never
    reported on."""

    def make(name: str) -> Payment:
        booking = make_booking(Status.APPROVED)
        order_id, payment_id, refund_id = f"order_{name}", f"pay_{name}", f"rfnd_{name}"
        api.upsert(responses.POST, f"{API}/orders", json=order_body(booking, order_id=order_id))
        payment = payment_start(booking_id=booking.pk)
        payment_confirm(
            payment_id=payment.pk,
            provider_payment_id=payment_id,
            amount=booking.amount,
            currency=booking.currency,
            raw={"payment": payment_body(booking.amount, payment_id=payment_id)},
            source="webhook:payment.captured",
        )
        refund = {**refund_body(booking.amount, status="pending"), "id": refund_id, "payment_id": payment_id}
        api.post(f"{API}/payments/{payment_id}/refund", json=refund)
        with oncommit():
            booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
        age(payment, hours=2)
        payment.refresh_from_db()
        assert payment.refund_status == Payment.RefundState.PENDING and payment.provider_refund_id == refund_id
        return payment

    return make


def age(payment: Payment, **delta: float) -> None:
    """Last touched `delta` ago (updated_at is auto_now, so only an update can set it)."""
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(**delta))


def answer(api, payment: Payment, status: str) -> None:
    """Razorpay's GET /v1/refunds/:id for `payment`'s refund says `status`."""
    refund = {
        **refund_body(payment.amount, status=status),
        "id": payment.provider_refund_id,
        "payment_id": payment.provider_payment_id,
    }
    api.get(f"{API}/refunds/{payment.provider_refund_id}", json=refund)


def fetches(api) -> list[str]:
    return [c.request.url for c in api.calls if c.request.method == "GET" and "/refunds/" in c.request.url]


def booking_page(client, manage_token, payment: Payment) -> str:
    booking = Booking.objects.get(pk=payment.booking_id)
    return client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()


def test_a_refund_razorpay_has_processed_is_settled(api, refund_pending, client, manage_token):
    payment = refund_pending("Processed0001")
    assert ON_ITS_WAY in booking_page(client, manage_token, payment)
    answer(api, payment, "processed")

    assert payment_refunds_check() == 1

    assert fetches(api) == [f"{API}/refunds/rfnd_Processed0001"]
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.status == Payment.State.REFUNDED
    assert payment.refunded_amount == payment.amount and payment.provider_refund_id == "rfnd_Processed0001"
    assert not payment.needs_attention
    page = booking_page(client, manage_token, payment)
    assert REFUNDED in page and ON_ITS_WAY not in page
    # Settled: never asked about again.
    age(payment, hours=2)
    assert payment_refunds_check() == 0 and len(fetches(api)) == 1


def test_a_refund_razorpay_reports_failed_is_marked_failed_and_staff_are_told(
    api, refund_pending, admin_user, oncommit, client, manage_token
):
    payment = refund_pending("Failed000001")
    answer(api, payment, "failed")
    mail.outbox = []

    with oncommit():  # the alert is sent once the sweep's work is committed
        assert payment_refunds_check() == 1

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED
    assert payment.refunded_amount == 0 and payment.provider_refund_id == ""  # the money is still ours
    assert payment.status == Payment.State.CONFIRMED
    assert "rfnd_Failed000001" in payment.needs_attention and "failed" in payment.needs_attention
    alert = OutboundEmail.objects.get(booking_id=payment.booking_id, kind="payment_attention", to=admin_user.email)
    assert [m.to for m in mail.outbox] == [[admin_user.email]] and alert.subject == mail.outbox[0].subject
    assert BookingEvent.objects.filter(booking_id=payment.booking_id, action="refund_failed").count() == 1
    page = booking_page(client, manage_token, payment)
    assert ARRANGING in page and ON_ITS_WAY not in page
    # It needs a person now: neither sweep touches it again.
    age(payment, hours=2)
    calls = len(api.calls)
    assert payment_refunds_check() == 0 and payment_refunds_retry() == 0 and len(api.calls) == calls


def test_a_refund_still_pending_is_asked_about_once_an_hour(api, refund_pending, client, manage_token):
    payment = refund_pending("Pending00001")
    answer(api, payment, "pending")
    before = Payment.objects.get(pk=payment.pk)

    assert payment_refunds_check() == 0

    after = Payment.objects.get(pk=payment.pk)
    assert after.updated_at > before.updated_at + timedelta(hours=1)
    assert (after.refund_status, after.provider_refund_id, after.status, after.raw, after.needs_attention) == (
        before.refund_status,
        before.provider_refund_id,
        before.status,
        before.raw,
        before.needs_attention,
    )
    assert ON_ITS_WAY in booking_page(client, manage_token, payment)
    assert len(fetches(api)) == 1

    # Within the hour, later sweeps leave it alone; after it, it is asked about again.
    age(payment, minutes=59)
    assert payment_refunds_check() == 0 and len(fetches(api)) == 1
    age(payment, minutes=61)
    assert payment_refunds_check() == 0 and len(fetches(api)) == 2


@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.exceptions.ConnectTimeout("down")},
        {"body": requests.exceptions.ReadTimeout("slow")},
        {"status": 503, "json": {"error": {"code": "SERVER_ERROR", "description": "Service unavailable"}}},
        {"status": 502, "body": "<html>Bad gateway</html>"},
        # A refund of some other payment: never settle this one on its word.
        {"json": {**refund_body(150000, status="failed"), "id": "rfnd_Unlucky00001", "payment_id": "pay_Other"}},
        # An amount that is no number: an unreadable answer, not a crash of the sweep.
        {
            "json": {
                **refund_body(150000, status="processed"),
                "id": "rfnd_Unlucky00001",
                "payment_id": "pay_Unlucky00001",
                "amount": "1,500.00",
            }
        },
    ],
    ids=["connect-timeout", "read-timeout", "503", "502-html", "another-payments-refund", "amount-not-a-number"],
)
def test_razorpay_not_answering_changes_nothing_till_the_next_hour_and_the_others_are_still_settled(
    api, refund_pending, admin_user, oncommit, failure, caplog
):
    unlucky, lucky = refund_pending("Unlucky00001"), refund_pending("Lucky0000001")
    age(unlucky, hours=3)  # the oldest: asked about first
    before = Payment.objects.get(pk=unlucky.pk)
    api.get(f"{API}/refunds/rfnd_Unlucky00001", **failure)
    answer(api, lucky, "processed")
    mail.outbox = []

    with oncommit():
        assert payment_refunds_check() == 1

    assert fetches(api) == [f"{API}/refunds/rfnd_Unlucky00001", f"{API}/refunds/rfnd_Lucky0000001"]
    assert Payment.objects.get(pk=lucky.pk).refund_status == Payment.RefundState.PROCESSED
    after = Payment.objects.get(pk=unlucky.pk)
    assert (after.refund_status, after.status, after.provider_refund_id, after.raw) == (
        Payment.RefundState.PENDING,
        before.status,
        "rfnd_Unlucky00001",
        before.raw,
    )
    assert not after.needs_attention and mail.outbox == []
    # Told as the provider's failure, without a traceback of ours.
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    # Asked about: not again within the hour, whatever the answer was; after it, again.
    assert payment_refunds_check() == 0 and len(fetches(api)) == 2
    age(unlucky, minutes=61)
    api.upsert(
        responses.GET,
        f"{API}/refunds/rfnd_Unlucky00001",
        json={**refund_body(150000), "id": "rfnd_Unlucky00001", "payment_id": "pay_Unlucky00001"},
    )
    assert payment_refunds_check() == 1
    assert Payment.objects.get(pk=unlucky.pk).refund_status == Payment.RefundState.PROCESSED


def test_a_refund_started_within_the_hour_is_not_asked_about(api, refund_pending):
    payment = refund_pending("Recent000001")
    age(payment, minutes=30)
    answer(api, payment, "processed")

    assert payment_refunds_check() == 0

    assert fetches(api) == []
    assert Payment.objects.get(pk=payment.pk).refund_status == Payment.RefundState.PENDING


def test_a_refund_never_sent_is_left_to_the_retry_sweep(api, make_booking, counsellor, oncommit):
    """No refund ID: Razorpay never took the refund, so there is nothing to ask about."""
    booking = make_booking(Status.APPROVED)
    api.post(f"{API}/orders", json=order_body(booking, order_id="order_NeverSent001"))
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk,
        provider_payment_id="pay_NeverSent001",
        amount=booking.amount,
        currency=booking.currency,
        raw={},
        source="webhook:payment.captured",
    )
    api.post(f"{API}/payments/pay_NeverSent001/refund", body=requests.exceptions.ConnectTimeout("down"))
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    age(payment, hours=2)
    before = Payment.objects.get(pk=payment.pk)
    assert before.refund_status == Payment.RefundState.PENDING and before.provider_refund_id == ""

    assert payment_refunds_check() == 0

    assert fetches(api) == []
    after = Payment.objects.get(pk=payment.pk)
    assert (after.refund_status, after.raw, after.updated_at) == (before.refund_status, before.raw, before.updated_at)


def test_the_expiry_command_and_task_check_refunds(api, refund_pending):
    first, second = refund_pending("Command00001"), refund_pending("Task00000001")
    answer(api, first, "processed")
    answer(api, second, "processed")
    age(second, minutes=1)  # not yet due when the command runs

    out = StringIO()
    call_command("expire_bookings", stdout=out)
    assert "settled 1 checked refund(s)" in out.getvalue()
    assert Payment.objects.get(pk=first.pk).refund_status == Payment.RefundState.PROCESSED

    age(second, hours=2)
    expire_bookings.enqueue()
    assert Payment.objects.get(pk=second.pk).refund_status == Payment.RefundState.PROCESSED


def test_a_sandbox_refund_left_pending_is_settled_as_processed(make_booking, counsellor, settings):
    """Sandbox refunds are processed at once; one left pending (a worker died after the
    provider answered, say) is settled by the check like Razorpay's."""
    settings.PAYMENT_PROVIDER = "sandbox"
    booking = make_booking(Status.APPROVED)
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk,
        provider_payment_id=f"sandbox_pay_{payment.pk}_paid",
        amount=booking.amount,
        currency=booking.currency,
        raw={},
        source="return",
    )
    Payment.objects.filter(pk=payment.pk).update(
        status=Payment.State.REFUNDED,
        refund_status=Payment.RefundState.PENDING,
        provider_refund_id="sandbox_rfnd_000000000001",
        refunded_amount=booking.amount,
    )
    age(payment, hours=2)

    assert payment_refunds_check() == 1

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount
