from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from bookings.errors import (
    ActiveBookingExists,
    BookingError,
    PolicyVersionChanged,
    SlotUnavailable,
    StaleBooking,
    TokenInvalid,
    TooLate,
)
from bookings.models import Actor, Booking, BookingEvent, ConsentGiven, LinkToken, Mode, Slot, Status
from bookings.services import (
    ack_id_normalise,
    booking_approve,
    booking_cancel,
    booking_complete,
    booking_create_by_staff,
    booking_reject,
    booking_submit,
    booking_verify,
    email_normalise,
    payment_due_at,
    phone_normalise,
)
from bookings.tokens import token_create, token_get
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MS-ABC234", "MS-ABC234"),
        ("  ms-abc234 ", "MS-ABC234"),
        ("msabc234", "MS-ABC234"),
        # As people paste them (the status page and the API read them alike):
        ("abc234", "MS-ABC234"),
        ("MS ABC234", "MS-ABC234"),
        ("ms\u2013abc234", "MS-ABC234"),
        ("MS-ABC234.", "MS-ABC234"),
        ("ms-abcd", None),  # "MS-" and four characters: a short ID, not the code MSABCD
        ("MS-" + "A" * 30, None),
        ("MS-ABC12O", None),  # 1 and O are not in the alphabet
        ("MS-ABC23", None),
        ("", None),
        ("<script>", None),
    ],
)
def test_ack_id_normalise(raw, expected):
    assert ack_id_normalise(raw) == expected


def test_email_and_phone_normalise():
    assert email_normalise("  Priya.S@Example.COM ") == "priya.s@example.com"
    assert phone_normalise("98765 43210") == "+919876543210"
    assert phone_normalise("+44 20 7946 0958") == "+442079460958"
    assert phone_normalise("") == ""
    with pytest.raises(ValueError, match="not valid"):
        phone_normalise("12345")
    with pytest.raises(ValueError, match="Enter a phone number"):
        phone_normalise("call me maybe")


def _ist(day: int, hour: int, minute: int = 0, second: int = 0):
    """A moment in November 2026 in the clinic's zone (the settings' Asia/Kolkata)."""
    return timezone.make_aware(datetime(2026, 11, day, hour, minute, second))


def test_payment_is_due_at_the_end_of_the_day_48h_after_approval():
    # Approved Friday 10:15: 48 hours run out on Sunday morning, and the client has all Sunday.
    assert payment_due_at(approved_at=_ist(27, 10, 15), now=_ist(27, 10, 15), session_start=_ist(30, 18)) == _ist(
        29, 23, 59, 59
    )
    # Approved just after midnight: "by Sunday 00:30" would be read as all of Sunday; it is Sunday's end.
    assert payment_due_at(approved_at=_ist(27, 0, 30), now=_ist(27, 0, 30), session_start=_ist(30, 18)) == _ist(
        29, 23, 59, 59
    )


def test_payment_is_due_no_later_than_12h_before_the_session():
    assert payment_due_at(approved_at=_ist(27, 10), now=_ist(27, 10), session_start=_ist(28, 20)) == _ist(28, 8)


def test_a_limit_in_the_small_hours_moves_back_to_the_evening_before():
    # A Sunday 14:00 session: 12 hours before is Sunday 02:00, which a client reads as Sunday.
    assert payment_due_at(approved_at=_ist(27, 10), now=_ist(27, 10), session_start=_ist(29, 14)) == _ist(
        28, 23, 59, 59
    )
    # Unless the evening is less than an hour away: then the limit itself stands.
    assert payment_due_at(approved_at=_ist(28, 23, 30), now=_ist(28, 23, 30), session_start=_ist(29, 14)) == _ist(29, 2)
    # Or already past, when staff move a session approved earlier (approved 22:30, moved at 00:30).
    assert payment_due_at(approved_at=_ist(27, 22, 30), now=_ist(28, 0, 30), session_start=_ist(28, 14)) == _ist(28, 2)


def _submit(session_type, slot, key="k1", email="Priya@Example.com", **overrides):
    data = dict(
        submission_key=key,
        session_type=session_type,
        mode=Mode.ONLINE,
        counsellor=None,
        preferred_slot=slot,
        preferred_times="",
        client_name="Priya S",
        email=email,
        phone="",
        age_confirmation=Booking.AgeConfirmation.ADULT,
        concerns="Private words",
    )
    data.update(overrides)
    return booking_submit(**data)


def test_submit_makes_one_draft_per_submission_key_and_emails_a_link(session_type, slot, oncommit):
    with oncommit():
        booking, created = _submit(session_type, slot)
    again, created_again = _submit(session_type, slot)
    assert created and not created_again and again.pk == booking.pk
    assert booking.status == Status.DRAFT
    assert booking.email == "priya@example.com"
    assert booking.counsellor == slot.counsellor
    assert booking.consent_policy_version and booking.consented_at
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["priya@example.com"]
    assert "/verify/" in message.body
    assert "Private words" not in message.body + message.alternatives[0][0] + message.subject


def test_submit_refuses_a_taken_or_too_soon_slot(session_type, slot, make_booking, counsellor):
    make_booking(Status.CONFIRMED, slot=slot)
    with pytest.raises(SlotUnavailable):
        _submit(session_type, slot)
    start = timezone.now() + timedelta(hours=2)
    soon = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    with pytest.raises(SlotUnavailable, match="too soon"):
        _submit(session_type, soon, key="k2")
    assert not Booking.objects.filter(status=Status.DRAFT).exists()


def test_submit_refuses_a_slot_too_short_for_the_session(session_type, counsellor):
    start = next_weekday_at(12)
    short = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=30))
    with pytest.raises(SlotUnavailable, match="too short"):
        _submit(session_type, short)


def test_submit_refuses_a_mode_the_session_type_does_not_offer(session_type, slot):
    session_type.offers_in_person = False
    session_type.save()
    with pytest.raises(BookingError, match=r"is not held in person\. Choose online, or another kind of session\."):
        _submit(session_type, slot, mode=Mode.IN_PERSON)


def test_verify_moves_draft_to_pending_once(session_type, slot, oncommit):
    booking, _ = _submit(session_type, slot)
    raw = token_create(booking=booking, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    with oncommit():
        verified = booking_verify(token=raw)
    assert verified.status == Status.PENDING
    assert [m.subject for m in mail.outbox][-1].startswith("We have received your booking request")
    # They read the notice in the form itself: only a booking staff made links it here.
    assert "/privacy/" not in mail.outbox[-1].body
    with pytest.raises(TokenInvalid) as excinfo:
        booking_verify(token=raw)
    assert excinfo.value.reason == "used"


def test_verify_with_an_active_booking_for_the_email_makes_no_second_one(session_type, slot, make_booking, oncommit):
    existing = make_booking(Status.PENDING, email="priya@example.com")
    draft, _ = _submit(session_type, slot)
    raw = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    mail.outbox.clear()
    with oncommit(), pytest.raises(ActiveBookingExists):
        booking_verify(token=raw)
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    assert len(mail.outbox) == 1 and existing.ack_id in mail.outbox[0].body


def test_expired_and_tampered_tokens_are_refused(make_booking, counsellor):
    draft = make_booking(Status.DRAFT, counsellor=counsellor)
    raw = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    LinkToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TokenInvalid) as excinfo:
        booking_verify(token=raw)
    assert excinfo.value.reason == "expired"
    with pytest.raises(TokenInvalid) as excinfo:
        booking_verify(token=raw[:-1] + ("A" if raw[-1] != "A" else "B"))
    assert excinfo.value.reason == "unknown"
    with pytest.raises(TokenInvalid):
        token_get(raw=raw, purpose=LinkToken.Purpose.MANAGE)  # right secret, wrong purpose


def test_approve_sets_slot_counsellor_and_payment_window(make_booking, slot, admin_user, oncommit):
    booking = make_booking(Status.PENDING)
    with oncommit():
        approved = booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    assert approved.status == Status.APPROVED
    assert approved.slot == slot and approved.counsellor == slot.counsellor
    assert approved.payment_due_at <= slot.start - timedelta(hours=12)
    event = BookingEvent.objects.get(booking=booking)
    assert event.actor == Actor.STAFF and event.actor_user == admin_user
    assert "reserved" in mail.outbox[-1].body


def test_approve_refuses_a_taken_slot_a_past_slot_and_a_stale_page(make_booking, slot, counsellor, admin_user):
    make_booking(Status.CONFIRMED, slot=slot)
    booking = make_booking(Status.PENDING)
    with pytest.raises(SlotUnavailable):
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    start = timezone.now() - timedelta(hours=3)
    past = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    with pytest.raises(TooLate):
        booking_approve(booking_id=booking.pk, slot_id=past.pk, user=admin_user)
    free_start = next_weekday_at(16)
    free = Slot.objects.create(counsellor=counsellor, start=free_start, end=free_start + timedelta(hours=1))
    with pytest.raises(StaleBooking):
        booking_approve(booking_id=booking.pk, slot_id=free.pk, user=admin_user, expected_version=booking.version + 1)
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_approve_refuses_a_time_the_counsellor_has_since_blocked_off(make_booking, slot, admin_user):
    """Leave added after the form was shown: the slot outlives the block only when a booking
    ever held it (here, a cancelled one), and staff are refused it as clients are."""
    from bookings.models import BlockedPeriod

    make_booking(Status.CANCELLED, slot=slot)
    BlockedPeriod.objects.create(counsellor=slot.counsellor, start=slot.start - timedelta(hours=1), end=slot.end)
    booking = make_booking(Status.PENDING)
    with pytest.raises(SlotUnavailable, match="has blocked off that time"):
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_approve_refuses_a_counsellor_who_does_not_offer_the_bookings_mode(make_booking, counsellor, admin_user):
    from staff.selectors import approve_slot_choices

    counsellor.offers_in_person = False
    counsellor.save(update_fields=["offers_in_person"])
    start = next_weekday_at(16, days_ahead=5)
    online_only = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    booking = make_booking(Status.PENDING, mode=Mode.IN_PERSON, counsellor=None)
    # Not offered in the approve form's choices, and refused if posted anyway.
    assert online_only not in approve_slot_choices(user=admin_user, booking=booking)
    with pytest.raises(BookingError, match=r"does not meet clients in person\. Choose online, or another counsellor\."):
        booking_approve(booking_id=booking.pk, slot_id=online_only.pk, user=admin_user)
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_reject_needs_a_reason(make_booking, counsellor, admin_user):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with pytest.raises(BookingError, match="reason"):
        booking_reject(booking_id=booking.pk, user=admin_user, reason="  ")
    assert booking_reject(booking_id=booking.pk, user=admin_user, reason="No availability").status == Status.REJECTED


def test_complete_only_after_the_session_ends(make_booking, counsellor, admin_user):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    with pytest.raises(TooLate):
        booking_complete(booking_id=booking.pk, user=admin_user)
    Slot.objects.filter(pk=booking.slot_id).update(
        start=timezone.now() - timedelta(hours=2), end=timezone.now() - timedelta(hours=1)
    )
    assert booking_complete(booking_id=booking.pk, user=admin_user).status == Status.COMPLETED


def test_clients_cannot_cancel_inside_the_cutoff_but_staff_can(make_booking, counsellor, admin_user):
    start = timezone.now() + timedelta(hours=20)
    soon = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    booking = make_booking(Status.APPROVED, slot=soon)
    with pytest.raises(TooLate, match="contact the clinic"):
        booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    with pytest.raises(BookingError, match="reason"):
        booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="")
    cancelled = booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Client phoned")
    assert cancelled.status == Status.CANCELLED


def test_staff_created_booking_starts_pending_or_approved(session_type, slot, admin_user, make_booking, oncommit):
    with oncommit():
        booking = booking_create_by_staff(
            user=admin_user,
            status=Status.APPROVED,
            session_type=session_type,
            mode=Mode.IN_PERSON,
            client_name="Phone Client",
            email="Phone@Example.com",
            phone="",
            slot=slot,
            consent=ConsentGiven.PHONE,
            policy_version=settings.POLICY_VERSION,
        )
    assert booking.status == Status.APPROVED and booking.slot == slot and booking.created_by == admin_user
    assert mail.outbox[-1].to == ["phone@example.com"]
    with pytest.raises(ActiveBookingExists):
        booking_create_by_staff(
            user=admin_user,
            status=Status.PENDING,
            session_type=session_type,
            mode=Mode.ONLINE,
            client_name="Phone Client",
            email="phone@example.com",
            phone="",
            slot=None,
            consent=ConsentGiven.PHONE,
            policy_version=settings.POLICY_VERSION,
        )
    with pytest.raises(BookingError):
        booking_create_by_staff(
            user=admin_user,
            status=Status.CONFIRMED,
            session_type=session_type,
            mode=Mode.ONLINE,
            client_name="X",
            email="x@example.com",
            phone="",
            slot=None,
            consent=ConsentGiven.PHONE,
            policy_version=settings.POLICY_VERSION,
        )


def test_a_staff_booking_records_the_clients_agreement_to_the_current_privacy_notice(
    session_type, slot, admin_user, oncommit
):
    made = dict(
        user=admin_user,
        status=Status.APPROVED,
        session_type=session_type,
        mode=Mode.ONLINE,
        client_name="Phone Client",
        email="phone@example.com",
        phone="",
        slot=slot,
    )
    # Agreed to a notice no longer current, or in no way the clinic records: refused, nothing made.
    with pytest.raises(PolicyVersionChanged, match=f"changed to version {settings.POLICY_VERSION}"):
        booking_create_by_staff(**made, consent=ConsentGiven.PHONE, policy_version="2000-01-01")
    with pytest.raises(BookingError, match="how the client agreed"):
        booking_create_by_staff(**made, consent="", policy_version=settings.POLICY_VERSION)
    assert not Booking.objects.exists() and not mail.outbox
    with oncommit():
        booking = booking_create_by_staff(**made, consent=ConsentGiven.PHONE, policy_version=settings.POLICY_VERSION)
    assert booking.consent_policy_version == settings.POLICY_VERSION and booking.consented_at is not None
    event = booking.events.get(action=ConsentGiven.PHONE)
    assert (event.actor, event.actor_user, event.created_at) == (Actor.STAFF, admin_user, booking.consented_at)
    # The client's first email gives them in writing the notice they agreed to on the phone.
    (email,) = [m for m in mail.outbox if m.to == ["phone@example.com"]]
    assert f"you agreed to our privacy notice (version {settings.POLICY_VERSION})" in email.body
    assert "http://testserver/privacy/" in email.body
    assert 'href="http://testserver/privacy/"' in email.alternatives[0][0]


def test_staff_booking_refuses_a_slot_of_another_counsellor(session_type, counsellor, other_slot, admin_user):
    # The slot decides the counsellor only when none was chosen; a different one is a mistake.
    with pytest.raises(BookingError, match="That time is with Rohan Kapoor, not Asha Menon"):
        booking_create_by_staff(
            user=admin_user,
            status=Status.APPROVED,
            session_type=session_type,
            mode=Mode.ONLINE,
            client_name="Mismatch",
            email="mismatch@example.com",
            phone="",
            slot=other_slot,
            consent=ConsentGiven.PHONE,
            policy_version=settings.POLICY_VERSION,
            counsellor=counsellor,
        )
    assert not Booking.objects.filter(email="mismatch@example.com").exists()
