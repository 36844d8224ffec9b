"""Razorpay's checkout page speaks the booking's language where our script writes text: a
failed payment's reason comes from Razorpay in English, and a Hindi page does not drop it into
its Hindi sentence. Razorpay's own script is replaced by a small stand-in served at its address
(no network), which opens nothing and reports the failure Razorpay would."""

from __future__ import annotations

import pytest
from django.conf import settings
from playwright.sync_api import expect

from bookings.models import Payment, Status
from bookings.payments import RAZORPAY_CHECKOUT_JS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASON = "Your payment has been cancelled. Try again or complete the payment later."

# What the page's script uses of Razorpay's: a constructor, on("payment.failed"), open().
STAND_IN = f"""
window.Razorpay = function (options) {{
  var handlers = {{}};
  this.on = function (name, handler) {{ handlers[name] = handler; }};
  this.open = function () {{
    handlers["payment.failed"]({{ error: {{ description: {REASON!r} }} }});
  }};
}};
"""


@pytest.fixture
def razorpay(settings):
    settings.PAYMENT_PROVIDER = "razorpay"
    settings.RAZORPAY_KEY_ID = "rzp_test_e2e"
    settings.RAZORPAY_KEY_SECRET = "e2e-secret"
    settings.RAZORPAY_WEBHOOK_SECRET = "e2e-webhook"


@pytest.mark.parametrize(
    ("language", "told"),
    [
        ("hi", "भुगतान पूरा नहीं हुआ। आप किसी दूसरे तरीक़े से फिर से कोशिश कर सकते हैं।"),
        ("en", f"{REASON} You can try again with another method."),
    ],
    ids=["hindi", "english"],
)
def test_a_failed_payment_is_told_in_the_pages_language(
    tabs, razorpay, make_booking, counsellor, manage_token, language, told
):
    booking = make_booking(Status.PAYMENT_PENDING, language=language)
    payment = Payment.objects.create(
        booking=booking,
        provider="razorpay",
        provider_order_id="order_E2E",
        amount=booking.amount,
        currency=booking.currency,
        status=Payment.State.PENDING,
    )
    tab = tabs()
    page = tab.page
    page.route(RAZORPAY_CHECKOUT_JS, lambda route: route.fulfill(content_type="application/javascript", body=STAND_IN))
    page.goto(f"/bookings/{manage_token(booking)}/pay/{payment.pk}/")
    # The stand-in is served at Razorpay's address, which the tab notes as another origin.
    tab.problems = [p for p in tab.problems if RAZORPAY_CHECKOUT_JS not in p]
    assert page.evaluate("document.documentElement.lang") == language
    page.locator("#rzp-pay").click()
    expect(page.get_by_role("status")).to_have_text(told)
    if language == "hi":
        expect(page.get_by_role("status")).not_to_contain_text(REASON)
    # Chosen by the booking, not by this browser (Chromium asks for English).
    assert settings.LANGUAGE_COOKIE_NAME not in {c["name"] for c in page.context.cookies()}
