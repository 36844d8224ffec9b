"""Reads that several views share. Each returns a queryset or a small value, in few queries."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from bookings.models import SLOT_HOLDING_STATUSES, BlockedPeriod, Booking, Counsellor, SessionType, Slot


def slots_free(
    *,
    session_type: SessionType | None = None,
    counsellor: Counsellor | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    for_clients: bool = True,
) -> QuerySet[Slot]:
    """Published slots nobody holds, in one query (NOT EXISTS on the holding bookings).

    `for_clients` applies the minimum notice and booking horizon.
    """
    now = timezone.now()
    qs = Slot.objects.filter(counsellor__is_active=True).annotate(
        taken=Exists(Booking.objects.filter(slot=OuterRef("pk"), status__in=SLOT_HOLDING_STATUSES))
    )
    qs = qs.filter(taken=False)
    # Slots kept only because past bookings refer to them are hidden inside blocked periods.
    qs = qs.exclude(
        Exists(
            BlockedPeriod.objects.filter(
                counsellor_id=OuterRef("counsellor_id"), start__lt=OuterRef("end"), end__gt=OuterRef("start")
            )
        )
    )
    if for_clients:
        earliest = now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS)
        latest = now + timedelta(days=settings.BOOKING_HORIZON_DAYS)
        start = max(start, earliest) if start else earliest
        end = min(end, latest) if end else latest
    else:
        start = start or now
    qs = qs.filter(start__gte=start)
    if end is not None:
        qs = qs.filter(start__lt=end)
    if counsellor is not None:
        qs = qs.filter(counsellor=counsellor)
    if session_type is not None:
        qs = qs.filter(end__gte=_plus_minutes("start", session_type.duration_minutes))
        if not session_type.offers_in_person:
            qs = qs.filter(counsellor__offers_online=True)
        if not session_type.offers_online:
            qs = qs.filter(counsellor__offers_in_person=True)
    return qs.select_related("counsellor").order_by("start", "counsellor__sort_order")


def _plus_minutes(field: str, minutes: int):
    from django.db.models import DateTimeField, ExpressionWrapper, F, Value

    return ExpressionWrapper(F(field) + Value(timedelta(minutes=minutes)), output_field=DateTimeField())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Midnight to midnight of `day` in the clinic's time zone, as aware datetimes."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()), tz)
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()), tz)
