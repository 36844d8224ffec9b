"""Paying for a booking: starting, confirming (one function for every path), failing, refunds, and the payment window."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from bookings import notifications, payments
from bookings.after_commit import enqueue_on_commit
from bookings.errors import (
    BookingError,
    PaymentError,
    StaleBooking,
)
from bookings.models import (
    CLINIC_PROVIDER,
    CLINIC_UNNUMBERED,
    Actor,
    Booking,
    Payment,
    RefundHeardEarly,
    Status,
    WebhookEvent,
)
from bookings.services.transitions import booking_record, booking_transition
from mindsettler.logging import one_of_a_batch

logger = logging.getLogger(__name__)


# --- Payments ---------------------------------------------------------------------------
# The rules for money live here; bookings/payments.py only talks to providers. Every route
# a payment can arrive by (return URL, webhook, sandbox callback) ends in `payment_confirm`.
# Lock order, everywhere: the Payment row first, then the Booking row, then its links
# (tokens.token_claim).

PAYMENT_OPEN_STATES = (Payment.State.CREATED, Payment.State.PENDING)
# An attempt still open for paying: no money has arrived for it. One whose money arrived but
# did not confirm the booking (a wrong amount) is held for staff, never closed as failed: its
# money must go back (payment_settle, or the refund on expiry or cancellation).
PAYMENT_OPEN = Q(status__in=PAYMENT_OPEN_STATES, provider_payment_id="")
# Held for staff: money arrived, confirmed nothing, and is not on its way back yet.
PAYMENT_HELD = Q(status=Payment.State.PENDING, refund_status="") & ~Q(provider_payment_id="")
# The smallest amount, in minor units, a payment provider takes (Razorpay: 100 paise). The
# staff forms refuse less; this guards bookings priced some other way (the admin, say).
PAYMENT_MINIMUM_AMOUNT = 100
# How it was paid there, for the record and the receipt: (value, as staff read it).
CLINIC_PAYMENT_METHODS = (("cash", "Cash"), ("card", "Card, on the clinic's machine"), ("upi", "UPI, to the clinic"))
PAYMENT_RETRY_MESSAGE = _(
    "We could not reach the payment service just now. Nothing has been charged, and your "
    "time is still reserved. Please try again in a minute."
)


def _money(amount: int, currency: str) -> str:
    major, minor = divmod(int(amount), 100)
    return f"{currency} {major:,}.{minor:02d}"


def _raw_add(payment: Payment, key: str, value: Any) -> None:
    """Keep every payload the provider sent, by event, in arrival order."""
    raw = dict(payment.raw or {})
    name, n = key, 2
    while name in raw:
        name, n = f"{key}#{n}", n + 1
    raw[name] = {"at": timezone.now().isoformat(), "data": value}
    payment.raw = raw


def _payment_by_order(*, provider: str, order_id: str) -> Payment | None:
    """The attempt behind a provider's order ID. Never matches an empty ID: attempts whose
    order was never created have one, and a payment without an order is not ours to place."""
    if not order_id:
        return None
    return Payment.objects.filter(provider=provider, provider_order_id=order_id).first()


def _payment_for_update_by_payment_id(*, provider: str, provider_payment_id: str, order_id: str = "") -> Payment | None:
    """The attempt a captured provider payment belongs to, locked. Never matches an empty ID.

    News of a refund names the payment's order too: its attempt is locked first, so that a
    capture being recorded at this moment is waited for and read once committed, rather than
    the refund taken for one of a payment we have not heard of."""
    if not provider_payment_id:
        return None
    if order_id:
        list(Payment.objects.select_for_update().filter(provider=provider, provider_order_id=order_id))
    return (
        Payment.objects.select_for_update().filter(provider=provider, provider_payment_id=provider_payment_id).first()
    )


def payment_captured_amount(payment: Payment) -> int:
    """What the provider actually captured (a payment that did not match the booking took
    another amount than the attempt asked for); the attempt's amount before money arrives."""
    return payment.amount if payment.captured_amount is None else payment.captured_amount


def _staff_alert(*, payment: Payment, booking: Booking, what: str, why: str) -> None:
    """Flag the payment for staff and email each administrator (inside the caller's
    transaction, so the alert is sent only if the change it describes commits). `what`, a
    few words for the subject, tells one alert from another in an inbox; `why` explains."""

    from bookings.emails import absolute_url, email_queue

    payment.needs_attention = why[:300]
    for email in notifications.administrator_emails():
        email_queue(
            kind="payment_attention",
            to=email,
            booking=booking,
            context={
                "booking": booking,
                "payment": payment,
                "what": what,
                "why": why,
                # Straight to the form where an administrator says what was done.
                "staff_booking_url": absolute_url(reverse("staff:booking_detail", args=[booking.pk]))
                + f"#settle-{payment.pk}",
            },
        )
    logger.warning("payment %s for booking %s needs attention", payment.pk, booking.pk)


def _payable_or_raise(booking: Booking, *, now: datetime) -> None:
    """Why this booking cannot be paid now, as a message for the client."""
    messages = {
        Status.DRAFT: _("This booking is not ready for payment yet: please confirm your email address first."),
        Status.PENDING: _(
            "This booking is not ready for payment yet. We will email you when a time is reserved for you."
        ),
        Status.PAYMENT_PENDING: _("A payment for this booking is already in progress."),
        Status.CONFIRMED: _("This booking is already paid and confirmed. There is nothing more to pay."),
        Status.COMPLETED: _("This session has already taken place. There is nothing to pay."),
        Status.REJECTED: _("This request was not accepted, so there is nothing to pay."),
        Status.CANCELLED: _("This booking is cancelled, so it cannot be paid."),
    }
    if booking.status != Status.APPROVED:
        raise PaymentError(messages.get(booking.status, _("This booking cannot be paid.")))
    if booking.amount < PAYMENT_MINIMUM_AMOUNT:
        logger.warning("booking %s: amount %s is below the payment minimum", booking.pk, booking.amount)
        raise PaymentError(
            _("This booking cannot be paid online. Please contact the clinic and we will sort it out with you.")
        )
    if booking.payment_due_at is not None and booking.payment_due_at <= now:
        raise PaymentError(
            _(
                "The time to pay for this booking has passed, so the time is being released for others. "
                "You are welcome to book again."
            )
        )


def payment_start(*, booking_id: int) -> Payment:
    """APPROVED -> PAYMENT_PENDING: a new payment attempt with the provider in use.

    The provider's order is made outside any transaction, so a slow provider holds no lock.
    If the provider fails or times out, the attempt is recorded as failed, the booking stays
    APPROVED and payable, and PaymentError asks the client to try again.
    """
    now = timezone.now()
    booking = Booking.objects.get(pk=booking_id)
    _payable_or_raise(booking, now=now)
    provider = payments.get_provider()
    payment = Payment.objects.create(
        booking=booking, provider=provider.identifier, amount=booking.amount, currency=booking.currency
    )
    try:
        order_id, response = provider.order_create(payment=payment)
    except payments.ProviderError as exc:
        logger.warning("payment %s: order not created: %s", payment.pk, exc)
        payment.status = Payment.State.FAILED
        _raw_add(payment, "order_error", str(exc)[:500])
        payment.save(update_fields=["status", "raw", "updated_at"])
        raise PaymentError(PAYMENT_RETRY_MESSAGE) from exc
    refused: BookingError | None = None
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        payment.provider_order_id = order_id
        _raw_add(payment, "order", response)
        locked = Booking.objects.select_for_update().get(pk=booking_id)
        try:
            # Another tab, a cancellation or the expiry sweep may have moved it meanwhile.
            _payable_or_raise(locked, now=timezone.now())
        except PaymentError as exc:
            refused = exc
            payment.status = Payment.State.FAILED
            payment.save(update_fields=["provider_order_id", "raw", "status", "updated_at"])
        else:
            payment.status = Payment.State.PENDING
            payment.save(update_fields=["provider_order_id", "raw", "status", "updated_at"])
            booking_transition(
                booking=locked,
                to=Status.PAYMENT_PENDING,
                actor=Actor.CLIENT,
                reason=f"Payment started ({provider.verbose_name}, attempt {payment.pk})",
            )
    if refused is not None:
        raise refused
    return payment


def payment_restart(*, booking_id: int) -> Payment:
    """The client gave up on an attempt (closed the checkout, say) and wants to pay again:
    close the open attempts, then start a new one. A payment for a closed attempt that
    still arrives is accepted (or refunded) by `payment_confirm`."""
    open_ids = list(Payment.objects.filter(PAYMENT_OPEN, booking_id=booking_id).values_list("pk", flat=True))
    for payment_id in open_ids:
        payment_fail(payment_id=payment_id, reason="Abandoned: the client started a new payment", actor=Actor.SYSTEM)
    return payment_start(booking_id=booking_id)


def payment_current(*, booking: Booking) -> Payment | None:
    """The attempt the client is paying with now, if any."""
    return booking.payments.filter(status=Payment.State.PENDING).order_by("-created_at", "-pk").first()


def payment_record_at_clinic(
    *, booking_id: int, user: Any, method: str, reference: str = "", expected_version: int | None = None
) -> Payment:
    """An administrator records the booking's price handed over at the clinic's desk: the
    booking moves APPROVED -> PAYMENT_PENDING -> CONFIRMED, as a payment online moves it.

    For a client who walked in, or who paid at the desk rather than online: the payment
    deadline is no obstacle, the money is in hand. The amount is the booking's own, never
    typed, so that the payment matches the booking as every confirming payment must. An
    online attempt still open is closed; money for it arriving after all is refunded as
    too late, as any payment arriving after a booking was paid is. `method`: one of
    CLINIC_PAYMENT_METHODS; `reference`: the clinic's receipt number, if it gives one (two
    payments cannot have one number: a number typed twice is refused)."""
    methods = dict(CLINIC_PAYMENT_METHODS)
    if method not in methods:
        raise BookingError("Say how the client paid.", field="method")
    reference = " ".join(reference.split())
    if len(reference) > Payment._meta.get_field("provider_payment_id").max_length:
        raise BookingError("A receipt number has at most 100 characters.", field="reference")
    with transaction.atomic():
        # The lock order: the payments first, then the booking. A payment online being
        # confirmed at this moment is waited for, and the booking is then read confirmed.
        attempts = list(Payment.objects.select_for_update().filter(booking_id=booking_id).order_by("pk"))
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if expected_version is not None and booking.version != expected_version:
            raise StaleBooking()
        if booking.status not in (Status.APPROVED, Status.PAYMENT_PENDING):
            raise BookingError(
                f"This booking is {Status(booking.status).label.lower()}, so there is nothing to pay: "
                "no payment was recorded."
            )
        if any(p.provider_payment_id and p.status == Payment.State.PENDING and not p.refund_status for p in attempts):
            raise BookingError(
                "A payment that did not match this booking is held. Deal with it first, under Payments: its "
                "money must go back before the booking is paid another way."
            )
        now = timezone.now()
        if any(
            a.status in PAYMENT_OPEN_STATES and a.authorized_at and a.authorized_at > now - PAYMENT_CAPTURE_GRACE
            for a in attempts
        ):
            # The client has paid online a moment ago and the provider is taking the money:
            # recorded at the desk too, they would pay twice until the refund came back.
            raise BookingError(
                "The client has just paid online, and the payment provider is confirming it: the booking is "
                "usually confirmed within minutes. Reload the page then. Record a payment here only if theirs "
                "does not arrive."
            )
        for attempt in attempts:
            if attempt.status in PAYMENT_OPEN_STATES and not attempt.provider_payment_id:
                attempt.status = Payment.State.FAILED
                _raw_add(attempt, "failed", {"reason": "Closed: the booking was paid at the clinic"})
                attempt.save(update_fields=["status", "raw", "updated_at"])
        # An attempt the client started while this waited for the booking (not among those
        # locked above) is closed too, as payment_confirm closes the others: passed by if
        # another request holds it, never waited for (this holds the booking).
        started_meanwhile = (
            booking.payments.filter(PAYMENT_OPEN)
            .exclude(pk__in=[attempt.pk for attempt in attempts])
            .select_for_update(skip_locked=True)
        )
        Payment.objects.filter(pk__in=list(started_meanwhile.values_list("pk", flat=True))).update(
            status=Payment.State.FAILED, updated_at=now
        )
        payment = Payment(
            booking=booking,
            provider=CLINIC_PROVIDER,
            provider_payment_id=reference or f"{CLINIC_UNNUMBERED}{secrets.token_hex(6)}",
            amount=booking.amount,
            currency=booking.currency,
            captured_amount=booking.amount,
            status=Payment.State.CONFIRMED,
            confirmed_at=now,
            created_at=now,
        )
        _raw_add(payment, "recorded", {"by": user.pk, "method": method, "receipt": reference})
        try:
            with transaction.atomic():
                payment.save()
        except IntegrityError:
            raise BookingError(_receipt_taken(reference), field="reference") from None
        paid = _money(payment.amount, payment.currency)
        how = methods[method].split(",")[0].lower()
        receipt = f", receipt {reference}" if reference else ""
        if booking.status == Status.APPROVED:
            booking = booking_transition(
                booking=booking, to=Status.PAYMENT_PENDING, actor=Actor.STAFF, user=user, reason="Paying at the clinic"
            )
        booking_transition(
            booking=booking,
            to=Status.CONFIRMED,
            actor=Actor.STAFF,
            user=user,
            reason=f"Paid {paid} at the clinic ({how}{receipt})",
        )
    return payment


def _receipt_taken(reference: str) -> str:
    """Why a receipt number is refused: the payment that has it, so that staff can tell a
    number typed twice from a receipt book numbered from 1 again."""
    earlier = (
        Payment.objects.filter(provider=CLINIC_PROVIDER, provider_payment_id__iexact=reference)
        .select_related("booking")
        .only("confirmed_at", "created_at", "provider_payment_id", "booking__ack_id")
        .first()
    )
    if earlier is None:  # recorded a moment ago, and not visible to this transaction
        return f"Receipt {reference} is already recorded for another payment. Check the number."
    day = date_format(timezone.localtime(earlier.confirmed_at or earlier.created_at), "j F Y")
    return (
        f"Receipt {earlier.provider_payment_id} is already recorded, for {earlier.booking.ack_id} on {day}. "
        "Check the number, or add what tells the two apart (the year, say)."
    )


def payment_fail(
    *, payment_id: int, reason: str, raw: dict[str, Any] | None = None, actor: str = Actor.PROVIDER
) -> Payment:
    """An attempt failed or was abandoned: PAYMENT_PENDING -> APPROVED, and the client may
    pay again with a new attempt. Repeats, and failures reported after success, change nothing."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status not in PAYMENT_OPEN_STATES or payment.provider_payment_id:
            return payment  # closed already, or its money arrived (held for staff, if not confirming)
        payment.status = Payment.State.FAILED
        _raw_add(payment, "failed", {"reason": reason[:300], **(raw or {})})
        payment.save(update_fields=["status", "raw", "updated_at"])
        booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
        still_open = booking.payments.filter(PAYMENT_OPEN).exists()
        if booking.status == Status.PAYMENT_PENDING and not still_open:
            booking_transition(
                booking=booking, to=Status.APPROVED, actor=actor, reason=f"Payment not completed: {reason}"
            )
    return payment


def payment_confirm(
    *,
    payment_id: int,
    provider_payment_id: str,
    amount: int,
    currency: str,
    raw: dict[str, Any],
    source: str,
) -> Payment:
    """A provider says `amount` was captured for this attempt. The one confirmation path.

    Locks the payment row; the same provider payment seen again returns quietly. Amount and
    currency must match the booking exactly or nothing is confirmed and staff are told. A
    payment for a booking that can no longer be confirmed (cancelled, expired, or already
    paid by another attempt) is recorded and refunded automatically, and staff are told.

    News of its refunds heard before it (`RefundHeardEarly`) is applied as if it came now:
    a payment already refunded in full (or being refunded) confirms nothing and is not
    refunded again; a part refunded is counted as an earlier refund.
    """
    with transaction.atomic():
        payment = _payment_capture(
            payment_id=payment_id,
            provider_payment_id=provider_payment_id,
            amount=amount,
            currency=currency,
            raw=raw,
            source=source,
        )
        if payment.provider_payment_id == provider_payment_id:
            early = RefundHeardEarly.objects.select_for_update().filter(
                provider=payment.provider, provider_payment_id=provider_payment_id
            )
            for news in early.order_by("received_at", "pk"):
                if news.state == RefundHeardEarly.State.PROCESSED:
                    payment_refund_processed(
                        provider=news.provider,
                        provider_payment_id=provider_payment_id,
                        refund_id=news.provider_refund_id,
                        raw=news.raw,
                        amount=news.amount,
                    )
                elif news.state == RefundHeardEarly.State.CREATED:
                    _refund_under_way_counted(payment_id=payment.pk, news=news)
            # Told to the payment now; a refund only started is otherwise settled by its own news.
            early.delete()
            payment.refresh_from_db()
    return payment


def _payment_capture(
    *,
    payment_id: int,
    provider_payment_id: str,
    amount: int,
    currency: str,
    raw: dict[str, Any],
    source: str,
) -> Payment:
    """payment_confirm's work, but for counting the refunds of part heard before the payment
    (a refund of all of it heard before is counted here: it decides what the payment does)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.provider_payment_id == provider_payment_id:
            return payment
        booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
        paid = _money(amount, currency)
        if payment.provider_payment_id:
            # Two captured payments on one order: keep the first, staff refund the other. Told
            # once: its news comes more than once (payment.captured, order.paid, redeliveries).
            if any(entry.get("id") == provider_payment_id for entry in _raw_entries(payment, "second_payment")):
                return payment
            _raw_add(payment, "second_payment", {"id": provider_payment_id, "source": source, "raw": raw})
            _staff_alert(
                payment=payment,
                booking=booking,
                what="a second payment arrived",
                why=f"A second payment ({provider_payment_id}, {paid}) arrived for this attempt's order. "
                "Refund it from the provider's dashboard, then say so on the booking's page.",
            )
            payment.save(update_fields=["raw", "needs_attention", "updated_at"])
            return payment
        payment.provider_payment_id = provider_payment_id
        payment.captured_amount = amount  # a refund returns what was taken, not what was asked for
        _raw_add(payment, source, raw)
        fields = [
            "provider_payment_id",
            "captured_amount",
            "raw",
            "status",
            "needs_attention",
            "refund_status",
            "updated_at",
        ]
        early = list(
            RefundHeardEarly.objects.filter(provider=payment.provider, provider_payment_id=provider_payment_id)
            .exclude(state=RefundHeardEarly.State.FAILED)
            .order_by("received_at", "pk")
        )
        if early and sum(news.amount or amount for news in early) >= amount:
            _payment_refunded_before_heard(payment=payment, booking=booking, early=early, paid=paid, fields=fields)
            return payment
        mismatch = (amount, currency) != (booking.amount, booking.currency) or (amount, currency) != (
            payment.amount,
            payment.currency,
        )
        payable = booking.status in (Status.APPROVED, Status.PAYMENT_PENDING)
        if mismatch and payable:
            payment.status = Payment.State.PENDING
            _staff_alert(
                payment=payment,
                booking=booking,
                what="wrong amount paid",
                why=f"Paid {paid}, but the booking costs {_money(booking.amount, booking.currency)}. "
                "Not confirmed: check the payment with the provider, then refund it from the booking's page.",
            )
            payment.save(update_fields=fields)
            return payment
        if payable:
            if booking.status == Status.APPROVED:
                # An attempt the client had abandoned (or that failed once) was paid after all.
                booking = booking_transition(
                    booking=booking,
                    to=Status.PAYMENT_PENDING,
                    actor=Actor.CLIENT,
                    reason=f"Payment from attempt {payment.pk} arrived",
                )
            payment.status = Payment.State.CONFIRMED
            payment.confirmed_at = timezone.now()
            payment.save(update_fields=[*fields, "confirmed_at"])
            # Other open attempts can no longer be paid into this booking. One another request
            # holds is passed by, not waited for (this holds the booking, and the lock order is
            # the payment first): the client pressing Pay again, whose attempt fails once it
            # reads the booking confirmed; another attempt's money arriving, refunded as too
            # late; a cancellation, after which open attempts stay open as always.
            others = booking.payments.filter(PAYMENT_OPEN).exclude(pk=payment.pk).select_for_update(skip_locked=True)
            Payment.objects.filter(pk__in=list(others.values_list("pk", flat=True))).update(
                status=Payment.State.FAILED, updated_at=timezone.now()
            )
            booking_transition(
                booking=booking,
                to=Status.CONFIRMED,
                actor=Actor.PROVIDER,
                reason=f"Paid {paid} ({payment.provider} {provider_payment_id})",
            )
            return payment
        # Too late (whatever the amount): the booking was cancelled or expired, or is already paid.
        payment.status = Payment.State.PENDING
        # For staff, in English like the portal, whatever the client's browser (the return
        # from the provider) has active.
        with translation.override(settings.LANGUAGE_CODE):
            status = booking.get_status_display().lower()
        why = f"Payment of {paid} arrived after the booking was {status}. A full refund has been started automatically."
        _staff_alert(payment=payment, booking=booking, what="payment arrived too late", why=why)
        payment.save(update_fields=fields)
        booking_record(booking=booking, action="late_payment", actor=Actor.PROVIDER, reason=why)
        _refund_mark(payment=payment, reason="Payment arrived too late")
        notifications.payment_refunding(booking=booking, payment=payment)
    return payment


def _payment_refunded_before_heard(
    *, payment: Payment, booking: Booking, early: list[RefundHeardEarly], paid: str, fields: list[str]
) -> None:
    """Inside payment_confirm's transaction, both rows locked: the provider had refunded the
    whole payment (or taken its refund on) before we heard it was captured: from its
    dashboard, say, or by itself. It confirms nothing, nothing is asked for again, and a
    booking that was waiting for it may be paid again. The refund in hand is the last one
    still under way (its news settles it, or the refund check asks), else the last one."""
    in_hand = next((news for news in reversed(early) if news.state == RefundHeardEarly.State.CREATED), early[-1])
    for news in early:
        if news is not in_hand:
            _raw_add(payment, "refund_earlier", {"id": news.provider_refund_id, "amount": news.amount})
            payment.refunded_earlier += news.amount
        _raw_add(payment, f"refund_{news.state}", news.raw)
    captured = payment_captured_amount(payment)
    payment.refunded_earlier = min(payment.refunded_earlier, captured)
    payment.refunded_amount = captured
    payment.provider_refund_id = in_hand.provider_refund_id
    payment.refund_status = (
        Payment.RefundState.PROCESSED
        if in_hand.state == RefundHeardEarly.State.PROCESSED
        else Payment.RefundState.PENDING
    )
    payment.status = Payment.State.REFUNDED
    payment.save(update_fields=[*fields, "refunded_amount", "refunded_earlier", "provider_refund_id"])
    RefundHeardEarly.objects.filter(pk__in=[news.pk for news in early]).delete()
    payable = booking.status in (Status.APPROVED, Status.PAYMENT_PENDING)
    booking_record(
        booking=booking,
        action="payment_refunded" if payable else "late_payment",
        actor=Actor.PROVIDER,
        reason=f"Payment of {paid} ({payment.provider} {payment.provider_payment_id}) arrived already refunded "
        f"({', '.join(news.provider_refund_id for news in early)}); it confirms nothing",
    )
    if payable:
        _payable_again(booking.pk, reason="The payment arrived already refunded; the client may pay again")
    else:
        notifications.payment_refunding(booking=booking, payment=payment)


def _refund_under_way_counted(*, payment_id: int, news: RefundHeardEarly) -> None:
    """Inside payment_confirm's transaction: a refund of part that the provider had only taken
    on before we heard of the capture, while a refund of ours waits to be sent (a late
    payment, say). It is counted as an earlier refund, as one heard processed is, so that ours
    asks for the rest: the provider refuses more than is left, and staff would be told a
    refund had failed. Its processed news then changes nothing; its failure is told to staff
    (payment_refund_failed). Otherwise its own news settles it, as before."""
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    if payment.refund_status != Payment.RefundState.PENDING or payment.provider_refund_id or not news.amount:
        return
    part = min(news.amount, payment_captured_amount(payment) - payment.refunded_amount)
    if part <= 0:
        return
    _raw_add(payment, "refund_earlier", {"id": news.provider_refund_id, "amount": part, "under_way": True})
    _raw_add(payment, "refund_created", news.raw)
    payment.refunded_amount += part
    payment.refunded_earlier += part
    payment.save(update_fields=["refunded_amount", "refunded_earlier", "raw", "updated_at"])


def _refund_mark(*, payment: Payment, reason: str) -> None:
    """Inside the caller's transaction: decide on a full refund; the provider is asked
    after commit (so a rolled-back decision never moves money)."""
    payment.refund_status = Payment.RefundState.PENDING
    _raw_add(payment, "refund_requested", {"reason": reason[:300]})
    payment.save(update_fields=["refund_status", "provider_refund_id", "refunded_earlier", "raw", "updated_at"])
    enqueue_on_commit("refund_payment", payment.pk, otherwise='it stays "refund started" for payment_refunds_retry')


# A payment partly refunded (from the provider's dashboard: a goodwill refund, say) keeps the
# rest of its money: a cancellation refunds that rest. What went back before the refund in hand
# is `refunded_earlier`, so that a failed refund of the rest leaves it counted and the client's
# page names the rest; each earlier refund's ID is kept in `raw` as "refund_earlier", so that
# news of it arriving late is known for what it is.


def _partly_refunded(payment: Payment) -> bool:
    """Some of the money went back and the rest is held: no refund under way."""
    return payment.status == Payment.State.PARTIALLY_REFUNDED and payment.refund_status == Payment.RefundState.PROCESSED


def _raw_entries(payment: Payment, name: str) -> list[dict[str, Any]]:
    return [entry["data"] for key, entry in (payment.raw or {}).items() if key.split("#")[0] == name]


def _earlier_refunds(payment: Payment) -> list[dict[str, Any]]:
    return _raw_entries(payment, "refund_earlier")


def _refunds_done_with(payment: Payment) -> set[str]:
    """The IDs of the payment's refunds already settled: earlier ones counted, ones that failed."""
    names = ("refund_earlier", "refund_failed", "refund_earlier_failed")
    return {entry["id"] for name in names for entry in _raw_entries(payment, name) if entry.get("id")}


def _refund_start_over(payment: Payment) -> None:
    """Before a new refund of a partly refunded payment: the one that went through is earlier."""
    _raw_add(payment, "refund_earlier", {"id": payment.provider_refund_id, "amount": payment.refunded_amount})
    payment.refunded_earlier = payment.refunded_amount
    payment.provider_refund_id = ""


def _refunded_status(payment: Payment) -> str:
    if payment.refunded_amount >= payment_captured_amount(payment):
        return Payment.State.REFUNDED
    return Payment.State.PARTIALLY_REFUNDED


def payments_taken_lock(*, booking_id: int) -> list[Payment]:
    """The booking's attempts holding money not refunded (captured: confirmed, or held for
    staff as a wrong amount), locked. Inside the caller's transaction and before it locks the
    booking: the lock order.

    Every attempt of the booking is locked and the ones holding money are chosen after: a
    payment being confirmed at this moment is not captured yet in what PostgreSQL would test
    a filter against, so a filtered lock would pass it by without waiting, and a cancellation
    would then find the booking confirmed and its money kept. Locked, it is read once the
    confirmation has committed."""
    attempts = Payment.objects.select_for_update().filter(booking_id=booking_id).order_by("pk")
    return [
        payment
        for payment in attempts
        if payment.provider_payment_id
        and (
            (payment.status in (Payment.State.CONFIRMED, Payment.State.PENDING) and not payment.refund_status)
            or _partly_refunded(payment)
        )
    ]


def _payable_again(
    booking_id: int, *, reason: str = "The payment that did not match is going back; the client may pay again"
) -> None:
    """Inside the caller's transaction, after the payment row it changed (the lock order): a
    booking waiting for payment with nothing under way any more (no attempt open, no money
    held) goes back to APPROVED, so the client can pay (a wrong amount, say, now refunded)."""
    booking = Booking.objects.select_for_update().get(pk=booking_id)
    if booking.status != Status.PAYMENT_PENDING:
        return
    if booking.payments.filter(PAYMENT_OPEN | PAYMENT_HELD).exists():
        return
    booking_transition(
        booking=booking,
        to=Status.APPROVED,
        actor=Actor.SYSTEM,
        reason=reason,
    )


def payment_held_refund(*, payment: Payment, booking: Booking, what_happened: str, reason: str) -> None:
    """Inside the caller's transaction, `payment` locked: money captured that did not confirm
    the booking (a wrong amount, held for staff), refunded in full now the booking has ended,
    and staff's alert saying so replaces the one asking them to look into it."""
    paid = _money(payment_captured_amount(payment), payment.currency)
    _staff_alert(
        payment=payment,
        booking=booking,
        what="held payment refunded as the booking ended",
        why=f"{what_happened} while a payment of {paid} that did not match the booking was held. The booking "
        "was cancelled and a full refund has been started automatically.",
    )
    payment.save(update_fields=["needs_attention", "updated_at"])
    _refund_mark(payment=payment, reason=reason)


def payment_refund(*, payment_id: int, reason: str) -> Payment:
    """Refund a captured payment in full. The decision is recorded now; the provider is
    asked after commit. Repeats change nothing."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if not payment.provider_payment_id:
            return payment
        if _partly_refunded(payment):
            _refund_start_over(payment)  # the rest
        elif payment.refund_status or payment.status not in (Payment.State.CONFIRMED, Payment.State.PENDING):
            return payment
        _refund_mark(payment=payment, reason=reason)
    return payment


# --- Payments that need attention: what an administrator did about them ---------------
# Each alert ends with an administrator saying what was done: for money held, the refund
# asked for again (through the provider, as the automatic one) or a refund made from the
# provider's dashboard recorded; for any other alert, that it is dealt with. Confirming a
# booking by hand is not among them: only a matching payment confirms one (bookings/lifecycle.py).


class Settle:
    REFUND = "refund"
    REFUNDED = "refunded"
    DEALT_WITH = "dealt_with"


def payment_settle_choices(payment: Payment) -> list[str]:
    """What may be done about `payment`'s alert: nothing if it has none. Money held that
    confirms nothing (a wrong amount held for staff, or money whose refund failed) must go
    back: asked for again, or a refund made elsewhere recorded; it is never just "dealt
    with". Other alerts (a refund already on its way, a second payment to refund from the
    provider's dashboard) are dealt with. A payment that confirmed a live booking goes back
    by cancelling the booking."""
    if not payment.needs_attention:
        return []
    held = payment.provider_payment_id and payment.refunded_amount < payment_captured_amount(payment)
    returnable = held and (
        payment.refund_status == Payment.RefundState.FAILED
        or (payment.refund_status == "" and payment.status == Payment.State.PENDING)
    )
    if not returnable:
        return [Settle.DEALT_WITH]
    # Money taken at the clinic goes back from the clinic: asking for it online again would
    # only be refused again (payments.ClinicProvider).
    return [Settle.REFUNDED] if payment.at_clinic else [Settle.REFUND, Settle.REFUNDED]


def payment_settle(*, payment_id: int, user: Any, how: str, note: str, reference: str = "") -> Payment:
    """An administrator settles a payment's alert (`how`: a Settle value), saying what they
    did in `note` (staff read it in the booking's timeline; the client does not). The alert
    is cleared; a refund asked for again that fails raises a new one."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        choices = payment_settle_choices(payment)
        if not choices:
            raise BookingError("This payment no longer needs attention: someone has already dealt with it.")
        if how not in choices:
            raise BookingError(
                "Its money must go back to the client: ask for the refund, or record the one you made."
                if Settle.REFUND in choices
                else "Its money is no longer held (it is being refunded, or it confirmed the booking), "
                "so it can only be marked as dealt with."
            )
        booking = Booking.objects.select_for_update().get(pk=payment.booking_id)  # after the payment: the lock order
        amount = _money(payment_captured_amount(payment), payment.currency)
        payment.needs_attention = ""
        if how == Settle.REFUND:
            payment.save(update_fields=["needs_attention", "updated_at"])
            _refund_mark(payment=payment, reason=f"Asked for again by staff: {note}")
            action, done = "refund_requested", f"Refund of {amount} asked for again"
        elif how == Settle.REFUNDED:
            payment.refund_status = Payment.RefundState.PROCESSED
            payment.refunded_amount = payment_captured_amount(payment)
            payment.status = Payment.State.REFUNDED
            payment.provider_refund_id = reference
            _raw_add(payment, "refund_recorded", {"by": user.pk, "reference": reference})
            payment.save(
                update_fields=[
                    "needs_attention",
                    "refund_status",
                    "refunded_amount",
                    "status",
                    "provider_refund_id",
                    "raw",
                    "updated_at",
                ]
            )
            action = "refund_recorded"
            where = "given back at the clinic" if payment.at_clinic else "made from the provider's dashboard"
            done = f"Refund of {amount} {where}" + (f" ({reference})" if reference else "")
        else:
            payment.save(update_fields=["needs_attention", "updated_at"])
            action, done = "payment_settled", "Payment alert dealt with"
        booking_record(
            booking=booking, action=action, actor=Actor.STAFF, user=user, reason=f"Payment {payment.pk}: {done}. {note}"
        )
        _payable_again(booking.pk)
        if how != Settle.DEALT_WITH:
            # The client was told the team would be in touch: this is it.
            booking.refresh_from_db(fields=["status", "payment_due_at"])
            notifications.payment_returned(booking=booking, payment=payment, refunded=how == Settle.REFUNDED)
    return payment


# How many times a refund is asked for while the provider cannot be reached or fails on its
# side, one try per payment_refunds_retry sweep (every ten minutes or so), before staff are
# asked to do it by hand.
REFUND_TRIES = 5


def _refund_errors_since_decided(payment: Payment) -> int:
    """The provider's refusals and failures since the refund was last decided (staff may
    decide it again after the tries ran out). By the payloads' times: PostgreSQL's jsonb
    does not keep the keys in the order they were added."""
    entries = [(key.split("#")[0], datetime.fromisoformat(value["at"])) for key, value in (payment.raw or {}).items()]
    decided = max((at for name, at in entries if name == "refund_requested"), default=None)
    return sum(1 for name, at in entries if name == "refund_error" and (decided is None or at > decided))


def payment_refund_execute(*, payment_id: int) -> Payment:
    """Ask the provider for the refund decided earlier. The payment row stays locked during
    the call so two workers can never refund one payment twice."""
    recorded = ""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().select_related("booking").get(pk=payment_id)
        if payment.refund_status != Payment.RefundState.PENDING or payment.provider_refund_id:
            return payment
        amount = payment_captured_amount(payment) - payment.refunded_amount
        try:
            refund = payments.provider_for(payment.provider).refund_create(payment=payment, amount=amount)
        except payments.ProviderError as exc:
            tries = 1 + _refund_errors_since_decided(payment)
            _raw_add(payment, "refund_error", str(exc)[:500])
            if exc.transient and tries < REFUND_TRIES:
                # Unreachable or failing on its side: still "refund started", and
                # payment_refunds_retry asks again later. A refund that did go through
                # meanwhile is refused as more than was taken, and its webhook settles it.
                logger.warning("payment %s: refund try %s of %s failed: %s", payment.pk, tries, REFUND_TRIES, exc)
                payment.save(update_fields=["raw", "updated_at"])
                return payment
            payment.refund_status = Payment.RefundState.FAILED
            if payment.at_clinic:
                logger.info("payment %s: taken at the clinic, its refund is for staff to give back", payment.pk)
                what = "money to give back at the clinic"
                why = (
                    f"This payment was taken at the clinic, so its refund of {_money(amount, payment.currency)} "
                    "is given back from there (in cash, or to the client's bank account). Then record it on "
                    "the booking's page."
                )
            else:
                logger.warning("payment %s: refund failed: %s", payment.pk, exc)
                what = "refund failed"
                why = (
                    f"The automatic refund of {_money(amount, payment.currency)} failed. "
                    "Ask for it again, or record your own refund, on the booking's page."
                )
            _staff_alert(payment=payment, booking=payment.booking, what=what, why=why)
            payment.save(update_fields=["refund_status", "raw", "needs_attention", "updated_at"])
            return payment
        payment.provider_refund_id = refund.refund_id
        payment.refunded_amount += amount
        payment.status = Payment.State.REFUNDED
        payment.refund_status = Payment.RefundState.PROCESSED if refund.processed else Payment.RefundState.PENDING
        _raw_add(payment, "refund", refund.raw)
        payment.save(
            update_fields=["provider_refund_id", "refunded_amount", "status", "refund_status", "raw", "updated_at"]
        )
        recorded = f"Refund of {_money(amount, payment.currency)} started ({payment.provider} {refund.refund_id})"
    # Its own transaction: the audit row locks the booking, which must not wait on a
    # payment lock held across a network call.
    booking_record(booking=payment.booking, action="refund", actor=Actor.SYSTEM, reason=recorded)
    return payment


def payment_refunds_retry(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Refunds decided but never sent to the provider (a worker died, say). Returns how many were sent."""
    due = Payment.objects.filter(
        refund_status=Payment.RefundState.PENDING,
        provider_refund_id="",
        updated_at__lte=timezone.now() - older_than,
    ).values_list("pk", flat=True)
    done = 0
    for payment_id in list(due):
        if payment_refund_execute(payment_id=payment_id).provider_refund_id:
            done += 1
    return done


def payment_refunds_check(*, older_than: timedelta = timedelta(hours=1)) -> int:
    """Refunds the provider accepted but has not reported on (its webhook may never come):
    ask it how each stands and settle it as its webhook would. Returns how many were settled.

    Each refund is asked about at most once per `older_than`, whatever the answer (a refund
    the provider cannot find is not asked about on every sweep). The question is read-only,
    so no lock is held while waiting on the provider; `payment_refund_processed` and
    `payment_refund_failed` lock the row and change nothing if a webhook got there first.
    """
    due = (
        Payment.objects.filter(
            refund_status=Payment.RefundState.PENDING,
            updated_at__lte=timezone.now() - older_than,
        )
        .exclude(provider_refund_id="")
        .order_by("updated_at")
    )
    settled = 0
    for payment in list(due):
        # Asked now: not again before `older_than` has passed (unless a webhook settled it meanwhile).
        asked = Payment.objects.filter(
            pk=payment.pk, refund_status=Payment.RefundState.PENDING, provider_refund_id=payment.provider_refund_id
        ).update(updated_at=timezone.now())
        if not asked:
            continue  # settled meanwhile (its webhook, or staff)
        try:
            outcome = payments.provider_for(payment.provider).refund_fetch(
                payment=payment, refund_id=payment.provider_refund_id
            )
            if outcome is None:
                continue  # still pending
            payment_refund_news(provider=payment.provider, outcome=outcome)
        except payments.ProviderError as exc:
            logger.warning("payment %s: refund check failed: %s", payment.pk, exc)
            continue
        except Exception:
            # One payment the sweep cannot settle must not keep it from the others.
            logger.exception("payment %s: refund check failed", payment.pk)
            continue
        settled += 1
    return settled


def _refund_heard_early(
    *,
    provider: str,
    outcome: payments.RefundNews,
    state: str,
) -> None:
    """Inside the caller's transaction: news of a refund of a payment we have not heard was
    captured, kept for `payment_confirm`. Its last word counts: processed or failed is final,
    and a "created" arriving after it (webhooks come in any order) changes nothing."""
    if not (outcome.payment_id and outcome.refund_id):
        logger.info("refund %s: no payment for it", outcome.refund_id or "(no id)")
        return
    logger.info("refund %s (%s) of %s heard before its payment", outcome.refund_id, state, outcome.payment_id)
    news = (
        RefundHeardEarly.objects.select_for_update()
        .filter(provider=provider, provider_refund_id=outcome.refund_id)
        .first()
    )
    if news is None:
        news = RefundHeardEarly(provider=provider, provider_refund_id=outcome.refund_id, amount=0)
    elif news.state != RefundHeardEarly.State.CREATED:
        return
    news.provider_payment_id = outcome.payment_id
    news.state = state
    news.amount = outcome.amount or news.amount
    news.raw = outcome.raw
    news.save()


def payment_refund_news(*, provider: str, outcome: payments.RefundNews) -> None:
    """What the provider says of a refund, by webhook or when asked: settle the payment."""
    if isinstance(outcome, payments.RefundCreated):
        payment_refund_created(provider=provider, outcome=outcome)
    elif isinstance(outcome, payments.RefundProcessed):
        payment_refund_processed(
            provider=provider,
            provider_payment_id=outcome.payment_id,
            refund_id=outcome.refund_id,
            raw=outcome.raw,
            amount=outcome.amount,
            order_id=outcome.order_id,
        )
    else:
        payment_refund_failed(
            provider=provider,
            provider_payment_id=outcome.payment_id,
            refund_id=outcome.refund_id,
            raw=outcome.raw,
            order_id=outcome.order_id,
        )


def payment_refund_created(*, provider: str, outcome: payments.RefundCreated) -> None:
    """The provider says it took a refund on. Of a payment whose refund we asked for but
    never had the answer to (a timeout), or decided but not sent yet, a refund of all that
    is left is that one: recorded as under way, so it is not asked for again (the provider
    would refuse it, and staff would be told a refund failed). Of one we do not know yet, it
    is kept for its capture. Otherwise its news that it was processed or failed settles it."""
    with transaction.atomic():
        payment = _payment_for_update_by_payment_id(
            provider=provider, provider_payment_id=outcome.payment_id, order_id=outcome.order_id
        )
        if payment is None:
            _refund_heard_early(provider=provider, outcome=outcome, state=RefundHeardEarly.State.CREATED)
            return
        rest = payment_captured_amount(payment) - payment.refunded_amount
        if not (
            payment.refund_status == Payment.RefundState.PENDING
            and not payment.provider_refund_id
            and outcome.refund_id
            and outcome.amount == rest
            # Not late news of an earlier refund (one of part, or one that failed), which may
            # be of the same amount: taken for ours, ours would never be asked for.
            and outcome.refund_id not in _refunds_done_with(payment)
        ):
            return
        payment.provider_refund_id = outcome.refund_id
        payment.refunded_amount += rest
        payment.status = Payment.State.REFUNDED
        _raw_add(payment, "refund", outcome.raw)
        payment.save(update_fields=["provider_refund_id", "refunded_amount", "status", "raw", "updated_at"])
        booking = Booking.objects.get(pk=payment.booking_id)
        recorded = f"Refund of {_money(rest, payment.currency)} started ({payment.provider} {outcome.refund_id})"
        booking_record(booking=booking, action="refund", actor=Actor.PROVIDER, reason=recorded)


def payment_refund_processed(
    *, provider: str, provider_payment_id: str, refund_id: str, raw: dict[str, Any], amount: int = 0, order_id: str = ""
) -> None:
    """The provider says the refund reached the client's bank. After a failed refund this is
    staff's own refund, made from the provider's dashboard."""
    with transaction.atomic():
        payment = _payment_for_update_by_payment_id(
            provider=provider, provider_payment_id=provider_payment_id, order_id=order_id
        )
        if payment is None:
            _refund_heard_early(
                provider=provider,
                outcome=payments.RefundProcessed(
                    payment_id=provider_payment_id, refund_id=refund_id, amount=amount, raw=raw
                ),
                state=RefundHeardEarly.State.PROCESSED,
            )
            return
        if refund_id and any(earlier["id"] == refund_id for earlier in _earlier_refunds(payment)):
            return  # late news of a refund already counted
        captured = payment_captured_amount(payment)
        ours = payment.refund_status == Payment.RefundState.PENDING and payment.provider_refund_id
        if payment.refund_status == Payment.RefundState.PROCESSED:
            if not refund_id or refund_id == payment.provider_refund_id:
                return  # heard already
            # Another refund after one that went through: more of the money (or the rest)
            # sent back from the provider's dashboard.
            _refund_start_over(payment)
            payment.refunded_amount = min(captured, payment.refunded_amount + (amount or captured))
        elif not ours:
            # Not the refund we asked for and counted when the provider took it: staff's own,
            # from the dashboard.
            part = min(amount or captured, captured - payment.refunded_amount)
            if payment.refunded_amount + part < captured and (payment.refund_status or payment.confirmed_at is None):
                # Part of the money only, while the rest is held for staff (a wrong amount),
                # or our refund of it failed or waits to be sent: counted as an earlier refund,
                # and the rest stays as it was (held, failed with its alert, or to be sent).
                _raw_add(payment, "refund_earlier", {"id": refund_id, "amount": part})
                payment.refunded_amount += part
                payment.refunded_earlier += part
                if payment.refund_status == Payment.RefundState.FAILED:
                    payment.status = Payment.State.PARTIALLY_REFUNDED
                _raw_add(payment, "refund_processed", raw)
                payment.save(update_fields=["refunded_amount", "refunded_earlier", "status", "raw", "updated_at"])
                return
            # All of it (after a failed refund, say), or part of a payment that confirmed the
            # booking (a goodwill refund), whose rest a cancellation refunds.
            payment.refunded_amount += part
        payment.refund_status = Payment.RefundState.PROCESSED
        # The refund that went through (staff's from the dashboard, say, not the one we asked for).
        payment.provider_refund_id = refund_id or payment.provider_refund_id
        payment.status = _refunded_status(payment)
        _raw_add(payment, "refund_processed", raw)
        fields = ["refund_status", "provider_refund_id", "refunded_amount", "refunded_earlier", "status", "raw"]
        if not ours and payment.confirmed_at is not None and payment.status == Payment.State.REFUNDED:
            _refunded_while_confirmed(payment=payment, refund_id=refund_id)
            fields.append("needs_attention")
        payment.save(update_fields=[*fields, "updated_at"])
        _payable_again(payment.booking_id)  # a held wrong amount refunded from the dashboard


# How the alert of _refunded_while_confirmed begins: cancelling the booking answers it.
REFUNDED_WHILE_CONFIRMED = "All of this booking's payment"


def payment_alerts_answered_by_cancel(*, booking_id: int) -> None:
    """Inside booking_cancel's transaction, its payments locked: the alert that asked staff
    to cancel a booking whose money had all gone back (_refunded_while_confirmed) is answered
    by the cancellation, and leaves the booking's page and the dashboard."""
    Payment.objects.filter(
        booking_id=booking_id, status=Payment.State.REFUNDED, needs_attention__startswith=REFUNDED_WHILE_CONFIRMED
    ).update(needs_attention="", updated_at=timezone.now())


def _refunded_while_confirmed(*, payment: Payment, refund_id: str) -> None:
    """Inside payment_refund_processed's transaction: the money that confirmed a booking has
    all gone back, by refunds made from the provider's dashboard, and the booking is still
    confirmed. It is not cancelled here (whether the session goes ahead is for staff, and the
    client would be told of a cancellation nobody decided), but staff are told, so that a
    session is not held, or a slot kept, unpaid without anyone knowing."""
    booking = Booking.objects.get(pk=payment.booking_id)
    if booking.status != Status.CONFIRMED:
        return
    refunded = _money(payment.refunded_amount, payment.currency)
    why = (
        f"{REFUNDED_WHILE_CONFIRMED} ({refunded}) has been refunded from the provider's dashboard "
        f"({refund_id or 'no refund ID'}), but the booking is still confirmed. If the session is not to go ahead, "
        "cancel the booking (nothing more will be refunded); otherwise mark this dealt with."
    )
    _staff_alert(payment=payment, booking=booking, what="refunded but still confirmed", why=why)
    booking_record(booking=booking, action="payment_refunded", actor=Actor.PROVIDER, reason=why)


def payment_refund_failed(
    *, provider: str, provider_payment_id: str, refund_id: str, raw: dict[str, Any], order_id: str = ""
) -> None:
    """The provider says a refund it had accepted did not go through: the money was never
    returned. Marked failed (the client's page says staff are arranging it), staff are
    told, and it is not retried automatically: whatever failed needs a person."""
    with transaction.atomic():
        payment = _payment_for_update_by_payment_id(
            provider=provider, provider_payment_id=provider_payment_id, order_id=order_id
        )
        if payment is None:
            _refund_heard_early(
                provider=provider,
                outcome=payments.RefundFailed(payment_id=provider_payment_id, refund_id=refund_id, amount=0, raw=raw),
                state=RefundHeardEarly.State.FAILED,
            )
            return
        under_way = [e for e in _earlier_refunds(payment) if refund_id and e["id"] == refund_id and e.get("under_way")]
        if under_way:
            _refund_earlier_failed(payment=payment, refund_id=refund_id, amount=under_way[0]["amount"], raw=raw)
            return
        if payment.refund_status == Payment.RefundState.FAILED:
            return
        if (refund_id or payment.refund_status == Payment.RefundState.PROCESSED) and (
            payment.provider_refund_id != refund_id
        ):
            # About another refund than the one in hand: one that went through since (staff's,
            # say), or an older one that staff have asked for again since. Late news.
            return
        booking = Booking.objects.get(pk=payment.booking_id)
        earlier = payment.refunded_earlier
        amount = (payment.refunded_amount or payment_captured_amount(payment)) - earlier
        payment.refund_status = Payment.RefundState.FAILED
        # The money is back with us: the attempt is as it was before the refund (and after
        # any earlier one that went through).
        payment.refunded_amount = earlier
        payment.provider_refund_id = ""
        if earlier:
            payment.status = Payment.State.PARTIALLY_REFUNDED
        else:
            payment.status = Payment.State.CONFIRMED if payment.confirmed_at else Payment.State.PENDING
        _raw_add(payment, "refund_failed", {"id": refund_id, "raw": raw})
        _staff_alert(
            payment=payment,
            booking=booking,
            what="refund failed",
            why=f"The provider reports that the refund of {_money(amount, payment.currency)} ({refund_id or 'no ID'}) "
            "failed: the client has not been paid back. Ask for it again, or record your own refund, on the "
            "booking's page.",
        )
        payment.save(
            update_fields=[
                "refund_status",
                "refunded_amount",
                "provider_refund_id",
                "status",
                "raw",
                "needs_attention",
                "updated_at",
            ]
        )
        booking_record(
            booking=booking, action="refund_failed", actor=Actor.PROVIDER, reason=f"Refund {refund_id} failed"
        )


def _refund_earlier_failed(*, payment: Payment, refund_id: str, amount: int, raw: dict[str, Any]) -> None:
    """Inside payment_refund_failed's transaction, `payment` locked: a refund of part, counted
    while only under way (_refund_under_way_counted), did not go through. Its money is with
    us again: uncounted, so that our refund, if not sent yet, asks for it too; if ours was
    sent already, that part is held and staff are told to return it. Once."""
    if any(entry.get("id") == refund_id for entry in _raw_entries(payment, "refund_earlier_failed")):
        return
    _raw_add(payment, "refund_earlier_failed", {"id": refund_id, "amount": amount, "raw": raw})
    payment.refunded_amount -= amount
    payment.refunded_earlier = max(0, payment.refunded_earlier - amount)
    fields = ["refunded_amount", "refunded_earlier", "raw", "updated_at"]
    if payment.provider_refund_id:
        payment.status = _refunded_status(payment)
        _staff_alert(
            payment=payment,
            booking=Booking.objects.get(pk=payment.booking_id),
            what="refund failed",
            why=f"The provider reports that the refund of {_money(amount, payment.currency)} ({refund_id}), taken "
            "on before the payment reached us, failed: that part has not been paid back to the client (the rest "
            "has been refunded). Refund it from the provider's dashboard, then mark this dealt with.",
        )
        fields += ["status", "needs_attention"]
    payment.save(update_fields=fields)


def payment_return(*, payment_id: int, data: dict[str, str]) -> Payment:
    """The client's browser came back from checkout with the provider's (signed) result.

    Raises payments.SignatureInvalid if it cannot be authenticated; changes nothing then.
    """
    payment = Payment.objects.select_related("booking").get(pk=payment_id)
    provider = payments.provider_for(payment.provider)
    outcome = provider.return_verify(payment=payment, data=data)
    if isinstance(outcome, payments.Paid):
        return payment_confirm(
            payment_id=payment.pk,
            provider_payment_id=outcome.payment_id,
            amount=outcome.amount,
            currency=outcome.currency,
            raw=outcome.raw,
            source="return",
        )
    if isinstance(outcome, payments.Failed):
        return payment_fail(payment_id=payment.pk, reason=outcome.reason, raw=outcome.raw)
    # Waiting: authorized, and the webhook will bring the capture.
    with transaction.atomic():
        payment = Payment.objects.select_for_update().select_related("booking").get(pk=payment_id)
        if not payment.provider_payment_id and payment.authorized_at is None:
            payment.authorized_at = timezone.now()
            _raw_add(payment, "authorized", outcome.raw)
            payment.save(update_fields=["authorized_at", "raw", "updated_at"])
    return payment


def payment_webhook(*, provider: str, event: payments.WebhookEvent) -> bool:
    """Apply one authenticated webhook event, once. Returns False for a replay.

    The event is known by the digest of its signed part, recorded in the same transaction as
    its effect: if applying it fails, neither is kept and the provider's retry is processed
    afresh.
    """
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(provider=provider, digest=event.digest, event_id=event.event_id)
            outcome = event.outcome
            if isinstance(outcome, payments.Paid | payments.Failed):
                payment = _payment_by_order(provider=provider, order_id=outcome.order_id)
                if payment is None:
                    # Also a payment without an order (a payment link, say): never ours to place.
                    logger.info("webhook %s %s: no payment for its order %r", provider, event.kind, outcome.order_id)
                elif isinstance(outcome, payments.Paid):
                    payment_confirm(
                        payment_id=payment.pk,
                        provider_payment_id=outcome.payment_id,
                        amount=outcome.amount,
                        currency=outcome.currency,
                        raw=outcome.raw,
                        source=f"webhook:{event.kind}",
                    )
                else:
                    payment_fail(payment_id=payment.pk, reason=outcome.reason, raw=outcome.raw)
            elif isinstance(outcome, payments.RefundNews):
                payment_refund_news(provider=provider, outcome=outcome)
    except IntegrityError:
        if WebhookEvent.objects.filter(provider=provider, digest=event.digest).exists():
            return False
        raise
    return True


# --- The payment window -----------------------------------------------------------------


# How long a payment the provider has authorized (the client's return said so) holds its booking
# past the time to pay, for the capture to arrive. A capture that comes later still is
# refunded, as any payment after the booking expired.
PAYMENT_CAPTURE_GRACE = timedelta(minutes=30)


def bookings_expire(*, now: datetime | None = None) -> int:
    """Cancel (as SYSTEM) APPROVED and PAYMENT_PENDING bookings whose payment window has
    ended; their slots are free again and the client is emailed. Returns how many.

    Safe to run from several workers at once: each booking is re-selected under a lock with
    its old status and due time (compare-and-swap), so a booking paid or expired meanwhile
    is skipped. Money already captured that did not confirm the booking (a payment of the
    wrong amount, held for staff) is refunded in full, in the same transaction, so the
    client's email can say so; a payment that arrives after this is refunded by
    `payment_confirm`. A booking with a payment authorized lately (PAYMENT_CAPTURE_GRACE)
    waits for its capture.
    """
    now = now or timezone.now()
    due = Booking.objects.filter(
        status__in=(Status.APPROVED, Status.PAYMENT_PENDING), payment_due_at__lte=now
    ).values_list("pk", "status")
    expired = 0
    for booking_id, old_status in list(due):
        with one_of_a_batch("expiry of booking", booking_id):
            expired += _booking_expire(booking_id=booking_id, old_status=old_status, now=now)
    return expired


def _booking_expire(*, booking_id: int, old_status: str, now: datetime) -> bool:
    """Expire one booking of bookings_expire's, if it still is as read. True if it was."""
    with transaction.atomic():
        taken = payments_taken_lock(booking_id=booking_id)  # before the booking: the lock order
        booking = (
            Booking.objects.select_for_update()
            .filter(pk=booking_id, status=old_status, payment_due_at__lte=now)
            .first()
        )
        if booking is None:
            return False
        if Payment.objects.filter(
            booking_id=booking_id, provider_payment_id="", authorized_at__gt=now - PAYMENT_CAPTURE_GRACE
        ).exists():
            return False  # paid at the last moment: its capture is on its way
        for payment in taken:
            if payment.status == Payment.State.PENDING:
                payment_held_refund(
                    payment=payment,
                    booking=booking,
                    what_happened="The time to pay ran out",
                    reason="The booking expired unpaid",
                )
        booking_transition(
            booking=booking,
            to=Status.CANCELLED,
            actor=Actor.SYSTEM,
            reason="The time to pay ran out; the time slot was released",
            expected_version=booking.version,
        )
    # Separately, so this never holds the booking lock while waiting on a payment row.
    Payment.objects.filter(PAYMENT_OPEN, booking_id=booking_id).update(
        status=Payment.State.FAILED, updated_at=timezone.now()
    )
    return True
