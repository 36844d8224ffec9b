"""A session type's length is fixed once a booking uses it, even when a booking is placed in a
slot at the moment an administrator saves a new length (PostgreSQL, real threads): whichever
comes first, the other waits for it and then sees it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from bookings.models import Booking, ConsentGiven, Mode, SessionType, Slot, Status
from bookings.services import booking_create_by_staff, session_type_save
from bookings.tests.threads import held_open
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
