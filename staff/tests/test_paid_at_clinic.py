"""Money handed over at the clinic's desk: an administrator records it on the booking's
page, which confirms the booking as a payment online does; its refund, if the booking is
cancelled, is given back at the clinic and recorded, never asked of a provider online."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings.errors import BookingError, TransitionNotAllowed
from bookings.models import CLINIC_PROVIDER, Actor, Booking, BookingEvent, Payment, Status
from bookings.services import (
    Settle,
    booking_cancel,
    booking_transition,
    payment_fail,
    payment_record_at_clinic,
    payment_settle_choices,
    payment_start,
)
from staff.tests.conftest import HX
from staff.tests.test_payment_settle import captured


def url(booking: Booking) -> str:
    return reverse("staff:booking_paid_at_clinic", args=[booking.pk])


def detail_url(booking: Booking) -> str:
    return reverse("staff:booking_detail", args=[booking.pk])


def paid(client, booking: Booking, *, method: str = "cash", reference: str = "", received: bool = True, **extra):
    data = {
        "clinic_payment-version": booking.version,
        "clinic_payment-method": method,
        "clinic_payment-reference": reference,
    }
    if received:
        data["clinic_payment-received"] = "on"
    return client.post(url(booking), data, **extra)


@pytest.fixture
def approved(make_booking, counsellor):
    return make_booking(Status.APPROVED, counsellor=counsellor)


def test_recording_it_confirms_the_booking_as_a_payment_online_does(admin_client, admin_user, approved, oncommit):
    with oncommit():
        response = paid(admin_client, approved, method="upi", reference="R-1042")
    assert response.status_code == 302
    booking = Booking.objects.get(pk=approved.pk)
    assert booking.status == Status.CONFIRMED

    payment = booking.payments.get()
    assert (payment.provider, payment.provider_payment_id, payment.status) == (CLINIC_PROVIDER, "R-1042", "confirmed")
    assert payment.amount == payment.captured_amount == booking.amount and payment.confirmed_at
    assert payment.raw["recorded"]["data"] == {"by": admin_user.pk, "method": "upi", "receipt": "R-1042"}

    # The same two moves as paying online, both by the administrator who recorded it.
    moves = list(booking.events.filter(action="transition").order_by("pk"))
    assert [(e.from_status, e.to_status, e.actor, e.actor_user) for e in moves[-2:]] == [
        (Status.APPROVED, Status.PAYMENT_PENDING, Actor.STAFF, admin_user),
        (Status.PAYMENT_PENDING, Status.CONFIRMED, Actor.STAFF, admin_user),
    ]
    assert moves[-1].reason == "Paid INR 1,500.00 at the clinic (upi, receipt R-1042)"

    # The client's confirmation, as after paying online, with the calendar invitation.
    (email,) = [m for m in mail.outbox if m.to == [booking.email]]
    assert "Your session is confirmed" in email.body
    assert "Paid: ₹1,500 at the clinic (receipt R-1042)" in email.body
    assert "payment reference" not in email.body
    assert any(name.endswith(".ics") for name, *_ in email.attachments)

    page = admin_client.get(detail_url(booking)).content.decode()
    assert "At the clinic · receipt R-1042" in page
    assert 'id="action-clinic-payment"' not in page  # confirmed: nothing more to pay


def test_without_a_receipt_number_the_client_reads_no_made_up_reference(
    admin_client, approved, client, manage_token, oncommit
):
    with oncommit():
        paid(admin_client, approved)
    payment = Payment.objects.get(booking=approved)
    assert payment.provider_payment_id.startswith("clinic_") and payment.reference == ""
    (email,) = mail.outbox
    assert "Paid: ₹1,500 at the clinic\n" in email.body

    page = client.get(reverse("bookings:booking_page", args=[manage_token(approved)])).content.decode()
    assert "How you paid" in page and "At the clinic" in page
    assert "Payment reference" not in page and "Receipt number" not in page and payment.provider_payment_id not in page


def test_the_client_page_shows_the_receipt_number(admin_client, approved, client, manage_token):
    paid(admin_client, approved, reference="R-77")
    page = client.get(reverse("bookings:booking_page", args=[manage_token(approved)])).content.decode()
    assert "Receipt number" in page and "R-77" in page


def test_the_payment_deadline_does_not_stop_it(admin_client, make_booking, counsellor):
    """Walked in after the time to pay passed, before the sweep released the time: the
    money is in hand."""
    late = make_booking(Status.APPROVED, counsellor=counsellor, payment_due_at=timezone.now() - timedelta(hours=1))
    paid(admin_client, late)
    assert Booking.objects.get(pk=late.pk).status == Status.CONFIRMED


def test_an_online_attempt_left_open_is_closed_and_its_late_money_refunded(admin_client, approved, oncommit):
    attempt = payment_start(booking_id=approved.pk)
    booking = Booking.objects.get(pk=approved.pk)
    assert booking.status == Status.PAYMENT_PENDING
    page = admin_client.get(detail_url(booking)).content.decode()
    assert 'id="action-clinic-payment"' in page and "the payment they started online is closed" in page

    paid(admin_client, booking)
    attempt.refresh_from_db()
    assert attempt.status == Payment.State.FAILED
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED

    # The client finished paying online after all: too late, refunded, the booking kept.
    with oncommit():
        captured(attempt, booking.amount, "sandbox_pay_late")
    attempt.refresh_from_db()
    assert attempt.refund_status == Payment.RefundState.PROCESSED and attempt.needs_attention
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert (
        Booking.objects.get(pk=booking.pk).payments.filter(status=Payment.State.CONFIRMED).get().provider
        == CLINIC_PROVIDER
    )


def test_what_is_wrong_is_said_next_to_it_and_nothing_changes(admin_client, approved):
    response = paid(admin_client, approved, method="", received=False)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_clinic_payment-method-error"' in html and "Choose how the client paid." in html
    assert 'id="id_clinic_payment-received-error"' in html and "Tick this once the money is in hand." in html
    assert "I have received ₹1,500 from the client" in html
    assert Booking.objects.get(pk=approved.pk).status == Status.APPROVED and not Payment.objects.exists()
    # The summary links each problem to its field; a label that asks a question takes no colon.
    assert 'href="#id_clinic_payment-method-group">How did the client pay? Choose how the client paid.</a>' in html
    assert "pay?:" not in html


def test_a_receipt_number_recorded_before_is_refused_next_to_it(admin_client, approved, make_booking, counsellor):
    paid(admin_client, approved, reference="R-9")
    other = make_booking(Status.APPROVED, counsellor=counsellor)
    response = paid(admin_client, other, reference=" R-9 ", **HX)
    html = response.content.decode()
    assert 'id="id_clinic_payment-reference-error"' in html
    day = f"{timezone.localdate():%-d %B %Y}"
    assert (
        f"Receipt R-9 is already recorded, for {approved.ack_id} on {day}. Check the number, or add what tells "
        "the two apart (the year, say)."
    ) in html
    other.refresh_from_db()
    assert other.status == Status.APPROVED and not other.payments.exists()


def test_a_receipt_number_is_the_same_in_any_case(admin_client, approved, make_booking, counsellor):
    """ "r-9" is receipt R-9 typed again: refused, naming the number as it was recorded."""
    paid(admin_client, approved, reference="R-9")
    other = make_booking(Status.APPROVED, counsellor=counsellor)
    html = paid(admin_client, other, reference="r-9", **HX).content.decode()
    assert f"Receipt R-9 is already recorded, for {approved.ack_id} on " in html
    other.refresh_from_db()
    assert other.status == Status.APPROVED and not other.payments.exists()


def test_a_page_from_before_a_change_is_refused(admin_client, approved):
    stale_version = approved.version
    booking_transition(booking=approved, to=Status.PAYMENT_PENDING, actor=Actor.CLIENT)
    response = admin_client.post(
        url(approved),
        {"clinic_payment-version": stale_version, "clinic_payment-method": "cash", "clinic_payment-received": "on"},
    )
    assert response.status_code == 409
    assert "changed" in response.content.decode()
    assert not Payment.objects.filter(provider=CLINIC_PROVIDER).exists()


def test_counsellors_neither_see_nor_record_it(counsellor_client, approved):
    assert 'id="action-clinic-payment"' not in counsellor_client.get(detail_url(approved)).content.decode()
    assert paid(counsellor_client, approved).status_code == 403
    assert Booking.objects.get(pk=approved.pk).status == Status.APPROVED


@pytest.mark.parametrize("status", [Status.PENDING, Status.CONFIRMED, Status.CANCELLED])
def test_only_a_booking_waiting_for_payment_can_be_paid(admin_client, admin_user, make_booking, counsellor, status):
    booking = make_booking(status, counsellor=counsellor)
    assert 'id="action-clinic-payment"' not in admin_client.get(detail_url(booking)).content.decode()
    with pytest.raises(BookingError, match="so there is nothing to pay: no payment was recorded"):
        payment_record_at_clinic(booking_id=booking.pk, user=admin_user, method="cash")
    assert not booking.payments.exists()


def test_a_wrong_amount_held_is_dealt_with_first(admin_user, approved):
    attempt = payment_start(booking_id=approved.pk)
    captured(attempt, 100, "sandbox_wrong")
    with pytest.raises(BookingError, match="A payment that did not match this booking is held"):
        payment_record_at_clinic(booking_id=approved.pk, user=admin_user, method="cash")
    assert Booking.objects.get(pk=approved.pk).status == Status.PAYMENT_PENDING


def test_no_booking_is_confirmed_without_a_payment_of_its_amount(approved, admin_user):
    booking_transition(booking=approved, to=Status.PAYMENT_PENDING, actor=Actor.STAFF, user=admin_user)
    with pytest.raises(TransitionNotAllowed, match="confirmed only by a payment of its amount"):
        booking_transition(booking=approved, to=Status.CONFIRMED, actor=Actor.STAFF, user=admin_user)
    Payment.objects.create(
        booking=approved, provider=CLINIC_PROVIDER, amount=approved.amount - 100, currency="INR", status="confirmed"
    )
    with pytest.raises(TransitionNotAllowed):
        booking_transition(booking=approved, to=Status.CONFIRMED, actor=Actor.PROVIDER)
    assert Booking.objects.get(pk=approved.pk).status == Status.PAYMENT_PENDING


# --- Its refund goes back from the clinic -------------------------------------------------


@pytest.fixture
def cancelled_after_paying_at_clinic(admin_client, admin_user, approved, oncommit):
    paid(admin_client, approved, reference="R-5")
    mail.outbox = []
    with oncommit():
        booking_cancel(booking_id=approved.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor ill")
    payment = Payment.objects.get(booking=approved)
    return Booking.objects.get(pk=approved.pk), payment


def test_cancelling_asks_administrators_to_give_it_back_not_a_provider(cancelled_after_paying_at_clinic, admin_user):
    booking, payment = cancelled_after_paying_at_clinic
    assert booking.status == Status.CANCELLED
    assert payment.refund_status == Payment.RefundState.FAILED and payment.provider_refund_id == ""
    assert "taken at the clinic, so its refund of INR 1,500.00 is given back from there" in payment.needs_attention
    assert payment_settle_choices(payment) == [Settle.REFUNDED]  # asking online again would only fail again

    to_client = [m for m in mail.outbox if m.to == [booking.email]]
    assert len(to_client) == 1
    assert "You paid ₹1,500 at the clinic, so the clinic gives it back to you" in to_client[0].body
    assert "5 to 7 working days" not in to_client[0].body
    alert = [m for m in mail.outbox if m.to == [admin_user.email]]
    assert alert and "money to give back at the clinic" in alert[0].subject


def test_the_client_page_says_the_clinic_gives_it_back(cancelled_after_paying_at_clinic, client, manage_token):
    booking, _ = cancelled_after_paying_at_clinic
    page = client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    assert "Refund being arranged" in page and "the clinic gives it back to you" in page
    assert "The automatic refund of" not in page


def test_recording_the_money_given_back(admin_client, cancelled_after_paying_at_clinic, client, manage_token, oncommit):
    booking, payment = cancelled_after_paying_at_clinic
    page = admin_client.get(detail_url(booking)).content.decode()
    assert "The clinic gave ₹1,500 back to the client: record it" in page and "Ask Clinic" not in page
    mail.outbox = []
    prefix = f"settle-{payment.pk}"
    with oncommit():
        response = admin_client.post(
            reverse("staff:booking_payment_settle", args=[booking.pk, payment.pk]),
            {f"{prefix}-how": "refunded", f"{prefix}-reference": "CASH-5", f"{prefix}-note": "Given back in cash."},
        )
    assert response.status_code == 302
    payment.refresh_from_db()
    assert (payment.status, payment.refund_status, payment.refunded_amount) == ("refunded", "processed", 1500_00)
    (email,) = mail.outbox
    assert "The clinic has given back the ₹1,500 you paid there" in email.body and "Banks" not in email.body

    page = client.get(reverse("bookings:booking_page", args=[manage_token(booking)])).content.decode()
    assert "The clinic has given back the ₹1,500 you paid there." in page and "CASH-5" in page


def test_its_refund_is_never_sent_online_nor_asked_for_in_a_loop(admin_client, admin_user, approved, oncommit):
    """Left "refund started" (its task lost, say), the sweep asks the clinic provider once:
    it refuses for good, and the money waits for the desk, with one alert."""
    from bookings.services import payment_refunds_check, payment_refunds_retry

    paid(admin_client, approved)
    mail.outbox = []
    booking_cancel(booking_id=approved.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor ill")  # no task run
    payment = Payment.objects.get(booking=approved)
    assert payment.refund_status == Payment.RefundState.PENDING
    for _ in range(2):
        Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - timedelta(days=1))
        with oncommit():
            assert payment_refunds_retry() == 0 and payment_refunds_check() == 0
    payment.refresh_from_db()
    assert payment.refund_status == Payment.RefundState.FAILED and payment.provider_refund_id == ""
    assert BookingEvent.objects.filter(booking_id=payment.booking_id, action="refund").count() == 0
    assert len([m for m in mail.outbox if "money to give back at the clinic" in m.subject]) == 1


def test_the_client_reads_it_in_their_language(admin_client, make_booking, counsellor, oncommit):
    booking = make_booking(Status.APPROVED, counsellor=counsellor, language="hi")
    with oncommit():
        paid(admin_client, booking, reference="R-3")
    (email,) = mail.outbox
    assert "₹1,500 क्लिनिक में (रसीद R-3)" in email.body


# --- A client who walks in and pays at once -------------------------------------------------


def walk_in(session_type, counsellor, at, **changes):
    """The new-booking form as an administrator sends it for a client at the desk who has paid."""
    from staff.tests.test_phoned_requests import typed

    paid_now = {
        "consent_by": "consent_in_person",
        "mode": "in_person",
        "counsellor": counsellor.pk,
        "slot": at.pk,
        "status": "paid_at_clinic",
        "clinic_method": "cash",
        "clinic_reference": "R-200",
    }
    return typed(session_type, **{**paid_now, **changes})


@pytest.fixture
def this_afternoon(counsellor):
    """A time a few hours away: too soon for anyone to pay online before it."""
    from bookings.models import Slot

    start = (timezone.now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


def test_a_walk_in_who_pays_at_once_is_booked_and_confirmed_in_one_step(
    admin_client, admin_user, session_type, counsellor, this_afternoon, oncommit
):
    with oncommit():
        response = admin_client.post(reverse("staff:booking_new"), walk_in(session_type, counsellor, this_afternoon))
    assert response.status_code == 302
    booking = Booking.objects.get(email="ravi@example.com")
    assert booking.status == Status.CONFIRMED and booking.slot == this_afternoon
    payment = booking.payments.get()
    assert (payment.provider, payment.reference, payment.amount) == (CLINIC_PROVIDER, "R-200", session_type.price)
    assert [e.action for e in booking.events.order_by("pk")] == [
        "created",
        "consent_in_person",
        "transition",
        "transition",
    ]
    # One email: confirmed, with the privacy notice they agreed to, as a staff-made booking's first email has.
    (email,) = [m for m in mail.outbox if m.to == ["ravi@example.com"]]
    assert "Your session is confirmed" in email.body
    assert "Paid: ₹1,500 at the clinic (receipt R-200)" in email.body
    assert "you agreed to our privacy notice" in email.body
    assert "please pay" not in email.body.lower()
    # The counsellor hears of a session in their time today, as of any an administrator approves.
    (told,) = [m for m in mail.outbox if m.to != ["ravi@example.com"]]
    assert told.to == [counsellor.user.email] and f"approved booking {booking.ack_id} into your time" in told.body


def test_booking_that_soon_to_pay_online_still_says_why_and_what_else_to_do(
    admin_client, session_type, counsellor, this_afternoon
):
    response = admin_client.post(
        reverse("staff:booking_new"), walk_in(session_type, counsellor, this_afternoon, status=Status.APPROVED)
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "leaves the client no time to pay online" in html and "Paid at the clinic now" in html
    assert not Booking.objects.filter(email="ravi@example.com").exists()


def test_paying_at_once_needs_a_time_and_how(admin_client, session_type, counsellor, this_afternoon):
    response = admin_client.post(
        reverse("staff:booking_new"), walk_in(session_type, counsellor, this_afternoon, slot="", clinic_method="")
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_slot-error"' in html and "Choose the time they have paid for." in html
    assert 'id="id_clinic_method-error"' in html and "Choose how the client paid." in html
    assert not Booking.objects.filter(email="ravi@example.com").exists()


def test_the_error_summary_lists_the_problems_in_the_pages_order(admin_client, session_type, counsellor):
    response = admin_client.post(reverse("staff:booking_new"), {"status": "paid_at_clinic"})
    html = response.content.decode()
    summary = html[html.index('class="error-summary"') :]
    summary = summary[: summary.index("</div>")]
    asked = ["Client&#x27;s name", "says they are 18", "Time slot", "If paid now: how?", "I read the privacy"]
    assert sorted(asked, key=summary.index) == asked


def test_a_receipt_number_used_before_makes_no_booking(
    admin_client, session_type, counsellor, this_afternoon, approved
):
    paid(admin_client, approved, reference="R-200")
    response = admin_client.post(reverse("staff:booking_new"), walk_in(session_type, counsellor, this_afternoon))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_clinic_reference-error"' in html and "Receipt R-200 is already recorded" in html
    assert not Booking.objects.filter(email="ravi@example.com").exists()


def test_counsellors_are_not_offered_it(counsellor_client, session_type, counsellor, this_afternoon):
    html = counsellor_client.get(reverse("staff:booking_new")).content.decode()
    assert "Paid at the clinic now" not in html and "clinic_method" not in html
    response = counsellor_client.post(reverse("staff:booking_new"), walk_in(session_type, counsellor, this_afternoon))
    assert response.status_code == 400
    assert not Booking.objects.filter(email="ravi@example.com").exists()


# --- What the client's timeline and staff read --------------------------------------------


def test_the_client_timeline_says_they_paid_at_the_clinic(admin_client, approved, client, manage_token):
    paid(admin_client, approved, reference="R-1")
    page = client.get(reverse("bookings:booking_page", args=[manage_token(approved)])).content.decode()
    assert "Paid at the clinic: your session is confirmed" in page
    assert "You started the payment" not in page  # they paid at the desk; the clinic recorded it


def test_nor_that_they_started_a_payment_again_after_an_online_attempt_failed(
    admin_client, approved, client, manage_token
):
    attempt = payment_start(booking_id=approved.pk)
    payment_fail(payment_id=attempt.pk, reason="declined")
    paid(admin_client, Booking.objects.get(pk=approved.pk))
    page = client.get(reverse("bookings:booking_page", args=[manage_token(approved)])).content.decode()
    assert "You started the payment again" not in page
    assert page.count("You started the payment") == 1  # their own attempt online, which failed


def test_staff_cancelling_are_told_to_give_the_money_back_not_that_it_is_refunded(admin_client, approved, settings):
    paid(admin_client, approved, reference="R-1")
    booking = Booking.objects.get(pk=approved.pk)
    form = admin_client.get(detail_url(booking)).content.decode()
    assert "cancelling starts a full refund" not in form
    assert "This booking was paid at the clinic: cancelling asks you to give the money back from there" in form
    # As in production, where the refund's task runs after the response (a worker): still "refund started".
    response = admin_client.post(
        reverse("staff:booking_cancel", args=[booking.pk]),
        {"cancel-version": booking.version, "cancel-reason": "Counsellor ill"},
    )
    assert response.status_code == 302
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert "is being refunded to them" not in message and "A refund could not be made" not in message
    assert "They paid ₹1,500 at the clinic: give it back from there, then record it under Payments below." in message


def test_a_payment_online_being_confirmed_is_not_paid_twice_at_the_desk(admin_user, approved):
    attempt = payment_start(booking_id=approved.pk)
    Payment.objects.filter(pk=attempt.pk).update(authorized_at=timezone.now() - timedelta(minutes=2))
    with pytest.raises(BookingError, match="The client has just paid online"):
        payment_record_at_clinic(booking_id=approved.pk, user=admin_user, method="cash")
    assert not Payment.objects.filter(provider=CLINIC_PROVIDER).exists()


def test_the_cancel_link_page_says_the_clinic_gives_it_back(admin_client, approved, client, oncommit):
    from bookings.models import LinkToken
    from bookings.tokens import token_create

    paid(admin_client, approved)
    raw = token_create(booking=approved, purpose=LinkToken.Purpose.CANCEL, lifetime=timedelta(minutes=30))
    page = client.get(reverse("bookings:cancel_confirm", args=[raw])).content.decode()
    assert "You paid ₹1,500 at the clinic. Cancelling now gives all of it back: the clinic will contact you" in page
    assert "the way you paid" not in page
