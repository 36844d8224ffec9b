"""The waitlist under real concurrency (PostgreSQL, real threads): a place ended while a freed
slot is being offered is not offered the slot (the offer waits for the ending, then passes
the place by); a freed slot's task and the sweep standing in for it send one batch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from bookings.models import SessionType, Slot, WaitlistEntry, WaitlistOffer
from bookings.services import waitlist_end_unserved, waitlist_offer_again, waitlist_offer_slot, waitlist_offer_slots
from bookings.tests.test_session_type_lock import held_open
from conftest import next_weekday_at, waiting_on

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


def test_a_place_ended_while_a_slot_is_offered_is_not_offered_it(session_type, counsellor):
    start = next_weekday_at(10, days_ahead=6)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    entry = waiting_on(slot, session_type)

    def retire() -> None:
        SessionType.objects.filter(pk=session_type.pk).update(is_active=False)
        assert waitlist_end_unserved(session_type=session_type) == 1

    def offer() -> None:
        # It reads the place as waiting (the retirement has not committed), then waits for
        # the place's row, then sees it ended.
        assert waitlist_offer_slot(slot_id=slot.pk) == 0

    assert held_open(retire, offer) == ("ok", "ok")
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.State.CLOSED and not WaitlistOffer.objects.exists()
    assert [m.subject for m in mail.outbox if "has become free" in m.subject] == []


@pytest.mark.parametrize("first", ["task", "sweep"])
def test_a_freed_slots_task_and_the_sweep_at_once_send_one_batch(session_type, counsellor, settings, first):
    """The task was slow, not lost: it offers the slot while the sweep, past the grace, reads
    it as still owed. The second to take the slot's lock finds its offer made."""
    settings.WAITLIST_OFFERS_PER_SLOT = 1
    start = next_weekday_at(10, days_ahead=6)
    day = timezone.localtime(start).date()
    for n in range(3):
        WaitlistEntry.objects.create(
            client_name="Waiting Client",
            email=f"w{n}@example.com",
            session_type=session_type,
            mode="online",
            date_from=day,
            date_to=day,
            verified_at=timezone.now() - timedelta(hours=2),
        )
    # Freed an hour ago (services.slots_freed), its offer still owed.
    slot = Slot.objects.create(
        counsellor=counsellor,
        start=start,
        end=start + timedelta(minutes=60),
        freed_at=timezone.now() - timedelta(hours=1),
    )
    offered: dict[str, int] = {}

    def task() -> None:
        offered["task"] = waitlist_offer_slots(slot_ids=[slot.pk])

    def sweep() -> None:
        offered["sweep"] = waitlist_offer_again()

    calls = (task, sweep) if first == "task" else (sweep, task)
    assert held_open(*calls) == ("ok", "ok")
    assert offered == {first: 1, ("sweep" if first == "task" else "task"): 0}
    assert WaitlistOffer.objects.filter(slot=slot).count() == 1
    assert len([m for m in mail.outbox if "has become free" in m.subject]) == 1
    assert Slot.objects.get(pk=slot.pk).freed_at is None
