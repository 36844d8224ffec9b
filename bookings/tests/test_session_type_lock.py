"""A session type's length is fixed once a booking uses it, even when a booking is placed in a
slot at the moment an administrator saves a new length (PostgreSQL, real threads): whichever
comes first, the other waits for it and then sees it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction

from bookings.errors import BookingError
from bookings.models import Booking, Mode, SessionType, Slot, Status
from bookings.services import booking_create_by_staff, session_type_save
from conftest import next_weekday_at

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


def held_open(first: Callable[[], object], second: Callable[[], object]) -> tuple[str, str]:
    """Run `first` in a transaction kept open until `second`, started meanwhile in another
    thread, has had a second to finish; `second` must wait for it. Returns both outcomes."""
    started, release = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    def run(name: str, call: Callable[[], object], hold: bool) -> None:
        try:
            with transaction.atomic():
                call()
                if hold:
                    started.set()
                    release.wait(timeout=10)
            outcomes[name] = "ok"
        except BookingError as error:
            outcomes[name] = getattr(error, "field", error.code)
        finally:
            connections.close_all()

    one = threading.Thread(target=run, args=("first", first, True))
    one.start()
    assert started.wait(timeout=10)
    two = threading.Thread(target=run, args=("second", second, False))
    two.start()
    two.join(timeout=1)
    waited = two.is_alive()
    release.set()
    one.join(timeout=10)
    two.join(timeout=10)
    assert waited, "the second did not wait for the first"
    return outcomes["first"], outcomes["second"]


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
