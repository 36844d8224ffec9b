"""Payment pages: start paying, the provider's checkout, the return from it, the Razorpay
webhook, and the calendar download. Thin: the rules are in services, the provider talk in
bookings/payments.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.csp import CSP
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csp import csp_override
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from bookings import payments, services
from bookings.calendar import booking_ics
from bookings.errors import PaymentError, TokenInvalid
from bookings.models import Booking, LinkToken, Payment, Status
from bookings.notifications import manage_path
from bookings.selectors import link_check_open
from bookings.templatetags.mindsettler import money
from bookings.tokens import token_get
from bookings.views import speak_as_booked

logger = logging.getLogger(__name__)


def _booking_or_problem(request: HttpRequest, token: str) -> Booking | HttpResponse:
    """The booking behind a booking-page link, or a calm page saying the link cannot be used."""
    try:
        link = token_get(raw=token, purpose=LinkToken.Purpose.MANAGE, related=("booking__slot",))
        link_check_open(link, link.booking)
        speak_as_booked(request, link.booking)
        return link.booking
    except TokenInvalid as exc:
        if exc.link is not None:
            speak_as_booked(request, exc.link.booking)
        response = render(request, "bookings/payments/link_problem.html", {"message": exc.message}, status=404)
        response["Cache-Control"] = "no-store"
        return response


def _booking_page(token: str) -> str:
    return reverse("bookings:booking_page", args=[token])


@require_POST
@never_cache
def pay(request: HttpRequest, token: str) -> HttpResponse:
    """The Pay button: a new attempt with the provider, then its checkout page. From
    PAYMENT_PENDING it is the "start again" button: the open attempt is closed first."""
    booking = _booking_or_problem(request, token)
    if isinstance(booking, HttpResponse):
        return booking
    try:
        if booking.status == Status.PAYMENT_PENDING:
            payment = services.payment_restart(booking_id=booking.pk)
        else:
            payment = services.payment_start(booking_id=booking.pk)
    except PaymentError as exc:
        messages.error(request, exc.message)
        return redirect(_booking_page(token))
    return redirect("bookings:pay_checkout", token=token, payment_id=payment.pk)


def _csp_plus(extra: dict[str, list[str]]) -> dict[str, list[str]]:
    """The site's policy with a provider's own origins added (for its checkout page only)."""
    policy = {key: list(values) for key, values in settings.SECURE_CSP.items()}
    for directive, sources in extra.items():
        base = policy.get(directive) or list(policy.get("default-src", [CSP.SELF]))
        policy[directive] = [*base, *sources]
    return policy


@require_safe
@never_cache
def checkout(request: HttpRequest, token: str, payment_id: int) -> HttpResponse:
    booking = _booking_or_problem(request, token)
    if isinstance(booking, HttpResponse):
        return booking
    payment = get_object_or_404(Payment, pk=payment_id, booking=booking)
    if payment.status != Payment.State.PENDING or booking.status != Status.PAYMENT_PENDING:
        messages.info(request, _("That payment attempt is closed. Here is your booking as it stands now."))
        return redirect(_booking_page(token))
    provider = payments.provider_for(payment.provider)
    if isinstance(provider, payments.RazorpayProvider):
        # Razorpay's script runs in its checkout page and can read the page's address and
        # markup: the page is one without the booking page's link (payment_window).
        _window_open(request, payment)
        return redirect("bookings:payment_window", payment_id=payment.pk)
    context: dict[str, Any] = {
        "booking": booking,
        "payment": payment,
        "provider": provider,
        "token": token,
        "return_url": reverse("bookings:pay_return", args=[token, payment.pk]),
        "booking_url": _booking_page(token),
        **provider.checkout_context(payment=payment),
    }
    return render(request, provider.checkout_template, context)


# --- The payment window: a provider's checkout page without the booking page's link -----
# A provider whose script runs in the checkout page (Razorpay) can read its address and
# markup, and sends what it reads to the provider. The booking page's link (a secret that
# opens the booking for a year) must not be among them: the page is at an address of the
# payment alone, and opens only in the browser that came to it through the booking's link
# (this session remembers which payments it may show), as does its way back. Its return
# too, but for a result the provider signed, which is recorded whoever brings it.

_WINDOWS = "payment_windows"  # in the session: {payment id: booking id}
_WINDOWS_KEPT = 5


def _window_open(request: HttpRequest, payment: Payment) -> None:
    windows = dict(request.session.get(_WINDOWS, {}))
    windows.pop(str(payment.pk), None)
    windows[str(payment.pk)] = payment.booking_id
    request.session[_WINDOWS] = dict(list(windows.items())[-_WINDOWS_KEPT:])  # the newest few


def _window_payment(request: HttpRequest, payment_id: int) -> Payment | HttpResponse:
    """The payment this browser opened from its booking's link, or a calm 404 page."""
    booking_id = request.session.get(_WINDOWS, {}).get(str(payment_id))
    payment = (
        Payment.objects.select_related("booking__slot", "booking__session_type", "booking__counsellor")
        .filter(pk=payment_id, booking_id=booking_id)
        .first()
        if booking_id is not None
        else None
    )
    if payment is None:
        response = render(
            request, "bookings/payments/link_problem.html", {"message": TokenInvalid("unknown").message}, status=404
        )
        response["Cache-Control"] = "no-store"
        return response
    speak_as_booked(request, payment.booking)
    return payment


@require_safe
@never_cache
def payment_window(request: HttpRequest, payment_id: int) -> HttpResponse:
    payment = _window_payment(request, payment_id)
    if isinstance(payment, HttpResponse):
        return payment
    booking = payment.booking
    back_url = reverse("bookings:payment_window_back", args=[payment.pk])
    if payment.status != Payment.State.PENDING or booking.status != Status.PAYMENT_PENDING:
        # Reached again by Back or a reload: the way to the booking is a button, as a GET
        # must not make a booking link (a new secret each time).
        return render(request, "bookings/payments/window_closed.html", {"booking": booking, "back_url": back_url})
    provider = payments.provider_for(payment.provider)
    context: dict[str, Any] = {
        "booking": booking,
        "payment": payment,
        "provider": provider,
        "return_url": reverse("bookings:payment_window_return", args=[payment.pk]),
        "back_url": back_url,
        **provider.checkout_context(payment=payment),
    }
    return _razorpay_checkout(request, provider.checkout_template, context)


@require_POST
@never_cache
def payment_window_return(request: HttpRequest, payment_id: int) -> HttpResponse:
    """The payment window's return: as payment_return, then to the booking's page by a new link."""
    payment = _window_payment(request, payment_id)
    if isinstance(payment, HttpResponse):
        return _returned_to_a_stranger(request, payment_id, problem=payment)
    return _returned(request, payment, booking_url=lambda: manage_path(payment.booking))


def _returned_to_a_stranger(request: HttpRequest, payment_id: int, *, problem: HttpResponse) -> HttpResponse:
    """A provider's result for a payment this browser no longer knows: its session ran out
    during a long checkout (sessions last 12 hours), or the bank's page finished in another
    browser. A result the provider signed is recorded, as its webhook would be, and the
    client told what happened; but the browser gets no link to the booking (a signature
    proves a payment, not who may open the booking). Anything else: `problem`, the 404."""
    payment = Payment.objects.select_related("booking").filter(pk=payment_id).first()
    if payment is None:
        return problem
    try:
        payment = _record_return(request, payment)
    except payments.SignatureInvalid:
        return problem
    speak_as_booked(request, payment.booking)
    _, message = _return_message(payment)
    return render(request, "bookings/payments/returned_elsewhere.html", {"message": message})


@require_POST
@never_cache
def payment_window_back(request: HttpRequest, payment_id: int) -> HttpResponse:
    """ "Back to your booking" from the payment window: its page, by a new link (a POST: each
    link is a new secret, not to be made again by every Back, reload or prefetch)."""
    payment = _window_payment(request, payment_id)
    if isinstance(payment, HttpResponse):
        return payment
    if payment.status != Payment.State.PENDING or payment.booking.status != Status.PAYMENT_PENDING:
        messages.info(request, _("That payment attempt is closed. Here is your booking as it stands now."))
    return redirect(manage_path(payment.booking))


@csp_override(_csp_plus(payments.RazorpayProvider.checkout_csp or {}))
def _razorpay_checkout(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    response = render(request, template, context)
    # Razorpay may open a window for bank authentication that must talk back to this page.
    response["Cross-Origin-Opener-Policy"] = "same-origin-allow-popups"
    return response


@require_POST
@never_cache
def payment_return(request: HttpRequest, token: str, payment_id: int) -> HttpResponse:
    """Where checkout sends the client back, with the provider's signed result. The same
    verification and confirmation code serves the sandbox and Razorpay."""
    booking = _booking_or_problem(request, token)
    if isinstance(booking, HttpResponse):
        return booking
    payment = get_object_or_404(Payment, pk=payment_id, booking=booking)
    return _returned(request, payment, booking_url=lambda: _booking_page(token))


def _returned(request: HttpRequest, payment: Payment, *, booking_url: Callable[[], str]) -> HttpResponse:
    """What payment_return and payment_window_return share: verify and record the provider's
    signed result, then back to the booking's page (`booking_url`) with what happened."""
    try:
        payment = _record_return(request, payment)
    except payments.SignatureInvalid:
        return render(
            request,
            "bookings/payments/return_problem.html",
            {"booking_url": booking_url()},
            status=400,
        )
    messages.add_message(request, *_return_message(payment))
    return redirect(booking_url())


def _record_return(request: HttpRequest, payment: Payment) -> Payment:
    """Verify and record the provider's result the browser brought back; the payment as it
    stands after. Raises payments.SignatureInvalid, having changed nothing, for a result the
    provider did not sign."""
    data = {key: value for key, value in request.POST.items() if key != "csrfmiddlewaretoken"}
    try:
        return services.payment_return(payment_id=payment.pk, data=data)
    except payments.SignatureInvalid as exc:
        logger.warning("payment %s: return refused: %s", payment.pk, exc)
        raise
    except payments.ProviderError as exc:
        # Signature was fine but Razorpay could not be asked about the amount: the webhook
        # will confirm it.
        logger.warning("payment %s: could not check with provider: %s", payment.pk, exc)
        return payment


def _return_message(payment: Payment) -> tuple[int, str]:
    """What the client back from checkout is told of the payment they made: by the payment as
    it stands and its booking's status now (it may have been refunded, or the booking paid by
    another attempt or ended, before the client's return reached us)."""
    booking_status = Booking.objects.filter(pk=payment.booking_id).values_list("status", flat=True).get()
    confirmed_it = payment.confirmed_at is not None and booking_status == Status.CONFIRMED
    if payment.status == Payment.State.CONFIRMED or (
        # Part given back before we heard of it (a goodwill refund): it still confirmed the booking.
        confirmed_it and payment.status == Payment.State.PARTIALLY_REFUNDED
    ):
        return messages.SUCCESS, (
            gettext(
                "Thank you. We received your payment of %(amount)s and your session is confirmed. "
                "A confirmation with your payment reference, and a calendar invitation, are on their way to your inbox."
            )
            % {"amount": money(payment.amount, payment.currency)}
        )
    if payment.refund_status and booking_status in (Status.APPROVED, Status.PAYMENT_PENDING):
        # Refunded before it could confirm anything (from Razorpay's dashboard, or by Razorpay),
        # or a wrong amount sent back: the booking still waits for its payment.
        return messages.WARNING, (
            _(
                "This payment was refunded before it could confirm your booking, so your booking is not "
                "paid yet. The money is on its way back to you (refunds usually take 5 to 7 working days). "
                "You can pay again from your booking page."
            )
        )
    if payment.refund_status and booking_status == Status.CONFIRMED and payment.confirmed_at is None:
        return messages.WARNING, (
            _(
                "Your booking was already paid and confirmed by an earlier payment, so we are refunding this "
                "one in full. Refunds usually take 5 to 7 working days."
            )
        )
    if payment.refund_status and payment.confirmed_at is not None:
        # It did confirm the booking; then the booking was cancelled, or the clinic refunded it,
        # before the client's return reached us.
        return messages.WARNING, (
            _(
                "Your payment confirmed your booking, and has since been refunded (refunds usually take 5 to 7 "
                "working days). Your booking page shows where your booking stands."
            )
        )
    if payment.refund_status:
        return messages.WARNING, (
            _(
                "Your payment reached us after this booking could no longer be confirmed, so we are "
                "refunding it in full. Refunds usually take 5 to 7 working days."
            )
        )
    if payment.needs_attention:
        return messages.WARNING, (
            _(
                "We received a payment, but it does not match this booking's amount, so the booking is not "
                "confirmed yet. Our team has been told and will contact you; nothing more is needed from you."
            )
        )
    if payment.authorized_at is not None and booking_status == Status.CONFIRMED:
        # Authorized, its capture to come, for a booking another payment confirmed.
        return messages.WARNING, (
            _(
                "Your booking was already paid and confirmed by an earlier payment. If money is taken for this "
                "one too, we refund it in full (refunds usually take 5 to 7 working days)."
            )
        )
    if payment.authorized_at is not None and booking_status not in (Status.APPROVED, Status.PAYMENT_PENDING):
        # Authorized, its capture to come, for a booking that has ended.
        return messages.WARNING, (
            _(
                "Your payment reached us after this booking could no longer be confirmed. If the money is taken "
                "from your account, we refund it in full (refunds usually take 5 to 7 working days)."
            )
        )
    if payment.status == Payment.State.FAILED and payment.authorized_at is None:
        return messages.ERROR, _("The payment did not go through and nothing was charged. You can try again.")
    return messages.INFO, (
        _(
            "Your payment is being confirmed by the payment provider. This usually takes a minute; "
            "we will email you as soon as it is done."
        )
    )


@csrf_exempt  # Razorpay cannot send our CSRF token; the request is authenticated by its signature.
@require_POST
def razorpay_webhook(request: HttpRequest) -> HttpResponse:
    provider = payments.provider_for("razorpay")
    try:
        event = provider.webhook_parse(body=request.body, headers=request.headers)
    except payments.SignatureInvalid as exc:
        logger.warning("razorpay webhook refused: %s", exc)
        return HttpResponse("invalid signature", status=400, content_type="text/plain")
    fresh = services.payment_webhook(provider=provider.identifier, event=event)
    return HttpResponse("ok" if fresh else "already processed", content_type="text/plain")


@require_safe
@never_cache
def booking_calendar(request: HttpRequest, token: str) -> HttpResponse:
    """The confirmed session as an .ics file ("Add to calendar")."""
    booking = _booking_or_problem(request, token)
    if isinstance(booking, HttpResponse):
        return booking
    if booking.status not in (Status.CONFIRMED, Status.COMPLETED):
        raise Http404("Only confirmed sessions have a calendar entry.")
    response = HttpResponse(booking_ics(booking=booking), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{booking.ack_id}.ics"'
    return response
