"""Payment providers: one small interface, a registry keyed by `identifier`.

A provider only talks to the outside world (create an order, check a signature, start a
refund) and translates what it hears into the plain values below. It never changes a
booking or a payment row: `bookings.services` does that, in one place, for every provider
(`payment_start`, `payment_confirm`, `payment_fail`, `payment_refund`...). So the sandbox,
which needs no keys, exercises exactly the code Razorpay does.

Modelled on pretix's `BasePaymentProvider` (src/pretix/base/payment.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import pgettext

from bookings.models import CLINIC_PROVIDER

if TYPE_CHECKING:
    from bookings.models import Payment

logger = logging.getLogger(__name__)


# --- What providers report --------------------------------------------------------------


class ProviderError(Exception):
    """The provider could not be reached, timed out or refused. The message is for logs and
    staff, never shown to a client as is. `transient`: it could not be reached, timed out or
    failed on its side (worth trying again later), rather than refused what was asked."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class SignatureInvalid(Exception):
    """What came back (browser return, webhook) is not provably from the provider."""


@dataclass(frozen=True)
class Paid:
    """A verified, captured payment: the money has moved to us."""

    order_id: str
    payment_id: str
    amount: int
    currency: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """A verified failed attempt: no money moved for it."""

    order_id: str
    reason: str
    payment_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Waiting:
    """Verified, but the provider has not captured the money yet (a webhook will follow)."""

    order_id: str
    payment_id: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundNews:
    """What the provider says of one refund of one payment: its three kinds below."""

    payment_id: str
    refund_id: str
    amount: int
    raw: dict[str, Any] = field(default_factory=dict)
    # The payment's order, when the news names it (a webhook does; the refund API does not).
    order_id: str = ""


@dataclass(frozen=True)
class RefundCreated(RefundNews):
    """The provider says it has taken a refund on (ours, staff's from its dashboard, or its
    own): the money is on its way back, and news that it was processed or failed will follow."""


@dataclass(frozen=True)
class RefundProcessed(RefundNews):
    """The provider says a refund has reached (or is on its way to) the client's bank."""


@dataclass(frozen=True)
class RefundFailed(RefundNews):
    """The provider says a refund it had accepted did not go through: the money is still ours."""


@dataclass(frozen=True)
class Ignored:
    """A genuine webhook event we have no use for."""

    kind: str


@dataclass(frozen=True)
class WebhookEvent:
    # What the event is known by, so that a replay is recognised: the SHA-256 of exactly what
    # the signature covers. Never anything from outside the signature.
    digest: str
    # The provider's own ID for it, when it sends one beside the signed part: for a person
    # matching our log with the provider's dashboard. Anyone may have written it.
    event_id: str
    kind: str
    outcome: Paid | Failed | RefundCreated | RefundProcessed | RefundFailed | Ignored


@dataclass(frozen=True)
class Refund:
    refund_id: str
    processed: bool
    raw: dict[str, Any] = field(default_factory=dict)


# --- The interface ----------------------------------------------------------------------


class PaymentProvider:
    """Base class. Subclasses set the class attributes and implement the hooks.

    Rules for every hook: it may call the provider over the network (always with a
    timeout) and it may read the `Payment` it is given; it must not write to the database,
    change a booking, send email or trust anything a browser sent without checking a
    signature. Failures to reach the provider raise `ProviderError`; anything that cannot
    be authenticated raises `SignatureInvalid`.
    """

    identifier: ClassVar[str]
    verbose_name: ClassVar[str]
    # The page the client pays on (under templates/bookings/payments/).
    checkout_template: ClassVar[str]
    # Extra Content-Security-Policy sources for the checkout page only (None: the site's).
    checkout_csp: ClassVar[dict[str, list[str]] | None] = None

    def is_test_mode(self) -> bool:
        """True when no real money can move (the page says so)."""
        return False

    def order_create(self, *, payment: Payment) -> tuple[str, dict[str, Any]]:
        """Create the provider's order for `payment` (its amount, currency and booking's
        acknowledgement ID). Return (order ID, the provider's response).

        Called after the Payment row exists and before the booking moves to PAYMENT_PENDING,
        outside any database transaction, so a slow provider holds no lock.
        """
        raise NotImplementedError

    def checkout_context(self, *, payment: Payment) -> dict[str, Any]:
        """Template context for `checkout_template`. Must not call the network: the page
        renders on every reload."""
        return {}

    def return_verify(self, *, payment: Payment, data: Mapping[str, str]) -> Paid | Failed | Waiting:
        """Authenticate what the client's browser brought back from checkout and say what
        happened. May ask the provider's API for the amount; must not trust amounts the
        browser sent unless they are signed."""
        raise NotImplementedError

    def webhook_parse(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Authenticate a webhook request and translate it. The event's `digest` must be
        computed from the signed data alone: a replay is refused by it, so whatever is not
        signed (an event ID header, say) must never decide whether an event is applied.
        Providers without webhooks keep this default."""
        raise SignatureInvalid(f"{self.identifier} does not send webhooks")

    def refund_create(self, *, payment: Payment, amount: int) -> Refund:
        """Ask the provider to refund `amount` (minor units) of a captured payment."""
        raise NotImplementedError

    def refund_fetch(self, *, payment: Payment, refund_id: str) -> RefundProcessed | RefundFailed | None:
        """Ask the provider how the refund `refund_id` of `payment` stands: processed, failed,
        or None while it is still pending. For refunds whose webhook never came; read-only,
        so it is called without holding the payment's lock. Every failure, whether worth
        trying again later or not, raises `ProviderError`."""
        raise NotImplementedError


_registry: dict[str, type[PaymentProvider]] = {}


def register(cls: type[PaymentProvider]) -> type[PaymentProvider]:
    _registry[cls.identifier] = cls
    return cls


def provider_for(identifier: str) -> PaymentProvider:
    """The provider a payment row was made with (it may differ from today's setting)."""
    try:
        return _registry[identifier]()
    except KeyError:
        raise ProviderError(f"unknown payment provider {identifier!r}") from None


def get_provider() -> PaymentProvider:
    """The provider new payments use, from settings.PAYMENT_PROVIDER."""
    return provider_for(settings.PAYMENT_PROVIDER)


def providers() -> dict[str, type[PaymentProvider]]:
    return dict(_registry)


# --- Sandbox ----------------------------------------------------------------------------


@register
class SandboxProvider(PaymentProvider):
    """A local stand-in for a real provider: no keys, no network, no money.

    Its checkout page plays the provider's hosted page: the Pay and Fail buttons carry a
    result signed with an HMAC keyed from SECRET_KEY, and the return view checks that
    signature exactly as it checks Razorpay's. So a client cannot confirm a booking by
    posting made-up fields, even in the sandbox.
    """

    identifier = "sandbox"
    verbose_name = "Test payment"
    checkout_template = "bookings/payments/sandbox_checkout.html"
    _salt = "mindsettler.payments.sandbox"

    def is_test_mode(self) -> bool:
        return True

    @classmethod
    def sign(cls, fields: Mapping[str, str]) -> str:
        message = "|".join(
            f"{key}={fields.get(key, '')}" for key in ("order", "payment", "outcome", "amount", "currency")
        )
        return salted_hmac(cls._salt, message, algorithm="sha256").hexdigest()

    def order_create(self, *, payment: Payment) -> tuple[str, dict[str, Any]]:
        order_id = f"sandbox_order_{secrets.token_hex(8)}"
        return order_id, {"id": order_id, "amount": payment.amount, "currency": payment.currency, "status": "created"}

    def checkout_context(self, *, payment: Payment) -> dict[str, Any]:
        def signed(outcome: str) -> dict[str, str]:
            fields = {
                "order": payment.provider_order_id,
                "payment": f"sandbox_pay_{payment.pk}_{outcome}",
                "outcome": outcome,
                "amount": str(payment.amount),
                "currency": payment.currency,
            }
            return {**fields, "signature": self.sign(fields)}

        return {"pay_fields": signed("paid"), "fail_fields": signed("failed")}

    def return_verify(self, *, payment: Payment, data: Mapping[str, str]) -> Paid | Failed | Waiting:
        fields = {key: str(data.get(key, "")) for key in ("order", "payment", "outcome", "amount", "currency")}
        signature = str(data.get("signature", ""))
        if not signature or not constant_time_compare(signature, self.sign(fields)):
            raise SignatureInvalid("sandbox signature does not match")
        if not fields["order"] or fields["order"] != payment.provider_order_id:
            raise SignatureInvalid("sandbox result is for another order")
        raw = {**fields, "signature": signature}
        if fields["outcome"] == "failed":
            return Failed(
                order_id=fields["order"], payment_id=fields["payment"], reason="Declined in the sandbox", raw=raw
            )
        if fields["outcome"] != "paid" or not (fields["amount"].isascii() and fields["amount"].isdigit()):
            raise SignatureInvalid("sandbox result is malformed")
        return Paid(
            order_id=fields["order"],
            payment_id=fields["payment"],
            amount=int(fields["amount"]),
            currency=fields["currency"],
            raw=raw,
        )

    def refund_create(self, *, payment: Payment, amount: int) -> Refund:
        refund_id = f"sandbox_rfnd_{secrets.token_hex(6)}"
        return Refund(
            refund_id=refund_id, processed=True, raw={"id": refund_id, "amount": amount, "status": "processed"}
        )

    def refund_fetch(self, *, payment: Payment, refund_id: str) -> RefundProcessed | RefundFailed | None:
        # Sandbox refunds are processed the moment they are made.
        amount = payment.refunded_amount
        return RefundProcessed(
            payment_id=payment.provider_payment_id,
            refund_id=refund_id,
            amount=amount,
            raw={"id": refund_id, "amount": amount, "status": "processed"},
        )


# --- At the clinic ----------------------------------------------------------------------


@register
class ClinicProvider(PaymentProvider):
    """Money a client handed over at the clinic's desk (cash, a card machine, UPI to the
    clinic's account), recorded by an administrator (`services.payment_record_at_clinic`).

    Never chosen for paying online (settings.PAYMENT_PROVIDER offers the sandbox and
    Razorpay only): there is no order, no checkout and no webhook. Its money goes back the
    way it came, from the desk, so a refund is never made here: asked for one, it refuses,
    and the refund waits for an administrator to give the money back and record it.
    """

    identifier = CLINIC_PROVIDER
    verbose_name = "Paid at the clinic"
    checkout_template = ""

    def order_create(self, *, payment: Payment) -> tuple[str, dict[str, Any]]:
        raise ProviderError("a payment at the clinic is recorded by staff, not paid online")

    def return_verify(self, *, payment: Payment, data: Mapping[str, str]) -> Paid | Failed | Waiting:
        raise SignatureInvalid("a payment at the clinic has no online checkout")

    def refund_create(self, *, payment: Payment, amount: int) -> Refund:
        raise ProviderError("paid at the clinic: its refund is given back at the clinic, not online")

    def refund_fetch(self, *, payment: Payment, refund_id: str) -> RefundProcessed | RefundFailed | None:
        raise ProviderError("paid at the clinic: no refund is made online")


# --- Razorpay ---------------------------------------------------------------------------

RAZORPAY_CHECKOUT_JS = "https://checkout.razorpay.com/v1/checkout.js"
# Seconds to wait for Razorpay's API before telling the client to try again.
RAZORPAY_TIMEOUT = (5, 15)


@register
class RazorpayProvider(PaymentProvider):
    """Razorpay Orders + Standard Checkout, through the official `razorpay` client.

    The order is created server-side with the booking's amount (so the browser never
    chooses the price), Checkout runs on our page, the browser's result is checked with
    the library's signature utility, and the webhook (signed with the webhook secret)
    confirms payments the browser never reported.
    """

    identifier = "razorpay"
    verbose_name = "Razorpay"
    checkout_template = "bookings/payments/razorpay_checkout.html"
    # Only the Razorpay checkout page loads Razorpay's script and frames.
    checkout_csp: ClassVar[dict[str, list[str]] | None] = {
        "script-src": ["https://checkout.razorpay.com"],
        "frame-src": ["https://api.razorpay.com", "https://checkout.razorpay.com"],
        "connect-src": ["https://api.razorpay.com", "https://lumberjack.razorpay.com"],
        "img-src": ["https://cdn.razorpay.com"],
    }

    def is_test_mode(self) -> bool:
        return settings.RAZORPAY_KEY_ID.startswith("rzp_test_")

    def client(self) -> Any:
        import razorpay

        client = razorpay.Client(auth=(settings.RAZORPAY_KEY_ID, settings.RAZORPAY_KEY_SECRET))
        client.set_app_details({"title": "MindSettler", "version": "1"})
        return client

    def _call(self, what: str, fn: Any, *args: Any) -> dict[str, Any]:
        """One API call, every failure folded into ProviderError (the library raises its
        own errors for 4xx/5xx and requests' for timeouts and connection trouble)."""
        import requests
        from razorpay.errors import BadRequestError, GatewayError, ServerError

        try:
            body = fn(*args, timeout=RAZORPAY_TIMEOUT)
        except (GatewayError, ServerError, requests.RequestException) as exc:
            raise ProviderError(f"razorpay {what}: {type(exc).__name__}: {exc}", transient=True) from exc
        except (BadRequestError, ValueError) as exc:
            raise ProviderError(f"razorpay {what}: {type(exc).__name__}: {exc}") from exc
        except (TypeError, KeyError, AttributeError) as exc:
            # An error answer that is JSON but not Razorpay's error object (`null`, a number):
            # the library fails reading it. Something in between, or Razorpay, failing.
            raise ProviderError(f"razorpay {what}: unreadable error answer: {exc}", transient=True) from exc
        if not isinstance(body, dict):
            # A success status with a body that is no object (`null`, a list): nothing to read
            # from it, and whether the call took effect is unknown, as after a timeout.
            raise ProviderError(f"razorpay {what}: answer is not an object: {type(body).__name__}", transient=True)
        return body

    def order_create(self, *, payment: Payment) -> tuple[str, dict[str, Any]]:
        booking = payment.booking
        body = self._call(
            "order create",
            self.client().order.create,
            {
                "amount": payment.amount,
                "currency": payment.currency,
                "receipt": booking.ack_id,
                "notes": {"booking": booking.ack_id, "attempt": str(payment.pk)},
            },
        )
        order_id = str(body.get("id", ""))
        if not order_id.startswith("order_") or body.get("amount") != payment.amount:
            raise ProviderError(f"razorpay order create: unexpected response {sorted(body)}")
        return order_id, body

    def checkout_context(self, *, payment: Payment) -> dict[str, Any]:
        booking = payment.booking
        return {
            "checkout_js": RAZORPAY_CHECKOUT_JS,
            # Read by static/js/razorpay-checkout.js through json_script: no inline JS.
            "checkout_options": {
                "key": settings.RAZORPAY_KEY_ID,
                "order_id": payment.provider_order_id,
                "amount": payment.amount,
                "currency": payment.currency,
                "name": settings.CLINIC_NAME,
                # Shown in Razorpay's window, in the language of the page that opens it. Razorpay
                # wants it to begin with a letter or digit: the Hindi keeps the ID first.
                "description": pgettext("Razorpay checkout", "Counselling session %(ack_id)s")
                % {"ack_id": booking.ack_id},
                "prefill": {"name": booking.client_name, "email": booking.email, "contact": booking.phone},
                "notes": {"booking": booking.ack_id},
                "theme": {"color": "#275a4c"},
            },
        }

    def return_verify(self, *, payment: Payment, data: Mapping[str, str]) -> Paid | Failed | Waiting:
        from razorpay.errors import SignatureVerificationError

        params = {
            "razorpay_order_id": str(data.get("razorpay_order_id", "")),
            "razorpay_payment_id": str(data.get("razorpay_payment_id", "")),
            "razorpay_signature": str(data.get("razorpay_signature", "")),
        }
        if not all(params.values()):
            raise SignatureInvalid("razorpay return is missing fields")
        if not params["razorpay_signature"].isascii():
            # hmac.compare_digest raises TypeError on non-ASCII text.
            raise SignatureInvalid("razorpay payment signature is not ASCII")
        if params["razorpay_order_id"] != payment.provider_order_id:
            raise SignatureInvalid("razorpay return is for another order")
        try:
            self.client().utility.verify_payment_signature(params)
        except SignatureVerificationError:
            raise SignatureInvalid("razorpay payment signature does not match") from None
        # The signature proves the payment belongs to our order; the amount, currency and
        # whether it is captured come from Razorpay itself.
        body = _scrub(self._call("payment fetch", self.client().payment.fetch, params["razorpay_payment_id"]))
        try:
            return _razorpay_payment_outcome(body, raw={"return": params, "payment": body})
        except (TypeError, ValueError) as exc:
            # An amount that is no number: unreadable, as an answer that is no object is; the
            # webhook, read the same way, says whether it was paid.
            raise ProviderError(f"razorpay payment fetch: unreadable answer: {exc}", transient=True) from exc

    def webhook_parse(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        from razorpay.errors import SignatureVerificationError

        signature = headers.get("X-Razorpay-Signature", "")
        secret = settings.RAZORPAY_WEBHOOK_SECRET
        if not signature or not secret:
            raise SignatureInvalid("razorpay webhook without signature")
        if not signature.isascii():
            # hmac.compare_digest raises TypeError on non-ASCII text.
            raise SignatureInvalid("razorpay webhook signature is not ASCII")
        try:
            text = body.decode("utf-8")
            self.client().utility.verify_webhook_signature(text, signature, secret)
            event = _scrub(json.loads(text))
        except (UnicodeDecodeError, SignatureVerificationError, ValueError):
            raise SignatureInvalid("razorpay webhook signature does not match") from None
        # The signature covers the body only, so the event is known by the body's digest, not by
        # its X-Razorpay-Event-Id header: with that as the key, one signed body could be sent
        # again under any other ID and applied again, and a genuine event skipped whose ID had
        # been sent first with another body. Razorpay's retries repeat the body; were one not
        # to, its handlers would change nothing the second time (they are idempotent).
        digest = hashlib.sha256(body).hexdigest()
        event_id = headers.get("X-Razorpay-Event-Id", "")[:100]
        kind = str(event.get("event", "")) if isinstance(event, dict) else ""
        try:
            outcome = self._webhook_outcome(kind, event)
        except (AttributeError, TypeError, ValueError):
            # Signed, so Razorpay's, but not in the shape its documentation gives: a 500 would
            # have it sent again and again, to the same end. Acknowledged, and logged for a person.
            logger.error("razorpay webhook %s (%s) is not in the documented shape; ignored", event_id or digest, kind)
            outcome = Ignored(kind)
        return WebhookEvent(digest=digest, event_id=event_id, kind=kind, outcome=outcome)

    @staticmethod
    def _webhook_outcome(
        kind: str, event: dict[str, Any]
    ) -> Paid | Failed | RefundCreated | RefundProcessed | RefundFailed | Ignored:
        payload = event.get("payload") or {}
        entity = lambda name: (payload.get(name) or {}).get("entity") or {}  # noqa: E731
        if kind in ("payment.captured", "order.paid", "payment.failed"):
            result = _razorpay_payment_outcome(entity("payment"), raw={"webhook": event})
            return Ignored(kind) if isinstance(result, Waiting) else result
        elif kind in ("refund.created", "refund.processed", "refund.failed"):
            refund = entity("refund")
            news = {"refund.created": RefundCreated, "refund.processed": RefundProcessed}.get(kind, RefundFailed)
            return news(
                payment_id=str(refund.get("payment_id") or ""),
                refund_id=str(refund.get("id") or ""),
                amount=_amount(refund.get("amount")),
                raw=event,
                order_id=str(entity("payment").get("order_id") or ""),
            )
        return Ignored(kind)

    def refund_create(self, *, payment: Payment, amount: int) -> Refund:
        body = self._call(
            "refund",
            self.client().payment.refund,
            payment.provider_payment_id,
            {"amount": amount, "speed": "normal", "notes": {"booking": payment.booking.ack_id}},
        )
        return Refund(refund_id=str(body.get("id", "")), processed=body.get("status") == "processed", raw=body)

    def refund_fetch(self, *, payment: Payment, refund_id: str) -> RefundProcessed | RefundFailed | None:
        body = _scrub(self._call("refund fetch", self.client().refund.fetch, refund_id))
        if body.get("id") != refund_id or body.get("payment_id") != payment.provider_payment_id:
            # Never settle a payment on the word of another payment's refund.
            raise ProviderError(f"razorpay refund fetch: {refund_id} is not a refund of payment {payment.pk}")
        status = body.get("status")
        if status not in ("processed", "failed"):
            return None  # "pending": Razorpay is still working on it.
        try:
            amount = _amount(body.get("amount"))
        except (TypeError, ValueError) as exc:
            raise ProviderError(f"razorpay refund fetch: unreadable amount: {exc}", transient=True) from exc
        return (RefundProcessed if status == "processed" else RefundFailed)(
            payment_id=payment.provider_payment_id, refund_id=refund_id, amount=amount, raw=body
        )


# The largest amount a payment's amount columns hold (PostgreSQL's integer).
_AMOUNT_MAX = 2**31 - 1


def _amount(value: Any) -> int:
    """An amount in minor units as Razorpay's JSON gives it (absent: 0). ValueError for one
    that is no whole number of them, or more than a payment can be: such an answer is
    unreadable, as one in the wrong shape is, and never reaches the database."""
    if value is None or value == "":
        return 0
    if isinstance(value, float) and value.is_integer():  # 50000.0; not inf, nan or 0.5
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"the amount {value!r} is not a whole number")
    amount = int(value)  # a str that is no number, or of thousands of digits: ValueError
    if not 0 <= amount <= _AMOUNT_MAX:
        raise ValueError(f"the amount {amount} is out of range")
    return amount


def _razorpay_payment_outcome(payment: Mapping[str, Any], *, raw: dict[str, Any]) -> Paid | Failed | Waiting:
    status = payment.get("status")
    order_id = str(payment.get("order_id") or "")
    payment_id = str(payment.get("id") or "")
    if status == "captured":
        return Paid(
            order_id=order_id,
            payment_id=payment_id,
            amount=_amount(payment.get("amount")),
            currency=str(payment.get("currency") or ""),
            raw=raw,
        )
    if status == "failed":
        reason = str(payment.get("error_description") or "The payment did not go through")
        return Failed(order_id=order_id, payment_id=payment_id, reason=reason[:200], raw=raw)
    return Waiting(order_id=order_id, payment_id=payment_id, raw=raw)


# The payer's contact and instrument details: Razorpay has them; we keep payloads for
# reconciliation only, so these are dropped before anything is stored.
_PAYER_FIELDS = frozenset({"email", "contact", "vpa", "card", "bank_account", "upi", "customer_details", "token"})


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _PAYER_FIELDS}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
