"""The Razorpay provider: orders, Checkout's signed return, webhooks and refunds.

Signatures are checked by the real `razorpay` library with test secrets; its HTTP calls are
answered at the HTTP layer by `responses` with bodies shaped like Razorpay's documented
ones. Nothing touches the network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections import Counter
from datetime import timedelta

import pytest
import requests
import responses
from django.conf import settings
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from bookings.models import Actor, Booking, BookingEvent, OutboundEmail, Payment, Status, WebhookEvent
from bookings.services import booking_anonymise, booking_cancel, bookings_expire, payment_refunds_retry
from bookings.services.payments import REFUND_TRIES, Settle, payment_settle, payment_settle_choices
from bookings.templatetags.mindsettler import money
from bookings.tests.test_i18n import assert_hindi
from bookings.tests.threads import at_once

KEY_ID = "rzp_test_1DP5mmOlF5G5ag"
KEY_SECRET = "test_key_secret_for_mindsettler"
WEBHOOK_SECRET = "test_webhook_secret_for_mindsettler"
API = "https://api.razorpay.com/v1"
ORDER_ID = "order_IluGWxBm9U8zJ8"
PAYMENT_ID = "pay_29QQoUBi66xm2f"


@pytest.fixture(autouse=True)
def _razorpay(settings):
    settings.PAYMENT_PROVIDER = "razorpay"
    settings.RAZORPAY_KEY_ID = KEY_ID
    settings.RAZORPAY_KEY_SECRET = KEY_SECRET
    settings.RAZORPAY_WEBHOOK_SECRET = WEBHOOK_SECRET


@pytest.fixture
def api():
    # Any request without a prepared answer fails the test: no call can reach the network.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def approved(make_booking, counsellor, manage_token):
    booking = make_booking(Status.APPROVED)
    return booking, manage_token(booking)


def sign(message: str, secret: str) -> str:
    """HMAC-SHA256, hex: how Razorpay signs Checkout results and webhooks."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def order_body(booking: Booking, order_id: str = ORDER_ID) -> dict:
    return {
        "id": order_id,
        "entity": "order",
        "amount": booking.amount,
        "amount_paid": 0,
        "amount_due": booking.amount,
        "currency": "INR",
        "receipt": booking.ack_id,
        "offer_id": None,
        "status": "created",
        "attempts": 0,
        "notes": {"booking": booking.ack_id},
        "created_at": 1767225600,
    }


def payment_body(amount: int, *, status: str = "captured", currency: str = "INR", payment_id: str = PAYMENT_ID) -> dict:
    return {
        "id": payment_id,
        "entity": "payment",
        "amount": amount,
        "currency": currency,
        "status": status,
        "order_id": ORDER_ID,
        "invoice_id": None,
        "international": False,
        "method": "upi",
        "amount_refunded": 0,
        "refund_status": None,
        "captured": status == "captured",
        "description": "Counselling session",
        "card_id": None,
        "bank": None,
        "wallet": None,
        "vpa": "client@exampleupi",
        "email": "client@example.com",
        "contact": "+919000090000",
        "notes": {},
        "fee": 0,
        "tax": 0,
        "error_code": "BAD_REQUEST_ERROR" if status == "failed" else None,
        "error_description": "Payment was declined by the bank" if status == "failed" else None,
        "created_at": 1767225700,
    }


def refund_body(amount: int, *, status: str = "processed") -> dict:
    return {
        "id": "rfnd_FP8QHiV938haTz",
        "entity": "refund",
        "amount": amount,
        "receipt": None,
        "currency": "INR",
        "payment_id": PAYMENT_ID,
        "notes": {},
        "acquirer_data": {"arn": None},
        "created_at": 1767312000,
        "batch_id": None,
        "status": status,
        "speed_processed": "normal",
        "speed_requested": "normal",
    }


def webhook_event(kind: str, **entities: dict) -> bytes:
    body = {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": kind,
        "contains": list(entities),
        "payload": {name: {"entity": entity} for name, entity in entities.items()},
        "created_at": 1767225800,
    }
    return json.dumps(body).encode()


def post_webhook(client, body: bytes, *, event_id: str = "evt_1", signature: str | None = None):
    headers = {"X-Razorpay-Event-Id": event_id}
    if signature != "":
        headers["X-Razorpay-Signature"] = signature or sign(body.decode(), WEBHOOK_SECRET)
    return client.post(
        reverse("bookings:razorpay_webhook"), data=body, content_type="application/json", headers=headers
    )


def start(client, api, booking: Booking, token: str) -> Payment:
    api.post(f"{API}/orders", json=order_body(booking))
    response = client.post(reverse("bookings:pay", args=[token]))
    payment = booking.payments.get()
    assert response["Location"] == reverse("bookings:pay_checkout", args=[token, payment.pk])
    return payment


def checkout_result(order_id: str = ORDER_ID, payment_id: str = PAYMENT_ID) -> dict[str, str]:
    return {
        "razorpay_order_id": order_id,
        "razorpay_payment_id": payment_id,
        "razorpay_signature": sign(f"{order_id}|{payment_id}", KEY_SECRET),
    }


# --- Orders and the checkout page -------------------------------------------------------


def test_pay_creates_an_order_for_the_bookings_amount(client, api, approved):
    booking, token = approved
    payment = start(client, api, booking, token)

    sent = json.loads(api.calls[0].request.body)
    assert sent["amount"] == 150000 and sent["currency"] == "INR" and sent["receipt"] == booking.ack_id
    assert api.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert payment.provider == "razorpay" and payment.provider_order_id == ORDER_ID
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING


def test_checkout_page_allows_razorpay_only_there(client, api, approved):
    booking, token = approved
    payment = start(client, api, booking, token)

    page = client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]), follow=True)

    csp = page["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in csp and "https://checkout.razorpay.com" in csp
    assert "frame-src 'self' https://api.razorpay.com" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    html = page.content.decode()
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}" src="https://checkout.razorpay.com/v1/checkout.js">' in html
    assert "razorpay-checkout.js" in html
    options = page.context["checkout_options"]
    assert options["order_id"] == ORDER_ID and options["key"] == KEY_ID and options["amount"] == 150000
    assert KEY_SECRET not in html
    # Every other page keeps the site's policy.
    elsewhere = client.get(reverse("bookings:home"))
    assert "razorpay" not in elsewhere["Content-Security-Policy"]


def test_razorpays_script_runs_on_a_page_without_the_booking_link(client, api, approved):
    """Razorpay's script runs in the checkout page, where it can read the page's address and
    markup (and sends what it reads to Razorpay): neither holds the booking page's link. The
    link opens the payment window for this browser, at an address of the payment alone."""
    booking, token = approved
    payment = start(client, api, booking, token)

    response = client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]))

    window = reverse("bookings:payment_window", args=[payment.pk])
    assert response.status_code == 302 and response["Location"] == window
    page = client.get(window)
    html = page.content.decode()
    assert page.status_code == 200 and "https://checkout.razorpay.com/v1/checkout.js" in html
    assert token not in html and "no-store" in page["Cache-Control"]
    assert f'action="{reverse("bookings:payment_window_return", args=[payment.pk])}"' in html

    # The signed result comes back to the window's own address, and leads to a booking page.
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(booking.amount))
    back = client.post(reverse("bookings:payment_window_return", args=[payment.pk]), checkout_result())
    assert back.status_code == 302 and back["Location"].startswith("/bookings/")
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert "confirmed" in client.get(back["Location"]).content.decode()


def test_the_payment_window_opens_only_in_the_browser_that_followed_the_booking_link(client, api, approved):
    from django.test import Client

    booking, token = approved
    payment = start(client, api, booking, token)
    client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]))

    stranger = Client()
    forged = {**checkout_result(), "razorpay_signature": sign(f"{ORDER_ID}|{PAYMENT_ID}", "not-our-secret")}
    for response in (
        stranger.get(reverse("bookings:payment_window", args=[payment.pk])),
        stranger.post(reverse("bookings:payment_window_back", args=[payment.pk])),
        stranger.post(reverse("bookings:payment_window_return", args=[payment.pk]), forged),
        stranger.post(reverse("bookings:payment_window_return", args=[payment.pk + 1]), checkout_result()),
    ):
        assert response.status_code == 404 and booking.ack_id not in response.content.decode()
    assert len(api.calls) == 1  # only the order
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    # "Back to your booking" leads this browser to a working booking page.
    back = client.post(reverse("bookings:payment_window_back", args=[payment.pk]))
    assert back.status_code == 302 and booking.ack_id in client.get(back["Location"]).content.decode()


def test_a_signed_result_that_comes_back_after_the_session_ran_out_is_recorded(client, api, approved):
    """A checkout left open past the session's 12 hours (or finished in another browser):
    the payment Razorpay signed confirms the booking at once, as its webhook would, and the
    client is told so; but the browser, which only proves a payment, gets no booking link."""
    from django.test import Client

    booking, token = approved
    payment = start(client, api, booking, token)
    client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]))
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(booking.amount))

    response = Client().post(reverse("bookings:payment_window_return", args=[payment.pk]), checkout_result())

    html = response.content.decode()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert "We received your payment of ₹" in html and "your session is confirmed" in html
    assert "get a fresh link from" in html
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert booking.ack_id not in html and "/bookings/" not in html  # the confirmation email has the link


def test_opening_the_payment_window_again_makes_no_booking_link(client, api, approved):
    """Each booking-page link is a new secret, valid a year: made only by a POST (a button),
    never by a GET that Back, a reload or a prefetch repeats, the window's own page, after
    the attempt closed, included."""
    from bookings.models import LinkToken

    booking, token = approved
    payment = start(client, api, booking, token)
    client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]))
    window = reverse("bookings:payment_window", args=[payment.pk])
    back = reverse("bookings:payment_window_back", args=[payment.pk])
    links = LinkToken.objects.filter(booking=booking, purpose=LinkToken.Purpose.MANAGE)
    made = links.count()

    html = client.get(window).content.decode()
    assert f'<form method="post" action="{back}"' in html and f'href="{back}"' not in html
    assert client.get(back).status_code == 405
    Payment.objects.filter(pk=payment.pk).update(status=Payment.State.FAILED)  # closed meanwhile
    closed = client.get(window)
    html = closed.content.decode()
    assert closed.status_code == 200 and "That payment attempt is closed." in html
    assert "Nothing more has been charged. Go back to your booking to see where it stands" in html
    assert f'<form method="post" action="{back}"' in html and token not in html
    assert links.count() == made

    # The button makes one, and leads to the booking as it stands.
    page = client.post(back, follow=True)
    assert links.count() == made + 1 and booking.ack_id in page.content.decode()


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ConnectTimeout("timed out"),
        requests.exceptions.ReadTimeout("timed out"),
        requests.exceptions.ConnectionError("refused"),
    ],
)
def test_provider_timeout_keeps_the_booking_approved_with_a_retry_message(client, api, approved, failure):
    booking, token = approved
    api.post(f"{API}/orders", body=failure)

    response = client.post(reverse("bookings:pay", args=[token]))

    assert response["Location"] == reverse("bookings:booking_page", args=[token])
    [message] = [m.message for m in get_messages(response.wsgi_request)]
    assert "Nothing has been charged" in message and "try again" in message
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED
    assert booking.payments.get().status == Payment.State.FAILED

    # And the retry works once Razorpay answers again.
    api.post(f"{API}/orders", json=order_body(booking, order_id="order_Second00000001"))
    client.post(reverse("bookings:pay", args=[token]))
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    assert booking.payments.count() == 2


def test_razorpay_refusing_the_order_keeps_the_booking_approved(client, api, approved):
    booking, token = approved
    api.post(
        f"{API}/orders",
        status=500,
        json={"error": {"code": "SERVER_ERROR", "description": "The server encountered an error."}},
    )
    client.post(reverse("bookings:pay", args=[token]))
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED


# Answers that are not what Razorpay's API documents: an error status whose body is JSON but
# not its error object (the library fails reading it), or a success status whose body is no
# object. Each is Razorpay (or something in between) failing, never a server error of ours.
MALFORMED = {
    "error status, body null": dict(status=500, body="null", content_type="application/json"),
    "error status, body a number": dict(status=502, body="5", content_type="application/json"),
    "error status, error null": dict(status=400, json={"error": None}),
    "success status, body null": dict(status=200, body="null", content_type="application/json"),
    "success status, body a list": dict(status=200, json=[]),
}


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_to_the_order_keeps_the_booking_payable(client, api, approved, answer):
    booking, token = approved
    api.post(f"{API}/orders", **answer)

    response = client.post(reverse("bookings:pay", args=[token]))

    assert response["Location"] == reverse("bookings:booking_page", args=[token])
    [message] = [m.message for m in get_messages(response.wsgi_request)]
    assert "Nothing has been charged" in message
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_when_checking_a_returned_payment_leaves_it_to_the_webhook(client, api, approved, answer):
    booking, token = approved
    payment = start(client, api, booking, token)
    api.get(f"{API}/payments/{PAYMENT_ID}", **answer)

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), data=checkout_result())

    assert response.status_code == 302
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    # Razorpay's word arrives by webhook, and confirms it.
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(booking.amount)))
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED


@pytest.mark.parametrize(
    "amount", ["all of it", {"value": 150000}, [150000], 10**30, float("inf"), -150000, "1" * 4301]
)
def test_a_returned_payment_whose_amount_is_no_number_is_left_to_the_webhook(client, api, approved, amount):
    """A payment object, but its amount not the integer Razorpay documents: a 500 on the
    client's return from checkout, after they had paid."""
    booking, token = approved
    payment = start(client, api, booking, token)
    api.get(f"{API}/payments/{PAYMENT_ID}", json={**payment_body(booking.amount), "amount": amount})

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), data=checkout_result())

    assert response.status_code == 302
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(booking.amount)))
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED


# --- Checkout's return ------------------------------------------------------------------


def test_verified_return_confirms(client, api, approved):
    booking, token = approved
    payment = start(client, api, booking, token)
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(booking.amount))

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), checkout_result())

    assert response["Location"] == reverse("bookings:booking_page", args=[token])
    payment.refresh_from_db()
    assert payment.status == Payment.State.CONFIRMED and payment.provider_payment_id == PAYMENT_ID
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED


@pytest.mark.parametrize(
    "result",
    [
        {**checkout_result(), "razorpay_signature": sign(f"{ORDER_ID}|{PAYMENT_ID}", "not-our-secret")},
        {**checkout_result(), "razorpay_payment_id": "pay_SomeoneElses01"},
        {k: v for k, v in checkout_result().items() if k != "razorpay_signature"},
        checkout_result(order_id="order_NotThisOne0001"),
    ],
)
def test_forged_return_is_refused_and_changes_nothing(client, api, approved, result):
    booking, token = approved
    payment = start(client, api, booking, token)

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), result)

    assert response.status_code == 400
    assert len(api.calls) == 1  # only the order: nothing was fetched on a forged result
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    assert Payment.objects.get(pk=payment.pk).provider_payment_id == ""


def test_return_for_a_payment_not_yet_captured_waits_for_the_webhook(client, api, approved):
    booking, token = approved
    payment = start(client, api, booking, token)
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(booking.amount, status="authorized"))

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), checkout_result())

    assert "being confirmed" in next(iter(get_messages(response.wsgi_request))).message
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING


def test_return_with_a_captured_wrong_amount_is_flagged_not_confirmed(client, api, approved, admin_user):
    booking, token = approved
    payment = start(client, api, booking, token)
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(100))

    client.post(reverse("bookings:pay_return", args=[token, payment.pk]), checkout_result())

    payment.refresh_from_db()
    assert payment.status != Payment.State.CONFIRMED and payment.needs_attention
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING


# --- Webhooks ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["payment.captured", "order.paid"])
def test_webhook_confirms_the_payment(client, api, approved, kind):
    booking, token = approved
    payment = start(client, api, booking, token)
    entities = {"payment": payment_body(booking.amount)}
    if kind == "order.paid":
        entities["order"] = {**order_body(booking), "status": "paid", "amount_paid": booking.amount}

    response = post_webhook(client, webhook_event(kind, **entities))

    assert response.status_code == 200
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    payment.refresh_from_db()
    assert payment.provider_payment_id == PAYMENT_ID and f"webhook:{kind}" in payment.raw
    # The payer's contact details stay with Razorpay.
    assert "client@exampleupi" not in json.dumps(payment.raw) and "+919000090000" not in json.dumps(payment.raw)
    assert WebhookEvent.objects.filter(provider="razorpay", event_id="evt_1").count() == 1


def test_replayed_webhook_changes_nothing(client, api, approved):
    booking, token = approved
    start(client, api, booking, token)
    body = webhook_event("payment.captured", payment=payment_body(booking.amount))
    post_webhook(client, body)
    version = Booking.objects.get(pk=booking.pk).version

    again = post_webhook(client, body)

    assert again.status_code == 200 and again.content == b"already processed"
    assert Booking.objects.get(pk=booking.pk).version == version
    assert BookingEvent.objects.filter(booking=booking, to_status=Status.CONFIRMED).count() == 1
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 1


def test_a_signed_body_sent_again_under_another_event_id_is_a_replay(client, api, approved):
    """The signature covers the body, not the X-Razorpay-Event-Id header beside it."""
    booking, token = approved
    start(client, api, booking, token)
    body = webhook_event("payment.captured", payment=payment_body(booking.amount))
    assert post_webhook(client, body, event_id="evt_1").content == b"ok"
    version = Booking.objects.get(pk=booking.pk).version

    again = post_webhook(client, body, event_id="evt_made_up")
    unnamed = post_webhook(client, body, event_id="")

    assert again.content == unnamed.content == b"already processed"
    assert Booking.objects.get(pk=booking.pk).version == version
    assert BookingEvent.objects.filter(booking=booking, to_status=Status.CONFIRMED).count() == 1
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 1
    [event] = WebhookEvent.objects.all()
    assert event.event_id == "evt_1" and event.digest == hashlib.sha256(body).hexdigest()


def test_a_genuine_event_is_applied_whatever_event_id_came_before_it(client, api, approved):
    """Someone holding an old signed body sends it under the ID a genuine event will carry:
    the genuine event is still applied."""
    booking, token = approved
    start(client, api, booking, token)
    old = webhook_event("payment.authorized", payment=payment_body(booking.amount, status="authorized"))
    assert post_webhook(client, old, event_id="evt_next").content == b"ok"

    response = post_webhook(
        client, webhook_event("payment.captured", payment=payment_body(booking.amount)), event_id="evt_next"
    )

    assert response.status_code == 200 and response.content == b"ok"
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert WebhookEvent.objects.filter(event_id="evt_next").count() == 2


def test_the_same_payment_by_return_and_webhook_confirms_once(client, api, approved):
    booking, token = approved
    payment = start(client, api, booking, token)
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(booking.amount))
    client.post(reverse("bookings:pay_return", args=[token, payment.pk]), checkout_result())

    post_webhook(client, webhook_event("payment.captured", payment=payment_body(booking.amount)), event_id="evt_2")
    post_webhook(client, webhook_event("order.paid", payment=payment_body(booking.amount)), event_id="evt_3")

    assert BookingEvent.objects.filter(booking=booking, to_status=Status.CONFIRMED).count() == 1
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 1
    assert WebhookEvent.objects.count() == 2


@pytest.mark.parametrize("signature", ["", "0" * 64, sign("something else", WEBHOOK_SECRET)])
def test_forged_or_missing_webhook_signature_is_refused(client, api, approved, signature):
    booking, token = approved
    start(client, api, booking, token)
    body = webhook_event("payment.captured", payment=payment_body(booking.amount))

    response = post_webhook(client, body, signature=signature)

    assert response.status_code == 400
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    assert not WebhookEvent.objects.exists()


def test_webhook_signed_with_the_key_secret_instead_of_the_webhook_secret_is_refused(client, api, approved):
    booking, token = approved
    start(client, api, booking, token)
    body = webhook_event("payment.captured", payment=payment_body(booking.amount))
    assert post_webhook(client, body, signature=sign(body.decode(), KEY_SECRET)).status_code == 400


def test_webhook_payment_failed_returns_the_booking_to_approved(client, api, approved):
    booking, token = approved
    payment = start(client, api, booking, token)

    post_webhook(client, webhook_event("payment.failed", payment=payment_body(booking.amount, status="failed")))

    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED
    assert Payment.objects.get(pk=payment.pk).status == Payment.State.FAILED
    # Razorpay lets the client retry inside Checkout on the same order: a later capture still confirms.
    post_webhook(
        client,
        webhook_event("payment.captured", payment=payment_body(booking.amount, payment_id="pay_RetryInModal01")),
        event_id="evt_2",
    )
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED


def test_webhook_with_wrong_currency_is_flagged(client, api, approved, admin_user):
    booking, token = approved
    payment = start(client, api, booking, token)
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(booking.amount, currency="USD")))
    payment.refresh_from_db()
    assert payment.needs_attention and payment.status != Payment.State.CONFIRMED
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    assert [m for m in mail.outbox if m.to == [admin_user.email]]


def test_webhook_for_an_order_we_do_not_know_is_acknowledged_and_ignored(client, api, approved):
    body = webhook_event("payment.captured", payment={**payment_body(100), "order_id": "order_NotOurs000001"})
    assert post_webhook(client, body).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        "null",
        '{"event": "payment.captured", "payload": "x"}',
        '{"event": "payment.captured", "payload": {"payment": {"entity": "x"}}}',
        '{"event": "refund.processed", "payload": {"refund": {"entity": {"amount": "all of it"}}}}',
    ],
)
def test_a_signed_webhook_not_in_the_documented_shape_is_acknowledged_and_changes_nothing(
    client, api, approved, body, caplog
):
    """It was a 500, which Razorpay answers by sending the same body again for a day."""
    booking, token = approved
    start(client, api, booking, token)

    response = post_webhook(client, body.encode())

    assert response.status_code == 200
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    assert "not in the documented shape" in caplog.text


@pytest.mark.parametrize("amount", [10**30, 2**31, float("inf"), -1, 0.5])
@pytest.mark.parametrize("kind", ["payment.captured", "refund.processed"])
def test_a_signed_webhook_whose_amount_no_payment_can_be_is_acknowledged_and_changes_nothing(
    client, api, approved, kind, amount, caplog
):
    """Amounts past what the database holds, or no whole number: they were a 500 (an
    OverflowError, or the database refusing the row), again at each of Razorpay's retries."""
    booking, token = approved
    start(client, api, booking, token)
    if kind == "payment.captured":
        body = webhook_event(kind, payment={**payment_body(booking.amount), "amount": amount})
    else:
        refund = {"id": "rfnd_1", "entity": "refund", "payment_id": PAYMENT_ID, "amount": amount, "status": "processed"}
        body = webhook_event(kind, refund=refund, payment=payment_body(booking.amount))

    response = post_webhook(client, body)

    assert response.status_code == 200
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    assert "not in the documented shape" in caplog.text
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(booking.amount)), event_id="evt_2")
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED


def test_other_webhook_events_are_acknowledged(client, db):
    assert post_webhook(client, webhook_event("payment.authorized", payment=payment_body(1))).status_code == 200


def test_webhook_only_accepts_post(client):
    assert client.get(reverse("bookings:razorpay_webhook")).status_code == 405


# --- Refunds ----------------------------------------------------------------------------


@pytest.fixture
def confirmed(client, api, approved):
    booking, token = approved
    payment = start(client, api, booking, token)
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(booking.amount)), event_id="evt_paid")
    mail.outbox = []
    return Booking.objects.get(pk=booking.pk), Payment.objects.get(pk=payment.pk)


def test_a_second_payment_on_the_order_is_told_to_staff_once(client, api, confirmed, admin_user, oncommit):
    """Its news comes more than once (payment.captured, then order.paid; redeliveries): an
    alert an administrator has settled is not raised again, nor emailed again."""
    booking, payment = confirmed
    second = payment_body(booking.amount, payment_id="pay_Second00000001")
    with oncommit():
        post_webhook(client, webhook_event("payment.captured", payment=second), event_id="evt_second")
    payment.refresh_from_db()
    assert "second payment" in payment.needs_attention
    told = OutboundEmail.objects.filter(kind="payment_attention").count()
    with oncommit():
        payment_settle(payment_id=payment.pk, user=admin_user, how=Settle.DEALT_WITH, note="Refunded it myself")
        for event_id, kind in [("evt_second_again", "payment.captured"), ("evt_order_paid", "order.paid")]:
            assert post_webhook(client, webhook_event(kind, payment=second), event_id=event_id).status_code == 200
    payment.refresh_from_db()
    assert payment.needs_attention == "" and payment.provider_payment_id == PAYMENT_ID
    assert OutboundEmail.objects.filter(kind="payment_attention").count() == told


def test_staff_cancellation_refunds_through_the_api(client, api, confirmed, admin_user, oncommit):
    booking, payment = confirmed
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount, status="pending"))

    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")

    sent = json.loads(api.calls[-1].request.body)
    assert sent["amount"] == booking.amount
    payment.refresh_from_db()
    assert payment.status == Payment.State.REFUNDED
    assert payment.refund_status == Payment.RefundState.PENDING
    assert payment.provider_refund_id == "rfnd_FP8QHiV938haTz"

    refund = refund_body(booking.amount)
    post_webhook(
        client,
        webhook_event("refund.processed", refund=refund, payment=payment_body(booking.amount)),
        event_id="evt_r",
    )
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED


def test_a_goodwill_refund_of_part_is_counted_and_a_cancellation_returns_the_rest(
    client, api, confirmed, admin_user, oncommit, manage_token
):
    """Staff refund part of a session from Razorpay's dashboard: the payment is partly
    refunded, the booking stays confirmed, and a later cancellation refunds the rest only.
    News of the first refund arriving again changes nothing."""
    booking, payment = confirmed
    goodwill = {**refund_body(50000), "id": "rfnd_Goodwill000001"}
    post_webhook(client, webhook_event("refund.processed", refund=goodwill), event_id="evt_goodwill")
    payment.refresh_from_db()
    assert payment.status == Payment.State.PARTIALLY_REFUNDED and payment.refunded_amount == 50000
    assert payment.refund_status == Payment.RefundState.PROCESSED
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED

    rest = {**refund_body(booking.amount - 50000, status="pending"), "id": "rfnd_TheRest000001"}
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=rest)
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")
    assert json.loads(api.calls[-1].request.body)["amount"] == booking.amount - 50000
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PENDING and payment.provider_refund_id == "rfnd_TheRest000001"
    assert payment.refunded_amount == booking.amount and payment.status == Payment.State.REFUNDED
    # The client reads what is on its way: the rest, not the whole again.
    page = client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    the_rest, earlier = money(booking.amount - 50000, "INR"), money(50000, "INR")
    assert f"A refund of the rest, {the_rest}, is on its way ({earlier} was refunded earlier)." in page
    assert "A full refund" not in page

    # The first refund's news again (a new event ID), while the rest is on its way: old news.
    post_webhook(client, webhook_event("refund.processed", refund=goodwill), event_id="evt_goodwill_again")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PENDING
    post_webhook(client, webhook_event("refund.processed", refund={**rest, "status": "processed"}), event_id="evt_rest")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount
    assert not payment.needs_attention


def test_old_news_of_an_earlier_refund_is_known_for_what_it_is_after_the_client_erased_their_data(
    client, api, confirmed, admin_user, oncommit
):
    """Erasure drops the provider's payloads but keeps the references: among them the earlier
    refunds', by which news of one arriving again is known as old news. Dropped with the
    payloads, such news took the place of the refund of the rest still on its way, whose
    failure was then ignored: the client was never paid the rest back, and nobody was told."""
    booking, payment = confirmed
    goodwill = {**refund_body(50000), "id": "rfnd_Goodwill000001"}
    post_webhook(client, webhook_event("refund.processed", refund=goodwill), event_id="evt_goodwill")
    rest = {**refund_body(booking.amount - 50000, status="pending"), "id": "rfnd_TheRest000001"}
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=rest)
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")
    assert booking_anonymise(booking_id=booking.pk, reason="Erased at the client's request")

    post_webhook(client, webhook_event("refund.processed", refund=goodwill), event_id="evt_goodwill_again")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PENDING and payment.provider_refund_id == rest["id"]
    post_webhook(client, webhook_event("refund.failed", refund={**rest, "status": "failed"}), event_id="evt_failed")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED and payment.refunded_amount == 50000
    assert payment.needs_attention  # staff are told, and ask for the rest again


def test_when_the_refund_of_the_rest_fails_the_earlier_part_stays_refunded(
    client, api, confirmed, admin_user, oncommit, manage_token
):
    booking, payment = confirmed
    goodwill = {**refund_body(50000), "id": "rfnd_Goodwill000001"}
    post_webhook(client, webhook_event("refund.processed", refund=goodwill), event_id="evt_goodwill")
    rest = {**refund_body(booking.amount - 50000, status="pending"), "id": "rfnd_TheRest000001"}
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=rest)
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")
    mail.outbox = []

    failed = {**rest, "status": "failed"}
    post_webhook(client, webhook_event("refund.failed", refund=failed), event_id="evt_rest_failed")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED
    assert payment.status == Payment.State.PARTIALLY_REFUNDED and payment.refunded_amount == 50000
    assert "refund of INR 1,000.00" in payment.needs_attention  # the rest, not the whole
    page = client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    assert f"The automatic refund of {money(booking.amount - 50000, 'INR')} did not go through." in page
    # An administrator may ask for the rest again, or record a refund made by hand.
    assert payment_settle_choices(payment) == [Settle.REFUND, Settle.REFUNDED]


def test_two_refunds_of_part_then_a_failed_refund_of_the_rest_count_each_once(client, api, confirmed, oncommit):
    booking, payment = confirmed
    for refund_id, amount in (("rfnd_Goodwill000001", 50000), ("rfnd_Goodwill000002", 30000)):
        post_webhook(
            client,
            webhook_event("refund.processed", refund={**refund_body(amount), "id": refund_id}),
            event_id=refund_id,
        )
    payment.refresh_from_db()
    assert payment.refunded_amount == 80000 and payment.status == Payment.State.PARTIALLY_REFUNDED
    rest = {**refund_body(booking.amount - 80000, status="pending"), "id": "rfnd_TheRest000001"}
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=rest)
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    assert json.loads(api.calls[-1].request.body)["amount"] == booking.amount - 80000
    post_webhook(client, webhook_event("refund.failed", refund={**rest, "status": "failed"}), event_id="evt_failed")
    payment.refresh_from_db()
    assert payment.refunded_amount == 80000 and payment.refunded_earlier == 80000  # not 50000 + 80000
    assert payment.refund_in_hand == booking.amount - 80000


def test_part_refunded_while_our_refund_had_failed_leaves_the_rest_to_ask_for_again(client, api, confirmed, oncommit):
    """A goodwill refund made on the dashboard is still pending there when the client cancels:
    ours, of the whole, is refused (more than is left) and staff are alerted. When the goodwill
    refund's news comes, the alert stands for the rest, which may be asked for again."""
    booking, payment = confirmed
    api.post(
        f"{API}/payments/{PAYMENT_ID}/refund",
        status=400,
        json={"error": {"code": "BAD_REQUEST_ERROR", "description": "The refund amount is greater than captured"}},
    )
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    goodwill = {**refund_body(50000), "id": "rfnd_Goodwill000001"}
    post_webhook(client, webhook_event("refund.processed", refund=goodwill), event_id="evt_goodwill")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED and payment.needs_attention
    assert payment.status == Payment.State.PARTIALLY_REFUNDED and payment.refunded_amount == 50000
    assert payment_settle_choices(payment) == [Settle.REFUND, Settle.REFUNDED]

    rest = {**refund_body(booking.amount - 50000), "id": "rfnd_TheRest000001"}
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=rest)
    with oncommit():
        payment_settle(
            payment_id=payment.pk, user=None, how=Settle.REFUND, note="Asked again after the goodwill refund"
        )
    assert json.loads(api.calls[-1].request.body)["amount"] == booking.amount - 50000
    payment.refresh_from_db()
    assert payment.refunded_amount == booking.amount and payment.status == Payment.State.REFUNDED
    # The client's email names the rest, as their page does.
    (email,) = [m for m in mail.outbox if m.to == [booking.email]][-1:]
    the_rest, earlier = money(booking.amount - 50000, "INR"), money(50000, "INR")
    assert f"refund of the rest, {the_rest}, for booking {booking.ack_id} ({earlier} was refunded earlier)" in (
        " ".join(email.body.split())
    )


def test_part_refunded_while_our_refund_waits_to_be_sent_then_the_rest_is_sent(client, api, confirmed, oncommit):
    booking, payment = confirmed
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", status=503, json={"error": {"code": "SERVER_ERROR"}})
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    goodwill = {**refund_body(50000), "id": "rfnd_Goodwill000001"}
    post_webhook(client, webhook_event("refund.processed", refund=goodwill), event_id="evt_goodwill")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PENDING and payment.refunded_amount == 50000

    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json={**refund_body(booking.amount - 50000), "id": "rfnd_R2"})
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with oncommit():
        payment_refunds_retry()
    assert json.loads(api.calls[-1].request.body)["amount"] == booking.amount - 50000
    payment.refresh_from_db()
    assert payment.refunded_amount == booking.amount and payment.status == Payment.State.REFUNDED


def test_part_of_a_held_wrong_amount_refunded_keeps_the_rest_held_until_it_goes_back(client, api, approved, oncommit):
    """The client paid too much: held for staff. Staff refund the excess on the dashboard: the
    rest is still theirs and still held (the booking does not ask them to pay again), and when
    the time to pay runs out, it goes back."""
    booking, token = approved
    payment = start(client, api, booking, token)
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(booking.amount + 20000)))
    excess = {**refund_body(20000), "id": "rfnd_Excess0000001"}
    post_webhook(client, webhook_event("refund.processed", refund=excess), event_id="evt_excess")
    payment.refresh_from_db()
    booking.refresh_from_db()
    assert payment.status == Payment.State.PENDING and payment.refunded_amount == 20000
    assert booking.status == Status.PAYMENT_PENDING  # not asked to pay again while money is held
    assert payment_settle_choices(payment) == [Settle.REFUND, Settle.REFUNDED]

    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json={**refund_body(booking.amount), "id": "rfnd_R2"})
    with oncommit():
        assert bookings_expire(now=timezone.now() + timedelta(days=3)) == 1
    assert json.loads(api.calls[-1].request.body)["amount"] == booking.amount
    payment.refresh_from_db()
    assert payment.refunded_amount == booking.amount + 20000 and payment.status == Payment.State.REFUNDED


def test_a_refund_the_api_refuses_is_marked_failed_and_staff_are_told(api, confirmed, admin_user, oncommit):
    booking, payment = confirmed
    api.post(
        f"{API}/payments/{PAYMENT_ID}/refund",
        status=400,
        json={
            "error": {
                "code": "BAD_REQUEST_ERROR",
                "description": "The refund amount provided is greater than amount captured",
            }
        },
    )

    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED
    assert "automatic refund" in payment.needs_attention
    assert [m for m in mail.outbox if m.to == [admin_user.email]]
    assert Booking.objects.get(pk=booking.pk).status == Status.CANCELLED


def test_a_refund_razorpay_reports_failed_is_marked_failed_and_staff_are_told(
    client, api, confirmed, admin_user, oncommit, manage_token
):
    booking, payment = confirmed
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount, status="pending"))
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    calls, mail.outbox = len(api.calls), []
    failed = webhook_event(
        "refund.failed", refund=refund_body(booking.amount, status="failed"), payment=payment_body(booking.amount)
    )

    assert post_webhook(client, failed, event_id="evt_refund_failed").status_code == 200

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED
    assert payment.refunded_amount == 0 and payment.provider_refund_id == ""  # the money is still ours
    assert "refund of ₹1,500.00" not in payment.needs_attention and "failed" in payment.needs_attention
    [alert] = mail.outbox
    assert alert.to == [admin_user.email] and booking.ack_id in alert.subject
    assert BookingEvent.objects.filter(booking=booking, action="refund_failed").count() == 1
    page = client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    assert "is on its way" not in page and "will email you" not in page
    assert "Our team is arranging your refund and will contact you." in page
    # It needs a person: the retry sweep leaves it alone.
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert payment_refunds_retry() == 0 and len(api.calls) == calls

    # Razorpay repeating the news (a new event ID) alerts nobody twice.
    post_webhook(client, failed, event_id="evt_refund_failed_again")
    assert len(mail.outbox) == 1

    # Staff refund from Razorpay's dashboard: its refund.processed settles it.
    by_hand = {**refund_body(booking.amount), "id": "rfnd_ByHand0000001"}
    post_webhook(client, webhook_event("refund.processed", refund=by_hand), event_id="evt_by_hand")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.status == Payment.State.REFUNDED
    assert payment.provider_refund_id == "rfnd_ByHand0000001" and payment.refunded_amount == booking.amount


def test_a_refund_razorpay_cannot_take_now_is_asked_for_again_then_handed_to_staff(
    api, confirmed, manage_token, client, oncommit, admin_user
):
    """A timeout is not a refusal: the refund stays started and the retry sweep asks again,
    REFUND_TRIES times in all; then staff are told and the client's page says so."""
    booking, payment = confirmed
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", body=requests.exceptions.ConnectTimeout("down"))
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    page_url = reverse("bookings:booking_page", args=[manage_token(booking)])
    assert Payment.objects.get(pk=payment.pk).refund_status == Payment.RefundState.PENDING
    assert "is on its way" in client.get(page_url).content.decode()
    mail.outbox = []

    for _ in range(REFUND_TRIES - 1):
        Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
        with oncommit():  # the alert is sent once the sweep's work is committed
            payment_refunds_retry()

    payment.refresh_from_db()
    refund_calls = [c for c in api.calls if c.request.url.endswith("/refund")]
    assert len(refund_calls) == REFUND_TRIES and payment.refund_status == Payment.RefundState.FAILED
    assert [m.to for m in mail.outbox] == [[admin_user.email]]
    page = client.get(page_url).content.decode()
    assert "Refund being arranged" in page and "will contact you" in page and "will email you" not in page


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_to_a_refund_is_asked_again_like_a_timeout(api, confirmed, oncommit, answer):
    """Unread, it failed the refund's task unrecorded: never counted as a try, so a refund
    Razorpay kept answering so was asked for again for ever, no one on the staff was told, and
    the retry sweep stopped there, leaving the refunds after it unasked."""
    booking, payment = confirmed
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", **answer)
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount))

    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PENDING and not payment.provider_refund_id
    # Counted as a try, so an answer that stays unreadable reaches staff after REFUND_TRIES.
    assert any(key.startswith("refund_error") for key in payment.raw)
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    payment_refunds_retry()
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.provider_refund_id


def test_a_refund_asked_for_again_after_a_timeout_goes_through(api, confirmed, oncommit):
    booking, payment = confirmed
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", body=requests.exceptions.ReadTimeout("slow"))
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount))
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert payment_refunds_retry() == 1

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount
    assert not payment.needs_attention


def test_a_refund_staff_ask_for_again_gets_its_own_tries(api, confirmed, oncommit, admin_user):
    """After the tries ran out, an administrator asks again: a timeout then is retried by the
    sweep like a new refund's, not handed straight back to staff."""
    from bookings.services import Settle, payment_settle

    booking, payment = confirmed
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", body=requests.exceptions.ConnectTimeout("down"))
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    for _ in range(REFUND_TRIES - 1):
        Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
        payment_refunds_retry()
    assert Payment.objects.get(pk=payment.pk).refund_status == Payment.RefundState.FAILED

    with oncommit():
        payment_settle(payment_id=payment.pk, user=admin_user, how=Settle.REFUND, note="Razorpay is back.")

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PENDING and not payment.needs_attention
    api.replace(responses.POST, f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(booking.amount))
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert payment_refunds_retry() == 1
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount


@pytest.mark.parametrize("kind", ["refund.processed", "refund.failed"])
def test_a_refund_event_without_a_payment_id_touches_no_payment(client, api, approved, kind):
    booking, token = approved
    payment = start(client, api, booking, token)  # no provider payment ID yet: an empty one
    refund = {**refund_body(booking.amount), "payment_id": None}

    assert post_webhook(client, webhook_event(kind, refund=refund)).status_code == 200

    payment.refresh_from_db()
    assert payment.refund_status == "" and not payment.needs_attention


def test_a_captured_payment_without_an_order_confirms_nothing(client, api, approved, caplog):
    booking, token = approved
    api.post(f"{API}/orders", body=requests.exceptions.ConnectTimeout("down"))
    client.post(reverse("bookings:pay", args=[token]))
    assert booking.payments.get().provider_order_id == ""  # its order was never created
    # Any other payment on the Razorpay account: a payment link, a payment page.
    foreign = {**payment_body(booking.amount, payment_id="pay_Unrelated00001"), "order_id": None}

    with caplog.at_level(logging.INFO, logger="bookings.services.payments"):
        response = post_webhook(client, webhook_event("payment.captured", payment=foreign))

    assert response.status_code == 200
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED
    assert not Payment.objects.filter(provider_payment_id="pay_Unrelated00001").exists()
    assert "no payment for its order" in caplog.text


@pytest.mark.parametrize("where", ["webhook", "return"])
def test_a_non_ascii_signature_is_refused_like_any_bad_signature(client, api, approved, where):
    booking, token = approved
    payment = start(client, api, booking, token)

    if where == "webhook":
        body = webhook_event("payment.captured", payment=payment_body(booking.amount))
        response = post_webhook(client, body, signature="é" * 64)
    else:
        result = {**checkout_result(), "razorpay_signature": "é" * 64}
        response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), result)

    assert response.status_code == 400
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING
    assert not WebhookEvent.objects.exists()


# --- Amounts Razorpay cannot take, and wrong amounts left when time runs out -------------


@pytest.mark.parametrize("amount", [0, 99])
def test_a_booking_below_razorpays_minimum_is_not_sent_to_it(
    client, api, make_booking, counsellor, manage_token, amount
):
    booking = make_booking(Status.APPROVED, amount=amount)

    response = client.post(reverse("bookings:pay", args=[manage_token(booking)]))

    assert not api.calls
    [message] = [m.message for m in get_messages(response.wsgi_request)]
    assert "cannot be paid online" in message and "contact the clinic" in message
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED and not booking.payments.exists()


def test_a_wrong_amount_held_when_the_time_to_pay_runs_out_is_refunded(client, api, approved, admin_user, oncommit):
    booking, token = approved
    payment = start(client, api, booking, token)
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(100)), event_id="evt_short")
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json={**refund_body(100), "status": "pending"})
    mail.outbox = []

    with oncommit():
        assert bookings_expire(now=timezone.now() + timedelta(days=3)) == 1

    assert Booking.objects.get(pk=booking.pk).status == Status.CANCELLED
    # What was captured goes back, not the booking's price (Razorpay refuses more than it took).
    assert json.loads(api.calls[-1].request.body)["amount"] == 100
    payment.refresh_from_db()
    assert payment.status == Payment.State.REFUNDED and payment.refunded_amount == 100
    assert payment.refund_status == Payment.RefundState.PENDING
    assert "refund has been started automatically" in payment.needs_attention
    [email] = [m for m in mail.outbox if m.to == [booking.email]]
    assert "did not receive a payment" not in email.body
    assert "We have started a full refund" in email.body and PAYMENT_ID in email.body
    assert [m for m in mail.outbox if m.to == [admin_user.email]]


def test_a_wrong_amount_arriving_after_cancellation_is_refunded(client, api, approved, admin_user, oncommit):
    booking, token = approved
    start(client, api, booking, token)
    booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(100))

    post_webhook(client, webhook_event("payment.captured", payment=payment_body(100)), event_id="evt_late_short")

    payment = booking.payments.get()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == 100
    assert json.loads(api.calls[-1].request.body)["amount"] == 100


def test_a_wrong_amount_held_when_the_booking_is_cancelled_is_refunded(client, api, approved, admin_user, oncommit):
    booking, token = approved
    payment = start(client, api, booking, token)
    post_webhook(client, webhook_event("payment.captured", payment=payment_body(100)), event_id="evt_held")
    api.post(f"{API}/payments/{PAYMENT_ID}/refund", json=refund_body(100))

    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Client phoned")

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == 100
    assert json.loads(api.calls[-1].request.body)["amount"] == 100


def test_the_checkout_scripts_messages_are_in_the_pages_language(client, api, make_booking, counsellor, manage_token):
    booking = make_booking(Status.APPROVED, language="hi")
    token = manage_token(booking)
    payment = start(client, api, booking, token)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"

    html = client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]), follow=True).content.decode()

    status = html.split('id="rzp-status"')[1].split("</p>")[0]
    for name in ("unavailable", "confirming", "closed", "failed", "retry"):
        assert f'data-{name}="' in status
    assert_hindi("checkout script messages", " ".join(re.findall(r'data-\w+="([^"]*)"', status)))
    # What Razorpay's window says the payment is for, in the page's language, the ID first.
    options = json.loads(html.split('id="rzp-options" type="application/json">')[1].split("</script>")[0])
    assert options["description"] == f"{booking.ack_id}: काउंसलिंग सेशन"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    html = client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]), follow=True).content.decode()
    assert f'"description": "Counselling session {booking.ack_id}"' in html


# --- Real concurrency (PostgreSQL) ------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency")
@pytest.mark.django_db(transaction=True)
def test_return_and_webhook_racing_confirm_once(api, make_booking, counsellor, manage_token):
    from django.test import Client

    booking = make_booking(Status.APPROVED)
    token = manage_token(booking)
    api.post(f"{API}/orders", json=order_body(booking))
    api.get(f"{API}/payments/{PAYMENT_ID}", json=payment_body(booking.amount))
    Client().post(reverse("bookings:pay", args=[token]))
    payment = booking.payments.get()
    body = webhook_event("payment.captured", payment=payment_body(booking.amount))

    def via_return() -> int:
        return Client().post(reverse("bookings:pay_return", args=[token, payment.pk]), checkout_result()).status_code

    def via_webhook() -> int:
        return post_webhook(Client(), body, event_id="evt_race").status_code

    def via_webhook_retry() -> int:
        return post_webhook(Client(), body, event_id="evt_race").status_code

    outcomes = Counter(at_once([via_return, via_webhook, via_webhook_retry]))

    assert outcomes == Counter({302: 1, 200: 2})
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert BookingEvent.objects.filter(booking=booking, to_status=Status.CONFIRMED).count() == 1
    assert WebhookEvent.objects.filter(event_id="evt_race").count() == 1
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 1
    assert len([m for m in mail.outbox if "confirmed" in m.subject.lower()]) == 1
