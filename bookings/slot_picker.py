"""The day-by-day slot picker, shared by the booking wizard and the client's "move my session"
page: which days have free times, the free times of the day shown, and the chosen one.

Markup: templates/bookings/_slot_picker.html, with its repeated parts (day buttons, time
radios) written in Python by bookings/templatetags/slot_picker.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bookings import selectors
from bookings.clinic_time import zone_abbreviations
from bookings.forms import id_from
from bookings.models import Counsellor, SessionType, Slot
from bookings.selectors import FreeSlot
from mindsettler.compiled import PLACEHOLDER_TIME, CompiledQuery

DAYS_PER_PAGE = 7


def slot_picker(
    *,
    session_type: SessionType | None,
    counsellor: Counsellor | None,
    mode: str | None,
    day: str,
    chosen: str,
    offered: Sequence[SessionType] = (),
) -> dict[str, Any]:
    """The picker's context: a page of days with free times, the free times of one `day`
    (or of the first day with free times, if that one has none), and the `chosen` slot.
    `offered`: the session types a client may choose from, when none is chosen yet: only
    times that can hold one of them are shown (as the chatbot's API offers them)."""
    filters = {"session_type": session_type, "counsellor": counsellor, "mode": mode}
    days, shown, times = free_days_and_times(**filters, day=_parse_day(day), chosen=chosen, offered=offered)
    chosen_elsewhere: Slot | None = None
    notice = ""
    if chosen and not any(str(t["slot"].pk) == chosen for t in times):
        free = selectors.slots_free_for_client(**filters)
        chosen_id = id_from(chosen)
        chosen_elsewhere = free.filter(pk=chosen_id).first() if chosen_id is not None else None
        if chosen_elsewhere is None:
            notice = _("The time you chose is no longer available. Please choose another time.")

    index = days.index(shown) if shown else 0
    first = (index // DAYS_PER_PAGE) * DAYS_PER_PAGE
    return {
        "days": days[first : first + DAYS_PER_PAGE],
        "earlier_day": days[first - 1] if first > 0 else None,
        "later_day": days[first + DAYS_PER_PAGE] if first + DAYS_PER_PAGE < len(days) else None,
        "day": shown,
        "times": times,
        "chosen": chosen,
        "chosen_elsewhere": chosen_elsewhere,
        "picker_notice": notice,
        "any_counsellor": counsellor is None,
        # Said of every day shown: both abbreviations of a zone with daylight saving (each
        # time names its own).
        "tz_abbr": zone_abbreviations(),
        "tz_name": gettext(settings.TIME_ZONE_NAME),
        "min_notice_hours": settings.BOOKING_MIN_NOTICE_HOURS,
        "horizon_days": settings.BOOKING_HORIZON_DAYS,
    }


def free_days_and_times(
    *,
    session_type: SessionType | None,
    counsellor: Counsellor | None,
    mode: str | None,
    day: date | None,
    chosen: str = "",
    offered: Sequence[SessionType] = (),
) -> tuple[list[date], date | None, list[dict[str, Any]]]:
    """The days (in the clinic's zone) with at least one slot free for a client (of the
    session type, counsellor and mode given: selectors.slots_free_for_client); the day to show:
    `day` if it is one of them, else the first (`day` None: the first; `day` past the bookable
    window: the last); and that day's free times, by start: per start (`start`) how many
    slots are free then (`count`) and the one that stands for the time (`slot`): the
    `chosen` slot if it is one of them, else the first in the counsellors' order.

    One query when `day` has free slots (the usual case: the client chose it, or the first
    bookable day has some), a second for the times of the day shown when it has none.
    """
    start, end = selectors.client_window()
    values: dict[str, Any] = {"start": start, "end": end}
    if counsellor is not None:
        values["counsellor_id"] = counsellor.pk
    # The times that can hold the session type chosen, or any of those offered.
    kinds = [session_type] if session_type else offered
    shortest = tuple(selectors.shortest_by_mode(kinds).items()) if kinds else None
    free = _free(shortest, mode, by_counsellor=counsellor is not None).sql(**values)
    candidates = _candidate_days()
    wanted = day or (candidates[0] if candidates else None)
    after_window = False
    if wanted is not None and candidates:
        # A day outside the bookable window (an old page, a hand-made request, 9999-12-31,
        # whose midnight cannot even be computed): the nearest day inside it.
        if wanted < candidates[0]:
            wanted = candidates[0]
        elif wanted > candidates[-1]:
            wanted, after_window = candidates[-1], True
    days, times = _read(free, candidates=candidates, day=wanted, chosen=chosen)
    if wanted in days or not days:
        return days, (wanted if days else None), times
    shown = days[-1] if after_window else days[0]
    return days, shown, _read(free, candidates=[], day=shown, chosen=chosen)[1]


def _candidate_days() -> list[date]:
    """The days (in the clinic's zone) on which a client may book: minimum notice to horizon."""
    now = timezone.now()
    first = timezone.localdate(now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS))
    last = timezone.localdate(now + timedelta(days=settings.BOOKING_HORIZON_DAYS))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@lru_cache(maxsize=64)
def _free(shortest: tuple[tuple[str, int], ...] | None, mode: str | None, *, by_counsellor: bool) -> CompiledQuery:
    """selectors.slots_free_for_client, as the picker reads it, for one shape of filters: the
    session type's shortest length per mode (None: any type), the mode, one counsellor or
    any. Built and compiled once (mindsettler/compiled.py); the client window and the
    counsellor are values of each call."""

    def build(start: datetime, end: datetime, counsellor_id: int = 0) -> QuerySet[Slot]:
        free = selectors.slots_free(mode=mode, start=start, end=end, for_clients=False)
        if shortest is not None:
            free = free.filter(selectors.fits_q(dict(shortest)))
        if by_counsellor:
            free = free.filter(counsellor_id=counsellor_id)
        return free.order_by().values(
            free_id=F("pk"),
            free_start=F("start"),
            free_name=F("counsellor__display_name"),
            free_rank=F("counsellor__sort_order"),
        )

    placeholders: dict[str, Any] = {"start": PLACEHOLDER_TIME, "end": PLACEHOLDER_TIME + timedelta(days=1)}
    if by_counsellor:
        placeholders["counsellor_id"] = -1
    return CompiledQuery(build, **placeholders)


def _read(
    free: tuple[str, list[Any], Any], *, candidates: list[date], day: date | None, chosen: str
) -> tuple[list[date], list[dict[str, Any]]]:
    """Which of `candidates` have a free slot, and the free times of `day`, in one round trip.

    Both read `free` (the SQL, parameters and compiler of _free's query) as a subquery: the
    rules of what is free stay in selectors.slots_free.
    The days: per day a scalar subquery with LIMIT 1 over a list of days (columns column1..3:
    index, start, end; arrays on PostgreSQL, a VALUES list on SQLite), so the database stops
    at each day's first free slot instead of reading every free slot of the horizon (~15,000
    at the benchmark's size; a DISTINCT over them took 16 ms). A scalar subquery, not WHERE
    EXISTS: PostgreSQL would turn EXISTS into a semi join that reads every free slot once
    more. The day's times follow with UNION ALL, told apart by a NULL day index:
    one row per start, counted and ranked by window functions, so a busy day's hundreds of
    free slots (one per counsellor at each time) never leave the database.
    """
    inner_sql, inner_params, compiler = free
    connection = compiler.connection
    q = connection.ops.quote_name
    pk, start, name, rank = q("free_id"), q("free_start"), q("free_name"), q("free_rank")
    adapt = connection.ops.adapt_datetimefield_value
    parts: list[str] = []
    params: list[Any] = []
    if candidates:
        # Each day ends at the next one's midnight: one aware midnight per day, plus the last end.
        tz = timezone.get_current_timezone()
        midnights = [
            adapt(timezone.make_aware(datetime.combine(candidates[0] + timedelta(days=i), datetime.min.time()), tz))
            for i in range(len(candidates) + 1)
        ]
        if connection.vendor == "postgresql":
            # The days as two arrays, not three parameters a day: psycopg keeps its parsing of
            # a statement of at most 50 parameters and parses it again at each call otherwise
            # (0.3 ms for this one). Sent in binary (%b): psycopg writes an array of
            # timestamps as text four times slower.
            days = (
                "(SELECT u.ordinal - 1 AS column1, u.day_start AS column2, u.day_end AS column3"
                " FROM unnest(%b::timestamptz[], %b::timestamptz[]) WITH ORDINALITY AS u(day_start, day_end, ordinal))"
            )
            days_params = [midnights[:-1], midnights[1:]]
        else:
            days = "(VALUES " + ", ".join(["(%s, %s, %s)"] * len(candidates)) + ")"
            days_params = [
                value for index in range(len(candidates)) for value in (index, *midnights[index : index + 2])
            ]
        parts.append(
            f"SELECT days.column1, (SELECT f.{pk} FROM ({inner_sql}) AS f"  # noqa: S608 (placeholders only)
            f" WHERE f.{start} >= days.column2 AND f.{start} < days.column3 LIMIT 1), NULL, NULL, NULL"
            f" FROM {days} AS days"
        )
        params += inner_params + days_params
    if day is not None:
        begins, ends = selectors.day_bounds(day)
        # Per start, the client's own pick stands for its time, else the first counsellor's slot.
        parts.append(
            f"SELECT NULL, t.{pk}, t.{start}, t.{name}, t.free_count FROM ("  # noqa: S608
            f"SELECT f.{pk}, f.{start}, f.{name}, COUNT(*) OVER (PARTITION BY f.{start}) AS free_count,"
            f" ROW_NUMBER() OVER (PARTITION BY f.{start}"
            f" ORDER BY CASE WHEN f.{pk} = %s THEN 0 ELSE 1 END, f.{rank}, f.{pk}) AS place"
            f" FROM ({inner_sql}) AS f WHERE f.{start} >= %s AND f.{start} < %s) AS t WHERE t.place = 1"
        )
        chosen_pk = id_from(chosen)
        params += [chosen_pk, *inner_params, adapt(begins), adapt(ends)]
    if not parts:
        return [], []
    sql = " UNION ALL ".join(parts) + " ORDER BY 3"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    days = sorted(candidates[row[0]] for row in rows if row[0] is not None and row[1] is not None)
    # The backend's converters for the slot columns (SQLite returns datetimes as text).
    converters = compiler.get_converters([expression for expression, _sql, _alias in compiler.select[:3]])
    time_rows = [row[1:] for row in rows if row[0] is None]
    if converters:
        time_rows = list(compiler.apply_converters(time_rows, converters))
    return days, [{"start": row[1], "slot": FreeSlot(*row[:3]), "count": row[3]} for row in time_rows]


def _parse_day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None
