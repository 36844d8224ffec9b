"""A waitlist place ended while a freed slot is being offered is not offered the slot
(PostgreSQL, real threads): the offer waits for the ending, then passes the place by."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from bookings.models import SessionType, Slot, WaitlistEntry, WaitlistOffer
from bookings.services import waitlist_end_unserved, waitlist_offer_slot
from bookings.tests.test_session_type_lock import held_open
from conftest import next_weekday_at

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


def test_a_place_ended_while_a_slot_is_offered_is_not_offered_it(session_type, counsellor):
    start = next_weekday_at(10, days_ahead=6)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    day = timezone.localtime(start).date()
    entry = WaitlistEntry.objects.create(
        client_name="Waiting Client",
        email="waiting@example.com",
        session_type=session_type,
        mode="online",
        date_from=day,
        date_to=day,
        verified_at=timezone.now(),
    )

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
