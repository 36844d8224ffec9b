"""Payments with the sandbox provider, end to end through the views, and the rules every
provider shares: one confirmation path, exact amounts, retries, refunds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone, translation

from bookings import payments
from bookings.errors import PaymentError, TooLate
from bookings.models import Actor, Booking, BookingEvent, OutboundEmail, Payment, Slot, Status
from bookings.services import (
    booking_cancel,
    payment_confirm,
    payment_fail,
    payment_refund,
    payment_restart,
    payment_start,
)


@pytest.fixture
def approved(make_booking, counsellor, manage_token):
    booking = make_booking(Status.APPROVED)
    return booking, manage_token(booking)


def messages_of(response) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request)]


def start_checkout(client, booking: Booking, token: str):
    response = client.post(reverse("bookings:pay", args=[token]))
    payment = booking.payments.latest("created_at")
    assert response.status_code == 302
    assert response["Location"] == reverse("bookings:pay_checkout", args=[token, payment.pk])
    return client.get(response["Location"]), payment


def confirmation_events(booking: Booking) -> int:
    return BookingEvent.objects.filter(booking=booking, to_status=Status.CONFIRMED, action="transition").count()


def sandbox_fields(payment: Payment, **changes: str) -> dict[str, str]:
    """What the sandbox page's Pay button posts, optionally altered and re-signed (as a
    provider reporting a different amount would)."""
    fields = payments.SandboxProvider().checkout_context(payment=payment)["pay_fields"]
    if changes:
        fields = {**fields, **changes}
        fields["signature"] = payments.SandboxProvider.sign(fields)
    return fields


# --- The happy path, and failure --------------------------------------------------------


def test_sandbox_pay_confirms_the_booking_with_receipt_and_invitation(client, approved):
    booking, token = approved
    page, payment = start_checkout(client, booking, token)
    assert page.status_code == 200
    assert "Test payment — no money moves" in page.content.decode()
    booking.refresh_from_db()
    assert booking.status == Status.PAYMENT_PENDING
    assert payment.status == Payment.State.PENDING and payment.provider == "sandbox"
    assert (payment.amount, payment.currency) == (booking.amount, booking.currency)

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), page.context["pay_fields"])

    assert response.status_code == 302
    assert response["Location"] == reverse("bookings:booking_page", args=[token])
    assert "your session is confirmed" in messages_of(response)[0]
    # What is promised is what comes: the confirmation email gives the payment reference.
    assert "A confirmation with your payment reference" in messages_of(response)[0]
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert booking.status == Status.CONFIRMED
    assert payment.status == Payment.State.CONFIRMED and payment.confirmed_at is not None
    assert payment.provider_payment_id and "return" in payment.raw
    event = BookingEvent.objects.get(booking=booking, to_status=Status.CONFIRMED)
    assert event.actor == Actor.PROVIDER and event.from_status == Status.PAYMENT_PENDING
    [email] = [m for m in mail.outbox if "confirmed" in m.subject.lower()]
    assert "₹1,500" in email.body and payment.provider_payment_id in email.body
    assert [a for a in email.attachments if a[0] == "session.ics"]


def test_the_whole_journey_through_the_booking_page(client, approved):
    booking, token = approved
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "Pay ₹1,500" in page

    checkout = client.post(reverse("bookings:pay", args=[token]), follow=True)
    assert "Test payment — no money moves" in checkout.content.decode()
    done = client.post(checkout.context["return_url"], checkout.context["pay_fields"], follow=True)

    html = done.content.decode()
    assert done.redirect_chain[-1][0] == reverse("bookings:booking_page", args=[token])
    assert "your session is confirmed" in html
    assert "Amount paid" in html and Payment.objects.get(booking=booking).provider_payment_id in html
    assert reverse("bookings:booking_ics", args=[token]) in html
    assert "Pay ₹1,500" not in html


def test_sandbox_fail_returns_the_booking_to_approved_and_a_retry_is_a_new_attempt(client, approved):
    booking, token = approved
    page, first = start_checkout(client, booking, token)

    response = client.post(reverse("bookings:pay_return", args=[token, first.pk]), page.context["fail_fields"])

    assert "did not go through" in messages_of(response)[0]
    booking.refresh_from_db()
    first.refresh_from_db()
    assert booking.status == Status.APPROVED
    assert first.status == Payment.State.FAILED
    assert not mail.outbox  # no "approved" email again for a failed payment

    page, second = start_checkout(client, booking, token)
    assert second.pk != first.pk
    client.post(reverse("bookings:pay_return", args=[token, second.pk]), page.context["pay_fields"])
    booking.refresh_from_db()
    assert booking.status == Status.CONFIRMED
    assert list(booking.payments.order_by("pk").values_list("status", flat=True)) == ["failed", "confirmed"]


def test_a_replayed_return_changes_nothing(client, approved):
    booking, token = approved
    page, payment = start_checkout(client, booking, token)
    url = reverse("bookings:pay_return", args=[token, payment.pk])
    client.post(url, page.context["pay_fields"])
    version = Booking.objects.get(pk=booking.pk).version

    again = client.post(url, page.context["pay_fields"])

    assert again.status_code == 302
    assert Booking.objects.get(pk=booking.pk).version == version
    assert confirmation_events(booking) == 1
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 1


@pytest.mark.parametrize(
    "tamper",
    [
        {"amount": "1"},  # a cheaper price, with the old signature
        {"outcome": "paid", "order": "sandbox_order_someone_else"},
        {"signature": "0" * 64},
        {"signature": ""},
    ],
)
def test_forged_or_missing_sandbox_signature_is_refused_and_changes_nothing(client, approved, tamper):
    booking, token = approved
    page, payment = start_checkout(client, booking, token)
    fields = {**page.context["pay_fields"], **tamper}

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), fields)

    assert response.status_code == 400
    html = response.content.decode()
    assert "We could not confirm this payment yet" in html and "Nothing about your booking has changed." in html
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert booking.status == Status.PAYMENT_PENDING
    assert payment.status == Payment.State.PENDING and not payment.provider_payment_id


@pytest.mark.parametrize("changes", [{"amount": "149999"}, {"amount": "1500000"}, {"currency": "USD"}])
def test_wrong_amount_or_currency_never_confirms_and_is_flagged_for_staff(client, approved, admin_user, changes):
    booking, token = approved
    _, payment = start_checkout(client, booking, token)

    response = client.post(reverse("bookings:pay_return", args=[token, payment.pk]), sandbox_fields(payment, **changes))

    assert "does not match" in messages_of(response)[0]
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert booking.status == Status.PAYMENT_PENDING
    assert payment.status != Payment.State.CONFIRMED
    assert "Not confirmed" in payment.needs_attention
    [alert] = [m for m in mail.outbox if m.to == [admin_user.email]]
    assert booking.ack_id in alert.subject
    assert confirmation_events(booking) == 0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.PENDING, "not ready for payment"),
        (Status.CONFIRMED, "already paid"),
        (Status.CANCELLED, "cancelled"),
        (Status.REJECTED, "not accepted"),
    ],
)
def test_paying_a_booking_that_is_not_approved_is_refused_with_a_clear_message(
    client, make_booking, counsellor, manage_token, status, expected
):
    booking = make_booking(status)
    token = manage_token(booking)

    response = client.post(reverse("bookings:pay", args=[token]))

    assert response["Location"] == reverse("bookings:booking_page", args=[token])
    assert expected in messages_of(response)[0]
    assert not booking.payments.exists()
    assert Booking.objects.get(pk=booking.pk).status == status


def test_paying_after_the_deadline_is_refused(make_booking, counsellor):
    booking = make_booking(Status.APPROVED, payment_due_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(PaymentError, match="time to pay"):
        payment_start(booking_id=booking.pk)
    assert not booking.payments.exists()


def test_payment_pages_need_a_valid_booking_link(client, approved):
    booking, _ = approved
    response = client.post(reverse("bookings:pay", args=["not-a-real-token"]))
    assert response.status_code == 404
    assert not booking.payments.exists()


def test_a_payment_attempt_of_another_booking_is_not_found(client, approved, make_booking):
    _, token = approved
    other = make_booking(Status.APPROVED)
    payment = payment_start(booking_id=other.pk)
    assert client.get(reverse("bookings:pay_checkout", args=[token, payment.pk])).status_code == 404


def test_a_closed_attempt_sends_the_client_back_to_the_booking(client, approved):
    booking, token = approved
    page, payment = start_checkout(client, booking, token)
    client.post(reverse("bookings:pay_return", args=[token, payment.pk]), page.context["fail_fields"])

    response = client.get(reverse("bookings:pay_checkout", args=[token, payment.pk]))

    assert response["Location"] == reverse("bookings:booking_page", args=[token])


# --- Starting again, and payments for abandoned attempts --------------------------------


def test_starting_again_closes_the_open_attempt(client, approved):
    booking, token = approved
    _, first = start_checkout(client, booking, token)

    _, second = start_checkout(client, booking, token)

    first.refresh_from_db()
    booking.refresh_from_db()
    assert first.status == Payment.State.FAILED
    assert second.status == Payment.State.PENDING
    assert booking.status == Status.PAYMENT_PENDING


def test_a_payment_for_an_abandoned_attempt_still_confirms_the_booking(approved, oncommit):
    booking, _ = approved
    first = payment_start(booking_id=booking.pk)
    second = payment_restart(booking_id=booking.pk)

    with oncommit():
        payment_confirm(
            payment_id=first.pk, provider_payment_id="pay_a", amount=booking.amount, currency="INR", raw={}, source="t"
        )

    booking.refresh_from_db()
    second.refresh_from_db()
    assert booking.status == Status.CONFIRMED
    assert Payment.objects.get(pk=first.pk).status == Payment.State.CONFIRMED
    assert second.status == Payment.State.FAILED


def test_a_payment_for_a_failed_attempt_after_the_booking_went_back_to_approved_confirms_it(approved, oncommit):
    booking, _ = approved
    payment = payment_start(booking_id=booking.pk)
    payment_fail(payment_id=payment.pk, reason="card declined")
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED

    with oncommit():
        payment_confirm(
            payment_id=payment.pk,
            provider_payment_id="pay_b",
            amount=booking.amount,
            currency="INR",
            raw={},
            source="t",
        )

    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 1


def test_a_second_attempt_paid_after_confirmation_is_refunded(approved, admin_user, oncommit):
    booking, _ = approved
    first = payment_start(booking_id=booking.pk)
    second = payment_restart(booking_id=booking.pk)
    payment_confirm(
        payment_id=second.pk, provider_payment_id="pay_2", amount=booking.amount, currency="INR", raw={}, source="t"
    )

    with oncommit():
        payment_confirm(
            payment_id=first.pk, provider_payment_id="pay_1", amount=booking.amount, currency="INR", raw={}, source="t"
        )

    first.refresh_from_db()
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert first.status == Payment.State.REFUNDED
    assert first.refund_status == Payment.RefundState.PROCESSED
    assert "refund has been started" in first.needs_attention
    assert [m for m in mail.outbox if m.to == [admin_user.email]]


def test_a_held_wrong_amount_is_never_closed_as_failed_so_its_money_goes_back(approved, admin_user, oncommit):
    """A wrong amount on one attempt, then the right amount on another: the booking is
    confirmed, and the first attempt's money stays held for staff (not closed as a failed
    attempt, which nothing would ever refund), and goes back if the booking is cancelled."""
    from bookings.services import payment_settle_choices

    booking, _ = approved
    first = payment_start(booking_id=booking.pk)
    second = payment_restart(booking_id=booking.pk)  # the client started again; then the first one's money came
    payment_confirm(payment_id=first.pk, provider_payment_id="pay_w", amount=99_900, currency="INR", raw={}, source="t")
    payment_fail(payment_id=first.pk, reason="the browser says it failed")  # late news changes nothing
    first.refresh_from_db()
    assert first.status == Payment.State.PENDING and first.provider_payment_id == "pay_w"

    payment_confirm(
        payment_id=second.pk, provider_payment_id="pay_r", amount=booking.amount, currency="INR", raw={}, source="t"
    )
    first.refresh_from_db()
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert first.status == Payment.State.PENDING and first.needs_attention
    assert payment_settle_choices(first) == ["refund", "refunded"]

    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")
    first.refresh_from_db()
    assert first.refund_status == Payment.RefundState.PROCESSED and first.refunded_amount == 99_900


def test_failure_reported_after_success_changes_nothing(approved):
    booking, _ = approved
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_c", amount=booking.amount, currency="INR", raw={}, source="t"
    )
    payment_fail(payment_id=payment.pk, reason="late failure notice")
    assert Payment.objects.get(pk=payment.pk).status == Payment.State.CONFIRMED
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED


# --- Refunds ----------------------------------------------------------------------------


@pytest.fixture
def confirmed(approved):
    booking, token = approved
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_ok", amount=booking.amount, currency="INR", raw={}, source="t"
    )
    mail.outbox = []
    return Booking.objects.get(pk=booking.pk), token, Payment.objects.get(pk=payment.pk)


def test_client_cancelling_a_confirmed_booking_before_the_cutoff_gets_a_full_refund(confirmed, oncommit):
    booking, _, payment = confirmed
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    payment.refresh_from_db()
    assert payment.status == Payment.State.REFUNDED
    assert payment.refund_status == Payment.RefundState.PROCESSED
    assert payment.refunded_amount == booking.amount
    assert payment.provider_refund_id.startswith("sandbox_rfnd_")
    assert BookingEvent.objects.filter(booking=booking, action="refund").count() == 1


@pytest.mark.parametrize(
    "language, full, rest",
    [
        (
            "en",
            "We have started a full refund of ₹1,500 for booking {ack}.",
            "We have started a refund of the rest, ₹1,000, for booking {ack} (₹500 was refunded earlier).",
        ),
        (
            "hi",
            "हमने बुकिंग {ack} के ₹1,500 का पूरा रिफ़ंड शुरू कर दिया है।",
            "हमने बुकिंग {ack} की बाक़ी राशि, ₹1,000, का रिफ़ंड शुरू कर दिया है (₹500 पहले ही लौटाए जा चुके हैं)।",
        ),
    ],
)
@pytest.mark.parametrize("earlier", [0, 50000])
def test_the_cancellation_email_says_how_much_is_being_refunded(confirmed, oncommit, language, full, rest, earlier):
    """An anxious client who paid reads in the email itself what comes back: all of it, or
    the rest after part went back earlier."""
    booking, _, payment = confirmed
    Booking.objects.filter(pk=booking.pk).update(language=language)
    if earlier:  # part refunded from the provider's dashboard, a goodwill refund say
        Payment.objects.filter(pk=payment.pk).update(
            status=Payment.State.PARTIALLY_REFUNDED,
            refund_status=Payment.RefundState.PROCESSED,
            refunded_amount=earlier,
        )
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    email = OutboundEmail.objects.get(booking=booking, kind="cancelled")
    expected = (rest if earlier else full).format(ack=booking.ack_id)
    assert expected in email.body_text and expected in email.body_html


@pytest.mark.parametrize("actor", [Actor.CLIENT, Actor.STAFF])
def test_cancelling_a_booking_whose_wrong_amount_is_held_tells_the_client_it_goes_back(
    approved, admin_user, oncommit, actor
):
    booking, _ = approved
    with oncommit():
        payment = payment_start(booking_id=booking.pk)
        payment_confirm(
            payment_id=payment.pk,
            provider_payment_id="pay_short",
            amount=booking.amount - 100,
            currency="INR",
            raw={},
            source="t",
        )
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=actor, user=admin_user, reason="Plans changed")
    assert Payment.objects.get(pk=payment.pk).refund_status  # it is going back
    email = OutboundEmail.objects.get(booking=booking, kind="cancelled")
    said = (
        "The payment we received (reference pay_short) did not match the amount due, so it could not confirm "
        "your session. We have started a full refund of it; it usually reaches you within 5 to 7 working days."
    )
    assert said in email.body_text and said in email.body_html


def test_staff_cancelling_a_confirmed_booking_always_refunds(confirmed, admin_user, oncommit):
    booking, _, payment = confirmed
    # Too close to the session for the client to cancel online: staff still refund in full.
    Slot.objects.filter(pk=booking.slot_id).update(
        start=timezone.now() + timedelta(hours=2), end=timezone.now() + timedelta(hours=3)
    )
    with pytest.raises(TooLate):
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    assert Payment.objects.get(pk=payment.pk).refund_status == ""

    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor unwell")

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED
    assert payment.refunded_amount == booking.amount


def _text(body: str) -> str:
    """An email's words, without markup, on one line."""
    import html
    import re

    body = re.sub(r"</?(strong|em|a|span)\b[^>]*>", "", body)  # inline: no space
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_the_clinic_cancelling_apologises_refunds_in_full_and_offers_to_book_again(confirmed, admin_user, oncommit):
    from bookings.models import Clinic

    Clinic.objects.update_or_create(pk=1, defaults={"email": "care@example.com", "phone": "+91 22 5555 0100"})
    booking, _, _payment = confirmed
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor unwell")
    email = OutboundEmail.objects.get(booking=booking, kind="cancelled")
    assert email.subject == f"We are sorry: the clinic has cancelled your booking {booking.ack_id}"
    again = f"/book/?mode=online&lang=en&type={booking.session_type.slug}&counsellor={booking.counsellor.slug}"
    for body in (email.body_text, _text(email.body_html)):
        assert "We are sorry: the clinic has had to cancel your session" in body
        assert f"We have started a full refund of ₹{booking.amount // 100:,}" in body
        assert "If you have any questions, reply to this email. Phone: +91 22 5555 0100." in body
        assert "you can choose another time, with the same kind of session and counsellor" in body
        assert "book again whenever you are ready" not in body
        # Staff's reason is for the clinic's records only.
        assert "unwell" not in body
    # The wizard with the same choices, as the booking page's "Book again".
    assert again in email.body_text and again.replace("&", "&amp;") in email.body_html


@pytest.mark.parametrize("actor", [Actor.CLIENT, Actor.STAFF])
def test_a_cancellation_the_client_asked_for_does_not_say_the_clinic_cancelled(confirmed, admin_user, oncommit, actor):
    booking, _, _payment = confirmed
    with oncommit():
        booking_cancel(
            booking_id=booking.pk, actor=actor, user=admin_user, reason="The client phoned", client_asked=True
        )
    email = OutboundEmail.objects.get(booking=booking, kind="cancelled")
    assert email.subject == f"Your booking {booking.ack_id} is cancelled"
    for body in (email.body_text, _text(email.body_html)):
        assert "We are sorry" not in body and "the clinic has had to cancel" not in body
        assert "We have started a full refund" in body
        assert "You are welcome to book again whenever you are ready." in body


def test_cancelling_an_unpaid_booking_refunds_nothing(approved, oncommit):
    booking, _ = approved
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    assert not Payment.objects.filter(booking=booking).exclude(refund_status="").exists()


def test_refunding_twice_refunds_once(confirmed, oncommit):
    booking, _, payment = confirmed
    with oncommit():
        payment_refund(payment_id=payment.pk, reason="first")
    with oncommit():
        payment_refund(payment_id=payment.pk, reason="second")
    assert BookingEvent.objects.filter(booking=booking, action="refund").count() == 1


def test_a_payment_arriving_after_cancellation_is_refunded_and_staff_are_told(approved, admin_user, oncommit):
    booking, _ = approved
    payment = payment_start(booking_id=booking.pk)
    booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
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
    assert payment.refund_status == Payment.RefundState.PROCESSED
    assert "after the booking was cancelled" in payment.needs_attention
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == sorted([admin_user.email, booking.email])


@pytest.mark.parametrize(
    ("ended", "said"),
    [
        (
            Status.CONFIRMED,
            "Your booking {ack} was already paid by an earlier payment, so we are refunding this one, ₹1,500, in full.",
        ),
        (
            Status.CANCELLED,
            "Your payment of ₹1,500 reached us after booking {ack} was cancelled, so we are refunding it in full.",
        ),
        (
            Status.COMPLETED,
            "Your payment of ₹1,500 reached us after booking {ack} had ended, so we are refunding it in full.",
        ),
        (
            Status.NO_SHOW,
            "Your payment of ₹1,500 reached us after booking {ack} had ended, so we are refunding it in full.",
        ),
    ],
)
def test_the_late_payment_email_says_in_plain_words_why_it_is_refunded(approved, oncommit, ended, said):
    """One sentence per case, not a status label spliced into a sentence ("had been no-show")."""
    booking, _ = approved
    late = payment_start(booking_id=booking.pk)
    if ended == Status.CONFIRMED:
        first = payment_restart(booking_id=booking.pk)
        payment_confirm(
            payment_id=first.pk, provider_payment_id="pay_1", amount=booking.amount, currency="INR", raw={}, source="t"
        )
    else:
        Booking.objects.filter(pk=booking.pk).update(status=ended)  # set-up: however it ended
    with oncommit():
        payment_confirm(
            payment_id=late.pk,
            provider_payment_id="pay_late",
            amount=booking.amount,
            currency="INR",
            raw={},
            source="t",
        )
    email = OutboundEmail.objects.get(booking=booking, kind="payment_refunding")
    said = said.format(ack=booking.ack_id) + " Refunds usually reach you within 5 to 7 working days."
    assert said in email.body_text and said in _text(email.body_html)
    assert "Payment reference: pay_late" in email.body_text


def test_a_late_payment_returned_to_a_hindi_client_is_told_to_staff_in_english(approved, admin_user, oncommit):
    """The provider's return reaches us from the client's browser, with Hindi active; the
    alert, the portal's note and the timeline are staff's, in English."""
    booking, _ = approved
    payment = payment_start(booking_id=booking.pk)
    booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    mail.outbox = []

    with oncommit(), translation.override("hi"):
        payment_confirm(
            payment_id=payment.pk,
            provider_payment_id="pay_late",
            amount=booking.amount,
            currency="INR",
            raw={},
            source="t",
        )

    payment.refresh_from_db()
    assert "after the booking was cancelled." in payment.needs_attention
    alert = OutboundEmail.objects.get(booking=booking, kind="payment_attention")
    assert "after the booking was cancelled." in alert.body_text
    assert "after the booking was cancelled." in alert.body_html


def test_an_attempt_replaced_by_a_new_one_is_not_called_a_failure(client, approved):
    """The client pressed Pay, then Back, then Pay again: the first attempt was abandoned,
    not refused by anyone, so their timeline says they started again, not that it failed."""
    booking, token = approved
    start_checkout(client, booking, token)
    client.post(reverse("bookings:pay", args=[token]))  # from the page's "Start the payment again"
    assert Payment.objects.filter(booking=booking).count() == 2
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "The payment did not go through" not in page
    assert page.count("You started the payment") == 2 and "You started the payment again" in page


def test_a_failure_the_provider_reported_is_said_on_the_timeline(client, approved):
    booking, token = approved
    page, first = start_checkout(client, booking, token)
    client.post(reverse("bookings:pay_return", args=[token, first.pk]), page.context["fail_fields"])
    start_checkout(client, booking, token)
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "The payment did not go through; you can try again" in page
    assert "You started the payment again" in page


def test_a_payment_under_way_reads_true_whether_or_not_the_client_paid(client, approved, api_token):
    """The status lookup and the chatbot say the same: no "in progress" for an attempt the
    client walked away from, and no time (an acknowledgement ID alone shows no session time,
    and the time to pay is often the session's time less 12 hours)."""
    booking, token = approved
    start_checkout(client, booking, token)
    html = client.post(reverse("bookings:status"), {"lookup": "ack", "ack_id": booking.ack_id}).content.decode()
    assert "Payment started" in html and "Payment in progress" not in html
    assert "If you have paid" in html and "you can pay from your booking page" in html
    body = client.get(f"/api/v1/bookings/{booking.ack_id}", HTTP_AUTHORIZATION=f"Bearer {api_token}").json()
    assert body["status_label"] == "Payment started"
    assert body["next_step"].startswith("If you have paid") and "go through" not in body["next_step"]
    assert str(timezone.localtime(booking.payment_due_at).year) not in body["next_step"]


# --- The booking page's payment area, and the calendar file ----------------------------


def panel(booking: Booking, token: str) -> str:
    request = RequestFactory().get("/")
    return render_to_string("bookings/_payment_actions.html", {"booking": booking, "token": token}, request=request)


def test_panel_offers_payment_with_amount_and_deadline_when_approved(approved):
    booking, token = approved
    html = panel(booking, token)
    assert reverse("bookings:pay", args=[token]) in html
    assert "₹1,500" in html
    assert str(timezone.localtime(booking.payment_due_at).year) in html
    assert "Test mode" in html


def test_panel_shows_payment_in_progress_with_continue_and_retry(approved):
    booking, token = approved
    payment = payment_start(booking_id=booking.pk)
    html = panel(Booking.objects.get(pk=booking.pk), token)
    assert "Waiting for your payment." in html
    assert reverse("bookings:pay_checkout", args=[token, payment.pk]) in html
    assert "Start the payment again" in html


def test_panel_shows_the_receipt_and_calendar_link_when_confirmed(confirmed):
    booking, token, payment = confirmed
    html = panel(booking, token)
    assert "Amount paid" in html and "₹1,500" in html
    assert payment.provider_payment_id in html
    assert reverse("bookings:booking_ics", args=[token]) in html
    assert "Pay ₹" not in html


def test_panel_shows_the_refund(confirmed, oncommit):
    booking, token, _ = confirmed
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    html = panel(Booking.objects.get(pk=booking.pk), token)
    assert "Refunded" in html and "₹1,500" in html


def test_panel_is_empty_for_a_booking_still_under_review(make_booking, manage_token):
    booking = make_booking(Status.PENDING)
    assert panel(booking, manage_token(booking)).strip() == ""


def test_calendar_download_for_a_confirmed_booking(client, confirmed):
    booking, token, _ = confirmed
    response = client.get(reverse("bookings:booking_ics", args=[token]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert f"{booking.ack_id.lower()}@mindsettler" in response.content.decode()


def test_the_calendar_entry_is_a_discreet_appointment(client, confirmed):
    """Calendars are often shared (family, work): the event others may see names no
    counselling, and the booking page tells the client so by its link."""
    from icalendar import Calendar

    booking, token, _ = confirmed
    ics = client.get(reverse("bookings:booking_ics", args=[token])).content.decode()
    [event] = Calendar.from_ical(ics).walk("VEVENT")
    assert str(event["summary"]).startswith("Appointment with ")
    words = " ".join(str(event[name]) for name in ("summary", "description", "location")).lower()
    assert not any(word in words for word in ("counsel", "therap", "mental"))
    # The clinic is named (the description and organizer), and the page says so.
    from django.conf import settings

    assert settings.CLINIC_NAME in str(event["description"]) and settings.CLINIC_NAME in ics
    html = panel(booking, token)
    assert (
        'aria-describedby="ics-discreet"' in html
        and "does not mention counselling, but it does name the clinic" in html
    )


def test_no_calendar_download_before_confirmation(client, approved):
    _, token = approved
    assert client.get(reverse("bookings:booking_ics", args=[token])).status_code == 404


def test_the_provider_comes_from_settings(settings):
    assert payments.get_provider().identifier == "sandbox"
    settings.PAYMENT_PROVIDER = "razorpay"
    assert isinstance(payments.get_provider(), payments.RazorpayProvider)
    assert set(payments.providers()) >= {"sandbox", "razorpay"}


def test_payments_taken_before_the_column_get_their_amount_from_the_payloads(approved):
    """Migration 0005: what was taken was in `raw` when it differed from the attempt's amount."""
    import importlib

    from django.apps import apps

    booking, _ = approved
    wrong, right, unpaid = (
        Payment.objects.create(booking=booking, provider="sandbox", amount=booking.amount, currency="INR", **extra)
        for extra in (
            {
                "provider_payment_id": "pay_a",
                "raw": {"captured": {"at": "2026-11-01T00:00:00+00:00", "data": {"amount": 99_900}}},
            },
            {"provider_payment_id": "pay_b"},
            {},
        )
    )
    importlib.import_module("bookings.migrations.0005_payment_captured_amount").captured_from_payloads(apps, None)

    amounts = dict(Payment.objects.values_list("pk", "captured_amount"))
    assert (amounts[wrong.pk], amounts[right.pk], amounts[unpaid.pk]) == (99_900, booking.amount, None)
