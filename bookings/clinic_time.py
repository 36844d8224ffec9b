"""Wall-clock times in the clinic's zone (settings.TIME_ZONE), across its clock changes.

A zone with daylight saving skips an hour of wall-clock times when its clocks go forward (01:30
on the last Sunday of March does not happen in London) and repeats one when they go back (01:30
on the last Sunday of October happens twice). Every wall-clock time staff type, or weekly hours
name, is read here, so all of them mean the same moment."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from django.conf import settings
from django.utils import timezone

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class SkippedTime(ValueError):
    """`wall` never shows on the clinic's clocks: they jump from `jump_from` to `jump_to`."""

    def __init__(self, *, wall: datetime, jump_from: datetime, jump_to: datetime) -> None:
        self.wall, self.jump_from, self.jump_to = wall, jump_from, jump_to
        # Staff read it next to the field (the portal is in English).
        self.message = (
            f"{wall:%H:%M} on {wall.day} {MONTHS[wall.month - 1]} does not exist in {settings.TIME_ZONE_NAME}: "
            f"clocks go forward from {jump_from:%H:%M} to {jump_to:%H:%M}. Choose another time."
        )
        super().__init__(self.message)


def _offsets(naive: datetime, tz: tzinfo) -> tuple[timedelta, timedelta]:
    """The zone's offsets at `naive` read before (fold 0) and after (fold 1) a change: equal but
    for a repeated time (the first larger) and a skipped one (the first smaller)."""
    before, after = (naive.replace(tzinfo=tz, fold=fold).utcoffset() for fold in (0, 1))
    assert before is not None and after is not None
    return before, after


def _jump(naive: datetime, tz: tzinfo) -> datetime:
    """The moment (UTC) the clocks jump over the skipped wall-clock time `naive`: the first
    whose offset is the one after the jump. Jumps fall on whole minutes."""
    before, after = _offsets(naive, tz)
    early = naive - after  # the two readings of `naive`, in UTC: the jump lies between them
    lo, hi = 0, int((after - before).total_seconds() // 60)
    while lo < hi:
        mid = (lo + hi) // 2
        if (early + timedelta(minutes=mid)).replace(tzinfo=UTC).astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid + 1
    return (early + timedelta(minutes=lo)).replace(tzinfo=UTC)


def clinic_moment(naive: datetime, tz: tzinfo | None = None) -> datetime:
    """The moment the clinic's clocks show `naive`, in UTC. A repeated time is
    its first occurrence (01:30 BST, before the clocks go back), as the calendar and every list
    show it first; a skipped time raises SkippedTime, saying when the clocks jump."""
    tz = tz or timezone.get_current_timezone()
    before, after = _offsets(naive, tz)
    if before < after:
        jump = _jump(naive, tz)
        raise SkippedTime(
            wall=naive, jump_from=(jump + before).replace(tzinfo=None), jump_to=(jump + after).replace(tzinfo=None)
        )
    moment = naive.replace(tzinfo=tz, fold=0)
    try:
        # In UTC: an aware time the clocks repeat never equals one in another zone (PEP 495).
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999, which forms refuse (no clock changes there)
        return moment


def wall_clock_moment(day: date, wall: time, tz: tzinfo | None = None) -> datetime:
    """Where weekly hours starting or ending at `wall` on `day` start or end: as clinic_moment,
    but a time the clocks skip is the moment they jump (hours until 01:30 on the night they go
    forward end at 01:00 GMT, which is 02:00 BST; hours from then start then)."""
    tz = tz or timezone.get_current_timezone()
    try:
        return clinic_moment(datetime.combine(day, wall), tz)
    except SkippedTime:
        return _jump(datetime.combine(day, wall), tz)


@lru_cache(maxsize=16)
def _abbreviations(tz: tzinfo, today: date) -> str:
    seen: dict[str, timedelta] = {}
    for days in range(0, 366, 14):  # twice a month: a change of clocks lasts longer than that
        moment = datetime.combine(today + timedelta(days=days), time(12), tzinfo=UTC).astimezone(tz)
        name, offset = moment.tzname(), moment.utcoffset()
        if name is not None and offset is not None:
            seen.setdefault(name, offset)
    return "/".join(sorted(seen, key=lambda name: seen[name]))


def zone_abbreviations(tz: tzinfo | None = None) -> str:
    """The abbreviations the clinic's clocks show over the coming year, standard time first: 'IST',
    or 'GMT/BST' for a zone with daylight saving. For what is said of every date (a hint next to
    a date-and-time input, 'Times are shown in London time (GMT/BST).'); a time shown names its
    own date's ('01:30 BST')."""
    tz = tz or timezone.get_current_timezone()
    return _abbreviations(tz, timezone.now().astimezone(tz).date())
