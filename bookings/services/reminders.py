"""Reminders before sessions and the counsellors' daily summary."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from bookings import notifications, selectors
from bookings.models import (
    Actor,
    Booking,
    BookingEvent,
    Counsellor,
    DailySummary,
    Reminder,
    Status,
)
from bookings.services.decisions import cancellation_open_for_client
from mindsettler.logging import one_of_a_batch

logger = logging.getLogger(__name__)


# --- Reminders and the counsellors' daily summary ---------------------------------------
# Both are sent by periodic commands (cron or a task worker), safe to run concurrently and
# again: each email is claimed by inserting a row a unique constraint allows only once, in
# the same transaction that queues the email.


# The claim of a reminder held back (its counsellor has left), beside the reminder's kind.
HELD_BACK = " held back"


def reminder_kind(hours: int) -> str:
    return f"{hours}h"


def reminders_send(*, now: datetime | None = None) -> int:
    """Queue the reminders that are due for CONFIRMED sessions. Returns how many.

    A reminder of REMINDER_HOURS `h` is due from `h` hours before the session until the next
    (shorter) reminder's time, or the start. It is not sent if the session was confirmed
    after that time (the confirmation has just told the client), nor for a session
    cancelled or moved since: the booking is re-read under a lock with its slot, and a
    reminder is keyed by the slot, so a moved session gets fresh reminders for its new time.
    """
    now = now or timezone.now()
    offsets = sorted(set(settings.REMINDER_HOURS), reverse=True)
    queued = 0
    for i, hours in enumerate(offsets):
        kind = reminder_kind(hours)
        until = offsets[i + 1] if i + 1 < len(offsets) else 0
        due = (
            Booking.objects.filter(
                status=Status.CONFIRMED,
                slot__start__gt=now + timedelta(hours=until),
                slot__start__lte=now + timedelta(hours=hours),
            )
            .exclude(Exists(Reminder.objects.filter(booking=OuterRef("pk"), slot=OuterRef("slot"), kind=kind)))
            .exclude(
                Exists(
                    BookingEvent.objects.filter(
                        booking=OuterRef("pk"),
                        # Its confirmation: not a note made of it since (a link set, an email resent).
                        action__in=("transition", "created"),
                        to_status=Status.CONFIRMED,
                        created_at__gt=OuterRef("slot__start") - timedelta(hours=hours),
                    )
                )
            )
            .order_by("slot__start")
            .values_list("pk", "slot_id")
        )
        for booking_id, slot_id in list(due):
            with one_of_a_batch("reminder for booking", booking_id):
                queued += _reminder_send(booking_id=booking_id, slot_id=slot_id, kind=kind, now=now)
    return queued


def _reminder_send(*, booking_id: int, slot_id: int, kind: str, now: datetime) -> bool:
    with transaction.atomic():
        # skip_locked: a booking being changed right now (cancelled, moved) is left for the
        # next run, which sees what it became.
        booking = (
            Booking.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("slot", "counsellor__user", "session_type")
            .filter(pk=booking_id, status=Status.CONFIRMED, slot_id=slot_id, slot__start__gt=now)
            .first()
        )
        if booking is None:
            return False
        held_back = not selectors.counsellor_at_work(booking.counsellor)
        try:
            with transaction.atomic():
                # Held back, it is claimed under a key of its own: the reminder itself is
                # still due if the counsellor comes back before the session.
                reminder = Reminder.objects.create(
                    booking=booking, kind=f"{kind}{HELD_BACK}" if held_back else kind, slot_id=slot_id
                )
        except IntegrityError:
            return False  # another run sent this one (or told the administrators)
        if held_back:
            # Their counsellor has left and nobody has taken the session over: a reminder
            # would send the client to someone who is not there. The administrators are told
            # instead, at each reminder's time; moved into another counsellor's time, the
            # session gets its reminders again (they are keyed by the slot).
            notifications.session_changed(
                booking=booking, change="unheld", counsellor=booking.counsellor, actor=Actor.SYSTEM
            )
            logger.info("booking %s: %s reminder held back, its counsellor has left", booking_id, kind)
            return False
        cancel_online = cancellation_open_for_client(booking=booking, now=now)
        reminder.email = notifications.reminder(booking=booking, cancel_online=cancel_online)
        reminder.save(update_fields=["email"])
    logger.info("booking %s: %s reminder queued", booking_id, kind)
    return True


def daily_summaries_send(*, today: date | None = None) -> int:
    """Email each counsellor at work who asked for it (Counsellor.daily_summary) a list of
    today's sessions: times, acknowledgement IDs and client initials only. Once per
    counsellor per day, however often it runs; a day without sessions sends nothing.
    Returns how many were queued."""
    today = today or timezone.localdate()
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(today, time.min), tz)
    end = timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min), tz)
    # Whether clients see the profile is not asked: staff book counsellors it hides too.
    counsellors = (
        Counsellor.objects.filter(daily_summary=True, user__is_active=True)
        .exclude(user__email="")
        .exclude(Exists(DailySummary.objects.filter(counsellor=OuterRef("pk"), day=today)))
        .select_related("user")
    )
    queued = 0
    for counsellor in counsellors:
        with one_of_a_batch("daily summary for counsellor", counsellor.pk):
            queued += _daily_summary_send(counsellor=counsellor, today=today, start=start, end=end)
    return queued


def _daily_summary_send(*, counsellor: Counsellor, today: date, start: datetime, end: datetime) -> bool:
    """One counsellor's summary of `today` (from `start` to `end`), claimed first. True if it was queued."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                summary = DailySummary.objects.create(counsellor=counsellor, day=today)
        except IntegrityError:
            return False  # another run has it
        sessions = list(
            Booking.objects.filter(
                slot__counsellor=counsellor,
                status__in=(Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED),
                slot__start__gte=start,
                slot__start__lt=end,
            )
            .select_related("slot", "session_type")
            .order_by("slot__start")
        )
        summary.sessions = len(sessions)
        if sessions:
            summary.email = notifications.daily_summary(counsellor=counsellor, day=today, bookings=sessions)
        summary.save(update_fields=["sessions", "email"])
    return bool(sessions)
