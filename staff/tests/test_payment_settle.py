"""Payments that need attention: the dashboard lists them for administrators, and an
administrator says on the booking's page what was done (refund asked for again, a refund
from the provider's dashboard recorded, or dealt with), which clears the alert."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from bookings.models import Actor, Booking, BookingEvent, Payment, Status
from bookings.services import booking_cancel, payment_confirm, payment_refund_failed, payment_start
from staff.tests.conftest import HX

WRONG_AMOUNT = 99_900  # ₹999, for a ₹1,500 booking


def settle_url(payment: Payment) -> str:
    return reverse("staff:booking_payment_settle", args=[payment.booking_id, payment.pk])


def detail_url(booking: Booking) -> str:
    return reverse("staff:booking_detail", args=[booking.pk])


def settle(client, payment: Payment, how: str, note: str = "Spoke to the client by phone.", **extra):
    prefix = f"settle-{payment.pk}"
    data = {f"{prefix}-how": how, f"{prefix}-note": note, **{f"{prefix}-{k}": v for k, v in extra.items()}}
    return client.post(settle_url(payment), data)


def captured(payment: Payment, amount: int, provider_payment_id: str) -> None:
    """The provider reports `amount` captured for `payment` (as its return or webhook would)."""
    payment_confirm(
        payment_id=payment.pk,
        provider_payment_id=provider_payment_id,
        amount=amount,
        currency="INR",
        raw={},
        source="test",
    )


@pytest.fixture
def held(make_booking, counsellor, manage_token, oncommit):
    """A wrong amount paid: held, the booking not confirmed, administrators alerted."""
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    payment = payment_start(booking_id=booking.pk)
    with oncommit():
        captured(payment, WRONG_AMOUNT, "sandbox_pay_wrong")
    mail.outbox = []
    payment.refresh_from_db()
    assert payment.needs_attention and payment.status == Payment.State.PENDING
    return Booking.objects.get(pk=booking.pk), payment, manage_token(booking)


@pytest.fixture
def refund_failed(make_booking, counsellor, admin_user, oncommit):
    """A paid booking cancelled, its refund then reported failed by the provider."""
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    payment = payment_start(booking_id=booking.pk)
    captured(payment, booking.amount, "sandbox_pay_ok")
    with oncommit():
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")
    refund_id = Payment.objects.get(pk=payment.pk).provider_refund_id
    with oncommit():
        payment_refund_failed(provider="sandbox", provider_payment_id="sandbox_pay_ok", refund_id=refund_id, raw={})
    mail.outbox = []
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED and payment.needs_attention
    return Booking.objects.get(pk=booking.pk), payment


# --- Where administrators find them ---------------------------------------------------------


def test_the_dashboard_lists_them_for_administrators_only(admin_client, counsellor_client, held):
    booking, payment, _ = held
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert "Payments that need attention" in html
    assert f'{detail_url(booking)}#settle-{payment.pk}"' in html
    assert "but the booking costs" in html
    assert "Payments that need attention" not in counsellor_client.get(reverse("staff:dashboard")).content.decode()


def test_the_booking_page_offers_what_can_be_done(admin_client, counsellor_client, held):
    booking, payment, _ = held
    html = admin_client.get(detail_url(booking)).content.decode()
    assert f'id="settle-{payment.pk}"' in html
    for label in ("Ask Sandbox to refund ₹999 now", "I refunded ₹999 from Sandbox&#x27;s dashboard"):
        assert label in html
    assert "dealt with" not in html  # held money goes back; it is never just "dealt with"
    assert f'for="id_settle-{payment.pk}-note"' in html and f'for="id_settle-{payment.pk}-reference"' in html

    html = counsellor_client.get(detail_url(booking)).content.decode()
    assert f'id="settle-{payment.pk}"' not in html and "An administrator will deal with it." in html


@pytest.fixture
def late_payment(make_booking, counsellor, admin_user, oncommit):
    """A payment arriving after the booking was cancelled: refunded automatically, staff told."""
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    payment = payment_start(booking_id=booking.pk)
    booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")
    with oncommit():
        captured(payment, booking.amount, "sandbox_late")
    payment.refresh_from_db()
    assert payment.needs_attention and payment.refund_status == Payment.RefundState.PROCESSED
    return booking, payment


def test_a_payment_whose_refund_is_already_started_can_only_be_marked_dealt_with(admin_client, late_payment):
    booking, payment = late_payment
    html = admin_client.get(detail_url(booking)).content.decode()
    assert "dealt with" in html and "Ask Sandbox to refund" not in html
    assert f'id_settle-{payment.pk}-reference"' not in html

    response = settle(admin_client, payment, "refund")
    assert response.status_code == 400
    assert "That can no longer be done for this payment" in response.content.decode()
    payment.refresh_from_db()
    assert payment.needs_attention


# --- What an administrator does --------------------------------------------------------------


def test_asking_for_the_refund_again_returns_the_money_and_clears_the_alert(
    admin_client, admin_user, refund_failed, manage_token
):
    booking, payment = refund_failed
    response = settle(admin_client, payment, "refund", note="Balance topped up; asked again.")
    assert response.status_code == 302

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED  # the sandbox refunds at once
    assert payment.refunded_amount == booking.amount and payment.provider_refund_id.startswith("sandbox_rfnd_")
    assert not payment.needs_attention
    event = BookingEvent.objects.get(booking=booking, action="refund_requested")
    assert event.actor_user == admin_user and "Balance topped up" in event.reason
    page = admin_client.get(detail_url(booking)).content.decode()
    assert "Refund asked for." in page and f'id="settle-{payment.pk}"' not in page
    client_page = admin_client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    assert "has been refunded" in client_page and "Balance topped up" not in client_page


def test_late_news_of_the_refund_that_failed_does_not_undo_the_one_asked_for_since(admin_client, refund_failed):
    booking, payment = refund_failed
    failed_refund = Payment.objects.get(pk=payment.pk).raw  # the first refund's id went with its failure
    first_id = next(v["data"]["id"] for k, v in failed_refund.items() if k.startswith("refund#") or k == "refund")
    settle(admin_client, payment, "refund", note="Asked again.")
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.provider_refund_id != first_id

    # The provider repeats that the first refund failed (a webhook retried, or the sweep's
    # answer), or reports a failure naming no refund at all.
    payment_refund_failed(provider="sandbox", provider_payment_id="sandbox_pay_ok", refund_id=first_id, raw={})
    payment_refund_failed(provider="sandbox", provider_payment_id="sandbox_pay_ok", refund_id="", raw={})

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == booking.amount
    assert not payment.needs_attention


def test_a_held_wrong_amount_refunded_now_lets_the_client_pay_the_right_one(admin_client, client, held):
    booking, payment, token = held
    settle(admin_client, payment, "refund", note="Client paid the old price; refunded, they will pay again.")

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.refunded_amount == WRONG_AMOUNT
    booking.refresh_from_db()
    assert booking.status == Status.APPROVED  # nothing under way any more: the client may pay again
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "₹999 has been refunded" in page and "Please do not pay again" not in page
    assert "Pay ₹1,500" in page
    paying = client.post(reverse("bookings:pay", args=[token]))
    attempt = Payment.objects.filter(booking=booking).latest("created_at")
    assert attempt.pk != payment.pk  # a new attempt, at its checkout
    assert paying.status_code == 302 and paying["Location"] == reverse(
        "bookings:pay_checkout", args=[token, attempt.pk]
    )
    assert Booking.objects.get(pk=booking.pk).status == Status.PAYMENT_PENDING


def test_a_refund_made_from_the_dashboard_is_recorded_with_its_reference(admin_client, held, client):
    booking, payment, token = held
    response = settle(admin_client, payment, "refunded", reference=" rfnd_Dash00000001 ", note="Refunded by hand.")
    assert response.status_code == 302

    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.PROCESSED and payment.status == Payment.State.REFUNDED
    assert payment.refunded_amount == WRONG_AMOUNT and payment.provider_refund_id == "rfnd_Dash00000001"
    assert not payment.needs_attention
    event = BookingEvent.objects.get(booking=booking, action="refund_recorded")
    assert "₹" not in event.reason and "INR 999.00" in event.reason and "rfnd_Dash00000001" in event.reason
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "Refund reference: rfnd_Dash00000001." in page


def test_held_money_is_never_just_dealt_with(admin_client, held):
    _, payment, _ = held
    response = settle(admin_client, payment, "dealt_with", note="Client will pay the difference at the clinic.")
    assert response.status_code == 400 and "That can no longer be done for this payment" in response.content.decode()
    payment.refresh_from_db()
    assert payment.needs_attention and payment.refund_status == ""


def test_marking_an_alert_dealt_with_only_clears_it(admin_client, late_payment):
    booking, payment = late_payment
    response = settle(admin_client, payment, "dealt_with", note="Seen: the refund went through.")
    assert response.status_code == 302

    payment.refresh_from_db()
    assert not payment.needs_attention and payment.refund_status == Payment.RefundState.PROCESSED
    assert BookingEvent.objects.filter(booking=booking, action="payment_settled").count() == 1
    assert "Payments that need attention" not in admin_client.get(reverse("staff:dashboard")).content.decode()


def test_with_htmx_the_page_answers_in_place(admin_client, held):
    _, payment, _ = held
    response = admin_client.post(
        settle_url(payment),
        {f"settle-{payment.pk}-how": "refund", f"settle-{payment.pk}-note": "Asked again."},
        **HX,
    )
    assert response.status_code == 200 and "Refund asked for." in response.content.decode()
    assert response["HX-Trigger"] == "bookingChanged"


# --- Refused, with the reason next to the form -------------------------------------------------


def test_a_note_is_required_and_nothing_changes_without_one(admin_client, held):
    _, payment, _ = held
    response = settle(admin_client, payment, "refund", note="  ")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Say briefly what you did" in html and f'id="id_settle-{payment.pk}-note-error"' in html
    assert f'id="id_settle-{payment.pk}-note-group"' in html
    payment.refresh_from_db()
    assert payment.needs_attention


def test_a_reference_goes_with_a_recorded_refund_only(admin_client, held):
    _, payment, _ = held
    response = settle(admin_client, payment, "refund", reference="rfnd_1")
    assert response.status_code == 400 and "A refund reference goes with" in response.content.decode()


def test_an_alert_dealt_with_meanwhile_says_so(admin_client, held):
    booking, payment, _ = held
    settle(admin_client, payment, "refund")
    response = settle(admin_client, payment, "refunded")  # a second administrator, on a page shown before
    assert response.status_code == 409
    assert "someone has already dealt with it" in response.content.decode()
    assert BookingEvent.objects.filter(booking=booking, action__in=("refund_recorded", "refund_requested")).count() == 1


def test_only_administrators_may_settle(counsellor_client, held):
    _, payment, _ = held
    assert settle(counsellor_client, payment, "refund").status_code == 403
    payment.refresh_from_db()
    assert payment.needs_attention


def test_a_payment_of_another_booking_is_not_found(admin_client, held, make_booking):
    _, payment, _ = held
    other = make_booking(Status.PENDING)
    url = reverse("staff:booking_payment_settle", args=[other.pk, payment.pk])
    assert admin_client.post(url, {}).status_code == 404


def test_settling_is_post_only(admin_client, held):
    _, payment, _ = held
    response = admin_client.get(settle_url(payment))
    assert response["Location"] == reverse("staff:booking_detail", args=[payment.booking_id])
    assert admin_client.delete(settle_url(payment)).status_code == 405
    payment.refresh_from_db()
    assert payment.refund_status == ""


def test_a_held_wrong_amount_refunded_from_the_dashboard_lets_the_client_pay_again(client, held):
    """The provider's news of a refund staff made on its dashboard settles it as settling
    here would: the client's page shows the refund of what was taken, and offers paying."""
    from bookings.services import payment_refund_processed

    booking, payment, token = held
    payment_refund_processed(provider="sandbox", provider_payment_id="sandbox_pay_wrong", refund_id="rfnd_dash", raw={})

    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED
    payment.refresh_from_db()
    assert payment.provider_refund_id == "rfnd_dash" and payment.refunded_amount == WRONG_AMOUNT
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "₹999 has been refunded" in page and "Pay ₹1,500" in page


def test_the_client_is_told_the_amount_that_was_taken(client, held):
    """A refund decided but not yet sent, then one that failed: both name what was taken."""
    booking, payment, token = held
    booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")  # its refund is decided, sent after commit
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "A full refund of ₹999 is on its way" in page

    Payment.objects.filter(pk=payment.pk).update(provider_refund_id="rfnd_x")  # sent, then reported failed
    payment_refund_failed(provider="sandbox", provider_payment_id="sandbox_pay_wrong", refund_id="rfnd_x", raw={})
    page = client.get(reverse("bookings:booking_page", args=[token])).content.decode()
    assert "The automatic refund of ₹999 did not go through" in page


def test_the_client_hears_that_their_money_is_going_back_and_how_to_pay(admin_client, held):
    booking, payment, _ = held
    mail.outbox = []
    settle(admin_client, payment, "refund", note="Client paid the old price.")

    [email] = [m for m in mail.outbox if m.to == [booking.email]]
    assert email.subject == f"We are refunding your payment for {booking.ack_id}"
    assert "We have started a full refund of ₹999" in email.body
    assert "please pay ₹1,500 from your booking page" in email.body
    assert "Client paid the old price" not in email.body  # staff's note stays with staff


def test_a_recorded_refund_is_announced_with_its_reference(admin_client, held):
    booking, payment, _ = held
    mail.outbox = []
    settle(admin_client, payment, "refunded", reference="rfnd_Dash00000001", note="By hand.")

    [email] = [m for m in mail.outbox if m.to == [booking.email]]
    assert email.subject == f"Your payment for {booking.ack_id} has been refunded"
    assert "We have refunded ₹999" in email.body and "Refund reference: rfnd_Dash00000001." in email.body


def test_an_alert_only_dealt_with_emails_nobody(admin_client, late_payment):
    _, payment = late_payment
    mail.outbox = []
    settle(admin_client, payment, "dealt_with", note="Seen.")
    assert mail.outbox == []
