"""Slots and availability: publishing, generating from weekly hours, blocking periods."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from bookings import selectors
from bookings.clinic_time import wall_clock_moment
from bookings.errors import (
    BookingError,
    SettingRefused,
    SlotsHeld,
    SlotUnavailable,
)
from bookings.models import (
    ACTIVE_STATUSES,
    MODE_FLAGS,
    BlockedPeriod,
    Booking,
    Counsellor,
    CounsellorPreviousSlug,
    Mode,
    Slot,
    Status,
    WeeklyHours,
)
from bookings.services.waitlist import slots_freed, waitlist_end_unserved

logger = logging.getLogger(__name__)


# --- Slots ------------------------------------------------------------------------------


def counsellor_save(*, counsellor: Counsellor) -> int:
    """Save a counsellor's profile or ways of meeting (changed in memory), and end the waitlist
    places they can no longer serve: returns how many waiting clients were told.

    Refused (SettingRefused): dropping a way of meeting while an open booking with them is
    held that way, as for session types: the booking could then not be approved into their
    times, nor moved. Checked under the counsellor's lock, which approving and moving take.
    Also refused: a link name (slug) another counsellor had before (_counsellor_slug_change)."""
    stored = None
    with transaction.atomic():
        if counsellor.pk is not None:
            stored = Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
            for mode, flag in MODE_FLAGS.items():
                if (
                    stored is not None
                    and getattr(stored, flag)
                    and not getattr(counsellor, flag)
                    and Booking.objects.filter(counsellor=counsellor, mode=mode, status__in=ACTIVE_STATUSES).exists()
                ):
                    raise SettingRefused(
                        f"An open booking with {counsellor.display_name} is held {Mode(mode).label.lower()}, so "
                        "this way of meeting stays. Move the booking to another counsellor, or settle it, first.",
                        flag,
                    )
            if stored is not None and stored.slug != counsellor.slug:
                _counsellor_slug_change(counsellor, old=stored.slug)
        counsellor.save()
        if stored is not None and (
            (counsellor.is_active and not stored.is_active)
            or any(getattr(counsellor, flag) and not getattr(stored, flag) for flag in MODE_FLAGS.values())
        ):
            # Shown to clients again, or meeting a new way: their free times are new to the
            # waitlist (publishing them offered them to nobody while clients could not book them).
            slots_freed(
                slot_ids=list(
                    Slot.objects.filter(counsellor=counsellor, start__gt=timezone.now()).values_list("pk", flat=True)
                )
            )
        return waitlist_end_unserved(counsellor=counsellor)


def _counsellor_slug_change(counsellor: Counsellor, *, old: str) -> None:
    """Keep the profile's old link name, so that links shared with it (on social media, in
    emails) redirect to the new one. A link name another counsellor had is refused rather
    than taken over: a client following a link someone recommended them would otherwise meet
    a different counsellor, unwarned."""
    used_before = CounsellorPreviousSlug.objects.filter(slug=counsellor.slug).select_related("counsellor").first()
    if used_before is not None and used_before.counsellor_id != counsellor.pk:
        raise SettingRefused(
            f"{used_before.counsellor.display_name}'s profile had this link name before, and old links with it "
            "lead there. Choose another.",
            "slug",
        )
    if used_before is not None:
        used_before.delete()  # their own old name back: it is the current one again
    CounsellorPreviousSlug.objects.update_or_create(
        slug=old, defaults={"counsellor": counsellor, "replaced_at": timezone.now()}
    )


def _check_at_work(counsellor: Counsellor) -> None:
    """Times are published only for a counsellor whose account is active: nobody, clients nor
    staff, can book those of one who has left (generate_slots passes them by too)."""
    if not Counsellor.objects.filter(selectors.counsellors_at_work_q(), pk=counsellor.pk).exists():
        raise BookingError(
            f"{counsellor.display_name}'s staff account is deactivated, so nobody could book new times of "
            "theirs. Reactivate the account on the Team page first."
        )


def slot_create(*, counsellor: Counsellor, start: datetime, end: datetime) -> Slot:
    """Publish one free slot. Refuses one that overlaps another of the counsellor's slots, or
    one of their blocked periods (clients would never see it: selectors.slots_free)."""
    if end <= start:
        raise BookingError("A slot must end after it starts.")
    with transaction.atomic():
        # Serialise publishing per counsellor so the overlap check holds. The database refuses
        # an overlap too (migrations 0002 and 0026): the IntegrityError below.
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        _check_at_work(counsellor)
        if Slot.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start).exists():
            raise SlotUnavailable("That time overlaps another of this counsellor's slots.")
        if BlockedPeriod.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start).exists():
            raise SlotUnavailable(
                "That time falls in one of this counsellor's blocked periods, so clients would not "
                "see it. Choose another time, or remove the blocked period first."
            )
        try:
            with transaction.atomic():
                slot = Slot.objects.create(counsellor=counsellor, start=start, end=end)
        except IntegrityError as exc:
            raise SlotUnavailable("That time overlaps another of this counsellor's slots.") from exc
        slots_freed(slot_ids=[slot.pk])
        return slot


def booking_page_path(raw_token: str) -> str:
    return reverse("bookings:booking_page", args=[raw_token])


# --- Availability -------------------------------------------------------------------------

# Publishing more than this at once is almost certainly a mistake (a dragged month, say).
PUBLISH_MAX_DAYS = 35


def _overlaps(start: datetime, end: datetime, periods: list[tuple[datetime, datetime]]) -> bool:
    return any(s < end and e > start for s, e in periods)


def slots_publish(
    *,
    counsellor: Counsellor,
    start: datetime,
    end: datetime,
    session_minutes: int,
    buffer_minutes: int = 0,
    now: datetime | None = None,
) -> tuple[list[Slot], int]:
    """Split start..end into sessions of `session_minutes`, `buffer_minutes` apart, and
    publish each one that is in the future, outside blocked periods and clear of the
    counsellor's existing slots. Returns (slots created, times skipped). Never duplicates."""
    if end <= start:
        raise BookingError("The period must end after it starts.")
    if session_minutes <= 0 or buffer_minutes < 0:
        raise BookingError("Sessions must last at least a minute, and the buffer cannot be negative.")
    if end - start > timedelta(days=PUBLISH_MAX_DAYS):
        raise BookingError(f"Publish at most {PUBLISH_MAX_DAYS} days at a time.")
    now = now or timezone.now()
    session, step = timedelta(minutes=session_minutes), timedelta(minutes=session_minutes + buffer_minutes)
    with transaction.atomic():
        # The same per-counsellor lock as slot_create, so the overlap check holds.
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        _check_at_work(counsellor)
        taken = list(
            Slot.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start).values_list("start", "end")
        )
        taken += list(
            BlockedPeriod.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start).values_list(
                "start", "end"
            )
        )
        new: list[Slot] = []
        skipped = 0
        # Stepped in UTC: elapsed time. A step in the clinic's zone adds wall-clock time, and
        # on the night the clocks go forward made two slots of one instant (01:00, which does
        # not exist there, and 02:00).
        t = start.astimezone(UTC)
        while t + session <= end:
            if t <= now or _overlaps(t, t + session, taken):
                skipped += 1
            else:
                new.append(Slot(counsellor=counsellor, start=t, end=t + session))
            t += step
        try:
            with transaction.atomic():
                created = Slot.objects.bulk_create(new)
        except IntegrityError as exc:
            raise SlotUnavailable("Some of these times overlap this counsellor's slots. Please try again.") from exc
        slots_freed(slot_ids=[s.pk for s in created])
    return created, skipped


def availability_generate(*, counsellor: Counsellor, weeks: int = 4, today: date | None = None) -> tuple[int, int]:
    """Publish free slots from the counsellor's weekly hours for the coming `weeks`, from
    today. Running it again creates only what is missing. Returns (slots created, times
    skipped: already published, past, blocked or overlapping other slots), as slots_publish."""
    today = today or timezone.localdate()
    tz = timezone.get_current_timezone()
    hours = list(WeeklyHours.objects.filter(counsellor=counsellor))
    created = skipped = 0
    # Yesterday's hours that run past midnight have sessions today too: those from today's
    # first moment on (a microsecond before it, as slots_publish skips what starts at `now`).
    # Their earlier ones are before the weeks asked for, and were counted when generated.
    today_begins = wall_clock_moment(today, time(0), tz) - timedelta(microseconds=1)
    for offset in range(-1, weeks * 7):
        day = today + timedelta(days=offset)
        for wh in hours:
            if wh.weekday != day.weekday() or (offset < 0 and not wh.ends_next_day):
                continue
            start, end = weekly_hours_period(wh, day, tz)
            if end <= start:
                continue  # hours wholly in the hour the clocks skip: none that night
            slots, passed_over = slots_publish(
                counsellor=counsellor,
                start=start,
                end=end,
                session_minutes=wh.session_minutes,
                buffer_minutes=wh.buffer_minutes,
                now=max(timezone.now(), today_begins) if offset < 0 else None,
            )
            created += len(slots)
            skipped += passed_over if offset >= 0 else 0
    return created, skipped


def weekly_hours_period(hours: WeeklyHours, day: date, tz: Any = None) -> tuple[datetime, datetime]:
    """Where `hours` start and end on `day`: hours that end earlier than they start end on the
    next day (past midnight, or at it: 00:00)."""
    end_day = day + timedelta(days=1) if hours.ends_next_day else day
    return wall_clock_moment(day, hours.start_time, tz), wall_clock_moment(end_day, hours.end_time, tz)


def _hours_overlap(a: WeeklyHours, b: WeeklyHours) -> bool:
    """Whether two rows of weekly hours share a time of the week. The week wraps round:
    Sunday's hours past midnight run into Monday's, a week later."""
    week = 7 * 24 * 60
    (a_first, a_last), (b_first, b_last) = a.week_minutes, b.week_minutes
    return any(b_first + shift < a_last and b_last + shift > a_first for shift in (-week, 0, week))


def weekly_hours_add(
    *,
    counsellor: Counsellor,
    weekday: int,
    start_time: time,
    end_time: time,
    session_minutes: int,
    buffer_minutes: int,
) -> WeeklyHours:
    """Add a row of weekly hours. An end earlier than the start is on the next day (22:00 to
    01:00 runs past midnight), so only an end at the start is refused, next to the end."""
    if not 0 <= weekday <= 6:
        raise BookingError("Choose a day of the week.")
    new = WeeklyHours(
        counsellor=counsellor,
        weekday=weekday,
        start_time=start_time,
        end_time=end_time,
        session_minutes=session_minutes,
        buffer_minutes=buffer_minutes,
    )
    first, last = new.minutes
    if last == first:
        raise BookingError(
            f"The hours end when they start ({start_time:%H:%M}). For hours past midnight, give the time they end "
            "the next day, such as 01:00.",
            field="end_time",
        )
    if session_minutes <= 0 or buffer_minutes < 0:
        raise BookingError("Sessions must last at least a minute, and the buffer cannot be negative.")
    if last - first < session_minutes:
        raise BookingError("These hours are shorter than one session.")
    with transaction.atomic():
        # One at a time per counsellor, so that the overlap check holds: "Add hours" pressed
        # twice made two rows of the same hours.
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        # Every day's, not only that day's: the day before's may run past midnight into it,
        # and these into the next day's.
        for hours in WeeklyHours.objects.filter(counsellor=counsellor):
            if _hours_overlap(new, hours):
                raise BookingError(f"These hours overlap {hours.label}, already set.")
        new.save()
        return new


def _bookings_in_slots(slots: Any) -> list[Booking]:
    """Active bookings that hold one of `slots`, and requests waiting for review that asked for
    one as their preferred time (once approved, a booking holds the slot it was given, which
    may be another counsellor's: the one it asked for is free again)."""
    return list(
        Booking.objects.filter(
            Q(slot__in=slots, status__in=ACTIVE_STATUSES) | Q(preferred_slot__in=slots, status=Status.PENDING)
        )
        .select_related("slot", "preferred_slot")
        .order_by("pk")
    )


def slot_delete(*, slot_id: int) -> BlockedPeriod | None:
    """Withdraw one published slot. Refused if an active booking holds or asked for it.

    A slot inside the counsellor's weekly hours would be published again by the next
    generation (`generate_slots` runs nightly): its time is kept free by a blocked period of
    its own, returned, which the availability page lists and which can be removed to offer
    the time again."""
    counsellor_id = Slot.objects.filter(pk=slot_id).values_list("counsellor_id", flat=True).first()
    if counsellor_id is None:
        return None
    with transaction.atomic():
        # The counsellor first, then the slot: the order of everything that takes or blocks a
        # slot (slots_lock). Locking the slot alone, the blocked period inserted below waited
        # on the counsellor row a taker held while it waited on this slot: a deadlock.
        Counsellor.objects.select_for_update().filter(pk=counsellor_id).first()
        slot = Slot.objects.select_for_update().filter(pk=slot_id).first()
        if slot is None:
            return None
        held = _bookings_in_slots([slot])
        if held:
            raise SlotsHeld("An active booking holds or asked for this slot, so it cannot be removed.", bookings=held)
        if Booking.objects.filter(slot=slot).exists():
            raise BookingError(
                "Earlier bookings refer to this slot, so it stays in the records. To stop offering "
                "this time, add a blocked period over it."
            )
        slot.delete()
        if not _within_weekly_hours(slot):
            return None
        return BlockedPeriod.objects.create(
            counsellor_id=slot.counsellor_id, start=slot.start, end=slot.end, reason="Free time removed"
        )


def _within_weekly_hours(slot: Slot) -> bool:
    """Whether generating from the counsellor's weekly hours would publish `slot`'s time: a
    slot of their hours' length, starting a whole number of sessions and buffers after they
    begin (in elapsed time, as slots_publish steps). A one-off slot at another time is not
    (blocking its time would keep two of the hours' own slots from being published for good)."""
    tz = timezone.get_current_timezone()
    day = timezone.localtime(slot.start, tz).date()
    # That day's hours, and the day before's, which may run past midnight into it.
    days = {day.weekday(): day, (day - timedelta(days=1)).weekday(): day - timedelta(days=1)}
    for wh in WeeklyHours.objects.filter(counsellor_id=slot.counsellor_id, weekday__in=days):
        begins, ends = weekly_hours_period(wh, days[wh.weekday], tz)
        step = timedelta(minutes=wh.session_minutes + wh.buffer_minutes)
        on_grid = (slot.start - begins) % step == timedelta(0)
        if (
            begins <= slot.start
            and slot.end <= ends
            and on_grid
            and slot.end - slot.start == timedelta(minutes=wh.session_minutes)
        ):
            return True
    return False


def blocked_period_delete(*, counsellor: Counsellor, period_id: int) -> bool:
    """Remove one of `counsellor`'s blocked periods: the free slots kept inside it (those
    earlier bookings refer to) are offered again, to the waitlist too. False if it had gone
    already (a second click, a colleague on the same page)."""
    with transaction.atomic():
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        period = BlockedPeriod.objects.filter(counsellor=counsellor, pk=period_id).first()
        if period is None:
            return False
        period.delete()
        inside = Slot.objects.filter(counsellor=counsellor, start__lt=period.end, end__gt=period.start)
        slots_freed(slot_ids=list(inside.values_list("pk", flat=True)))
    return True


def blocked_period_create(
    *, counsellor: Counsellor, start: datetime, end: datetime, reason: str = ""
) -> tuple[BlockedPeriod, int]:
    """Block start..end (leave, a holiday) and remove the free slots inside it.

    Refused as a whole, listing them, if active bookings hold (or asked for) slots inside:
    those must be moved or cancelled first. Returns (period, free slots removed). Slots that
    only past bookings refer to stay in the records; `selectors.slots_free` hides them.
    """
    if end <= start:
        raise BookingError("A blocked period must end after it starts.")
    with transaction.atomic():
        Counsellor.objects.select_for_update().filter(pk=counsellor.pk).first()
        inside = Slot.objects.filter(counsellor=counsellor, start__lt=end, end__gt=start)
        held = _bookings_in_slots(inside)
        if held:
            raise SlotsHeld(
                "Active bookings hold times in this period. Move or cancel them first, then block it.",
                bookings=held,
            )
        unused = inside.exclude(Exists(Booking.objects.filter(slot=OuterRef("pk"))))
        ids = list(unused.values_list("pk", flat=True))
        Slot.objects.filter(pk__in=ids).delete()
        period = BlockedPeriod.objects.create(counsellor=counsellor, start=start, end=end, reason=reason.strip())
    return period, len(ids)
