"""Reads for the staff portal, always scoped by staff.permissions. Each is a few queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import NotSupportedError
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Func,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from bookings.emails import STAFF_EMAIL_KINDS
from bookings.models import (
    ACTIVE_STATUSES,
    MODE_FLAGS,
    SLOT_HOLDING_STATUSES,
    SLOTTED_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    Clinic,
    Counsellor,
    Mode,
    OutboundEmail,
    Payment,
    SessionType,
    Slot,
    Status,
    session_end_expression,
)
from bookings.selectors import (
    client_window,
    counsellors_at_work_q,
    day_bounds,
    next_asked_for,
    slots_free_for_client,
    slots_free_for_staff,
)
from bookings.services.decisions import NO_LONGER_HOLDS
from mindsettler.compiled import PLACEHOLDER_TIME, CompiledQuery
from mindsettler.logging import REDACTED
from staff.forms import AWAITING_PAYMENT, SORTS, TO_RECORD
from staff.models import AccountEvent, CalendarSubscription, SetupLink, User
from staff.permissions import (
    bookings_for,
    counsellors_for,
    is_administrator,
    is_staff_member,
    scope_names_member,
    scope_stand_in,
    slots_for,
)

# --- The booking list -------------------------------------------------------------------

# Listed bookings (drafts are unverified, never listed), with the session's time: the slot's,
# or the one the client asked for. Built once, at import (like _CALENDAR below); each call
# scopes and filters a copy.
_LISTED = Booking.objects.exclude(status=Status.DRAFT).annotate(
    session_at=Coalesce(F("slot__start"), F("preferred_slot__start"))
)

# What a row of the list shows, read as plain values: no model instances, and never the
# client's own words.
LIST_COLUMNS = (
    "pk",
    "ack_id",
    "client_name",
    "email",
    "status",
    "mode",
    "created_at",
    "session_at",
    "slot__start",
    "counsellor__display_name",
    "session_type__name",
    "session_type__duration_minutes",  # the session's end: start plus its type's length
)
_LIST_ROWS = _LISTED.values(*LIST_COLUMNS)


def _criteria(filters: dict[str, Any]) -> dict[str, Any]:
    """The filter form's valid values (BookingFilterForm.cleaned) as _filter's arguments: the
    days as the moments they start and end, the search term stripped, no page size."""
    criteria = {name: filters[name] for name in ("status", "counsellor", "session_type", "mode") if filters.get(name)}
    if date_from := filters.get("date_from"):
        criteria["session_from"] = day_bounds(date_from)[0]
    if date_to := filters.get("date_to"):
        criteria["session_to"] = day_bounds(date_to)[1]
    if q := (filters.get("q") or "").strip():
        criteria["q"] = q
    criteria["sort"] = filters.get("sort") if filters.get("sort") in SORTS else "newest"
    return criteria


def _filter(
    qs: QuerySet[Booking],
    *,
    sort: str,
    status: str | None = None,
    counsellor: int | None = None,
    session_type: int | None = None,
    mode: str | None = None,
    session_from: datetime | None = None,
    session_to: datetime | None = None,
    q: str | None = None,
) -> QuerySet[Booking]:
    """`qs` (one of the above, already scoped) filtered and sorted: each filter given applies."""
    if status == "active":
        qs = qs.filter(status__in=ACTIVE_STATUSES)
    elif status == AWAITING_PAYMENT:
        qs = qs.filter(status__in=(Status.APPROVED, Status.PAYMENT_PENDING))
    elif status == TO_RECORD:  # as sessions_to_record finds them
        qs = qs.annotate(session_end=session_end_expression()).filter(
            status=Status.CONFIRMED, session_end__lte=timezone.now()
        )
    elif status:
        qs = qs.filter(status=status)
    if counsellor:
        qs = qs.filter(counsellor_id=counsellor)
    if session_type:
        qs = qs.filter(session_type_id=session_type)
    if mode:
        qs = qs.filter(mode=mode)
    if session_from:
        qs = qs.filter(session_at__gte=session_from)
    if session_to:
        qs = qs.filter(session_at__lt=session_to)
    if q:
        term = q.upper().replace(" ", "")
        if term.startswith("MS") and not term.startswith("MS-"):
            term = "MS-" + term[2:]
        qs = qs.filter(Q(ack_id__icontains=term) | Q(client_name__icontains=q) | Q(email__icontains=q.lower()))
    return qs.order_by(*SORTS[sort][1])


def _search(qs: QuerySet[Booking], *, user: Any, filters: dict[str, Any]) -> QuerySet[Booking]:
    """`qs` (one of the above) scoped to what `user` may see, filtered and sorted."""
    return _filter(bookings_for(user, qs), **_criteria(filters))


# The export's columns, in order (staff/views.py CSV_HEADER names them). The session's start
# is the reserved slot's only: a request's time is the one its client asked for, which holds
# nothing, and under the same heading read as a second booking of that slot.
EXPORT_COLUMNS = (
    "ack_id",
    "status",
    "created_at",
    "slot__start",
    "preferred_slot__start",
    "counsellor__display_name",
    "session_type__name",
    "mode",
    "client_name",
    "email",
    "phone",
    "amount",
    "currency",
)


def booking_search(*, user: Any, filters: dict[str, Any]) -> QuerySet[Any]:
    """Bookings `user` may see, filtered and sorted, as tuples of EXPORT_COLUMNS (the export:
    tens of thousands of rows, so no models)."""
    return _search(_LISTED, user=user, filters=filters).values_list(*EXPORT_COLUMNS)


def _filter_choices() -> QuerySet[Any]:
    """Session types and counsellors, each kind in its model's Meta.ordering. The kinds are
    text, which needs no converting in each row as a constant number does."""
    columns = {"choice_id": F("pk"), "rank": F("sort_order")}
    types = SessionType.objects.order_by().values(kind=Value("type"), label=F("name"), **columns)
    counsellors = Counsellor.objects.order_by().values(kind=Value("counsellor"), label=F("display_name"), **columns)
    return types.union(counsellors, all=True).order_by("kind", "rank", "label")


# Compiled once (mindsettler/compiled.py): built and compiled per request, the two small reads
# took three times as long as the database does.
_FILTER_CHOICES = CompiledQuery(_filter_choices)


def list_filter_choices(*, counsellors: bool) -> tuple[list[tuple[int, str]], list[tuple[int, str]] | None]:
    """The list filter's choices as (id, name) pairs: every session type, and every counsellor
    if `counsellors` (else None). One query for both small tables, read as rows (no dicts)."""
    kind, choice_id, label = map(_FILTER_CHOICES.names().index, ("kind", "choice_id", "label"))
    rows = _FILTER_CHOICES.rows()
    types = [(row[choice_id], row[label]) for row in rows if row[kind] == "type"]
    if not counsellors:
        return types, None
    return types, [(row[choice_id], row[label]) for row in rows if row[kind] == "counsellor"]


# Placeholders for the values of the list's filters (mindsettler/compiled.py), each of the
# type the form gives and unlike any constant of the query.
_LIST_PLACEHOLDERS: dict[str, Any] = {
    "status": "?status",
    "counsellor": -2,
    "session_type": -3,
    "mode": "?mode",
    "session_from": PLACEHOLDER_TIME,
    "session_to": PLACEHOLDER_TIME + timedelta(days=1),
}


@lru_cache(maxsize=128)
def _list_query(role: str, filtered: frozenset[str], *, group: str, sort: str, limit: int) -> CompiledQuery:
    """The list's first `limit` rows for a member of staff with `role`, filtered by the filters
    named in `filtered` (all but the search) with `group` for a status filter of several
    statuses ("All active", "Waiting for payment"), and sorted by
    `sort`: scoped by staff.permissions.bookings_for as for such a member, built and compiled
    once (mindsettler/compiled.py; building and compiling the query took longer than the
    database takes to answer it). The filters' values and the member's id (where the scope
    names it) are values of each call."""

    def build(member_id: int = 0, **values: Any) -> QuerySet[Booking]:
        status = group or values.pop("status", None)
        scoped = bookings_for(scope_stand_in(role, member_id), _LIST_ROWS)
        return _filter(scoped, sort=sort, status=status, **values)[:limit]

    placeholders = {name: _LIST_PLACEHOLDERS[name] for name in sorted(filtered)}
    if scope_names_member(role):  # a counsellor: their own bookings
        placeholders["member_id"] = -1
    return CompiledQuery(build, **placeholders)


def booking_list_rows(*, user: Any, filters: dict[str, Any], offset: int, limit: int) -> list[dict[str, Any]]:
    """As booking_search, `limit` rows from `offset`, each a dict of LIST_COLUMNS.

    The first page without a search, nearly every visit to the list, is read with a query
    compiled once per shape (which filters, the sort, the page size); a search (its LIKE
    patterns are made from the term) and later pages (their OFFSET is written into the SQL)
    through the ORM."""
    criteria = _criteria(filters)
    # Sessions to record are those ended by now: a moment no compiled query can hold.
    if offset or "q" in criteria or criteria.get("status") == TO_RECORD or not is_staff_member(user):
        return list(_filter(bookings_for(user, _LIST_ROWS), **criteria)[offset : offset + limit])
    sort = criteria.pop("sort")
    group = criteria.pop("status") if criteria.get("status") in ("active", AWAITING_PAYMENT) else ""
    query = _list_query(user.role, frozenset(criteria), group=group, sort=sort, limit=limit)
    if "member_id" in query.placeholders:
        criteria["member_id"] = user.pk
    return query(**criteria)


# --- The dashboard ----------------------------------------------------------------------


def own_counsellor(user: Any) -> Counsellor | None:
    """`user`'s own counsellor profile, shown to clients or not; None if they have none."""
    return Counsellor.objects.filter(user_id=user.pk).first()


def dashboard(*, user: Any, own: Counsellor | None, today: date | None = None) -> dict[str, Any]:
    """`own`: the user's counsellor profile (own_counsellor)."""
    today = today or timezone.localdate()
    start, _ = day_bounds(today)
    _, end = day_bounds(today + timedelta(days=1))
    visible = bookings_for(user)
    if is_administrator(user):
        events = BookingEvent.objects.all()  # along their index: an administrator's need no filter
    elif own is not None:
        # By the profile's id, not by a join on the account: with the id, PostgreSQL reads a
        # counsellor who has few bookings (one just joined) from those, instead of walking the
        # whole clinic's history for fifteen events that are not there.
        events = BookingEvent.objects.filter(booking__counsellor_id=own.pk)
    else:
        events = BookingEvent.objects.none()
    sessions = list(
        visible.filter(status__in=SLOT_HOLDING_STATUSES, slot__start__gte=start, slot__start__lt=end)
        .select_related("slot", "session_type", "counsellor")
        .order_by("slot__start")
    )
    today_end = day_bounds(today)[1]
    awaiting = Q(status__in=(Status.APPROVED, Status.PAYMENT_PENDING))
    waiting_payment = list(
        visible.filter(awaiting).select_related("slot", "session_type", "counsellor").order_by("payment_due_at")[:20]
    )
    # How many of each the lists above show at most 20 of, in one query.
    counts = visible.filter(Q(status=Status.PENDING) | awaiting).aggregate(
        review=Count("pk", filter=Q(status=Status.PENDING)), payment=Count("pk", filter=awaiting)
    )
    return {
        "today": [b for b in sessions if b.slot.start < today_end],
        "tomorrow": [b for b in sessions if b.slot.start >= today_end],
        "waiting_review": list(
            visible.filter(status=Status.PENDING)
            .select_related("session_type", "counsellor", "preferred_slot")
            .annotate(preferred_slot_taken=preferred_slot_taken())
            .order_by("created_at")[:20]
        ),
        "waiting_review_count": counts["review"],
        "waiting_payment": waiting_payment,
        "waiting_payment_count": counts["payment"],
        # Not a booking's first event, "draft by client": a request nobody may act on until its
        # client confirms their email (the list never shows drafts), and most of them never do.
        "activity": list(
            events.exclude(to_status=Status.DRAFT)
            .select_related("booking", "actor_user")
            .order_by("-created_at", "-id")[:15]
        ),
    }


# What the dashboard shows of a session to record: plain values, never the client's own words.
TO_RECORD_COLUMNS = ("pk", "ack_id", "version", "client_name", "slot__start", "counsellor__display_name")


def sessions_to_record(*, user: Any, limit: int = 20, now: datetime | None = None) -> dict[str, Any]:
    """Confirmed sessions that have ended and nobody has marked completed or a no-show:
    `to_record`, the `limit` of those `user` may see that ended longest ago, as dicts of
    TO_RECORD_COLUMNS and the session's end, and `to_record_more`, whether there are others. One query: it reads one
    row more than it shows rather than counting them all.

    By the end, not the start: in the start's order PostgreSQL walked the slots' index from the
    clinic's first day, to find that nothing is left to record (the usual answer), slower with
    every month of history. No index gives the end's order, so it joins the confirmed
    bookings, which are few, to their slots instead.

    A session has ended at its start plus its type's length (Booking.session_end), which may
    be before its slot's end."""
    rows = list(
        bookings_for(user)
        # The client has asked for their next session, held until this one is recorded: said
        # beside it, so that it is recorded first.
        .annotate(session_end=session_end_expression(), next_waiting=next_asked_for())
        .filter(status=Status.CONFIRMED, session_end__lte=now or timezone.now())
        .order_by("session_end", "pk")
        .values(*TO_RECORD_COLUMNS, "session_end", "next_waiting")[: limit + 1]
    )
    return {"to_record": rows[:limit], "to_record_more": len(rows) > limit}


def bookable_notices(*, user: Any, own: Counsellor | None) -> dict[str, Any]:
    """What stops clients booking, for the dashboard to say. `no_session_types`: no type is
    offered (a new clinic, or every type retired), for administrators. `hidden_profile`: the
    user's own counsellor profile (`own`: own_counsellor), while it is hidden (they have just
    joined). For administrators, from one read of the counsellors at work: `hidden_counsellors`,
    the hidden profiles of staff still with the clinic, whom an administrator shows when they
    are ready; `no_counsellors`, nobody at work (a new clinic); `no_free_times`, counsellors
    clients see, but not one free time of theirs that a client could choose. `without_room`:
    counsellors offering online sessions with no online room for clients to join (the user's
    own profile, for a counsellor; everyone's at work, for administrators). `too_long`, for
    administrators: session types offered but longer than every time published for clients in
    their ways of meeting (50-minute hours never hold an 80-minute type)."""
    admin = is_administrator(user)
    at_work: list[Counsellor] = []
    types: list[SessionType] = []
    if admin:
        free = slots_free_for_client(session_type=None, counsellor=None, mode=None).filter(counsellor=OuterRef("pk"))
        # Their longest time published for clients to book, free or taken (by the slots' index).
        opening, closing = client_window()
        longest = (
            Slot.objects.filter(counsellor=OuterRef("pk"), start__gte=opening, start__lt=closing)
            .order_by()
            .values("counsellor")
            .annotate(longest=Max(ExpressionWrapper(F("end") - F("start"), output_field=DurationField())))
            .values("longest")
        )
        at_work = list(
            Counsellor.objects.filter(counsellors_at_work_q())
            .annotate(has_free_time=Exists(free), longest_time=Subquery(longest))
            .only("pk", "user_id", "display_name", "is_active", "offers_online", "offers_in_person", "meeting_url")
            .order_by("display_name")
        )
        types = list(SessionType.objects.filter(is_active=True).order_by("sort_order", "pk"))
    shown = [c for c in at_work if c.is_active]
    no_free_times = bool(shown) and not any(c.has_free_time for c in shown)
    # Per way of meeting, the longest time published by a counsellor clients see who offers it.
    longest_by_mode = {
        mode: max((c.longest_time for c in shown if getattr(c, offers) and c.longest_time), default=timedelta())
        for mode, offers in MODE_FLAGS.items()
    }
    mine = [own] if own is not None and not admin else at_work
    return {
        "no_session_types": admin and not types,
        "no_counsellors": admin and not at_work,
        "no_free_times": no_free_times,
        "too_long": [t for t in types if not no_free_times and all(longest_by_mode[m] < t.duration for m in t.modes)],
        # An administrator's own hidden profile is among `hidden_counsellors`, theirs to show.
        "hidden_profile": own if own is not None and not own.is_active and not admin else None,
        # A profile without an account is nobody's who could still join.
        "hidden_counsellors": [c for c in at_work if not c.is_active and c.user_id is not None][:20],
        "without_room": [c for c in mine if c.offers_online and not c.meeting_url][:20],
    }


def online_without_link(*, user: Any, limit: int = 20) -> list[Booking]:
    """Upcoming online sessions, approved or confirmed, with no link to join: neither the
    booking's own nor its counsellor's online room. The client would have nothing to click.
    Soonest first; one query.

    Read from the counsellors without a room (usually none), along the bookings' counsellor and
    status index: bookings with a time always have a counsellor (the booking_slot_has_counsellor
    constraint). Asked as a join on the counsellor, the database walked every upcoming slot."""
    without_room = Counsellor.objects.filter(meeting_url="").values("pk")
    return list(
        bookings_for(user)
        .filter(
            status__in=(Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED),
            mode=Mode.ONLINE,
            meeting_url="",
            slot__start__gte=timezone.now(),
            counsellor__in=without_room,
        )
        .select_related("slot", "counsellor")
        .order_by("slot__start", "pk")[:limit]
    )


def emails_given_up(*, user: Any, days: int = 30, limit: int | None = 20) -> list[dict[str, Any]]:
    """For administrators: emails the outbox gave up sending in the last `days` days, newest
    first, with the booking they were about if any. Emails about no booking (your links,
    waitlist, invitations, the daily summary) show nowhere else. Each says whether it can be
    sent again as it is (`can_send_again`): not once its links were forgotten, which giving it
    up does, nor once an erasure emptied it; services.email_send_again decides, this only
    spares the button that it would refuse. One query; none for others."""
    if not is_administrator(user):
        return []
    rows = list(
        OutboundEmail.objects.filter(
            status=OutboundEmail.State.FAILED, created_at__gte=timezone.now() - timedelta(days=days)
        )
        .annotate(
            links_forgotten=ExpressionWrapper(
                Q(body_text__contains=REDACTED) | Q(body_html__contains=REDACTED), output_field=BooleanField()
            ),
            erased=ExpressionWrapper(Q(booking__anonymised_at__isnull=False), output_field=BooleanField()),
        )
        .order_by("-created_at", "-id")
        .values(
            "pk",
            "kind",
            "to",
            "subject",
            "last_error",
            "attempts",
            "created_at",
            "booking_id",
            "booking__ack_id",
            "links_forgotten",
            "erased",
        )[:limit]
    )
    for row in rows:
        row["to_staff"] = row["kind"] in STAFF_EMAIL_KINDS
        # Nor once it was found no longer to hold (services.email_send_again): its error says why.
        row["can_send_again"] = not (
            row["links_forgotten"] or row["erased"] or row["last_error"].startswith(NO_LONGER_HOLDS)
        )
    return rows


def emails_waiting(*, user: Any) -> list[dict[str, Any]]:
    """For administrators: emails the mail server has not taken at two tries or more, still
    being retried (EMAIL_GIVE_UP_AFTER), grouped by why: how many, and since when. An outage
    keeps emails for days now; without this, nobody would know until they were given up.
    One query; none for others."""
    if not is_administrator(user):
        return []
    return list(
        OutboundEmail.objects.filter(status=OutboundEmail.State.PENDING, attempts__gte=2)
        .values("last_error")
        # Since an administrator sent it again, for one they did: it has waited since then.
        .annotate(count=Count("pk"), since=Min(Coalesce("requeued_at", "created_at")))
        .order_by("since", "last_error")
    )


def payments_needing_attention(*, user: Any, limit: int = 20) -> tuple[list[dict[str, Any]], int]:
    """For administrators: the first `limit` payments whose alert nobody has dealt with yet,
    oldest first, with their booking, and how many there are. None for others."""
    if not is_administrator(user):
        return [], 0
    alerts = Payment.objects.exclude(needs_attention="")
    shown = list(
        alerts.order_by("updated_at", "pk").values(
            "pk", "needs_attention", "updated_at", "booking_id", "booking__ack_id"
        )[:limit]
    )
    return shown, (len(shown) if len(shown) < limit else alerts.count())


def counsellor_left(*, user: Any, limit: int = 20) -> dict[str, Any]:
    """For administrators: open bookings (see open_bookings) whose counsellor has left (their
    staff account is deactivated), which nobody else is looking after until an administrator
    moves each into another counsellor's time, approves it elsewhere or closes it.
    `counsellor_left`, the `limit` with the soonest sessions first (requests, with no time,
    after them), as dicts; `counsellor_left_more`, whether there are others. One query, which
    reads one row more than it shows; none for others."""
    if not is_administrator(user):
        return {"counsellor_left": [], "counsellor_left_more": False}
    rows = list(
        open_bookings()
        .filter(counsellor__user__is_active=False)
        .order_by(F("slot__start").asc(nulls_last=True), "created_at", "pk")
        .values("pk", "ack_id", "status", "client_name", "slot__start", "counsellor_id", "counsellor__display_name")[
            : limit + 1
        ]
    )
    for row in rows:
        row["status_label"] = Status(row["status"]).label
    return {"counsellor_left": rows[:limit], "counsellor_left_more": len(rows) > limit}


def month_after(month: date) -> date:
    """The first day of the month after `month`'s."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def cancelled_by_person() -> Exists:
    """Of a booking (the outer query's row): cancelled by the client or staff, not by the
    payment window running out."""
    return Exists(
        BookingEvent.objects.filter(
            booking=OuterRef("pk"),
            action="transition",
            to_status=Status.CANCELLED,
            actor__in=(Actor.CLIENT, Actor.STAFF),
        )
    )


def cancelled_late() -> Exists:
    """Of a booking (the outer query's row): cancelled at the client's request inside the
    cancellation cutoff."""
    return Exists(BookingEvent.objects.filter(booking=OuterRef("pk"), action="late_cancellation"))


def outcomes_in_month(*, user: Any, month: date) -> list[dict[str, Any]]:
    """Per counsellor, for the month of `month` (by the session's time, in the clinic's zone):
    sessions held, cancellations (by the client or staff; the payment window running out is
    not one), late cancellations among them, and no-shows.

    One aggregate query over the bookings `user` may see: a counsellor gets their own row only.
    """
    first = month.replace(day=1)
    following = month_after(first)
    cancelled, late = cancelled_by_person(), cancelled_late()
    rows = (
        bookings_for(user)
        .filter(slot__start__gte=day_bounds(first)[0], slot__start__lt=day_bounds(following)[0])
        .filter(counsellor__isnull=False)
        .filter(Q(status__in=(Status.COMPLETED, Status.NO_SHOW)) | (Q(status=Status.CANCELLED) & Q(cancelled)))
        .values("counsellor_id", "counsellor__display_name")
        .annotate(
            held=Count("pk", filter=Q(status=Status.COMPLETED)),
            cancelled=Count("pk", filter=Q(status=Status.CANCELLED)),
            late=Count("pk", filter=Q(status=Status.CANCELLED) & Q(late)),
            no_shows=Count("pk", filter=Q(status=Status.NO_SHOW)),
        )
        .order_by("counsellor__display_name", "counsellor_id")
    )
    return list(rows)


# --- The month's report -------------------------------------------------------------------

# The report's counts, each a status or kind of cancellation, in the order the page shows them.
REPORT_COUNTS = ("completed", "no_shows", "cancelled", "late", "lapsed", "confirmed", "awaiting_payment")
# Its money, in minor units (paise).
REPORT_MONEY = ("received", "refunded", "net")


def month_report(*, user: Any, month: date) -> dict[str, Any]:
    """For administrators, the sessions of the calendar month of `month` in the clinic's zone
    (by the slot's start), per counsellor of those sessions, and the money paid for them.

    `rows`: a dict per counsellor at work, and per counsellor who has left but had sessions
    that month, by name: `counsellor_id`, `name`, the REPORT_COUNTS and REPORT_MONEY. `totals`:
    the same sums for all of them. Counts:
    - completed, no_shows, confirmed (sessions ahead, or held but not yet marked either way),
      awaiting_payment (approved, or a payment started and not arrived): by status;
    - cancelled: by the client or staff (dashboard's outcomes_in_month); late: of those, the
      ones the client asked for inside the cancellation cutoff; lapsed: cancelled by the
      system, the payment window having run out.
    Money, of the payments for those sessions whatever their status or when they were paid:
    received, what the provider captured; refunded, the refunds started or done (a failed one
    is taken off again: bookings.services.payments); net, received less refunded.

    Three queries, whatever the number of bookings: the counsellors, the sessions grouped by
    counsellor, the payments grouped by counsellor (apart, so that a booking with two payments
    is not counted twice)."""
    start = day_bounds(month.replace(day=1))[0]
    end = day_bounds(month_after(month))[0]
    in_month = bookings_for(user).filter(slot__start__gte=start, slot__start__lt=end)
    by_person, late = cancelled_by_person(), cancelled_late()
    cancelled = Q(status=Status.CANCELLED)
    sessions = (
        in_month.order_by()
        .values(of=F("slot__counsellor_id"))
        .annotate(
            completed=Count("pk", filter=Q(status=Status.COMPLETED)),
            no_shows=Count("pk", filter=Q(status=Status.NO_SHOW)),
            cancelled=Count("pk", filter=cancelled & Q(by_person)),
            late=Count("pk", filter=cancelled & Q(by_person) & Q(late)),
            lapsed=Count("pk", filter=cancelled & ~Q(by_person)),
            confirmed=Count("pk", filter=Q(status=Status.CONFIRMED)),
            awaiting_payment=Count("pk", filter=Q(status__in=(Status.APPROVED, Status.PAYMENT_PENDING))),
        )
    )
    # Captured: the provider named the payment it took (bookings.services.payment_confirm);
    # what it took is captured_amount, or the amount asked for on rows older than that field
    # (payment_captured_amount).
    # Refunded, started or done: a refund decided and not taken on by the provider yet (its
    # task has not run, or the provider was down) is counted in full, as it is once taken on.
    refunded = Case(
        When(
            Q(refund_status=Payment.RefundState.PENDING, provider_refund_id=""),
            then=Coalesce("captured_amount", "amount"),
        ),
        default=F("refunded_amount"),
    )
    money = (
        Payment.objects.filter(booking__in=in_month.values("pk"))
        .exclude(provider_payment_id="")
        .order_by()
        .values(of=F("booking__slot__counsellor_id"))
        .annotate(
            received=Coalesce(Sum(Coalesce("captured_amount", "amount")), 0),
            refunded=Coalesce(Sum(refunded), 0),
        )
    )
    found: dict[int, dict[str, Any]] = {}
    for row in (*sessions, *money):
        found.setdefault(row.pop("of"), {}).update(row)
    counsellors = (
        Counsellor.objects.filter(counsellors_at_work_q() | Q(pk__in=in_month.values("slot__counsellor_id")))
        .order_by("display_name", "pk")
        .values_list("pk", "display_name")
    )
    zero = dict.fromkeys((*REPORT_COUNTS, "received", "refunded"), 0)
    rows = []
    for pk, name in counsellors:
        row = {**zero, **found.get(pk, {}), "counsellor_id": pk, "name": name}
        row["net"] = row["received"] - row["refunded"]
        rows.append(row)
    totals = {key: sum(row[key] for row in rows) for key in (*REPORT_COUNTS, *REPORT_MONEY)}
    return {"month": month.replace(day=1), "start": start, "end": end, "rows": rows, "totals": totals}


# --- The calendar -----------------------------------------------------------------------

STATUS_COLOURS = {
    Status.PENDING: "#b45309",
    Status.APPROVED: "#0369a1",
    Status.PAYMENT_PENDING: "#6d28d9",
    Status.CONFIRMED: "#047857",
    Status.COMPLETED: "#57534e",
    Status.NO_SHOW: "#9f1239",
    Status.CANCELLED: "#525252",
}


# The calendar's times as the feed gives them: ISO 8601 in UTC, to the second.
CALENDAR_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class CalendarTime(Func):
    """A moment written by the database in CALENDAR_TIME_FORMAT (2026-11-12T03:30:00Z), which
    FullCalendar and datetime.fromisoformat read. Reading hundreds of datetimes (through
    Django's time zone loader) only to format them back in Python took three to four times as
    long. Every moment has the same width, so two compare as text as they do as times."""

    arity = 1
    output_field = CharField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError("CalendarTime is written for PostgreSQL and SQLite.")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = """to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django keeps datetimes in SQLite as UTC text; each % is doubled twice (the template,
        # then the query's parameter markers).
        template = "strftime('%%%%Y-%%%%m-%%%%dT%%%%H:%%%%M:%%%%SZ', %(expressions)s)"
        return super().as_sql(compiler, connection, template=template, **extra)


# Every slot with the bookings the calendar shows in it: the one holding it, and cancelled
# ones (the calendar shows what was called off, and the slot as free again). A LEFT JOIN on
# bookings.slot_id (indexed), so a slot comes once per such booking, or once with Nones.
# A cancelled booking joins only if it was the slot's counsellor's: a counsellor sees their
# own slots (slots_for), and this keeps them to their own clients' bookings (bookings_for)
# whatever the data; the services always give a slotted booking its slot's counsellor.
# Built once, at import (like bookings.selectors._SLOTS_FREE): resolving the join, the
# subquery and the columns came out the same every time. Each shape of call (see
# _calendar_query) filters a copy once.
_BLOCKED = Exists(
    BlockedPeriod.objects.filter(
        counsellor_id=OuterRef("counsellor_id"), start__lt=OuterRef("end"), end__gt=OuterRef("start")
    )
)
# A slot's counsellor has left (their staff account is deactivated): nobody can take their
# free times (staff are refused them, clients never see them), so they are not free time. A
# join (a counsellor without an account has not left), not a subquery for each slot: the
# month of every counsellor reads twelve thousand.
_LEFT = Q(counsellor__user__is_active=False)
CALENDAR_COLUMNS = (
    "id", "start_text", "end_text", "session_end_text", "counsellor__display_name", "blocked",
    "booking__id", "booking__ack_id", "booking__client_name", "booking__status", "booking__version",
)  # fmt: skip
_CALENDAR = (
    Slot.objects.annotate(
        start_text=CalendarTime("start"),
        end_text=CalendarTime("end"),
        booking=FilteredRelation(
            "bookings",
            condition=Q(bookings__status__in=SLOT_HOLDING_STATUSES)
            | Q(bookings__status=Status.CANCELLED, bookings__counsellor_id=F("counsellor_id")),
        ),
    )
    .annotate(
        # The session's end (Booking.session_end), which may be before the slot's: the
        # calendar shows a session as long as it lasts, and a free slot whole.
        session_end_text=CalendarTime(
            session_end_expression(start="start", minutes="booking__session_type__duration_minutes")
        ),
        # Free slots inside a blocked period, or of a counsellor who has left, are not
        # offered, so not shown as free; bookings in them still show. A column, not a filter:
        # a slot with only cancelled bookings in a blocked period shows those, but not as free
        # time. Looked for only in the rows of a slot that may be free (no booking, or a
        # cancelled one): the others never use it.
        blocked=Case(
            When((Q(booking__id__isnull=True) | Q(booking__status=Status.CANCELLED)) & _LEFT, then=Value(True)),
            When(Q(booking__id__isnull=True) | Q(booking__status=Status.CANCELLED), then=_BLOCKED),
            default=Value(False),
        ),
    )
    .values(*CALENDAR_COLUMNS)
    .order_by("start")
)

# What _CALENDAR shows, counted by the database for each day's totals (the Month view of
# every counsellor): a month of fifty counsellors is twelve thousand rows, which took twice
# as long to read and count in Python. A day is the clinic's date of the slot's start
# (TruncDate in the active time zone, across changes of clocks). Two parts of one query
# (UNION ALL, the second with zeros in the first's columns and the other way round), each
# grouped without COUNT(DISTINCT), which had PostgreSQL sort every row:
# - each slot with the booking holding it (at most one, so a row per slot), by day and
#   counsellor: the sessions of each status, and the free slots (no booking holds it and
#   no blocked period overlaps it and its counsellor has not left, as in _CALENDAR), their
#   counsellors counted in Python;
# - the cancelled bookings _CALENDAR shows (of the slot's counsellor), by day.
_DAY_SLOTS = (
    Slot.objects.annotate(
        holder=FilteredRelation("bookings", condition=Q(bookings__status__in=SLOT_HOLDING_STATUSES)),
        day=TruncDate("start"),
    )
    .values("day", slot_counsellor=F("counsellor_id"))
    .annotate(
        **{status: Count("holder__id", filter=Q(holder__status=status)) for status in SLOT_HOLDING_STATUSES},
        free=Count("pk", filter=Q(holder__id__isnull=True) & ~_BLOCKED & ~_LEFT),
        cancelled=Value(0),
    )
    .order_by()
)
_DAY_CANCELLED = (
    Slot.objects.annotate(
        cancelled_booking=FilteredRelation(
            "bookings",
            condition=Q(bookings__status=Status.CANCELLED, bookings__counsellor_id=F("counsellor_id")),
        ),
        day=TruncDate("start"),
    )
    .filter(cancelled_booking__id__isnull=False)
    .values("day", slot_counsellor=Value(0), **dict.fromkeys((*SLOT_HOLDING_STATUSES, "free"), Value(0)))
    .annotate(cancelled=Count("cancelled_booking__id"))
    .order_by()
)


@lru_cache(maxsize=8)
def _calendar_query(role: str, *, one_counsellor: bool, totals: bool = False) -> CompiledQuery:
    """calendar_rows' query for a member of staff with `role`, for one counsellor or all:
    scoped by staff.permissions.slots_for as for such a member, built and compiled once
    (mindsettler/compiled.py; compiling it took longer than the database takes to answer).
    The range, the counsellor and the member's id (where the scope names it) are values of
    each call. With `totals`, the totals of the same slots instead (_DAY_SLOTS and
    _DAY_CANCELLED, one after the other)."""

    def build(start: datetime, end: datetime, member_id: int = 0, counsellor_id: int = 0) -> QuerySet[Slot]:
        member = scope_stand_in(role, member_id)
        if totals:
            slots, cancelled = (
                slots_for(member, qs).filter(start__lt=end, end__gt=start) for qs in (_DAY_SLOTS, _DAY_CANCELLED)
            )
            return slots.union(cancelled, all=True).order_by()
        qs = slots_for(member, _CALENDAR).filter(start__lt=end, end__gt=start)
        return qs.filter(counsellor_id=counsellor_id) if one_counsellor else qs

    placeholders: dict[str, Any] = {"start": PLACEHOLDER_TIME, "end": PLACEHOLDER_TIME + timedelta(days=1)}
    if scope_names_member(role):  # a counsellor: their own slots
        placeholders["member_id"] = -1
    if one_counsellor:
        placeholders["counsellor_id"] = -2
    return CompiledQuery(build, **placeholders)


def calendar_rows(*, user: Any, start: datetime, end: datetime, counsellor_id: int | None) -> list[Sequence[Any]]:
    """Every slot in start..end that `user` may see, once for each booking the calendar shows
    in it (the one holding it, cancelled ones) or once with Nones: one query, whatever the
    number of bookings in the database. Rows of CALENDAR_COLUMNS: (slot id, its start and
    end, and the booking's session's end (None without one) in CALENDAR_TIME_FORMAT,
    counsellor's name, whether a blocked period overlaps the slot (in
    rows without a booking or with a cancelled one; False in the others), and the booking's
    id, ack_id, client_name, status, version or Nones), by start."""
    if not is_staff_member(user):
        return []
    query = _calendar_query(user.role, one_counsellor=bool(counsellor_id))
    values: dict[str, Any] = {"start": start, "end": end}
    if "member_id" in query.placeholders:
        values["member_id"] = user.pk
    if counsellor_id:
        values["counsellor_id"] = counsellor_id
    # Rows, not the dicts a call gives: a month of every counsellor is ten thousand rows or
    # more, and a dict each cost a third more than the query.
    return query.rows(**values)


def calendar_day_totals(*, user: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """For each day of the clinic's zone with any, of the slots in start..end of every
    counsellor `user` may see (calendar_rows' rows, counted): a dict of its `day` (a date),
    the number of sessions in each of SLOT_HOLDING_STATUSES (0 for none), of `cancelled`
    bookings, of `free` slots and of the counsellors they are of (`free_counsellors`); by
    day. One query."""
    if not is_staff_member(user):
        return []
    query = _calendar_query(user.role, one_counsellor=False, totals=True)
    values: dict[str, Any] = {"start": start, "end": end}
    if "member_id" in query.placeholders:
        values["member_id"] = user.pk
    days: dict[date, dict[str, Any]] = {}
    for row in query(**values):
        totals = days.setdefault(row["day"], {"day": row["day"], "free_counsellors": 0})
        for name in (*SLOT_HOLDING_STATUSES, "free", "cancelled"):
            totals[name] = totals.get(name, 0) + row[name]
        totals["free_counsellors"] += row["free"] > 0
    return [days[day] for day in sorted(days)]


def initials(name: str) -> str:
    # split() gives no empty words; upper() on the two letters is upper() on each.
    letters = [word[0] for word in (name or "").split() if word[0].isalpha()]
    return "".join(letters[:2]).upper() or "?"


# --- Booking detail ---------------------------------------------------------------------


def counsellors_at_work(user: Any) -> QuerySet[Counsellor]:
    """The counsellors `user` may schedule and publish times for (staff.permissions'
    counsellors_for): those at work (bookings.selectors.counsellors_at_work_q), whether
    clients see their profile or not. A counsellor's own is always among them."""
    return counsellors_for(user).filter(counsellors_at_work_q())


def approve_slot_choices(
    *, user: Any, booking: Booking, days: int = 60, counsellor_id: int | None = None
) -> QuerySet[Slot]:
    """Slots a booking could be approved or moved into: free, future, long enough, of a
    counsellor at work who offers the booking's mode, among the slots `user` may see (a
    counsellor only their own; an administrator anyone's, to hand a booking to another
    counsellor). Of `counsellor_id` if given (to show: a list of every counsellor's times is
    too long to choose from; to check a choice, leave it out)."""
    now = timezone.now()
    # What makes a slot free is bookings.selectors' (slots_free_for_staff): held by nobody, no
    # blocked period over it, its counsellor at work and offering the booking's mode.
    qs = slots_for(user, slots_free_for_staff(mode=booking.mode, start=now, end=now + timedelta(days=days)))
    if counsellor_id:
        qs = qs.filter(counsellor_id=counsellor_id)
    duration = timedelta(minutes=booking.session_type.duration_minutes)
    qs = qs.filter(end__gte=F("start") + duration)
    return qs.annotate(asked_for=_asked_for(other_than=booking))


def _asked_for(*, other_than: Booking | None = None) -> Exists:
    """Whether a request waiting for review (other than `other_than`) asked for the slot: free,
    but the choice lists say so (SlotChoiceField), so that nobody gives it away unawares."""
    asked = Booking.objects.filter(preferred_slot=OuterRef("pk"), status=Status.PENDING)
    return Exists(asked if other_than is None else asked.exclude(pk=other_than.pk))


def schedule_counsellors(*, user: Any, booking: Booking) -> list[tuple[int, str]]:
    """For an administrator approving or moving `booking`: whose times the page may show, as
    (id, name), counsellors at work who offer the booking's mode; first the booking's own
    counsellor, else the client's preferred slot's. Empty for a counsellor, who chooses only
    among their own times. One query."""
    if not is_administrator(user):
        return []
    offers = "offers_online" if booking.mode == Mode.ONLINE else "offers_in_person"
    rows = list(
        counsellors_at_work(user)
        .filter(**{offers: True})
        .order_by("sort_order", "display_name")
        .values_list("pk", "display_name")
    )
    first = booking.counsellor_id or (booking.preferred_slot.counsellor_id if booking.preferred_slot_id else None)
    return sorted(rows, key=lambda row: row[0] != first)


def new_booking_slots(*, user: Any, counsellor_id: int | None = None) -> QuerySet[Slot]:
    """Free slots in the next 60 days that `user` may book for a client who phoned or walked
    in, of `counsellor_id` if given (to show: every counsellor's would be thousands of
    choices; to check a choice, leave it out)."""
    now = timezone.now()
    slots = slots_for(user, slots_free_for_staff(start=now, end=now + timedelta(days=60)))
    if counsellor_id is not None:
        slots = slots.filter(counsellor_id=counsellor_id)
    return slots.annotate(asked_for=_asked_for())


def preferred_slot_taken() -> Exists:
    """Whether another booking has taken the client's preferred slot meanwhile: an annotation
    of bookings, read with the booking on its page rather than by a query of its own."""
    return Exists(
        Booking.objects.filter(slot_id=OuterRef("preferred_slot_id"), status__in=SLOT_HOLDING_STATUSES).exclude(
            pk=OuterRef("pk")
        )
    )


def views_log(*, user: Any, booking: Booking) -> list[Any]:
    if not is_administrator(user):
        return []
    return list(booking.views.select_related("user")[:50])


# --- The team -----------------------------------------------------------------------------


def open_bookings() -> QuerySet[Booking]:
    """Active bookings, which still need their counsellor: requests, sessions ahead, and past
    sessions not yet marked held or missed. The booking list's "All active" filter shows the
    same set, and the Team page links to it."""
    return Booking.objects.filter(status__in=ACTIVE_STATUSES)


def open_bookings_count(*, member: User) -> int:
    """How many open bookings are assigned to `member` as a counsellor (0 for administrators)."""
    return open_bookings().filter(counsellor__user_id=member.pk).count()


def team_members() -> list[User]:
    """Every staff account, with `has_second_factor` (an authenticator app is set up),
    `open_bookings` (see open_bookings), and `calendar_since` and `calendar_read` (when their
    calendar subscription was made and last read; None without a live one). One query, whatever the
    number of bookings."""
    from allauth.mfa.models import Authenticator

    per_member = (
        open_bookings()
        .filter(counsellor__user_id=OuterRef("pk"))
        .order_by()
        .values("counsellor__user_id")
        .annotate(n=Count("pk"))
        .values("n")
    )

    # A subscription a password reset stopped is kept only to tell its member.
    def live(field: str) -> Case:
        return Case(When(calendar_subscription__stopped_at__isnull=True, then=F(f"calendar_subscription__{field}")))

    return list(
        User.objects.select_related("counsellor")
        .annotate(
            calendar_since=live("created_at"),
            calendar_read=live("last_read_at"),
            has_second_factor=Exists(
                Authenticator.objects.filter(user_id=OuterRef("pk"), type=Authenticator.Type.TOTP)
            ),
            open_bookings=Coalesce(Subquery(per_member, output_field=IntegerField()), 0),
        )
        .order_by("role", "first_name", "email")
    )


def account_events(*, limit: int = 20) -> list[AccountEvent]:
    return list(AccountEvent.objects.select_related("member", "actor")[:limit])


def has_authenticator_app(user: Any) -> bool:
    """Whether `user` has set up an authenticator app (TOTP): the portal's second factor."""
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def setup_link_live(*, user: Any) -> SetupLink | None:
    """The authenticator setup link emailed to `user` that still works, if any (only the
    newest one does: staff.services.setup_link_send)."""
    return SetupLink.objects.filter(user=user, used_at__isnull=True, expires_at__gt=timezone.now()).first()


# --- Calendar subscriptions (staff.calendar_subscription) -----------------------------------

# The sessions a subscribed calendar holds: a month back (last weeks' sessions stay in the
# app's history) and three months ahead. A session moved or handed over outside it simply
# leaves the feed, and calendar apps remove what a feed no longer has.
CALENDAR_FEED_PAST = timedelta(days=30)
CALENDAR_FEED_AHEAD = timedelta(days=90)


def calendar_subscription_of(user: Any) -> CalendarSubscription | None:
    return CalendarSubscription.objects.filter(user_id=user.pk).first()


def calendar_feed_owner(*, token_hash: str) -> dict[str, Any] | None:
    """The live subscription whose secret hashes to `token_hash`: its `pk`, `last_read_at`,
    the `counsellor_id` whose sessions it shows and the clinic's `address` (for sessions in
    person). None when there is none, or its member is deactivated or has no counsellor
    profile, or a password reset stopped it: one answer for all, so that a guessed or stale
    address learns nothing. One query."""
    return (
        CalendarSubscription.objects.filter(
            token_hash=token_hash, stopped_at__isnull=True, user__is_active=True, user__counsellor__isnull=False
        )
        .values(
            "pk",
            "last_read_at",
            counsellor_id=F("user__counsellor__id"),
            address=Subquery(Clinic.objects.filter(pk=1).values("address")[:1]),
        )
        .first()
    )


def calendar_feed_sessions(*, counsellor_id: int, now: datetime) -> list[Any]:
    """The counsellor's sessions that hold a time (approved, being paid, confirmed, held or
    missed) starting from CALENDAR_FEED_PAST before `now` to CALENDAR_FEED_AHEAD after, in
    order: only what the feed writes, never the client's name, address or words. One query."""
    return list(
        Booking.objects.filter(
            counsellor_id=counsellor_id,
            status__in=SLOTTED_STATUSES,
            slot__start__gte=now - CALENDAR_FEED_PAST,
            slot__start__lt=now + CALENDAR_FEED_AHEAD,
        )
        .order_by("slot__start", "pk")
        .values_list(
            "pk",
            "ack_id",
            "status",
            "mode",
            "version",
            "updated_at",
            "slot__start",
            "session_type__duration_minutes",
            named=True,
        )
    )
