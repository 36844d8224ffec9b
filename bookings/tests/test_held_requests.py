"""A request confirmed while its address's last session has ended and is not yet recorded:
held, and made as soon as staff record that session (services.held_requests_release)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from bookings.errors import ActiveBookingExists, RequestHeld
from bookings.models import Booking, BookingEvent, LinkToken, OutboundEmail, Slot, Status
from bookings.selectors import booking_timeline
from bookings.services import (
    booking_cancel,
    booking_complete,
    booking_no_show,
    booking_verify,
    drafts_purge,
    held_requests_release,
)
from bookings.tests.test_services import _submit
from bookings.tokens import token_create

pytestmark = pytest.mark.django_db

EMAIL = "priya@example.com"


@pytest.fixture
def last(make_booking, counsellor):
    """Priya's session of an hour ago: held, paid, not yet recorded by the clinic."""
    start = timezone.now() - timedelta(hours=2)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    return make_booking(Status.CONFIRMED, slot=slot, email=EMAIL)


def _draft(session_type, slot, key="k1"):
    """Priya's request for the next session, and a link to confirm it (as she is emailed)."""
    draft, _ = _submit(session_type, slot, key=key, email=EMAIL)
    return draft, token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))


def _held(session_type, slot, oncommit):
    draft, raw = _draft(session_type, slot)
    mail.outbox.clear()
    with oncommit(), pytest.raises(RequestHeld):
        booking_verify(token=raw)
    return Booking.objects.get(pk=draft.pk)


def test_a_request_confirmed_before_the_last_session_is_recorded_is_held(
    session_type, slot, last, counsellor_user, oncommit
):
    draft = _held(session_type, slot, oncommit)
    assert draft.status == Status.DRAFT and draft.verified_at is not None
    assert BookingEvent.objects.filter(booking=draft, action="held").exists()
    to_client, to_counsellor = sorted(mail.outbox, key=lambda m: m.to != [EMAIL])
    assert to_client.to == [EMAIL] and "will reach the clinic once your last session is recorded" in to_client.subject
    assert "we will send them your request as soon as they have" in to_client.body
    assert to_counsellor.to == [counsellor_user.email]
    assert to_counsellor.subject == f"Please record {last.ack_id}: its client is waiting to book again"
    assert reverse("staff:booking_detail", args=[last.pk]) in to_counsellor.body
    assert all("Private words" not in m.body for m in mail.outbox)
    assert "Priya" not in to_counsellor.body


@pytest.mark.parametrize("record", ["complete", "no_show", "cancel"])
def test_recording_the_last_session_makes_the_held_request(
    record, session_type, slot, last, counsellor_user, admin_user, oncommit
):
    draft = _held(session_type, slot, oncommit)
    mail.outbox.clear()
    with oncommit():
        if record == "complete":
            booking_complete(booking_id=last.pk, user=counsellor_user)
        elif record == "no_show":
            booking_no_show(booking_id=last.pk, user=counsellor_user)
        else:
            booking_cancel(booking_id=last.pk, actor="staff", reason="Clinic closed", user=admin_user)
    draft.refresh_from_db()
    assert draft.status == Status.PENDING
    subjects = [m.subject for m in mail.outbox if m.to == [EMAIL]]
    assert any(s.startswith("We have received your booking request") for s in subjects)
    assert any(m.subject == f"New booking request: {draft.ack_id}" for m in mail.outbox)
    texts = [entry.text for entry in booking_timeline(draft)]
    assert "You confirmed your email address; your request waited for your last session to be recorded" in texts
    assert "You confirmed your email address; your request reached the clinic" in texts


def test_the_hourly_sweep_makes_a_held_request_whose_call_was_lost(session_type, slot, last, counsellor_user, oncommit):
    draft = _held(session_type, slot, oncommit)
    booking_complete(booking_id=last.pk, user=counsellor_user)  # its after-commit work never runs
    assert Booking.objects.get(pk=draft.pk).status == Status.DRAFT
    with oncommit():
        call_command("purge_drafts", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert Booking.objects.get(pk=draft.pk).status == Status.PENDING
    assert held_requests_release() == 0  # nothing twice


def test_a_held_request_outlives_the_drafts_purge_and_is_given_up_in_time(session_type, slot, last, oncommit):
    draft = _held(session_type, slot, oncommit)
    later = timezone.now() + timedelta(hours=settings.DRAFT_RETENTION_HOURS + 1)
    assert held_requests_release(now=later) == 0
    assert drafts_purge(now=later) == 0
    assert Booking.objects.filter(pk=draft.pk).exists()

    mail.outbox.clear()
    too_late = timezone.now() + timedelta(days=settings.HELD_REQUEST_DAYS, hours=1)
    with oncommit():
        assert held_requests_release(now=too_late) == 0
    (told,) = mail.outbox
    assert told.to == [EMAIL] and told.subject == "We could not send your booking request"
    assert f"not happened within {settings.HELD_REQUEST_DAYS} days" in told.body
    assert reverse("bookings:wizard") in told.body
    assert drafts_purge(now=too_late) == 1
    # The email outlives the draft it was about: it was never the draft's.
    assert OutboundEmail.objects.filter(kind="request_not_made", to=EMAIL).exists()


def test_a_held_request_whose_way_of_meeting_went_is_given_up(session_type, slot, last, counsellor_user, oncommit):
    draft = _held(session_type, slot, oncommit)
    session_type.offers_online = False
    session_type.offers_in_person = True
    session_type.save()
    mail.outbox.clear()
    with oncommit():
        booking_complete(booking_id=last.pk, user=counsellor_user)
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT and draft.verified_at is None
    (told,) = [m for m in mail.outbox if m.to == [EMAIL]]
    assert "no longer offered the way you chose" in told.body


def test_confirming_again_while_held_asks_the_counsellor_once(session_type, slot, last, oncommit):
    draft = _held(session_type, slot, oncommit)
    raw = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    mail.outbox.clear()
    with oncommit(), pytest.raises(RequestHeld):
        booking_verify(token=raw)
    assert mail.outbox == []


def test_an_upcoming_session_still_refuses_a_second_request(session_type, slot, make_booking, oncommit):
    make_booking(Status.CONFIRMED, email=EMAIL)  # its session is days away
    draft, raw = _draft(session_type, slot)
    with oncommit(), pytest.raises(ActiveBookingExists) as excinfo:
        booking_verify(token=raw)
    assert not isinstance(excinfo.value, RequestHeld)
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT and draft.verified_at is None


def test_the_held_email_retried_after_its_request_was_made_is_given_up(
    session_type, slot, last, counsellor_user, oncommit
):
    from bookings.emails import _outdated

    draft = _held(session_type, slot, oncommit)
    held_email = OutboundEmail.objects.get(kind="request_held")
    asked = OutboundEmail.objects.get(kind="record_to_rebook")
    booking_complete(booking_id=last.pk, user=counsellor_user)
    held_requests_release(email=EMAIL)
    assert Booking.objects.get(pk=draft.pk).status == Status.PENDING
    assert _outdated(held_email, now=timezone.now())
    assert _outdated(asked, now=timezone.now()) == "The session had been recorded before it was sent"


def test_the_verify_page_says_the_request_is_saved(client, session_type, slot, last):
    _, raw = _draft(session_type, slot)
    response = client.post(reverse("bookings:verify", args=[raw]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Thank you: your request is saved" in page
    assert last.ack_id not in page


def test_a_verified_held_request_is_in_the_address_owners_data(session_type, slot, last, oncommit):
    from bookings.services import privacy_held

    draft = _held(session_type, slot, oncommit)
    raw = token_create(booking=last, purpose=LinkToken.Purpose.EXPORT, lifetime=timedelta(hours=1))
    held = privacy_held(token=raw)
    assert draft.ack_id in [b.ack_id for b in held.bookings]


def test_two_held_requests_make_one_booking_and_the_other_is_told_of_it(
    session_type, slot, last, counsellor_user, oncommit
):
    first = _held(session_type, slot, oncommit)
    second, raw = _draft(session_type, slot, key="k2")
    mail.outbox.clear()
    with oncommit(), pytest.raises(RequestHeld):
        booking_verify(token=raw)
    assert [m.to for m in mail.outbox] == [[EMAIL]]  # the counsellor was asked already
    mail.outbox.clear()
    with oncommit():
        booking_complete(booking_id=last.pk, user=counsellor_user)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.PENDING
    assert second.status == Status.DRAFT and second.verified_at is None  # left to drafts_purge
    to_client = [m for m in mail.outbox if m.to == [EMAIL]]
    assert any(m.subject == f"You already have an active booking: {first.ack_id}" for m in to_client)


def test_a_held_request_keeps_its_address(client, session_type, slot, last, oncommit):
    """Confirmed, its address is confirmed: "send it to another address" no longer applies,
    or the request would be made for an address nobody confirmed."""
    from bookings.services import booking_resend_verification

    draft = _held(session_type, slot, oncommit)
    mail.outbox.clear()
    with oncommit():
        booking_resend_verification(booking=draft, email="stranger@example.com")
    draft.refresh_from_db()
    assert draft.email == EMAIL and mail.outbox == []


def test_a_held_requests_used_link_says_it_is_saved(client, session_type, slot, last):
    _, raw = _draft(session_type, slot)
    assert client.post(reverse("bookings:verify", args=[raw])).status_code == 200
    again = client.post(reverse("bookings:verify", args=[raw]))
    page = again.content.decode()
    assert "your request is saved, and we will send it to them as soon as it has been" in page
    assert "has reached us" not in page and "Send me a new link" not in page


def test_a_held_request_erased_meanwhile_is_purged(session_type, slot, last, counsellor_user, oncommit):
    from bookings.services import booking_anonymise

    draft = _held(session_type, slot, oncommit)
    booking_complete(booking_id=last.pk, user=counsellor_user)  # its after-commit call lost
    booking_anonymise(booking_id=draft.pk, reason="Erased at the client's request")
    later = timezone.now() + timedelta(hours=settings.DRAFT_RETENTION_HOURS + 1)
    assert held_requests_release(now=later) == 0
    assert drafts_purge(now=later) == 1


def test_the_held_email_of_a_request_given_up_is_not_sent_again(session_type, slot, last, oncommit):
    from bookings.emails import _outdated

    draft = _held(session_type, slot, oncommit)
    held_email = OutboundEmail.objects.get(kind="request_held")
    assert _outdated(held_email, now=timezone.now()) == ""
    Booking.objects.filter(pk=draft.pk).update(verified_at=None)  # given up
    assert _outdated(held_email, now=timezone.now())


def test_the_data_copy_calls_a_held_request_saved(client, session_type, slot, last, oncommit):
    draft = _held(session_type, slot, oncommit)
    raw = token_create(booking=last, purpose=LinkToken.Purpose.EXPORT, lifetime=timedelta(hours=1))
    page = client.get(reverse("bookings:privacy_export", args=[raw])).content.decode()
    assert draft.ack_id in page and "Saved, waiting for your last session to be recorded" in page


def test_staff_see_which_session_a_client_waits_on_to_book_again(
    client, session_type, slot, last, counsellor_user, oncommit
):
    from staff.tests.conftest import sign_in_with_second_factor

    _held(session_type, slot, oncommit)
    sign_in_with_second_factor(client, counsellor_user)
    dashboard = client.get(reverse("staff:dashboard")).content.decode()
    assert "Next session asked for" in dashboard
    page = client.get(reverse("staff:booking_detail", args=[last.pk])).content.decode()
    assert "The client has asked for their next session" in page
    assert "Private words" not in dashboard + page  # the held request's own words stay in it


def test_an_older_link_of_a_held_request_says_it_is_saved_too(client, session_type, slot, last, oncommit):
    draft = _held(session_type, slot, oncommit)
    older = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    LinkToken.objects.filter(booking=draft).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = client.get(reverse("bookings:verify", args=[older])).content.decode()
    assert "your request is saved, and we will send it to them as soon as it has been" in page
    assert "Send me a new link" not in page
    assert "start a new booking request" not in page
