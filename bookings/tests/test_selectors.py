"""bookings/selectors.py: what slots_free calls free, checked against the rules written out by
hand over every slot, for each combination of its filters."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from bookings import selectors
from bookings.models import SLOT_HOLDING_STATUSES, BlockedPeriod, Booking, Counsellor, Mode, SessionType, Slot, Status
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


def _slot(counsellor: Counsellor, start: datetime, minutes: int = 60) -> Slot:
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=minutes))


@pytest.fixture
def calendar(counsellor, other_counsellor, session_type, make_booking) -> dict[str, object]:
    """Slots of counsellors offering different modes, of different lengths, with everything
    that makes a slot not free."""
    counsellor.sort_order = 2
    counsellor.save()
    other_counsellor.offers_in_person, other_counsellor.sort_order = False, 1
    other_counsellor.save()
    in_person = Counsellor.objects.create(display_name="In Person", slug="in-person", offers_online=False, sort_order=3)
    away = Counsellor.objects.create(display_name="Gone Away", slug="gone", is_active=False)
    for days_ahead in (2, 3, 4, 6):
        for hour, minutes in ((9, 30), (10, 60), (12, 90)):
            for who in (counsellor, other_counsellor, in_person, away):
                _slot(who, next_weekday_at(hour, days_ahead=days_ahead), minutes)
    free_of = Slot.objects.filter(counsellor=counsellor, start__gte=next_weekday_at(0, days_ahead=3)).order_by("start")
    held = list(free_of[: len(SLOT_HOLDING_STATUSES)])
    for status, slot in zip(SLOT_HOLDING_STATUSES, held, strict=True):
        make_booking(status, slot=slot)
    # Bookings that no longer hold their slot.
    make_booking(Status.CANCELLED, slot=_slot(counsellor, next_weekday_at(15, days_ahead=3)))
    make_booking(Status.REJECTED, slot=_slot(counsellor, next_weekday_at(16, days_ahead=3)))
    # Leave over part of one slot; another ends exactly where a slot starts.
    BlockedPeriod.objects.create(
        counsellor=other_counsellor,
        start=next_weekday_at(10, days_ahead=4) + timedelta(minutes=30),
        end=next_weekday_at(11, days_ahead=4),
    )
    BlockedPeriod.objects.create(
        counsellor=in_person, start=next_weekday_at(8, days_ahead=4), end=next_weekday_at(9, days_ahead=4)
    )
    _slot(counsellor, timezone.now() + timedelta(hours=2))  # too soon for clients
    _slot(counsellor, timezone.now() + timedelta(days=settings.BOOKING_HORIZON_DAYS + 5))  # beyond the horizon
    return {
        "online only": SessionType.objects.create(
            name="Check-in", slug="check-in", duration_minutes=30, price=1, offers_in_person=False
        ),
        "in person only": SessionType.objects.create(
            name="Long", slug="long", duration_minutes=90, price=1, offers_online=False
        ),
        "both": session_type,
    }


def _free_by_hand(
    *,
    session_type: SessionType | None = None,
    counsellor: Counsellor | None = None,
    mode: str | None = None,
    start: datetime,
    end: datetime | None,
) -> list[int]:
    held = set(Booking.objects.filter(status__in=SLOT_HOLDING_STATUSES).values_list("slot_id", flat=True))
    blocked = list(BlockedPeriod.objects.all())
    free = []
    for slot in Slot.objects.select_related("counsellor"):
        c = slot.counsellor
        modes = {Mode.ONLINE: c.offers_online, Mode.IN_PERSON: c.offers_in_person}
        if (
            slot.pk in held
            or not c.is_active
            or any(b.counsellor_id == c.pk and b.start < slot.end and b.end > slot.start for b in blocked)
            or slot.start < start
            or (end is not None and slot.start >= end)
            or (counsellor is not None and c.pk != counsellor.pk)
            or (mode is not None and not modes[mode])
        ):
            continue
        if session_type is not None and (
            slot.duration < session_type.duration or not any(modes[m] for m in session_type.modes)
        ):
            continue
        free.append(slot)
    return [s.pk for s in sorted(free, key=lambda s: (s.start, s.counsellor.sort_order))]


@pytest.mark.parametrize("mode", [None, Mode.ONLINE, Mode.IN_PERSON])
@pytest.mark.parametrize("type_name", [None, "both", "online only", "in person only"])
@pytest.mark.parametrize("one_counsellor", [False, True])
def test_slots_free_for_clients_follows_the_rules(calendar, counsellor, mode, type_name, one_counsellor):
    session_type = calendar[type_name] if type_name else None
    who = counsellor if one_counsellor else None
    now = timezone.now()
    window = {
        "start": now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS),
        "end": now + timedelta(days=settings.BOOKING_HORIZON_DAYS),
    }
    found = selectors.slots_free(session_type=session_type, counsellor=who, mode=mode)
    expected = _free_by_hand(session_type=session_type, counsellor=who, mode=mode, **window)
    assert [s.pk for s in found] == expected
    if not one_counsellor and type_name in (None, "both"):
        assert expected  # the comparison is not between two empty lists
    # The client-facing name for the same question.
    found = selectors.slots_free_for_client(session_type=session_type, counsellor=who, mode=mode)
    assert [s.pk for s in found] == expected


def test_slots_free_for_staff_has_no_notice_or_horizon(calendar):
    now = timezone.now()
    everything = selectors.slots_free(for_clients=False)
    assert [s.pk for s in everything] == _free_by_hand(start=now, end=None)
    start, end = now + timedelta(hours=1), now + timedelta(days=3)
    window = selectors.slots_free(for_clients=False, start=start, end=end)
    assert [s.pk for s in window] == _free_by_hand(start=start, end=end)


def test_slots_free_reads_each_counsellor_with_its_slot(calendar, django_assert_num_queries):
    with django_assert_num_queries(1):
        names = {slot.counsellor.display_name for slot in selectors.slots_free()}
    assert names == {"In Person", *Counsellor.objects.filter(user__isnull=False).values_list("display_name", flat=True)}


def test_one_call_does_not_narrow_the_next(calendar, counsellor):
    """slots_free filters a queryset built once: no call, nor its use as a subquery, may
    change what the next call finds."""
    everyone = [s.pk for s in selectors.slots_free()]
    narrowed = [s.pk for s in selectors.slots_free(session_type=calendar["in person only"], counsellor=counsellor)]
    assert narrowed and len(narrowed) < len(everyone)
    next_free = {c.pk: c.next_free_slot_id for c in selectors.counsellors_public()}
    assert next_free[counsellor.pk] in everyone
    assert [s.pk for s in selectors.slots_free()] == everyone


@pytest.mark.parametrize(
    ("minutes", "online", "in_person", "expected"),
    [
        (60, True, True, {"both": ["online", "in_person"], "online only": ["online"], "in person only": []}),
        (90, False, True, {"both": ["in_person"], "online only": [], "in person only": ["in_person"]}),
        (30, True, True, {"both": [], "online only": ["online"], "in person only": []}),
        (60, False, False, {"both": [], "online only": [], "in person only": []}),
    ],
)
def test_slot_modes(calendar, minutes, online, in_person, expected):
    found = {
        name: selectors.slot_modes(
            length=timedelta(minutes=minutes), offers_online=online, offers_in_person=in_person, session_type=t
        )
        for name, t in calendar.items()
    }
    assert found == expected


@pytest.mark.parametrize(
    "names",
    [["both"], ["online only"], ["in person only"], ["online only", "in person only"], ["in person only", "both"]],
)
def test_fits_q_is_slot_modes_rule_in_sql(calendar, names):
    """Which slots can hold one of some session types: fits_q in SQL says what slot_modes says
    slot by slot, also for a counsellor who offers neither mode."""
    nowhere = Counsellor.objects.create(
        display_name="No Modes", slug="no-modes", offers_online=False, offers_in_person=False
    )
    _slot(nowhere, next_weekday_at(9, days_ahead=2), 120)
    session_types = [calendar[name] for name in names]
    free = selectors.slots_free(for_clients=False)
    found = [s.pk for s in free.filter(selectors.fits_q(selectors.shortest_by_mode(session_types)))]
    expected = [
        s.pk
        for s in free
        if any(
            selectors.slot_modes(
                length=s.duration,
                offers_online=s.counsellor.offers_online,
                offers_in_person=s.counsellor.offers_in_person,
                session_type=t,
            )
            for t in session_types
        )
    ]
    assert found == expected
    assert 0 < len(found) < free.count()
    if len(session_types) == 1:
        narrowed = selectors.slots_free(for_clients=False, session_type=session_types[0])
        assert [s.pk for s in narrowed] == expected
