"""Razorpay's news in any order: webhooks come at least once, out of order and possibly
hours late, and the browser's return may come before them, after them or never.

Each test plays one ordering through the real webhook and return views (signed as Razorpay
signs them; its API answered by `responses`) and says what the money and the booking end as:
never money kept that confirms nothing, a refund asked for twice, a confirmed booking whose
money went back, or a person needed and nobody told.
"""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.errors import BookingError
from bookings.models import Actor, Booking, BookingEvent, Payment, RefundHeardEarly, Status
from bookings.services import (
    PAYMENT_CAPTURE_GRACE,
    Settle,
    booking_cancel,
    bookings_expire,
    payment_confirm,
    payment_refunds_check,
    payment_refunds_retry,
    payment_settle,
    payment_start,
)
from bookings.tests import test_payments_razorpay as razorpay
from bookings.tests.test_payments_razorpay import (
    API,
    ORDER_ID,
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
from staff.tests.conftest import sign_in_with_second_factor

# Its fixtures, here too: Razorpay's test settings (autouse), `api` (Razorpay's HTTP answered)
# and `approved` (a booking to pay, with its link's token).
_razorpay = razorpay._razorpay
api = razorpay.api
approved = razorpay.approved

REFUND_ID = "rfnd_FP8QHiV938haTz"  # refund_body's
User = get_user_model()


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


def returned_with(client, answered, token: str, payment: Payment, *, payment_id: str = PAYMENT_ID, order_id=ORDER_ID):
    """The client's browser back from Razorpay's checkout with its signed result: what it is told."""
    paid = {**payment_body(payment.amount, payment_id=payment_id), "order_id": order_id}
    answered.upsert(responses.GET, f"{API}/payments/{payment_id}", json=paid)
    result = checkout_result(order_id=order_id, payment_id=payment_id)
    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), result)
    assert response.status_code == 302
    *_, message = get_messages(response.wsgi_request)  # the last: earlier ones were not shown
    return message


@pytest.mark.parametrize("language", ["en", "hi"])
@pytest.mark.parametrize("news", [["refund.processed"], ["refund.created"]])
def test_a_client_back_from_checkout_with_a_payment_already_refunded_is_told_they_may_pay_again(
    client, api, approved, news, language
):
    """The booking still waits for payment and Razorpay had refunded the payment before it
    reached us: the booking can still be paid, and the client is told so (in the language
    they booked in), not that it ended."""
    booking, token = approved
    Booking.objects.filter(pk=booking.pk).update(language=language)
    payment = start(client, api, booking, token)
    refund_news(client, news, amount=booking.amount)

    message = returned_with(client, api, token, payment).message

    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED
    if language == "en":
        assert "could no longer be confirmed" not in message and "pay again from your booking page" in message
    else:
        assert "अपने बुकिंग पेज से फिर से भुगतान कर सकते हैं" in message and "booking" not in message


@pytest.mark.parametrize(
    "case",
    ["booking cancelled", "paid in another tab", "part refunded before we heard", "paid", "paid, then cancelled"],
)
def test_a_client_back_from_checkout_is_told_what_became_of_their_payment(client, api, approved, oncommit, case):
    booking, token = approved
    payment = start(client, api, booking, token)
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount))
    if case == "booking cancelled":
        with oncommit():
            booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    elif case == "paid in another tab":
        api.upsert(responses.POST, f"{API}/orders", json=order_body(booking, order_id=SECOND_ORDER))
        client.post(reverse("bookings:pay", args=[token]))
        second = booking.payments.get(provider_order_id=SECOND_ORDER)
        returned_with(client, api, token, second, payment_id=SECOND_PAYMENT, order_id=SECOND_ORDER)
    elif case == "part refunded before we heard":
        refund_news(client, ["refund.processed"], amount=50000)
    elif case == "paid, then cancelled":  # the return reaches us last
        with oncommit():
            captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)
            booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")

    with oncommit():
        message = returned_with(client, api, token, payment).message

    status = Booking.objects.get(pk=booking.pk).status
    if case == "booking cancelled":
        assert status == Status.CANCELLED and "no longer be confirmed" in message and "refunding it" in message
    elif case == "paid in another tab":
        assert status == Status.CONFIRMED and "already paid and confirmed" in message and "refunding" in message
    elif case == "paid, then cancelled":
        assert status == Status.CANCELLED and "no longer be confirmed" not in message
        assert "confirmed your booking, and has since been refunded" in message
    else:
        assert status == Status.CONFIRMED and "your session is confirmed" in message


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


PART_REFUND = "rfnd_GoodwillPart0001"


def part_refund_news(client, kind: str, *, amount: int, event_id: str) -> None:
    """Razorpay's news of a refund of part of PAYMENT_ID, made from its dashboard."""
    status = {"refund.created": "pending", "refund.processed": "processed"}.get(kind, "failed")
    refund = {**refund_body(amount, status=status), "id": PART_REFUND}
    assert post_webhook(client, webhook_event(kind, refund=refund), event_id=event_id).status_code == 200


@pytest.mark.parametrize("then", ["refund.processed", "refund.failed", None])
@pytest.mark.parametrize("how", ["webhook", "return"])
def test_a_late_payment_part_refunded_before_we_heard_of_it_has_the_rest_refunded(
    client, api, approved, admin_user, oncommit, how, then
):
    """The booking ended unpaid; a refund of part of the payment, only taken on by Razorpay
    (refund.created), is heard before the capture. The automatic refund asks for the rest, as
    after a part refunded and processed: Razorpay would refuse the whole (more than is left),
    and staff would be told a refund failed. If that part's refund then fails, its money is
    with us again and staff are told; its processed news changes nothing."""
    booking, token = approved
    payment = start(client, api, booking, token)
    with oncommit():
        ended(booking, "client cancelled")
    part_refund_news(client, "refund.created", amount=30000, event_id="evt_part_created")
    rest = booking.amount - 30000
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json={**refund_body(rest), "id": "rfnd_TheRest000001"})
    mail.outbox = []

    with oncommit():
        captured(client, api, booking, token, payment, how=how, amount=booking.amount)

    [call] = refund_calls(api)
    assert json.loads(call.request.body)["amount"] == rest
    payment.refresh_from_db()
    assert payment.refunded_amount == booking.amount and payment.refunded_earlier == 30000
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.status == Payment.State.REFUNDED
    alerts = [m for m in mail.outbox if m.to == [admin_user.email]]
    assert len(alerts) == 1 and "failed" not in alerts[0].subject  # only: the payment arrived too late
    assert not RefundHeardEarly.objects.exists()
    if then is None:
        return
    mail.outbox = []
    part_refund_news(client, then, amount=30000, event_id="evt_part_outcome")
    payment.refresh_from_db()
    assert len(refund_calls(api)) == 1
    if then == "refund.processed":
        assert payment.refunded_amount == booking.amount and payment.refunded_earlier == 30000 and not mail.outbox
    else:
        assert payment.refunded_amount == rest and payment.refunded_earlier == 0
        assert payment.status == Payment.State.PARTIALLY_REFUNDED and "30000" not in payment.needs_attention
        assert "300.00" in payment.needs_attention and [m.to for m in mail.outbox] == [[admin_user.email]]


@pytest.mark.parametrize("refunds", [[150000], [50000, 100000]], ids=["all at once", "in two parts"])
def test_a_confirmed_bookings_payment_refunded_in_full_from_the_dashboard_is_told_to_staff(
    client, api, approved, admin_user, oncommit, refunds
):
    """Staff refund the whole payment of a confirmed booking from Razorpay's dashboard: the
    booking stays confirmed (whether the session goes ahead is for staff), but staff are told,
    once, by email and on the booking's page, that its money went back; a part refunded alone
    (a goodwill refund) tells them nothing."""
    booking, token = approved
    assert sum(refunds) == booking.amount
    payment = start(client, api, booking, token)
    captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)
    mail.outbox = []

    for n, amount in enumerate(refunds):
        if n == len(refunds) - 1:
            assert not Payment.objects.get(pk=payment.pk).needs_attention and not mail.outbox
        refund = {**refund_body(amount), "id": f"rfnd_Dashboard00000{n}"}
        with oncommit():
            post_webhook(client, webhook_event("refund.processed", refund=refund), event_id=f"evt_refund_{n}")
    with oncommit():  # its news again, by a sweep or a retry: told once
        post_webhook(client, webhook_event("refund.processed", refund=refund), event_id="evt_again")

    payment.refresh_from_db()
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert payment.status == Payment.State.REFUNDED and payment.refunded_amount == booking.amount
    assert "still confirmed" in payment.needs_attention
    [alert] = mail.outbox
    assert alert.to == [admin_user.email] and "still confirmed" in alert.body
    staff = Client()
    sign_in_with_second_factor(staff, admin_user)
    page = staff.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert "needs attention" in page and "still confirmed" in page
    # Cancelling it now returns nothing more, and answers the alert, which asked for it.
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Refunded already")
    assert not refund_calls(api)
    assert not Payment.objects.get(pk=payment.pk).needs_attention
    page = staff.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert "needs attention" not in page


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


BEING_CONFIRMED = (
    "Your payment is being confirmed by the payment provider. This usually takes a minute; "
    "we will email you as soon as it is done."
)


def returned_authorized(client, api, booking: Booking, token: str, payment: Payment) -> list[str]:
    """The client's browser back from checkout with Razorpay's signed result, the payment
    authorized and not captured yet (UPI, often, for a few seconds): what the page said."""
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(booking.amount, status="authorized"))
    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), checkout_result())
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_a_payment_authorized_before_the_time_to_pay_ran_out_keeps_the_booking(client, api, approved, oncommit):
    """Paid in the last seconds: the sweep just after the deadline waits for the capture
    (PAYMENT_CAPTURE_GRACE) rather than release the time and refund the money."""
    booking, token = approved
    payment = start(client, api, booking, token)
    due = timezone.now() + timedelta(seconds=30)
    Booking.objects.filter(pk=booking.pk).update(payment_due_at=due)
    said = returned_authorized(client, api, booking, token, payment)
    assert said == [BEING_CONFIRMED]
    with oncommit():
        assert bookings_expire(now=due + timedelta(seconds=1)) == 0
    with oncommit():
        body = webhook_event("payment.captured", payment=payment_body(booking.amount))
        assert post_webhook(client, body, event_id="evt_captured").status_code == 200
    booking.refresh_from_db()
    assert booking.status == Status.CONFIRMED and not refund_calls(api)
    # No capture ever: once the grace is over, the booking expires as any other.
    other = Booking.objects.get(pk=booking.pk)
    Payment.objects.filter(pk=payment.pk).update(provider_payment_id="", status=Payment.State.PENDING)
    Booking.objects.filter(pk=other.pk).update(status=Status.PAYMENT_PENDING)
    with oncommit():
        assert bookings_expire(now=due + PAYMENT_CAPTURE_GRACE + timedelta(seconds=1)) == 1


@pytest.mark.parametrize("closed_by", ["the time to pay", "another attempt"])
def test_a_closed_attempt_authorized_after_all_is_not_said_to_have_charged_nothing(
    client, api, approved, oncommit, closed_by
):
    """The client finished an attempt the clinic had closed: "nothing was charged, try again"
    would be untrue (the capture follows) and invite a second payment."""
    booking, token = approved
    payment = start(client, api, booking, token)
    if closed_by == "the time to pay":
        with oncommit():
            assert bookings_expire(now=booking.payment_due_at + timedelta(seconds=1)) == 1
        expected = (
            "Your payment reached us after this booking could no longer be confirmed. If the money is taken "
            "from your account, we refund it in full (refunds usually take 5 to 7 working days)."
        )
    else:  # "Start the payment again", then the first checkout finished after all
        api.post(f"{API}/orders", json=order_body(booking, order_id="order_Second00000001"))
        client.post(reverse("bookings:pay", args=[token]))
        expected = BEING_CONFIRMED
    payment.refresh_from_db()
    assert payment.status == Payment.State.FAILED
    assert returned_authorized(client, api, booking, token, payment) == [expected]


@pytest.mark.parametrize("earlier", ["part refunded", "failed"])
def test_late_news_of_an_earlier_refund_is_not_taken_for_ours(client, api, approved, admin_user, oncommit, earlier):
    """Our refund decided but not sent (Razorpay answered 503), then news that Razorpay took on
    a refund of what is left: it is ours only if it is not one heard of before. A refund of half
    from the dashboard, or our own earlier refund that failed, of the same amount, delivered
    again (webhooks come late and more than once; their event IDs are not signed): taken for
    ours, ours would never be sent, and the client's page would say forever that it is on its way."""
    booking, token = approved
    payment = start(client, api, booking, token)
    captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)
    left = booking.amount
    if earlier == "part refunded":
        left = booking.amount // 2
        for n, kind in enumerate(["refund.created", "refund.processed"]):
            part_refund_news(client, kind, amount=left, event_id=f"evt_part_{n}")
        news = {**refund_body(left, status="pending"), "id": PART_REFUND}
        api.post(f"{API}/payments/{PAYMENT_ID}/refund", status=503, json={"error": {"code": "SERVER_ERROR"}})
        with oncommit():
            booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")
    else:
        api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount, status="pending"))
        with oncommit():
            booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
        refund_news(client, ["refund.failed"], amount=booking.amount)
        news = refund_body(booking.amount, status="pending")
        api.replace(
            responses.POST, f"{API}/payments/{PAYMENT_ID}/refund", status=503, json={"error": {"code": "SERVER_ERROR"}}
        )
        with oncommit():
            payment_settle(payment_id=payment.pk, user=admin_user, how=Settle.REFUND, note="Asked again")
    payment.refresh_from_db()
    assert (payment.refund_status, payment.provider_refund_id) == (Payment.RefundState.PENDING, "")

    body = webhook_event("refund.created", refund=news, payment=payment_body(booking.amount))
    assert post_webhook(client, body, event_id="evt_delivered_again").status_code == 200
    payment.refresh_from_db()
    assert payment.provider_refund_id == ""  # still ours to send

    api.replace(responses.POST, f"{API}/payments/{PAYMENT_ID}/refund", json={**refund_body(left), "id": "rfnd_Ours"})
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with oncommit():
        payment_refunds_retry()
    payment.refresh_from_db()
    assert json.loads(refund_calls(api)[-1].request.body)["amount"] == left
    assert payment.provider_refund_id == "rfnd_Ours" and payment.refunded_amount == booking.amount


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


# --- A payment's news, and what the client and the clinic do meanwhile ----------------------

SECOND_ORDER, SECOND_PAYMENT = "order_SecondTab00001", "pay_SecondTab00001"


def news_of(client, answered, booking: Booking, token: str, step: str, n: int) -> None:
    """One piece of news of PAYMENT_ID (captured, on ORDER_ID) or of a declined try before
    it on the same order; or what the client, staff or the clock do."""
    paid = payment_body(booking.amount)
    if step in ("payment.authorized", "payment.captured", "order.paid"):
        status = "authorized" if step == "payment.authorized" else "captured"
        entities = {"payment": payment_body(booking.amount, status=status)}
        if step == "order.paid":
            entities["order"] = {**order_body(booking), "status": "paid", "amount_paid": booking.amount}
        post_webhook(client, webhook_event(step, **entities), event_id=f"evt_{n}")
    elif step == "payment.failed":
        declined = payment_body(booking.amount, status="failed", payment_id="pay_Declined000001")
        post_webhook(client, webhook_event(step, payment=declined), event_id=f"evt_{n}")
    elif step == "return":
        answered.upsert(responses.GET, f"{API}/payments/{PAYMENT_ID}", json=paid)
        first = booking.payments.get(provider_order_id=ORDER_ID)
        client.post(reverse("bookings:pay_return", args=[token, first.pk]), checkout_result())
    elif step == "second tab":
        # The client presses Pay again in another tab: the open attempt is closed, another made.
        if Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING:
            answered.upsert(responses.POST, f"{API}/orders", json=order_body(booking, order_id=SECOND_ORDER))
            client.post(reverse("bookings:pay", args=[token]))
    elif step == "client cancels":
        with contextlib.suppress(BookingError):
            booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    elif step == "staff cancel":
        admin = User.objects.get(email="admin@example.com")
        with contextlib.suppress(BookingError):
            booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin, reason="The counsellor is ill")
    elif step == "time runs out":
        Booking.objects.filter(pk=booking.pk).update(payment_due_at=timezone.now() - timedelta(minutes=1))
        bookings_expire()


CAPTURE_NEWS = ("payment.captured", "order.paid", "return")
ENDINGS = ("client cancels", "staff cancel", "time runs out")


def orderings() -> list[list[str]]:
    news = [
        ["payment.failed", "payment.authorized", "payment.captured", "return", "order.paid"],
        ["return", "order.paid", "payment.captured", "payment.failed"],
        ["order.paid", "payment.failed", "return", "payment.captured"],
    ]
    cases = [list(order) for order in news]
    for order in news:
        for step in (*ENDINGS, "second tab"):
            for at in (0, 1, len(order)):
                cases.append([*order[:at], step, *order[at:]])
    return cases


@pytest.mark.parametrize("steps", orderings(), ids=" > ".join)
def test_whatever_order_the_news_comes_in_the_money_ends_with_the_booking(
    client, api, approved, admin_user, oncommit, steps
):
    """A payment captured is told by its webhook, order.paid and the client's return (each
    may come first, or twice), a declined try before it on the same order by payment.failed
    (which may come after); meanwhile the client may cancel or press Pay in another tab, staff
    may cancel, and the time to pay may run out. If the booking ended before the money was
    heard of, the money goes back (once) and staff are told; if it was heard of first, the
    booking is confirmed (the time to pay running out after changes nothing), and a
    cancellation after returns it (once)."""
    booking, token = approved
    start(client, api, booking, token)
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount))
    for n, step in enumerate(steps):
        with oncommit():
            news_of(client, api, booking, token, step, n)

    booking.refresh_from_db()
    payment = Payment.objects.get(provider_payment_id=PAYMENT_ID)
    heard = min(steps.index(step) for step in CAPTURE_NEWS)
    # The time to pay running out after the money was heard of changes nothing.
    ended = [steps.index(step) for step in ENDINGS if step in steps]
    ended = [at for at in ended if at < heard or steps[at] != "time runs out"]
    if not ended:
        assert booking.status == Status.CONFIRMED
        assert payment.status == Payment.State.CONFIRMED and payment.refunded_amount == 0
        assert not refund_calls(api) and not payment.needs_attention
        assert booking.payments.filter(status=Payment.State.CONFIRMED).count() == 1
        return
    assert booking.status == Status.CANCELLED
    assert len(refund_calls(api)) == 1
    assert payment.status == Payment.State.REFUNDED and payment.refunded_amount == booking.amount
    assert payment.refund_status == Payment.RefundState.PROCESSED
    # Money that came after the booking ended: staff are told it went back.
    assert bool(payment.needs_attention) == (min(ended) < heard)


@pytest.mark.parametrize(
    "steps",
    [
        ["captured 1", "captured 2"],
        ["captured 2", "captured 1"],
        ["return 2", "captured 1", "captured 2", "return 1"],
        ["client cancels", "captured 2", "captured 1"],
        ["captured 1", "client cancels", "captured 2"],
        ["captured 2", "time runs out", "return 1"],
    ],
    ids=" > ".join,
)
def test_two_tabs_both_paid_confirm_once_and_the_other_goes_back(client, api, approved, admin_user, oncommit, steps):
    """The client pays in two tabs (the second pressed Pay again, closing the first's attempt),
    and both payments are captured: the first heard of confirms the booking, the other goes
    back (once) and staff are told; a cancellation returns whichever confirmed it too."""
    booking, token = approved
    first = start(client, api, booking, token)
    api.upsert(responses.POST, f"{API}/orders", json=order_body(booking, order_id=SECOND_ORDER))
    client.post(reverse("bookings:pay", args=[token]))
    second = booking.payments.get(provider_order_id=SECOND_ORDER)
    attempts = {"1": (first, ORDER_ID, PAYMENT_ID), "2": (second, SECOND_ORDER, SECOND_PAYMENT)}
    for _attempt, _order, payment_id in attempts.values():
        refund = {**refund_body(booking.amount), "id": f"rfnd_{payment_id[4:]}", "payment_id": payment_id}
        api.post(f"{API}/payments/{payment_id}/refund", json=refund)
    for n, step in enumerate(steps):
        with oncommit():
            if step.startswith(("captured", "return")):
                attempt, order_id, payment_id = attempts[step[-1]]
                paid = {**payment_body(booking.amount, payment_id=payment_id), "order_id": order_id}
                if step.startswith("captured"):
                    post_webhook(client, webhook_event("payment.captured", payment=paid), event_id=f"evt_{n}")
                else:
                    api.upsert(responses.GET, f"{API}/payments/{payment_id}", json=paid)
                    result = checkout_result(order_id=order_id, payment_id=payment_id)
                    client.post(reverse("bookings:pay_return", args=[token, attempt.pk]), result)
            else:
                news_of(client, api, booking, token, step, n)

    booking.refresh_from_db()
    paid = {p.provider_payment_id: p for p in Payment.objects.filter(booking=booking).exclude(provider_payment_id="")}
    refunds = [call.request.url for call in refund_calls(api)]
    assert len(refunds) == len(set(refunds))
    confirming = [p for p in paid.values() if p.status == Payment.State.CONFIRMED]
    if booking.status == Status.CONFIRMED:
        [kept] = confirming
        [returned] = [p for p in paid.values() if p != kept]
        assert kept.refunded_amount == 0 and len(refunds) == 1
        assert returned.refunded_amount == booking.amount and returned.needs_attention
    else:
        assert booking.status == Status.CANCELLED and not confirming and len(refunds) == 2
    assert all(p.refund_status in ("", Payment.RefundState.PROCESSED) for p in paid.values())


@pytest.mark.parametrize("outcome", ["processed", "failed"])
@pytest.mark.parametrize(
    "steps",
    [
        ["refund.created", "outcome", "order.paid", "refund check"],
        ["outcome", "refund.created", "refund check", "order.paid"],
        ["refund check", "order.paid", "outcome", "refund.created"],
        ["order.paid", "outcome", "outcome", "refund.created"],
    ],
    ids=" > ".join,
)
def test_our_refunds_news_in_any_order_settles_it_once(client, api, approved, admin_user, oncommit, steps, outcome):
    """A confirmed booking is cancelled and its refund is pending with Razorpay. Its news
    (refund.created, then processed or failed, each maybe twice), the payment's own news
    coming again late, and the hourly refund check, in any order: the refund is asked for
    once, ends as Razorpay says, and staff are told only of a failure, once."""
    booking, token = approved
    payment = start(client, api, booking, token)
    captured(client, api, booking, token, payment, how="webhook", amount=booking.amount)
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount, status="pending"))
    api.get(f"{API}/refunds/{REFUND_ID}", json=refund_body(booking.amount, status=outcome))
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    mail.outbox = []
    for n, step in enumerate(steps):
        with oncommit():
            if step == "refund check":
                Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=2))
                payment_refunds_check()
            elif step == "order.paid":
                post_webhook(
                    client, webhook_event("order.paid", payment=payment_body(booking.amount)), event_id=f"e{n}"
                )
            else:
                refund_news(
                    client, [f"refund.{outcome}" if step == "outcome" else step], amount=booking.amount, first_event=n
                )

    payment.refresh_from_db()
    assert len(refund_calls(api)) == 1 and Booking.objects.get(pk=booking.pk).status == Status.CANCELLED
    alerts = [m for m in mail.outbox if m.to == [admin_user.email]]
    if outcome == "processed":
        assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount
        assert not payment.needs_attention and not alerts
    else:
        assert payment.refund_status == Payment.RefundState.FAILED and payment.refunded_amount == 0
        assert payment.needs_attention and len(alerts) == 1
