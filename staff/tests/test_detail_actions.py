"""The booking detail page and every action on it: allowed, refused, repeated, and stale."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings.models import Actor, Booking, BookingEvent, BookingView, Mode, OutboundEmail, Slot, Status
from bookings.services import booking_approve, payment_confirm, payment_start
from bookings.templatetags.mindsettler import money, when
from conftest import next_weekday_at
from staff.tests.conftest import CONSENTED, HX
from staff.tests.test_payment_settle import captured


def url(name: str, booking) -> str:
    return reverse(f"staff:booking_{name}", args=[booking.pk])


@pytest.fixture
def pending(make_booking, counsellor, slot):
    return make_booking(
        Status.PENDING,
        counsellor=counsellor,
        preferred_slot=slot,
        concerns="I have trouble sleeping",
        preferred_times="Weekday mornings",
        client_name="Kavya Iyer",
        email="kavya@example.com",
    )


# --- Detail ---------------------------------------------------------------------------


def test_detail_shows_everything_and_records_the_view(counsellor_client, counsellor_user, pending):
    response = counsellor_client.get(url("detail", pending))
    html = response.content.decode()
    assert response.status_code == 200
    for text in (
        "Kavya Iyer",
        "kavya@example.com",
        "I have trouble sleeping",
        "Weekday mornings",
        "Timeline",
        "Payments",
    ):
        assert text in html
    assert BookingView.objects.filter(booking=pending, user=counsellor_user).count() == 1
    assert "Who opened this booking" not in html  # the log is for administrators


def test_a_head_request_shows_nothing_and_is_not_recorded(counsellor_client, pending):
    response = counsellor_client.head(url("detail", pending))
    assert response.status_code == 200 and response.content == b""
    assert not BookingView.objects.exists()


def test_no_request_headers_open_a_booking_unrecorded(admin_client, admin_user, pending, other_counsellor):
    """The page's "Show the times of" swaps a list in place (htmx, ?times_of=) without a second
    entry in the log, as the page it is on was recorded. Asked for by hand, with those headers,
    it answers the whole booking, the client's words with it: recorded then."""
    response = admin_client.get(url("detail", pending), {"times_of": other_counsellor.pk}, **HX)
    assert response.status_code == 200 and "I have trouble sleeping" in response.content.decode()
    assert BookingView.objects.filter(booking=pending, user=admin_user).count() == 1
    # From the page just opened, the list again: no more entries.
    admin_client.get(url("detail", pending), {"times_of": pending.counsellor_id}, **HX)
    assert BookingView.objects.filter(booking=pending, user=admin_user).count() == 1
    # A page opened long ago does not count: the swap comes from a page of this sign-in.
    BookingView.objects.update(viewed_at=timezone.now() - timedelta(days=2))
    admin_client.get(url("detail", pending), {"times_of": other_counsellor.pk}, **HX)
    assert BookingView.objects.filter(booking=pending, user=admin_user).count() == 2


def test_administrators_see_the_views_log(admin_client, counsellor_client, pending):
    counsellor_client.get(url("detail", pending))
    html = admin_client.get(url("detail", pending)).content.decode()
    assert "Who opened this booking" in html and "Asha" in html


def test_only_actions_valid_for_the_status_are_offered(admin_client, make_booking, counsellor, pending):
    html = admin_client.get(url("detail", pending)).content.decode()
    assert 'id="action-approve"' in html and 'id="action-reject"' in html and 'id="action-cancel"' in html
    assert 'id="action-complete"' not in html
    confirmed = make_booking(Status.CONFIRMED, counsellor=counsellor)
    html = admin_client.get(url("detail", confirmed)).content.decode()
    assert 'id="action-approve"' not in html and 'id="action-reject"' not in html
    assert 'id="action-complete"' in html and 'id="action-cancel"' in html
    rejected = make_booking(Status.REJECTED, counsellor=counsellor)
    html = admin_client.get(url("detail", rejected)).content.decode()
    assert "No status changes are possible" in html


# --- The full page and the calendar's side panel ----------------------------------------

# What htmx sends: the calendar loads a booking into #booking-panel and the panel's forms
# swap it there again; the full page's forms swap #booking-detail.
PANEL = {**HX, "HTTP_HX_TARGET": "booking-panel"}
ON_PAGE = {**HX, "HTTP_HX_TARGET": "booking-detail"}
TWO_COLUMNS = "lg:grid-cols-3"


def test_the_full_page_has_two_columns_and_nothing_focused(counsellor_client, pending):
    html = counsellor_client.get(url("detail", pending)).content.decode()
    assert TWO_COLUMNS in html and "Open full page" not in html
    assert 'hx-target="#booking-detail" hx-swap="outerHTML"' in html
    assert "autofocus" not in html


def test_an_action_on_the_full_page_keeps_its_layout_and_focuses_the_notice(counsellor_client, pending, slot):
    response = counsellor_client.post(
        url("approve", pending), {"approve-slot": slot.pk, "approve-version": pending.version}, **ON_PAGE
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "bookingChanged"
    html = response.content.decode()
    assert "<html" not in html and html.lstrip().startswith('<div id="booking-detail"')
    assert TWO_COLUMNS in html and "Open full page" not in html
    assert 'hx-target="#booking-detail" hx-swap="outerHTML"' in html
    assert '<p class="notice" role="status" tabindex="-1" autofocus>Approved.' in html
    assert html.count("autofocus") == 1


def test_a_refused_action_on_the_full_page_focuses_its_error(counsellor_client, pending):
    response = counsellor_client.post(
        url("reject", pending), {"reject-version": pending.version, "reject-reason": ""}, **ON_PAGE
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert TWO_COLUMNS in html and "Open full page" not in html
    assert '<div class="error-summary" role="alert" tabindex="-1" autofocus>' in html
    assert 'href="#id_reject-reason">Reason: Give a reason' in html
    assert html.count("autofocus") == 1


def test_the_calendars_side_panel_stays_a_panel_after_an_action(counsellor_client, pending):
    html = counsellor_client.get(url("detail", pending), **PANEL).content.decode()
    assert "<html" not in html and "Open full page" in html and TWO_COLUMNS not in html
    assert 'hx-target="#booking-panel" hx-swap="innerHTML"' in html
    response = counsellor_client.post(
        url("cancel", pending), {"cancel-version": pending.version, "cancel-reason": ""}, **PANEL
    )
    html = response.content.decode()
    assert "Open full page" in html and TWO_COLUMNS not in html
    assert 'hx-target="#booking-panel" hx-swap="innerHTML"' in html
    assert '<div class="error-summary" role="alert" tabindex="-1" autofocus>' in html
    response = counsellor_client.post(
        url("cancel", pending), {"cancel-version": pending.version, "cancel-reason": "Client phoned"}, **PANEL
    )
    html = response.content.decode()
    assert "Open full page" in html and '<p class="notice" role="status" tabindex="-1" autofocus>Cancelled.' in html


def test_a_refusal_by_the_service_is_focused_next_to_its_action(admin_client, pending):
    response = admin_client.post(url("resend", pending), **ON_PAGE)
    html = response.content.decode()
    assert '<p class="field-error" role="alert" tabindex="-1" autofocus>No email about this booking' in html
    assert html.count("nothing to resend") == 1 and html.count("autofocus") == 1


# --- Approve --------------------------------------------------------------------------


def test_approve_defaults_to_the_preferred_slot(admin_client, pending, slot):
    html = admin_client.get(url("detail", pending)).content.decode()
    assert f'<option value="{slot.pk}" selected>' in html
    assert 'name="approve-amount"' in html  # administrators may change the amount


def test_approve_without_the_clients_time_takes_a_choice(admin_client, counsellor, make_booking, slot):
    """No time the client chose is offered: nothing is selected, so one Enter cannot approve
    the earliest time (a time nobody asked for)."""
    later = Slot.objects.create(
        counsellor=counsellor, start=slot.start + timedelta(days=1), end=slot.end + timedelta(days=1)
    )
    booking = make_booking(Status.PENDING, counsellor=counsellor, preferred_times="Evenings")
    html = admin_client.get(url("detail", booking)).content.decode()
    select = re.search(r'<select name="approve-slot".*?</select>', html, re.S).group(0)
    assert re.findall(r"<option[^>]*>", select) == [
        '<option value="" selected>',
        f'<option value="{slot.pk}">',
        f'<option value="{later.pk}">',
    ]
    assert "Choose a time</option>" in select
    response = admin_client.post(url("approve", booking), {"approve-slot": "", "approve-version": booking.version})
    assert response.status_code == 400 and "Choose a time for the session." in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_approve_offers_no_empty_choice_beside_the_clients_time(admin_client, pending, slot):
    html = admin_client.get(url("detail", pending)).content.decode()
    select = re.search(r'<select name="approve-slot".*?</select>', html, re.S).group(0)
    assert f'<option value="{slot.pk}" selected>' in select and "Choose a time" not in select


def test_counsellor_approves_with_htmx(counsellor_client, pending, slot):
    response = counsellor_client.post(
        url("approve", pending),
        {"approve-slot": slot.pk, "approve-version": pending.version, "approve-amount": "1"},
        **HX,
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "bookingChanged"
    html = response.content.decode()
    assert 'id="booking-detail"' in html and "<html" not in html and "Approved." in html
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED and pending.slot == slot
    assert pending.amount == 150000  # counsellors cannot change the amount
    assert [m.to for m in mail.outbox] == [["kavya@example.com"]]


def test_administrator_approves_with_another_amount_without_javascript(admin_client, pending, slot):
    form = {"approve-slot": slot.pk, "approve-version": pending.version, "approve-amount": "1200.50"}
    # Below the price (₹1,500): asked about at the amount first, as a phone booking's is.
    asked = admin_client.post(url("approve", pending), form)
    html = asked.content.decode()
    assert asked.status_code == 400
    said = "₹1,200.50 is less than the price of Individual session (₹1,500)."
    assert f'<span class="field-error" id="id_approve-amount-error">{said}' in html
    assert 'name="approve-below_price"' in html and "I meant to charge less than the price" in html
    pending.refresh_from_db()
    assert pending.status == Status.PENDING and pending.amount == 150000

    response = admin_client.post(url("approve", pending), {**form, "approve-below_price": "on"})
    assert response.status_code == 302 and response["Location"] == url("detail", pending)
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED and pending.amount == 120050
    assert "Approved." in admin_client.get(response["Location"]).content.decode()


def test_a_request_made_below_the_price_is_approved_at_that_amount_without_asking_again(admin_client, pending, slot):
    """Agreed when staff made the request (a phone booking, ticked then): not asked again."""
    Booking.objects.filter(pk=pending.pk).update(amount=80000)
    pending.refresh_from_db()
    form = {"approve-slot": slot.pk, "approve-version": pending.version, "approve-amount": "800"}
    response = admin_client.post(url("approve", pending), form)
    assert response.status_code == 302 and response["Location"] == url("detail", pending)
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED and pending.amount == 80000


@pytest.mark.parametrize("amount", ["0", "0.99"])
def test_an_amount_under_one_rupee_is_refused_next_to_the_field(admin_client, pending, slot, amount):
    # The payment provider takes no less than ₹1 (Razorpay: 100 paise), so it could never be paid.
    response = admin_client.post(
        url("approve", pending),
        {"approve-slot": slot.pk, "approve-version": pending.version, "approve-amount": amount},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_approve-amount-error"' in html and "Enter the amount of at least 1 rupee." in html
    pending.refresh_from_db()
    assert pending.status == Status.PENDING and pending.amount == 150000


def test_two_staff_approving_different_bookings_into_one_slot(
    admin_client, counsellor_client, make_booking, counsellor, slot
):
    first = make_booking(Status.PENDING, counsellor=counsellor)
    second = make_booking(Status.PENDING, counsellor=counsellor)
    # Both pages were loaded while the slot was free.
    assert (
        admin_client.post(
            url("approve", first), {"approve-slot": slot.pk, "approve-version": first.version}
        ).status_code
        == 302
    )
    response = counsellor_client.post(
        url("approve", second), {"approve-slot": slot.pk, "approve-version": second.version}, **HX
    )
    assert response.status_code == 200
    html = response.content.decode()
    # The slot is no longer offered, so the form says so next to the action.
    assert "That slot is no longer free" in html
    second.refresh_from_db()
    assert second.status == Status.PENDING


# A slot taken between the form's check and the service's (a true race) is refused by the
# service with 409 "already taken": shown with real concurrent requests through two app
# servers in bookings/tests/test_reliability_http_races.py (PostgreSQL).


def test_preferred_slot_taken_is_shown_as_a_conflict(admin_client, make_booking, counsellor, slot, pending):
    assert pending.preferred_slot == slot
    make_booking(Status.CANCELLED, slot=slot)  # called off: the time is free again
    assert "has been taken by another booking" not in admin_client.get(url("detail", pending)).content.decode()
    make_booking(Status.CONFIRMED, slot=slot)
    html = admin_client.get(url("detail", pending)).content.decode()
    assert "has been taken by another booking" in html


def test_the_dashboard_marks_a_time_asked_for_that_is_taken(admin_client, make_booking, slot, pending):
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert pending.ack_id in html and "(taken)" not in html
    make_booking(Status.APPROVED, slot=slot)
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert "(taken)" in html.split("Waiting for review")[1]


def test_stale_version_is_refused_with_the_fresh_state(admin_client, pending, slot):
    old_version = pending.version
    from bookings.services import booking_reject

    booking_reject(booking_id=pending.pk, user=None, reason="Someone else acted")
    response = admin_client.post(url("approve", pending), {"approve-slot": slot.pk, "approve-version": old_version})
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed by someone else" in html or "cannot become approved" in html
    # Said once, at the top: approving is no longer offered.
    assert html.count("changed by someone else") + html.count("cannot become approved") == 1
    assert '<div class="error-summary" role="alert" tabindex="-1" autofocus><p>' in html
    pending.refresh_from_db()
    assert pending.status == Status.REJECTED


def test_stale_version_on_an_allowed_move(admin_client, counsellor, make_booking):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    response = admin_client.post(
        url("cancel", booking), {"cancel-reason": "Client phoned", "cancel-version": booking.version + 5}
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert html.count("changed by someone else") == 1  # at the top, not again next to the action
    assert f'name="cancel-version" value="{booking.version}"' in html  # the fresh forms carry the current version
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_a_stale_cancellation_keeps_what_was_typed_for_a_second_press(counsellor_client, counsellor, make_booking):
    """Someone else changed the booking while a long reason was being typed: the refusal
    keeps the reason and the tick, with the booking's new version, so pressing again cancels."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    seen = booking.version
    reason = "The client phoned: her father is in hospital & she will book again next month."
    type(booking).objects.filter(pk=booking.pk).update(version=seen + 1)  # as a move by someone else does
    sent = {"cancel-version": seen, "cancel-reason": reason, "cancel-client_asked": "on"}
    for headers in ({}, HX):
        response = counsellor_client.post(url("cancel", booking), sent, **headers)
        html = response.content.decode()
        assert response.status_code == (200 if headers else 409)
        assert html.count("changed by someone else") == 1
        assert "her father is in hospital &amp; she will book again next month.</textarea>" in html
        assert re.search(r'<input type="checkbox" name="cancel-client_asked"[^>]* checked', html)
        assert f'name="cancel-version" value="{seen + 1}"' in html
        assert "field-error" not in html  # nothing wrong with what was typed
    booking.refresh_from_db()
    assert booking.status == Status.CONFIRMED
    # The second press, as the page now sends it.
    response = counsellor_client.post(url("cancel", booking), {**sent, "cancel-version": seen + 1})
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Status.CANCELLED and booking.events.last().reason == reason


def test_a_stale_rejection_keeps_the_reason_chosen_and_written(admin_client, pending):
    sent = {"reject-version": pending.version, "reject-preset": "no_capacity", "reject-reason": "Try in March."}
    type(pending).objects.filter(pk=pending.pk).update(version=pending.version + 1)
    html = admin_client.post(url("reject", pending), sent).content.decode()
    assert "changed by someone else" in html
    assert re.search(r'<input type="radio" name="reject-preset" value="no_capacity"[^>]* checked', html)
    assert "Try in March.</textarea>" in html and f'name="reject-version" value="{pending.version + 1}"' in html


def test_a_stale_rejection_of_a_request_approved_meanwhile_shows_the_reason_not_sent(admin_client, pending, slot):
    """A colleague approved it meanwhile: Reject is gone, and with it the form that would keep
    the reason typed; the reason is shown at the top, to reuse (for a cancellation, say)."""
    sent = {"reject-version": pending.version, "reject-reason": "We cannot offer couples sessions."}
    booking_approve(booking_id=pending.pk, slot_id=slot.pk, user=None)
    html = admin_client.post(url("reject", pending), sent).content.decode()
    assert "changed by someone else" in html and 'name="reject-reason"' not in html
    assert "Your reason was not sent, and this action is no longer offered: “We cannot offer couples sessions.”" in html
    # While it is still offered, the form keeps it, and it is not said twice.
    stale = {"cancel-version": 1, "cancel-reason": "Clinic closed that day."}
    html = admin_client.post(url("cancel", pending), stale).content.decode()
    assert "Clinic closed that day.</textarea>" in html and "was not sent" not in html


def test_approving_a_confirmed_booking_is_refused(admin_client, counsellor, make_booking, slot):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    response = admin_client.post(url("approve", booking), {"approve-slot": slot.pk, "approve-version": booking.version})
    assert response.status_code in (400, 409)
    booking.refresh_from_db()
    assert booking.status == Status.CONFIRMED


# --- Reject ---------------------------------------------------------------------------


def test_reject_needs_a_reason(admin_client, pending):
    response = admin_client.post(url("reject", pending), {"reject-version": pending.version, "reject-reason": "  "})
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


def test_reject_with_a_reusable_reason(admin_client, pending):
    response = admin_client.post(
        url("reject", pending), {"reject-version": pending.version, "reject-preset": "no_capacity"}
    )
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == Status.REJECTED
    assert pending.events.last().reason.startswith("We have no suitable time")
    # Repeating it is refused clearly.
    again = admin_client.post(
        url("reject", pending), {"reject-version": pending.version, "reject-reason": "again"}, **HX
    )
    assert again.status_code == 200 and "cannot become rejected" in again.content.decode()


def test_a_common_reason_and_words_of_ones_own_are_both_sent(admin_client, pending):
    data = {"reject-version": pending.version, "reject-preset": "no_capacity"}
    too_long = admin_client.post(url("reject", pending), {**data, "reject-reason": "x" * 500})
    assert "With the common reason, keep your words to 444 characters." in too_long.content.decode()
    words = "Our next openings are in March; you are welcome to ask again then."
    assert admin_client.post(url("reject", pending), {**data, "reject-reason": words}).status_code == 302
    pending.refresh_from_db()
    assert pending.events.last().reason == f"We have no suitable time available in the coming weeks. {words}"


# --- Complete -------------------------------------------------------------------------


def test_complete_only_after_the_session_ends(counsellor_client, counsellor, make_booking):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    html = counsellor_client.get(url("detail", booking)).content.decode()
    assert "after the session ends" in html
    response = counsellor_client.post(url("complete", booking), {"complete-version": booking.version})
    assert response.status_code == 409
    assert "only after it has ended" in response.content.decode()
    Slot.objects.filter(pk=booking.slot_id).update(
        start=timezone.now() - timedelta(hours=2), end=timezone.now() - timedelta(hours=1)
    )
    assert "Mark as completed" in counsellor_client.get(url("detail", booking)).content.decode()
    response = counsellor_client.post(url("complete", booking), {"complete-version": booking.version})
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Status.COMPLETED


# --- Cancel ---------------------------------------------------------------------------


def test_cancel_needs_a_reason_then_cancels(admin_client, counsellor, make_booking):
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    response = admin_client.post(url("cancel", booking), {"cancel-version": booking.version, "cancel-reason": ""})
    assert response.status_code == 400 and "Give a reason for cancelling" in response.content.decode()
    response = admin_client.post(
        url("cancel", booking), {"cancel-version": booking.version, "cancel-reason": "Counsellor unwell"}, **HX
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "bookingChanged"
    booking.refresh_from_db()
    assert booking.status == Status.CANCELLED
    event = booking.events.last()
    assert event.reason == "Counsellor unwell" and event.actor_user.email == "admin@example.com"
    again = admin_client.post(url("cancel", booking), {"cancel-version": booking.version, "cancel-reason": "again"})
    assert again.status_code == 409


def test_a_request_withdrawn_by_phone_is_cancelled_as_the_client_asked(admin_client, pending, oncommit):
    """A request with no time yet has no late cancellation to record, but the client's email
    still depends on who wanted it: the form offers "The client asked to cancel" for it too,
    so a client who phoned to withdraw is not told the clinic had to cancel."""
    page = admin_client.get(url("detail", pending)).content.decode()
    assert 'name="cancel-client_asked"' in page
    with oncommit():
        response = admin_client.post(
            url("cancel", pending),
            {"cancel-version": pending.version, "cancel-reason": "Phoned to withdraw", "cancel-client_asked": "on"},
        )
    assert response.status_code == 302
    email = OutboundEmail.objects.get(booking=pending, kind="cancelled")
    assert email.subject == f"Your booking {pending.ack_id} is cancelled"
    assert "We are sorry" not in email.body_text and "Phoned" not in email.body_text
    assert not pending.events.filter(action="late_cancellation").exists()


# --- Resend and meeting link ----------------------------------------------------------


def test_resend_the_last_email(admin_client, pending, slot):
    response = admin_client.post(url("resend", pending))
    assert response.status_code == 409 and "nothing to resend" in response.content.decode()
    admin_client.post(url("approve", pending), {"approve-slot": slot.pk, "approve-version": pending.version})
    mail.outbox = []
    response = admin_client.post(url("resend", pending))
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["kavya@example.com"]
    assert OutboundEmail.objects.filter(booking=pending, kind="approved").count() == 2
    assert BookingEvent.objects.filter(booking=pending, action="email_resent").exists()


def test_a_resent_confirmation_says_what_holds_now_not_what_held_when_it_was_first_sent(
    admin_client, client, counsellor, make_booking, oncommit, settings
):
    """Confirmed without a link to join, three days ahead. Since then the link was set, the
    online cancellation cutoff raised past the session and the counsellor's name changed: the
    email sent again (and the one sent to a corrected address) says so, with a calendar
    invitation of the booking as it is now and a working link to its page."""
    counsellor.meeting_url = ""
    counsellor.save()
    start = timezone.now().replace(microsecond=0) + timedelta(hours=72)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    booking = make_booking(Status.APPROVED, slot=slot, counsellor=counsellor, mode=Mode.ONLINE)
    attempt = payment_start(booking_id=booking.pk)
    mail.outbox = []
    with oncommit():
        captured(attempt, booking.amount, "pay_1")
    [first] = mail.outbox
    assert "the link to join will be added there" in first.body and "You can cancel online until 24 hours" in first.body
    admin_client.post(url("meeting_url", booking), {"meeting-meeting_url": "https://meet.example/room-7"})
    settings.CANCELLATION_CUTOFF_HOURS = 96
    counsellor.display_name = "Asha R. Menon"
    counsellor.save()
    mail.outbox = []

    with oncommit():
        assert admin_client.post(url("resend", booking)).status_code == 302

    [again] = mail.outbox
    html = again.alternatives[0][0]
    assert again.subject == first.subject and again.to == [booking.email]
    for part in (again.body, html):
        assert "has the details and the link to join" in part and "will be added there" not in part
        assert "it can no longer be cancelled online" in part and "You can cancel online" not in part
        assert "Asha R. Menon" in part and "pay_1" in part
    [(_name, ics, _mimetype)] = again.attachments
    assert "Asha R. Menon" in unescape(ics.replace("\r\n ", ""))
    [path] = re.findall(r"http://testserver(/bookings/[A-Za-z0-9_-]{16,}/)", again.body)
    assert client.get(path).status_code == 200
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 2
    assert BookingEvent.objects.filter(booking=booking, action="email_resent", reason=first.subject).count() == 1

    mail.outbox = []
    with oncommit():
        admin_client.post(url("email", booking), {"address-email": "kavya.new@example.com"})
    [corrected] = mail.outbox
    assert corrected.to == ["kavya.new@example.com"] and "Asha R. Menon" in corrected.body
    assert "has the details and the link to join" in corrected.body


def test_an_expired_booking_is_resent_its_expiry_not_its_request_to_pay(admin_client, pending, slot, oncommit):
    from bookings.services import bookings_expire

    admin_client.post(url("approve", pending), {"approve-slot": slot.pk, "approve-version": pending.version})
    with oncommit():
        assert bookings_expire(now=timezone.now() + timedelta(days=30)) == 1
    mail.outbox = []
    assert admin_client.post(url("resend", pending)).status_code == 302
    [resent] = mail.outbox
    assert resent.subject == OutboundEmail.objects.filter(booking=pending, kind="expired").first().subject


def test_an_email_that_no_longer_says_where_the_booking_stands_is_not_resent(admin_client, make_booking, counsellor):
    """A session held: its "confirmed" email, with the calendar entry, is past."""
    from bookings.services import booking_complete

    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    OutboundEmail.objects.create(
        kind="confirmed", booking=booking, to=booking.email, subject="Confirmed", body_text="x"
    )
    page = admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert reverse("staff:booking_resend", args=[booking.pk]) in page
    Slot.objects.filter(pk=booking.slot_id).update(
        start=timezone.now() - timedelta(hours=2), end=timezone.now() - timedelta(hours=1)
    )
    booking_complete(booking_id=booking.pk, user=None)
    page = admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert reverse("staff:booking_resend", args=[booking.pk]) not in page
    mail.outbox = []
    response = admin_client.post(url("resend", booking))
    assert response.status_code == 409
    assert "(“Confirmed”) no longer says where it stands: the booking is" in response.content.decode()
    assert mail.outbox == [] and not BookingEvent.objects.filter(booking=booking, action="email_resent").exists()


def test_no_email_is_resent_for_a_booking_whose_details_were_erased(admin_client, pending, slot, oncommit):
    from bookings.services import booking_anonymise, booking_cancel

    admin_client.post(url("approve", pending), {"approve-slot": slot.pk, "approve-version": pending.version})
    with oncommit():
        booking_cancel(booking_id=pending.pk, actor=Actor.CLIENT, reason="")
    booking_anonymise(booking_id=pending.pk, reason="The client asked")
    mail.outbox = []
    page = admin_client.get(reverse("staff:booking_detail", args=[pending.pk])).content.decode()
    assert reverse("staff:booking_resend", args=[pending.pk]) not in page
    response = admin_client.post(url("resend", pending))
    assert response.status_code == 409 and "details were erased" in response.content.decode()
    assert mail.outbox == [] and not BookingEvent.objects.filter(booking=pending, action="email_resent").exists()


def test_the_email_resent_carries_a_working_booking_link(admin_client, client, pending, slot):
    """The outbox's copy of a sent email keeps no working link: a resend makes a new one."""
    admin_client.post(url("approve", pending), {"approve-slot": slot.pk, "approve-version": pending.version})
    mail.outbox = []
    assert admin_client.post(url("resend", pending)).status_code == 302
    [resent] = mail.outbox
    [path] = re.findall(r"http://testserver(/bookings/[A-Za-z0-9_-]{16,}/)", resent.body)
    assert f'href="http://testserver{path}"' in resent.alternatives[0][0]
    page = client.get(path)
    assert page.status_code == 200 and pending.ack_id in page.content.decode()


def test_after_a_move_the_email_resent_names_the_new_time(admin_client, make_booking, counsellor, slot, oncommit):
    from bookings.services import booking_reschedule

    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    with oncommit():
        booking_reschedule(booking_id=booking.pk, slot_id=slot.pk, actor=Actor.STAFF)
    mail.outbox = []

    assert admin_client.post(url("resend", booking)).status_code == 302
    [resent] = mail.outbox
    assert "new time" in resent.subject and f"New time: {when(slot.start)}" in resent.body


def test_meeting_link_per_booking(counsellor_client, counsellor, make_booking):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    html = counsellor_client.get(url("detail", booking)).content.decode()
    assert "https://meet.example/asha" in html and "the counsellor's room" in html
    response = counsellor_client.post(
        url("meeting_url", booking), {"meeting-meeting_url": "https://meet.example/special"}
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.meeting_url == "https://meet.example/special"
    bad = counsellor_client.post(url("meeting_url", booking), {"meeting-meeting_url": "javascript:alert(1)"})
    assert bad.status_code == 400
    in_person = make_booking(Status.CONFIRMED, counsellor=counsellor, mode=Mode.IN_PERSON)
    refused = counsellor_client.post(url("meeting_url", in_person), {"meeting-meeting_url": "https://x.example"})
    assert refused.status_code == 409 and "Only online sessions" in refused.content.decode()


def test_an_ended_or_erased_bookings_meeting_link_is_shown_not_changed(counsellor_client, counsellor, make_booking):
    """Nobody joins a session that has ended; and a link set on an erased booking would put
    back what erasure removed."""
    ended = make_booking(Status.COMPLETED, counsellor=counsellor, meeting_url="https://meet.example/was")
    html = counsellor_client.get(url("detail", ended)).content.decode()
    assert 'Link to join: <a href="https://meet.example/was"' in html
    assert url("meeting_url", ended) not in html
    refused = counsellor_client.post(url("meeting_url", ended), {"meeting-meeting_url": "https://meet.example/new"})
    assert refused.status_code == 409
    assert "This booking is completed, so its meeting link can no longer be changed." in refused.content.decode()
    erased = make_booking(Status.CONFIRMED, counsellor=counsellor, anonymised_at=timezone.now())
    assert url("meeting_url", erased) not in counsellor_client.get(url("detail", erased)).content.decode()
    refused = counsellor_client.post(url("meeting_url", erased), {"meeting-meeting_url": "https://meet.example/new"})
    assert refused.status_code == 409
    ended.refresh_from_db()
    erased.refresh_from_db()
    assert (ended.meeting_url, erased.meeting_url) == ("https://meet.example/was", "")


# --- Bookings made by staff -----------------------------------------------------------


def ravi(session_type, slot=None, **changes) -> dict:
    """What the new-booking form posts for Ravi, who phoned: online, approved into `slot` (a
    request without it), at the session type's price unless `amount` is given."""
    form = {
        **CONSENTED,
        "age": "on",
        "language": "en",
        "client_name": "Ravi Kumar",
        "email": "ravi@example.com",
        "session_type": session_type.pk,
        "mode": Mode.ONLINE,
        "status": Status.APPROVED if slot else Status.PENDING,
        "amount": "",
    }
    if slot is not None:
        form["slot"] = slot.pk
    return {**form, **changes}


def test_administrator_books_a_phoning_client_straight_into_a_slot(admin_client, session_type, slot):
    response = admin_client.post(
        reverse("staff:booking_new"), ravi(session_type, slot, email=" Ravi@Example.com ", phone="98765 43210")
    )
    assert response.status_code == 302
    from bookings.models import Booking

    booking = Booking.objects.get(email="ravi@example.com")
    assert booking.status == Status.APPROVED and booking.slot == slot and booking.phone == "+919876543210"
    assert booking.created_by.email == "admin@example.com"
    # The client's email, and their counsellor's: a session booked into their time by someone else.
    assert sorted(m.to[0] for m in mail.outbox) == sorted(["ravi@example.com", slot.counsellor.user.email])


def test_a_staff_booking_under_one_rupee_is_refused(admin_client, session_type, slot):
    response = admin_client.post(reverse("staff:booking_new"), ravi(session_type, slot, amount="0"))
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_amount-error"' in html and "Enter the amount of at least 1 rupee." in html
    assert not Booking.objects.filter(email="ravi@example.com").exists()


def test_a_staff_booking_below_the_price_needs_a_tick_and_the_message_says_the_amount(admin_client, session_type, slot):
    """ "1.5" typed for an ₹1,500 session made a ₹1.50 booking, and nothing said so: an amount
    below the session type's price is asked about next to the field (and in the summary) until
    "I meant to charge less than the price" is ticked; the message after says what was charged."""
    form = ravi(session_type, slot, amount="1.5")
    response = admin_client.post(reverse("staff:booking_new"), form)
    html = response.content.decode()
    assert response.status_code == 400 and not Booking.objects.filter(email="ravi@example.com").exists()
    said = "₹1.50 is less than the price of Individual session (₹1,500)."
    assert f'<span class="field-error" id="id_amount-error">{said}' in html
    assert re.search(r'<input[^>]*name="amount"[^>]*aria-invalid="true"', html)
    assert re.search(r'<input[^>]*name="amount"[^>]*aria-describedby="[^"]*id_amount-error', html)
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.S).group(0)
    assert 'href="#id_amount"' in summary and said in summary
    assert 'name="below_price"' in html and "I meant to charge less than the price" in html

    response = admin_client.post(reverse("staff:booking_new"), {**form, "below_price": "on"}, follow=True)
    booking = Booking.objects.get(email="ravi@example.com")
    assert booking.amount == 150
    assert (
        f'Booking <span class="whitespace-nowrap">{booking.ack_id}</span> created: Individual session, ₹1.50.'
        in response.content.decode()
    )


def test_a_staff_booking_at_the_price_asks_nothing_and_says_the_price(admin_client, session_type, slot):
    response = admin_client.get(reverse("staff:booking_new"))
    assert 'name="below_price"' not in response.content.decode()  # asked only when it is needed
    response = admin_client.post(reverse("staff:booking_new"), ravi(session_type), follow=True)
    booking = Booking.objects.get(email="ravi@example.com")
    assert (
        f'Booking <span class="whitespace-nowrap">{booking.ack_id}</span> created: Individual session, ₹1,500.'
        in response.content.decode()
    )


def test_one_active_booking_per_email_for_staff_bookings(admin_client, session_type, make_booking, counsellor):
    existing = make_booking(Status.PENDING, counsellor=counsellor, email="dup@example.com")
    response = admin_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "Dup",
            "email": "dup@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "status": Status.PENDING,
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "already has an active booking" in html and existing.ack_id in html


def test_a_session_held_and_not_yet_recorded_is_named_as_such_not_offered_for_cancelling(
    admin_client, session_type, make_booking, counsellor
):
    """At the desk after their session, the client books the next: the one just held is still
    "confirmed" until recorded. Cancelling it, as the usual message says, would refund it."""
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    held = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1)),
        email="ravi@example.com",
    )
    response = admin_client.post(reverse("staff:booking_new"), ravi(session_type))
    assert response.status_code == 400
    html = response.content.decode()
    assert f"This email address&#x27;s session {held.ack_id} ended" in html
    assert "is not recorded yet. Open it and record it as held (or missed), then book the next one." in html
    assert "cancel it first" not in html


def test_a_counsellor_is_not_told_that_another_counsellors_client_exists(
    login, other_counsellor_user, other_counsellor, session_type, make_booking, counsellor
):
    make_booking(Status.CONFIRMED, counsellor=counsellor, email="private.person@example.com")
    form = {
        **CONSENTED,
        "age": "on",
        "language": "en",
        "client_name": "Probe",
        "session_type": session_type.pk,
        "mode": Mode.ONLINE,
        "status": Status.PENDING,
    }
    response = login(other_counsellor_user).post(
        reverse("staff:booking_new"), {**form, "email": "private.person@example.com"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "active booking" not in html and "can&#x27;t be made here. Please ask an administrator." in html


def test_counsellor_booking_without_a_slot_stays_theirs(counsellor_client, session_type, counsellor):
    response = counsellor_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "Walk In",
            "email": "walkin@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "status": Status.PENDING,
        },
    )
    assert response.status_code == 302
    from bookings.models import Booking

    booking = Booking.objects.get(email="walkin@example.com")
    assert booking.status == Status.PENDING and booking.counsellor == counsellor
    assert counsellor_client.get(response["Location"]).status_code == 200


def test_approved_without_a_slot_is_refused_clearly(admin_client, session_type):
    response = admin_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "No Slot",
            "email": "noslot@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "status": Status.APPROVED,
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    # Next to the Time slot field (and linked from the summary), not in a box of its own.
    assert '<span class="field-error" id="id_slot-error">Choose a time slot to approve' in html
    assert 'href="#id_slot">Time slot: Choose a time slot' in html
    assert "The booking was not made" not in html


def test_the_new_booking_form_starts_as_pending_so_its_defaults_go_through(admin_client, session_type):
    html = admin_client.get(reverse("staff:booking_new")).content.decode()
    assert re.search(r'<input type="radio" name="status" value="pending"[^>]*checked', html)
    assert not re.search(r'<input type="radio" name="status" value="approved"[^>]*checked', html)
    # What the page posts when only the client's details are filled in.
    response = admin_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "Defaults",
            "email": "defaults@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "counsellor": "",
            "slot": "",
            "status": Status.PENDING,
        },
    )
    assert response.status_code == 302
    assert Booking.objects.get(email="defaults@example.com").status == Status.PENDING


@pytest.mark.parametrize("status", [Status.APPROVED, Status.PENDING])
def test_a_time_of_another_counsellor_is_refused_next_to_the_slot(
    admin_client, session_type, counsellor, other_slot, status
):
    # QA: Counsellor "Asha Menon" with a slot of Rohan's made the booking for Rohan.
    response = admin_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "Mismatch",
            "email": "mismatch@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "counsellor": counsellor.pk,
            "slot": other_slot.pk,
            "status": status,
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert '<span class="field-error" id="id_slot-error">That time is with Rohan Kapoor, not Asha Menon.' in html
    assert not Booking.objects.filter(email="mismatch@example.com").exists()


def test_a_slot_with_counsellor_not_decided_books_the_slots_counsellor(admin_client, session_type, other_slot):
    response = admin_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "Any",
            "email": "any@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "counsellor": "",
            "slot": other_slot.pk,
            "status": Status.APPROVED,
        },
    )
    assert response.status_code == 302
    booking = Booking.objects.get(email="any@example.com")
    assert booking.counsellor == other_slot.counsellor and booking.slot == other_slot


def test_a_taken_slot_is_refused_next_to_the_slot(admin_client, session_type, slot, make_booking):
    form_page = admin_client.post(reverse("staff:booking_new"), {"_refresh": "1", "counsellor": slot.counsellor_id})
    assert slot.pk in slot_options(form_page.content.decode())
    make_booking(Status.CONFIRMED, slot=slot)  # taken since the page was shown
    response = admin_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "Late",
            "email": "late@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "slot": slot.pk,
            "status": Status.APPROVED,
        },
    )
    assert response.status_code == 400
    assert '<span class="field-error" id="id_slot-error">That slot is no longer free.' in response.content.decode()


def test_counsellor_cannot_book_into_another_counsellors_slot(counsellor_client, session_type, other_slot):
    response = counsellor_client.post(
        reverse("staff:booking_new"),
        {
            **CONSENTED,
            "age": "on",
            "language": "en",
            "client_name": "X",
            "email": "x@example.com",
            "session_type": session_type.pk,
            "mode": Mode.ONLINE,
            "slot": other_slot.pk,
            "status": Status.APPROVED,
        },
    )
    assert response.status_code == 400


def test_the_dashboard_lists_the_days_work(counsellor_client, counsellor, make_booking):
    today = timezone.now() + timedelta(minutes=5)
    if timezone.localtime(today).date() != timezone.localdate():
        pytest.skip("too close to midnight")
    slot = Slot.objects.create(counsellor=counsellor, start=today, end=today + timedelta(hours=1))
    session = make_booking(Status.CONFIRMED, slot=slot)
    waiting = make_booking(Status.PENDING, counsellor=counsellor)
    paying = make_booking(Status.APPROVED, counsellor=counsellor)
    tomorrow_slot = Slot.objects.create(
        counsellor=counsellor, start=next_weekday_at(10, days_ahead=1), end=next_weekday_at(11, days_ahead=1)
    )
    tomorrow = make_booking(Status.CONFIRMED, slot=tomorrow_slot)
    html = counsellor_client.get(reverse("staff:dashboard")).content.decode()
    today_part, rest = (
        html.split("Tomorrow&#x27;s sessions") if "Tomorrow&#x27;s" in html else html.split("Tomorrow's sessions")
    )
    assert session.ack_id in today_part
    assert tomorrow.ack_id in rest.split("Waiting for review")[0]
    assert waiting.ack_id in rest and paying.ack_id in rest
    assert "just arrived" in rest  # how long the request has waited: not "0 minutes"


def test_recent_activity_leaves_out_unconfirmed_requests(admin_client, counsellor_client, counsellor, make_booking):
    """A booking's first event, "draft by client", is a request whose client has not confirmed
    their email: nothing staff may act on (the list never shows it), and it filled a fifth of
    the card. The confirmation that follows it is listed."""
    verified = make_booking(Status.PENDING, counsellor=counsellor)
    unconfirmed = make_booking(Status.DRAFT, counsellor=counsellor)
    for booking in (verified, unconfirmed):
        BookingEvent.objects.create(booking=booking, to_status=Status.DRAFT, action="created", actor=Actor.CLIENT)
    BookingEvent.objects.create(
        booking=verified,
        from_status=Status.DRAFT,
        to_status=Status.PENDING,
        actor=Actor.CLIENT,
        reason="Email verified",
    )
    for browser in (admin_client, counsellor_client):
        card = browser.get(reverse("staff:dashboard")).content.decode().split("Recent activity")[1]
        assert verified.ack_id in card and "Email verified" in card
        assert unconfirmed.ack_id not in card and "<strong>draft</strong>" not in card


def test_a_request_for_a_hidden_counsellor_can_still_be_approved(admin_client, make_booking, counsellor, slot):
    """A counsellor hidden from clients (just joined, or back after their account was
    reactivated) still works: staff approve into their times."""
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    type(counsellor).objects.filter(pk=counsellor.pk).update(is_active=False)
    html = admin_client.get(url("detail", booking)).content.decode()
    assert f'<option value="{slot.pk}">' in html and "Publish availability" not in html
    response = admin_client.post(url("approve", booking), {"approve-slot": slot.pk, "approve-version": booking.version})
    assert response.status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.slot_id) == (Status.APPROVED, slot.pk)


def test_a_request_for_a_counsellor_who_left_says_why_and_offers_another(
    admin_client, make_booking, counsellor, counsellor_user, slot, other_slot
):
    """Their account deactivated (they have left): their times are not offered, the page
    says why, and the request can be approved with someone else."""
    booking = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot)
    type(counsellor_user).objects.filter(pk=counsellor_user.pk).update(is_active=False)
    html = admin_client.get(url("detail", booking)).content.decode()
    assert "Asha Menon's staff account is deactivated, so their times can't be booked" in html
    assert f'<option value="{slot.pk}"' not in html and f'<option value="{other_slot.pk}">' in html
    # Their slot is refused even if posted (the form, then the service).
    refused = admin_client.post(url("approve", booking), {"approve-slot": slot.pk, "approve-version": booking.version})
    assert refused.status_code == 400 and "That slot is no longer free" in refused.content.decode()
    response = admin_client.post(
        url("approve", booking), {"approve-slot": other_slot.pk, "approve-version": booking.version}
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert (booking.slot_id, booking.counsellor_id) == (other_slot.pk, other_slot.counsellor_id)


def test_a_refused_new_booking_starts_at_what_went_wrong(admin_client, session_type, make_booking, counsellor):
    # Without JavaScript the answer is a whole page: the browser focuses its autofocus element,
    # the error summary, as the booking page's actions do; not the page's top.
    missing = admin_client.post(reverse("staff:booking_new"), {"session_type": session_type.pk, "mode": Mode.ONLINE})
    assert missing.status_code == 400
    html = missing.content.decode()
    assert re.findall(r"<[^>]* autofocus[ >]", html) == [
        '<div class="error-summary" role="alert" tabindex="-1" autofocus>'
    ]
    assert html.index("autofocus") < html.index('href="#id_client_name">Client&#x27;s name: ')
    # Refused by the rules (one active booking per email): the same summary.
    make_booking(Status.PENDING, counsellor=counsellor, email="dup@example.com")
    form = {
        **CONSENTED,
        "age": "on",
        "language": "en",
        "client_name": "Dup",
        "email": "dup@example.com",
        "session_type": session_type.pk,
        "mode": Mode.ONLINE,
    }
    html = admin_client.post(reverse("staff:booking_new"), {**form, "status": Status.PENDING}).content.decode()
    assert re.findall(r"<[^>]* autofocus[ >]", html) == [
        '<div class="error-summary" role="alert" tabindex="-1" autofocus>'
    ]
    assert html.index("autofocus") < html.index("already has an active booking")
    # The empty form: nothing takes the focus from the page's start.
    assert "autofocus" not in admin_client.get(reverse("staff:booking_new")).content.decode()


def test_administrators_see_the_emails_that_could_not_be_sent(
    admin_client, counsellor_client, make_booking, counsellor
):
    """Emails the outbox gave up on, the last 30 days: those about no booking (an invitation,
    someone's links) show nowhere else. Counsellors don't see the list (other clients' mail)."""
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    failed = OutboundEmail.State.FAILED
    OutboundEmail.objects.create(
        kind="staff_invite",
        to="new.counsellor@example.com",
        subject="Your MindSettler staff account",
        body_text="x",
        status=failed,
        attempts=5,
        last_error="SMTPRecipientsRefused",
    )
    OutboundEmail.objects.create(
        kind="received",
        booking=booking,
        to=booking.email,
        subject=f"Request {booking.ack_id} received",
        body_text="x",
        status=failed,
        attempts=5,
    )
    old = OutboundEmail.objects.create(kind="x", to="old@example.com", subject="Long ago", body_text="x", status=failed)
    OutboundEmail.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    OutboundEmail.objects.create(kind="x", to="fine@example.com", subject="Delivered", body_text="x")

    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    part = html.split("Emails that could not be sent")[1].split("Recent activity")[0]
    assert "new.counsellor@example.com" in part and "5 tries" in part and "SMTPRecipientsRefused" in part
    assert reverse("staff:booking_detail", args=[booking.pk]) in part and booking.ack_id in part
    assert "Long ago" not in part and "Delivered" not in part
    assert "Emails that could not be sent" not in counsellor_client.get(reverse("staff:dashboard")).content.decode()


def test_emails_the_mail_server_has_not_taken_yet_are_on_the_administrators_dashboard(admin_client, counsellor_client):
    """An outage keeps emails for days (EMAIL_GIVE_UP_AFTER): the administrators see them
    waiting, by why and since when, before any is given up."""
    for n in range(3):
        OutboundEmail.objects.create(
            kind="x",
            to=f"w{n}@example.com",
            subject="Waiting",
            body_text="x",
            attempts=3,
            last_error="ConnectionRefusedError",
        )
    OutboundEmail.objects.create(kind="x", to="new@example.com", subject="Just queued", body_text="x", attempts=1)
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    part = html.split("Emails waiting to be sent")[1].split("</section>")[0]
    assert "3 emails since" in part and "ConnectionRefusedError" in part and "for 72 hours" in part
    assert "w0@example.com" not in part  # counted, not listed: the list is of those given up
    assert "Emails waiting to be sent" not in counsellor_client.get(reverse("staff:dashboard")).content.decode()


# --- Choosing among many counsellors' times ------------------------------------------------


@pytest.fixture
def three_counsellors(counsellor, other_counsellor, db):
    """Three counsellors with free times: every counsellor's at once would be too many to list."""
    from bookings.models import Counsellor
    from staff.models import User

    third_user = User.objects.create_user(email="ravi@example.com", password="x", role=User.Role.COUNSELLOR)
    third = Counsellor.objects.create(user=third_user, display_name="Ravi Kumar", slug="ravi")
    slots = {}
    for n, who in enumerate((counsellor, other_counsellor, third)):
        start = next_weekday_at(10, days_ahead=4 + n)
        slots[who.pk] = Slot.objects.create(counsellor=who, start=start, end=start + timedelta(minutes=60))
    return (counsellor, other_counsellor, third), slots


def slot_options(html: str) -> set[int]:
    """The slots offered: options that read as a time span ('Tue 1 Dec, 10:00 to 11:00 IST · ...', with an en dash)."""
    return {int(v) for v in re.findall(r'<option value="(\d+)"[^>]*>[^<]*\d\d:\d\d\N{EN DASH}\d\d:\d\d ', html)}


def test_approving_a_request_without_a_counsellor_shows_one_counsellors_times(
    admin_client, make_booking, three_counsellors
):
    (asha, other, ravi), slots = three_counsellors
    booking = make_booking(Status.PENDING, counsellor=None, preferred_slot=slots[ravi.pk])

    html = admin_client.get(url("detail", booking)).content.decode()
    assert slot_options(html) == {slots[ravi.pk].pk}  # the preferred slot's counsellor first
    assert f'<option value="{ravi.pk}" selected>Ravi Kumar</option>' in html
    assert f'action="{url("approve", booking)}?times_of={ravi.pk}"' in html
    assert re.search(r'name="approve-amount" value="1500"', html)  # rupees as typed, not "1500.0"

    # Another counsellor's times, in place: no second "opened" entry in the log.
    views = BookingView.objects.count()
    response = admin_client.get(url("detail", booking), {"times_of": asha.pk}, **HX)
    assert slot_options(response.content.decode()) == {slots[asha.pk].pk}
    assert BookingView.objects.count() == views
    # Without JavaScript, the "Show their times" button reloads the page.
    assert slot_options(admin_client.get(url("detail", booking), {"times_of": other.pk}).content.decode()) == {
        slots[other.pk].pk
    }
    # Not a counsellor of ours: the default.
    assert slot_options(admin_client.get(url("detail", booking), {"times_of": 999999}).content.decode()) == {
        slots[ravi.pk].pk
    }


def test_any_counsellors_time_can_be_approved_and_a_refusal_keeps_the_list_shown(
    admin_client, make_booking, three_counsellors
):
    (asha, other, ravi), slots = three_counsellors
    booking = make_booking(Status.PENDING, counsellor=None, preferred_slot=slots[ravi.pk])
    refused = admin_client.post(f"{url('approve', booking)}?times_of={asha.pk}", {"approve-version": booking.version})
    assert refused.status_code == 400 and slot_options(refused.content.decode()) == {slots[asha.pk].pk}

    response = admin_client.post(
        f"{url('approve', booking)}?times_of={asha.pk}",
        {"approve-version": booking.version, "approve-slot": slots[other.pk].pk},
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.slot_id, booking.counsellor_id) == (Status.APPROVED, slots[other.pk].pk, other.pk)


def test_an_administrator_may_approve_a_request_with_another_counsellor(
    admin_client, counsellor_client, pending, slot, other_counsellor, other_slot
):
    """The client asked for Asha; her times come first, anyone's may be chosen."""
    html = admin_client.get(url("detail", pending)).content.decode()
    assert f'<option value="{pending.counsellor_id}" selected>Asha Menon</option>' in html
    assert slot_options(html) == {slot.pk}
    assert "A time of another counsellor hands the booking over to them" in html
    html = admin_client.get(url("detail", pending), {"times_of": other_counsellor.pk}, **HX).content.decode()
    assert slot_options(html) == {other_slot.pk} and "Choose a time</option>" in html
    Booking.objects.filter(pk=pending.pk).update(meeting_url="https://meet.example/asha-private")
    response = admin_client.post(url("approve", pending), {"approve-slot": other_slot.pk, "approve-version": 1})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert (pending.slot_id, pending.counsellor_id) == (other_slot.pk, other_counsellor.pk)
    # A handover, as a move to another counsellor is: Asha's own room is not Rohan's.
    assert pending.meeting_url == ""
    approved = pending.events.get(to_status=Status.APPROVED)
    assert "now with Rohan Kapoor (was Asha Menon)" in approved.reason and "meeting link was cleared" in approved.reason
    # The client chose a time with Asha: their email says whom they will see instead.
    email = next(m for m in mail.outbox if m.to == [pending.email])
    assert "With: Rohan Kapoor, instead of Asha Menon" in email.body


def test_a_time_another_request_asked_for_says_so_in_the_list(counsellor_client, make_booking, counsellor, slot):
    """Free, but a request waiting for review asked for it: giving it away would leave that
    client's time taken, so the list says so (without naming a booking the reader may not see)."""
    later = Slot.objects.create(
        counsellor=counsellor, start=slot.start + timedelta(hours=3), end=slot.end + timedelta(hours=3)
    )
    first = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot)
    second = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=later)
    html = counsellor_client.get(url("detail", first)).content.decode()
    option = re.search(rf'<option value="{later.pk}"[^>]*>([^<]*)</option>', html).group(1)
    assert option.endswith("· another request asked for it") and second.ack_id not in option
    own = re.search(rf'<option value="{slot.pk}"[^>]*>([^<]*)</option>', html).group(1)
    assert "asked for" not in own  # the request's own choice is just its time


def test_a_counsellor_approves_only_into_their_own_times(counsellor_client, pending, slot, other_slot):
    html = counsellor_client.get(url("detail", pending)).content.decode()
    assert 'id="approve-times-of"' not in html and slot_options(html) == {slot.pk}
    response = counsellor_client.post(url("approve", pending), {"approve-slot": other_slot.pk, "approve-version": 1})
    assert response.status_code == 400 and "That slot is no longer free" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


def test_a_new_booking_shows_the_chosen_counsellors_times_and_keeps_what_was_typed(
    admin_client, session_type, three_counsellors
):
    (asha, _, ravi), slots = three_counsellors
    html = admin_client.get(reverse("staff:booking_new")).content.decode()
    assert slot_options(html) == set() and "Choose a counsellor to see their free times." in html

    typed = {
        **CONSENTED,
        "age": "on",
        "language": "en",
        "client_name": "Nisha Rao",
        "email": "nisha@example.com",
        "session_type": session_type.pk,
    }
    response = admin_client.post(reverse("staff:booking_new"), {**typed, "counsellor": ravi.pk, "_refresh": "1"})
    html = response.content.decode()
    assert response.status_code == 200 and slot_options(html) == {slots[ravi.pk].pk}
    assert 'value="Nisha Rao"' in html and "field-error" not in html
    assert not Booking.objects.filter(email="nisha@example.com").exists()

    # With htmx, only the time slot field is swapped (the page asks for the same thing).
    response = admin_client.post(reverse("staff:booking_new"), {**typed, "counsellor": asha.pk, "_refresh": "1"}, **HX)
    assert slot_options(response.content.decode()) == {slots[asha.pk].pk}


def test_a_counsellor_making_a_booking_sees_their_own_times(counsellor_client, counsellor, three_counsellors):
    _, slots = three_counsellors
    html = counsellor_client.get(reverse("staff:booking_new")).content.decode()
    assert slot_options(html) == {slots[counsellor.pk].pk}


def test_emails_to_the_client_leave_out_those_to_staff(admin_client, make_booking, counsellor, oncommit):
    from bookings import notifications

    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with oncommit():
        notifications.new_request(booking=booking)
        notifications.on_transition(booking=booking, from_status=Status.DRAFT, actor=Actor.STAFF)
    assert set(OutboundEmail.objects.filter(booking=booking).values_list("kind", flat=True)) == {
        "new_request",
        "request_received",
    }
    page = admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    section = page[page.index("Emails to the client") :]
    section = section[: section.index("</section>")]
    assert "New booking request" not in section and booking.ack_id in section


def test_a_phoned_booking_records_what_the_client_said_of_their_age_and_language(admin_client, session_type, settings):
    data = {"client_name": "Ravi Kumar", "email": "ravi@example.com", "language": "hi", **CONSENTED}
    data |= {"session_type": session_type.pk, "mode": Mode.ONLINE, "status": Status.PENDING}
    refused = admin_client.post(reverse("staff:booking_new"), data).content.decode()
    assert "Ask the client: the clinic books clients who are 18 or over." in refused
    assert not Booking.objects.exists()
    assert admin_client.post(reverse("staff:booking_new"), {**data, "age": "on"}).status_code == 302
    booking = Booking.objects.get()
    assert (booking.age_confirmation, booking.language) == (Booking.AgeConfirmation.ADULT, "hi")
    # Where younger clients may book with consent, staff choose which applies.
    settings.CLIENT_AGE_POLICY = "guardian_consent"
    page = admin_client.get(reverse("staff:booking_new")).content.decode()
    assert "Under 18, with a parent&#x27;s or guardian&#x27;s consent" in page
    young = {**data, "email": "young@example.com", "age": Booking.AgeConfirmation.GUARDIAN}
    assert admin_client.post(reverse("staff:booking_new"), young).status_code == 302
    assert Booking.objects.get(email="young@example.com").age_confirmation == Booking.AgeConfirmation.GUARDIAN


def phoned(session_type, slot) -> dict:
    """What the new-booking form posts for a client on the phone, straight into `slot`."""
    return {
        "age": "on",
        "language": "hi",
        "client_name": "Ravi Kumar",
        "email": "ravi@example.com",
        "phone": "98765 43210",
        "session_type": session_type.pk,
        "mode": Mode.IN_PERSON,
        "counsellor": slot.counsellor_id,
        "slot": slot.pk,
        "status": Status.APPROVED,
        "consent_by": "consent_by_phone",
        "policy_shown": settings.POLICY_VERSION,
    }


def test_the_summary_to_read_out_is_in_english_and_in_hindi_with_the_clinics_retention(admin_client, settings):
    settings.RETENTION_MONTHS = 18
    html = admin_client.get(reverse("staff:booking_new")).content.decode()
    assert "18 months after your booking is over we remove your details" in html
    hindi = re.search(r'<blockquote[^>]*lang="hi">\s*<p>“([^”]*)”</p>', html)
    assert hindi and "बुकिंग पूरी होने के 18 महीने बाद" in hindi.group(1)
    assert "<summary" in html.split('lang="hi"')[0].rsplit("<details", 1)[1]  # folded under its summary
    assert '<html lang="en"' in html  # the page itself stays in English


def test_a_phoned_booking_without_the_clients_agreement_is_refused_next_to_the_box(admin_client, session_type, slot):
    response = admin_client.post(reverse("staff:booking_new"), phoned(session_type, slot))
    assert response.status_code == 400
    html = response.content.decode()
    assert not Booking.objects.exists()
    # Next to the box, read out with it, and linked from the summary at the top.
    assert '<span class="field-error" id="id_consent-error">Read the client the privacy notice summary' in html
    box = re.search(r'<input type="checkbox" name="consent"[^>]*>', html).group(0)
    assert 'aria-describedby="id_consent-hint id_consent-error"' in box and 'aria-invalid="true"' in box
    assert '<label for="id_consent" class="font-semibold">I read the privacy notice summary to the client' in html
    assert 'href="#id_consent">I read the privacy notice summary to the client and they agreed: Read' in html
    assert f'id="id_consent-hint">Privacy notice version {settings.POLICY_VERSION}.' in html
    # The notice itself, to read from, in a new tab.
    assert re.search(r'<a href="/privacy/" target="_blank" rel="noopener">privacy notice<span class="sr-only">', html)
    # Nothing typed is lost.
    assert 'value="Ravi Kumar"' in html and 'value="ravi@example.com"' in html and 'value="98765 43210"' in html
    assert f'<option value="{slot.pk}" selected>' in html
    assert re.search(r'<input type="radio" name="status" value="approved"[^>]*checked', html)
    assert re.search(r'<input type="radio" name="mode" value="in_person"[^>]*checked', html)
    assert re.search(r'<input type="radio" name="consent_by" value="consent_by_phone"[^>]*checked', html)
    assert '<option value="hi" selected>' in html
    assert re.search(r'<input type="checkbox" name="age"[^>]*checked', html)


@pytest.mark.parametrize(("how", "words"), [("consent_by_phone", "by phone"), ("consent_in_person", "in person")])
def test_a_phoned_booking_records_the_clients_agreement_and_who_took_it(
    admin_client, admin_user, session_type, slot, how, words
):
    before = timezone.now()
    data = {**phoned(session_type, slot), "consent": "on", "consent_by": how}
    response = admin_client.post(reverse("staff:booking_new"), data)
    assert response.status_code == 302
    booking = Booking.objects.get(email="ravi@example.com")
    assert booking.consent_policy_version == settings.POLICY_VERSION
    assert before <= booking.consented_at <= timezone.now()
    consent = booking.events.get(action=how)
    assert (consent.actor, consent.actor_user, consent.created_at) == (Actor.STAFF, admin_user, booking.consented_at)
    assert f"version {settings.POLICY_VERSION}" in consent.reason
    # Given as the booking was made: its history starts with its creation, as every booking's.
    assert [e.action for e in booking.events.all()] == ["created", how]
    html = admin_client.get(response["Location"]).content.decode()
    assert f"client agreed to the privacy notice {words}" in html and "recorded by Ada" in html
    assert f"Version {settings.POLICY_VERSION}, agreed {when(booking.consented_at, autoescape=True)}" in html


def test_a_tick_for_a_privacy_notice_since_replaced_is_asked_for_again(admin_client, session_type, slot, settings):
    """A new notice published while the form was open: the client agreed to the old one."""
    old = settings.POLICY_VERSION
    settings.POLICY_VERSION = "2099-01-01"
    response = admin_client.post(
        reverse("staff:booking_new"), {**phoned(session_type, slot), "consent": "on", "policy_shown": old}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert not Booking.objects.exists()
    assert 'id="id_consent-error">The privacy notice changed to version 2099-01-01 while this form was open.' in html
    # The box cleared for the client's answer to the new one, which the page now shows.
    assert not re.search(r'<input type="checkbox" name="consent"[^>]*checked', html)
    assert '<input type="hidden" name="policy_shown" value="2099-01-01">' in html
    assert "Privacy notice version 2099-01-01." in html and 'value="Ravi Kumar"' in html
    again = admin_client.post(
        reverse("staff:booking_new"), {**phoned(session_type, slot), "consent": "on", "policy_shown": "2099-01-01"}
    )
    assert again.status_code == 302
    assert Booking.objects.get().consent_policy_version == "2099-01-01"


def test_the_cancellation_form_says_truly_who_reads_its_reason(admin_client, pending, client):
    """The reason goes into the audit trail for colleagues: the client's email and booking
    page never show it, so the form must not tell staff it is sent to the client."""
    from bookings.models import LinkToken
    from bookings.tokens import token_create

    html = admin_client.get(reverse("staff:booking_detail", args=[pending.pk])).content.decode()
    form = html[html.index('id="action-cancel"') :]
    form = form[: form.index("</form>")]
    assert "Sent to the client" not in form and "client does not see" in form

    note = "Zq9 she said her husband must not know"
    admin_client.post(url("cancel", pending), {"cancel-version": pending.version, "cancel-reason": note})
    assert Booking.objects.get(pk=pending.pk).status == Status.CANCELLED
    assert mail.outbox and not any("Zq9" in m.body for m in mail.outbox)
    raw = token_create(booking=pending, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=1))
    assert "Zq9" not in client.get(f"/bookings/{raw}/").content.decode()


# --- The page's title after a refused action --------------------------------------------


def _refused_actions(pending, make_booking, counsellor):
    """Each action form on the page, sent as it fails: (booking, action, data, what is said)."""
    confirmed = make_booking(Status.CONFIRMED, counsellor=counsellor, mode=Mode.ONLINE)
    start = (timezone.now() - timedelta(hours=3)).replace(second=0, microsecond=0)
    ended = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60)),
    )
    return [
        (pending, "approve", {"approve-slot": "", "approve-version": pending.version}, None),
        (pending, "reject", {"reject-version": pending.version, "reject-reason": " "}, "Give a reason"),
        (confirmed, "cancel", {"cancel-version": confirmed.version, "cancel-reason": ""}, "Give a reason"),
        (confirmed, "move", {"move-slot": "", "move-version": confirmed.version}, "Choose the new time."),
        (confirmed, "meeting_url", {"meeting-meeting_url": "not a link"}, None),
        (ended, "no_show", {"no_show-version": ended.version}, "Tick this to confirm"),
        # Refused by the rules rather than the form: someone else changed the booking.
        (ended, "complete", {"complete-version": ended.version + 5}, "changed by someone else"),
    ]


def test_a_refused_action_puts_error_in_the_pages_title(admin_client, pending, make_booking, counsellor):
    """As on every form page, the title says first that something went wrong: on the full
    page (without JavaScript) and in the fragment htmx swaps in (which brings its <title>)."""
    fine = admin_client.get(url("detail", pending)).content.decode()
    assert f"<title>{pending.ack_id} · " in fine
    for booking, action, data, said in _refused_actions(pending, make_booking, counsellor):
        page = admin_client.post(url(action, booking), data)
        html = page.content.decode()
        assert page.status_code in (400, 409), action
        assert f"<title>Error: {booking.ack_id} · " in html, action
        if said:
            assert said in html, action
        fragment = admin_client.post(url(action, booking), data, **ON_PAGE).content.decode()
        assert "<html" not in fragment
        assert re.search(rf"^<title>Error: {booking.ack_id} · [^<]* staff</title>$", fragment, re.M), action
        # In the calendar's panel the page is the calendar: its title stays.
        panel = admin_client.post(url(action, booking), data, **PANEL).content.decode()
        assert "<title>" not in panel, action


def test_an_action_that_succeeds_after_a_refusal_takes_error_out_of_the_title(admin_client, pending, slot):
    fragment = admin_client.post(
        url("approve", pending), {"approve-slot": slot.pk, "approve-version": pending.version}, **ON_PAGE
    ).content.decode()
    assert f"<title>{pending.ack_id} · " in fragment and "Error:" not in fragment


def test_cancelling_a_request_points_to_reject_for_turning_it_down(admin_client, make_booking, slot):
    """A request shows "Reject request" and "Cancel booking", both red: the cancel card says
    which one turns a request down (the client is told why only by a rejection)."""
    hint = 'use <a href="#action-reject">Reject</a> instead'
    request = make_booking(Status.PENDING)
    html = admin_client.get(reverse("staff:booking_detail", args=[request.pk])).content.decode()
    cancel = html.split('id="action-cancel"')[1]
    assert 'id="action-reject"' in html and hint in cancel
    confirmed = make_booking(Status.CONFIRMED, slot=slot)
    html = admin_client.get(reverse("staff:booking_detail", args=[confirmed.pk])).content.decode()
    assert 'id="action-cancel"' in html and hint not in html


@pytest.mark.parametrize("action", ["approve", "reject", "complete", "no-show", "cancel", "move", "drop", "resend"])
def test_an_action_address_opened_again_goes_back_to_the_booking(admin_client, pending, action):
    """Without JavaScript a refused form shows the booking at the action's address: opened
    again from the address bar (a GET), it shows the booking, changing nothing, not an empty 405."""
    url = f"/staff/bookings/{pending.pk}/{action}/"
    response = admin_client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/staff/bookings/{pending.pk}/"
    assert admin_client.put(url).status_code == 405
    pending.refresh_from_db()
    assert pending.status == Status.PENDING and pending.version == 1


@pytest.mark.parametrize("late", [False, True])
def test_cancelling_a_paid_session_says_the_money_is_going_back(admin_client, counsellor, make_booking, oncommit, late):
    """Staff answering the client's call next need to know: refunded, and whether it counts
    as a late cancellation."""
    start = timezone.now().replace(microsecond=0) + timedelta(hours=5 if late else 72)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    booking = make_booking(Status.APPROVED, slot=slot)
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_1", amount=booking.amount, currency="INR", raw={}, source="t"
    )
    booking.refresh_from_db()
    with oncommit():
        response = admin_client.post(
            url("cancel", booking),
            {"cancel-version": booking.version, "cancel-reason": "Client phoned", "cancel-client_asked": "on"},
            follow=True,
        )
    html = response.content.decode()
    assert f"Cancelled. The client has been emailed. {money(booking.amount)} is being refunded to them." in html
    assert ("Recorded as a late cancellation (inside 24 hours)." in html) is late


def test_the_dashboard_says_when_it_shows_only_some_of_the_bookings_waiting_for_payment_and_the_alerts(
    admin_client, counsellor, make_booking
):
    """Twenty of each are listed: the rest are counted, and those waiting for payment are a
    filter of the booking list away (the newest alerts come into view as the oldest are settled)."""
    from bookings.models import Payment

    waiting = [
        make_booking(Status.APPROVED if n % 2 else Status.PAYMENT_PENDING, counsellor=counsellor) for n in range(21)
    ]
    for booking in waiting:
        Payment.objects.create(
            booking=booking, provider="sandbox", amount=booking.amount, currency="INR", needs_attention="Check it"
        )
    make_booking(Status.CONFIRMED, counsellor=counsellor)
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert (
        '<a href="/staff/bookings/?status=awaiting_payment&amp;sort=session">All 21 bookings waiting for payment</a>'
        in html
    )
    assert "Oldest first: the 20 oldest of 21; the others show as these are settled." in html
    listed = admin_client.get(reverse("staff:booking_list"), {"status": "awaiting_payment", "per_page": 50})
    assert len(set(re.findall(r"MS-[A-Z0-9]{6}", listed.content.decode()))) == 21


# --- Correcting the client's address ----------------------------------------------------


def test_a_mistyped_address_is_corrected_and_the_last_email_goes_to_the_new_one(admin_client, client, pending, slot):
    """Typed wrong on the phone: the approval email (its link to pay) went to a stranger. The
    link stops working, and the client gets the email again, with a new one."""
    admin_client.post(url("approve", pending), {"approve-slot": slot.pk, "approve-version": pending.version})
    [approved] = [m for m in mail.outbox if m.to == ["kavya@example.com"]]
    [old_path] = re.findall(r"http://testserver(/bookings/[A-Za-z0-9_-]{16,}/)", approved.body)
    assert client.get(old_path).status_code == 200
    mail.outbox = []
    page = admin_client.get(url("detail", pending)).content.decode()
    assert "Correct the client's email" in page
    response = admin_client.post(url("email", pending), {"address-email": " Kavya.Iyer@Example.com "}, **HX)
    html = unescape(response.content.decode())
    assert response.status_code == 200
    assert "Email address corrected. kavya.iyer@example.com has been sent “Your session time is reserved" in html
    pending.refresh_from_db()
    assert pending.email == "kavya.iyer@example.com" and pending.status == Status.APPROVED
    [again] = mail.outbox
    assert again.to == ["kavya.iyer@example.com"] and again.subject == approved.subject
    [new_path] = re.findall(r"http://testserver(/bookings/[A-Za-z0-9_-]{16,}/)", again.body)
    assert f'href="http://testserver{new_path}"' in again.alternatives[0][0]
    assert client.get(new_path).status_code == 200
    assert client.get(old_path).status_code != 200  # the stranger's link no longer opens it
    event = BookingEvent.objects.get(booking=pending, action="email_corrected")
    assert "kavya" not in event.reason.lower()  # neither address in the timeline
    # The page lists the emails sent to the old address as such.
    page = admin_client.get(url("detail", pending)).content.decode()
    assert "to kavya@example.com" in page


def test_emails_still_waiting_for_the_old_address_are_given_up(admin_client, make_booking, counsellor):
    booking = make_booking(Status.PENDING, counsellor=counsellor, email="wrong@example.com")
    waiting = OutboundEmail.objects.create(
        kind="request_received",
        booking=booking,
        to="wrong@example.com",
        subject="We have your request",
        body_text=f"Your page: http://testserver/bookings/{'A' * 43}/",
    )
    mail.outbox = []
    assert admin_client.post(url("email", booking), {"address-email": "right@example.com"}).status_code == 302
    waiting.refresh_from_db()
    assert waiting.status == OutboundEmail.State.FAILED and "A" * 43 not in waiting.body_text
    [again] = mail.outbox
    assert again.to == ["right@example.com"] and "A" * 43 not in again.body
    assert re.search(r"http://testserver/bookings/[A-Za-z0-9_-]{16,}/", again.body)


def test_with_no_status_email_to_repeat_the_new_address_gets_the_booking_link(
    admin_client, client, make_booking, counsellor
):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, email="wrong@example.com", language="hi")
    mail.outbox = []
    done = admin_client.post(url("email", booking), {"address-email": "right@example.com"}, follow=True)
    assert "right@example.com has been sent a new link to the booking&#x27;s page." in done.content.decode()
    [link] = mail.outbox
    assert link.to == ["right@example.com"] and booking.ack_id in link.body
    [path] = re.findall(r"http://testserver(/bookings/[A-Za-z0-9_-]{16,}/)", link.body)
    assert client.get(path).status_code == 200
    assert OutboundEmail.objects.get(booking=booking, kind="booking_links").to == "right@example.com"
    from django.utils import translation

    from bookings.lifecycle import CLIENT_LABELS

    with translation.override("hi"):
        assert str(CLIENT_LABELS[Status.CONFIRMED]) in link.body  # in the booking's language


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("", "Enter the client&#x27;s correct email address."),
        ("kavya@", "Enter an email address in the correct format"),
        ("KAVYA@example.com", "That is the address the booking already has."),
        ("taken@example.com", "That address already has another open booking"),
    ],
)
def test_a_correction_refused_says_why_next_to_it(admin_client, pending, make_booking, counsellor, typed, error):
    make_booking(Status.PENDING, counsellor=counsellor, email="taken@example.com")
    mail.outbox = []
    response = admin_client.post(url("email", pending), {"address-email": typed})
    html = response.content.decode()
    assert response.status_code == 400 and error in html
    assert '<details class="mt-3 print:hidden" id="address" open>' in html
    # Said with the field (its error read with it), whatever found it wrong.
    assert 'id="id_address-email-error"' in html and 'aria-invalid="true"' in html
    pending.refresh_from_db()
    assert pending.email == "kavya@example.com" and mail.outbox == []
    assert not BookingEvent.objects.filter(action="email_corrected").exists()


def test_a_closed_booking_s_address_is_not_corrected(admin_client, make_booking, counsellor):
    booking = make_booking(Status.REJECTED, counsellor=counsellor, email="wrong@example.com")
    assert "Correct the client's email" not in admin_client.get(url("detail", booking)).content.decode()
    response = admin_client.post(url("email", booking), {"address-email": "right@example.com"})
    assert response.status_code == 409 and "only an open booking" in response.content.decode()
    booking.refresh_from_db()
    assert booking.email == "wrong@example.com"


def test_a_reminder_waiting_for_the_mistyped_address_goes_to_the_corrected_one(
    admin_client, make_booking, counsellor, oncommit
):
    """A mistyped address is refused for hours, the reminder waiting: corrected meanwhile,
    the reminder goes to the new address at the next run, not never."""
    from bookings.models import Reminder
    from bookings.services import reminders_send

    start = timezone.now() + timedelta(hours=20)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, slot=slot, email="wrong@example.com")
    assert reminders_send() == 1  # queued; not delivered (the address is refused)
    assert admin_client.post(url("email", booking), {"address-email": "right@example.com"}).status_code == 302
    assert not Reminder.objects.exists()
    mail.outbox = []
    with oncommit():
        assert reminders_send() == 1
    assert [m.to for m in mail.outbox if m.subject.startswith("Reminder")] == [["right@example.com"]]


def test_a_reminder_a_strangers_address_took_goes_again_to_the_corrected_one(
    admin_client, make_booking, counsellor, oncommit
):
    from bookings.services import reminders_send

    start = timezone.now() + timedelta(hours=20)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, slot=slot, email="stranger@example.com")
    with oncommit():
        assert reminders_send() == 1  # sent: the stranger's mail server took it
    assert admin_client.post(url("email", booking), {"address-email": "right@example.com"}).status_code == 302
    mail.outbox = []
    with oncommit():
        assert reminders_send() == 1
    assert [m.to for m in mail.outbox if m.subject.startswith("Reminder")] == [["right@example.com"]]
