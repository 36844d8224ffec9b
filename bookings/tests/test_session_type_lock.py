"""A session type's length is fixed once a booking uses it, even when a booking is placed in a
slot at the moment an administrator saves a new length; and a way of meeting stays while open
bookings are held that way, even when a draft held that way is verified at the moment it is
dropped (PostgreSQL, real threads): whichever comes first, the other waits for it and then
sees it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from bookings.models import Booking, ConsentGiven, LinkToken, Mode, SessionType, Slot, Status
from bookings.services import booking_create_by_staff, booking_verify, session_type_save
from bookings.tests.threads import held_open
from bookings.tokens import token_create
from conftest import next_weekday_at

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def actions(session_type, counsellor, admin_user):
    start = next_weekday_at(10, days_ahead=6)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))

    def lengthen() -> None:
        changed = SessionType.objects.get(pk=session_type.pk)
        changed.duration_minutes = 90
        session_type_save(session_type=changed)

    def book() -> None:
        booking_create_by_staff(
            user=admin_user,
            status=Status.APPROVED,
            session_type=SessionType.objects.get(pk=session_type.pk),  # as the form read it
            mode=Mode.ONLINE,
            client_name="Phoned In",
            email="phoned@example.com",
            phone="",
            slot=slot,
            consent=ConsentGiven.PHONE,
            policy_version=settings.POLICY_VERSION,
        )

    return lengthen, book


def test_a_booking_made_first_fixes_the_length_the_save_then_refuses(actions, session_type):
    lengthen, book = actions
    assert held_open(book, lengthen) == ("ok", "duration_minutes")
    session_type.refresh_from_db()
    assert session_type.duration_minutes == 50 and Booking.objects.count() == 1


def test_a_length_saved_first_is_the_one_the_booking_then_checks_its_slot_against(actions, session_type):
    lengthen, book = actions
    assert held_open(lengthen, book) == ("ok", "slot_unavailable")  # 60 minutes cannot hold 90
    session_type.refresh_from_db()
    assert session_type.duration_minutes == 90 and not Booking.objects.exists()


def test_two_administrators_adding_the_same_name_at_once_make_one(admin_user):
    def add(slug: str) -> Callable[[], None]:
        def save() -> None:
            new = SessionType(
                name="Walk and talk", slug=slug, duration_minutes=50, price=100000, offers_in_person=False
            )
            session_type_save(session_type=new)

        return save

    # Both checks find no such name; the second insert waits for the first, then is refused.
    assert held_open(add("walk"), add("walk-2")) == ("ok", "name")
    assert SessionType.objects.filter(name="Walk and talk").count() == 1


@pytest.fixture
def verify_or_drop_online(make_booking, session_type):
    """Verifying a draft held online, and an administrator no longer holding its session type
    online (allowed while no open booking is held that way)."""
    draft = make_booking(Status.DRAFT)
    token = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))

    def verify() -> None:
        booking_verify(token=token)

    def drop_online() -> None:
        changed = SessionType.objects.get(pk=session_type.pk)
        changed.offers_online = False
        session_type_save(session_type=changed)

    return draft, verify, drop_online


def test_a_draft_verified_first_keeps_its_way_of_meeting_the_save_then_refuses(verify_or_drop_online):
    draft, verify, drop_online = verify_or_drop_online
    assert held_open(verify, drop_online) == ("ok", "offers_online")
    draft.refresh_from_db()
    assert draft.status == Status.PENDING and SessionType.objects.get().offers_online


def test_a_way_of_meeting_dropped_first_is_the_one_verifying_then_checks(verify_or_drop_online):
    draft, verify, drop_online = verify_or_drop_online
    assert held_open(drop_online, verify) == ("ok", "refused")
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT and not SessionType.objects.get().offers_online
