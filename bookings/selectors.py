"""Reads that several views share. Each returns a queryset or a small value, in few queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import (
    Case,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from bookings.errors import TokenInvalid
from bookings.models import (
    CLINIC_PROVIDER,
    SLOT_HOLDING_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    ConsentGiven,
    Counsellor,
    CounsellorPreviousSlug,
    LinkToken,
    Mode,
    Payment,
    SessionType,
    Slot,
    Status,
    WaitlistEntry,
    session_end_expression,
    session_has_ended,
)
from bookings.templatetags.mindsettler import when_short
from bookings.tokens import token_check, token_lookup_hash
from mindsettler.compiled import CompiledQuery, columns, instance, sql_literals


def counsellors_at_work_q(prefix: str = "") -> Q:
    """The counsellors staff may schedule: their staff account is active, or they have none (a
    profile kept without an account, which only administrators schedule). `prefix` reaches
    the counsellor from another model ("counsellor__" from a slot).

    Whether clients see the profile (Counsellor.is_active) is not asked: a counsellor who has
    just joined, or whose account was deactivated and reactivated, is hidden from clients
    until an administrator shows the profile, but still works, publishes times and is booked
    by staff. A deactivated account (someone who has left) cannot be scheduled."""
    return Q(**{f"{prefix}user__isnull": True}) | Q(**{f"{prefix}user__is_active": True})


def counsellor_at_work(counsellor: Counsellor) -> bool:
    """counsellors_at_work_q for one counsellor, whose user is read with it (select_related)."""
    return counsellor.user_id is None or counsellor.user.is_active


# What makes a slot free whatever the moment and the filters: nobody holds it, and no blocked
# period overlaps it (slots kept only because past bookings refer to them are hidden inside
# blocked periods). Filters, not annotations: an annotated EXISTS would also be computed for
# every row returned.
_UNHELD = (
    # Literal statuses: with them a prepared query can use booking_one_per_slot's partial
    # index in the plan it keeps for all calls (mindsettler/compiled.py, SqlLiteral).
    ~Exists(Booking.objects.filter(slot=OuterRef("pk"), status__in=sql_literals(SLOT_HOLDING_STATUSES))),
    ~Exists(
        BlockedPeriod.objects.filter(
            counsellor_id=OuterRef("counsellor_id"), start__lt=OuterRef("end"), end__gt=OuterRef("start")
        )
    ),
)
# Free slots clients may see: their counsellor's profile is shown (Counsellor.is_active).
# Built once, at import: resolving the two subqueries into the outer query was about half of
# building slots_free's queryset, and came out the same every time. Each call filters a copy
# (filter() never changes this queryset); this one is never evaluated, so it holds no rows.
# values() drops the select_related, so it costs the callers that read rows nothing.
_SLOTS_FREE = (
    Slot.objects.filter(*_UNHELD, counsellor__is_active=True)
    .select_related("counsellor")
    .order_by("start", "counsellor__sort_order")
)
# Free slots staff may book: of counsellors at work (counsellors_at_work_q), shown or hidden.
_SLOTS_FREE_FOR_STAFF = (
    Slot.objects.filter(*_UNHELD, counsellors_at_work_q("counsellor__"))
    .select_related("counsellor")
    .order_by("start", "counsellor__sort_order")
)


def slots_free(
    *,
    session_type: SessionType | None = None,
    counsellor: Counsellor | None = None,
    mode: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    for_clients: bool = True,
) -> QuerySet[Slot]:
    """Published slots nobody holds, of counsellors whose profile clients see, in one query
    (NOT EXISTS on the holding bookings), by start and then the counsellors' order, with
    their counsellor.

    `session_type`: only slots that can hold it (fits_q); `mode`: only slots of counsellors
    offering it. `for_clients` keeps to the window in which clients may book (client_window).
    Staff book from slots_free_for_staff.
    """
    if for_clients:
        start, end = client_window(start, end)
    return _free(_SLOTS_FREE, session_type=session_type, counsellor=counsellor, mode=mode, start=start, end=end)


def slots_free_for_staff(
    *,
    counsellor: Counsellor | None = None,
    mode: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[Slot]:
    """As slots_free(for_clients=False), for staff booking, approving or moving a session:
    the slots of every counsellor at work (counsellors_at_work_q), whether clients see their
    profile or not. Scope it to what the member of staff may see (staff.permissions)."""
    return _free(_SLOTS_FREE_FOR_STAFF, counsellor=counsellor, mode=mode, start=start, end=end)


def _free(
    base: QuerySet[Slot],
    *,
    session_type: SessionType | None = None,
    counsellor: Counsellor | None = None,
    mode: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[Slot]:
    """`base` (one of the above) from `start` (now if not given) to `end`, filtered."""
    # One filter() call: each call copies the query and each condition is built once.
    where: dict[str, Any] = {"start__gte": start or timezone.now()}
    if end is not None:
        where["start__lt"] = end
    if counsellor is not None:
        where["counsellor"] = counsellor
    if mode is not None:
        where[_OFFERS[mode]] = True
    if session_type is not None:
        return base.filter(fits_q(shortest_by_mode([session_type])), **where)
    return base.filter(**where)


def client_window(start: datetime | None = None, end: datetime | None = None) -> tuple[datetime, datetime]:
    """The part of [`start`, `end`) in which a client may book a slot's start: from the minimum
    notice to the booking horizon. Empty (start >= end) if they do not overlap."""
    now = timezone.now()
    earliest = now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS)
    latest = now + timedelta(days=settings.BOOKING_HORIZON_DAYS)
    return (max(start, earliest) if start else earliest), (min(end, latest) if end else latest)


# The counsellor's field saying whether they offer a mode.
_OFFERS = {Mode.ONLINE: "counsellor__offers_online", Mode.IN_PERSON: "counsellor__offers_in_person"}


def shortest_by_mode(session_types: Sequence[SessionType]) -> dict[str, int]:
    """Per mode, in the modes' order, the length in minutes of the shortest of `session_types`
    offered in it (no entry: none is). All that decides which slots can hold one of them:
    see fits_q."""
    shortest: dict[str, int] = {}
    for mode in Mode.values:
        lengths = [t.duration_minutes for t in session_types if mode in t.modes]
        if lengths:
            shortest[mode] = min(lengths)
    return shortest


def shortest_session_with(counsellor: Counsellor) -> int | None:
    """The length in minutes of the shortest session anyone can book with `counsellor`: of the
    kinds of session offered, in the ways they meet. A shorter slot of theirs holds none
    (fits_q). None when no kind of session is offered in any of their ways."""
    shortest = shortest_by_mode(session_types_active())
    lengths = [shortest[mode] for mode in counsellor.modes if mode in shortest]
    return min(lengths) if lengths else None


def fits_q(shortest: Mapping[str, int]) -> Q:
    """The slots that can hold at least one of some session types, given their `shortest`
    length per mode (shortest_by_mode): a slot can hold a session type if it is at least as
    long and the slot's counsellor offers one of the type's modes. slot_modes applies the
    same rule to one slot, in Python."""
    # One length condition per length: a type offered in both modes asks for it once.
    modes_by_length: dict[int, list[str]] = {}
    for mode, minutes in shortest.items():
        modes_by_length.setdefault(minutes, []).append(mode)
    fits = [
        Q(end__gte=_plus_minutes("start", minutes)) & reduce(or_, (Q(**{_OFFERS[mode]: True}) for mode in modes))
        for minutes, modes in modes_by_length.items()
    ]
    return reduce(or_, fits) if fits else Q(pk__in=[])


def slot_modes(
    *, length: timedelta, offers_online: bool, offers_in_person: bool, session_type: SessionType
) -> list[str]:
    """The modes in which a slot can hold a `session_type` session; empty if it cannot hold one.
    The slot is given by its `length` and the modes its counsellor offers (`offers_online`,
    `offers_in_person`): plain values, so a caller reading rows need not build a Slot and a
    Counsellor for each.

    fits_q's rule (and the services' checks), for one slot: long enough, and a mode both the
    session type and the slot's counsellor offer.
    """
    if length < session_type.duration:
        return []
    offered = {Mode.ONLINE: offers_online, Mode.IN_PERSON: offers_in_person}
    return [mode for mode in session_type.modes if offered[mode]]


# Read on the home page and every view of the wizard's first step: compiled once.
_ACTIVE_SESSION_TYPES = CompiledQuery(lambda: SessionType.objects.filter(is_active=True).values(*columns(SessionType)))


def session_types_active() -> list[SessionType]:
    """The session types clients can book, in their order."""
    return [instance(SessionType, row) for row in _ACTIVE_SESSION_TYPES()]


def session_types_bookable(*, counsellor_slug: str = "") -> QuerySet[SessionType]:
    """The session types clients can book.

    With `counsellor_slug`, each row also carries `counsellor_pk`, `counsellor_slug` and
    `counsellor_display_name`: the id, current slug and name of the active counsellor it names,
    or None if there is none. A slug a
    counsellor's profile had before an administrator changed it names them too, as on their
    profile page (a chatbot may have kept it). This checks a counsellor in the same query, for
    the chatbot API's query budget.
    """
    qs = SessionType.objects.filter(is_active=True)
    if counsellor_slug:
        renamed = CounsellorPreviousSlug.objects.filter(slug=counsellor_slug).values("counsellor_id")
        found = (
            Counsellor.objects.filter(Q(slug=counsellor_slug) | Q(pk__in=renamed), is_active=True)
            # Never two (no counsellor takes another's old name), but the current one first.
            .order_by(Case(When(slug=counsellor_slug, then=Value(0)), default=Value(1)))
        )
        qs = qs.annotate(
            counsellor_pk=Subquery(found.values("pk")[:1]),
            counsellor_slug=Subquery(found.values("slug")[:1]),
            counsellor_display_name=Subquery(found.values("display_name")[:1]),
        )
    return qs


def _plus_minutes(field: str, minutes: int) -> ExpressionWrapper:
    return ExpressionWrapper(F(field) + Value(timedelta(minutes=minutes)), output_field=DateTimeField())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Midnight to midnight of `day` in the clinic's time zone, as aware datetimes."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()), tz)
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()), tz)


# --- The client journey -----------------------------------------------------------------


def slots_free_for_client(
    *, session_type: SessionType | None, counsellor: Counsellor | None, mode: str | None
) -> QuerySet[Slot]:
    """Free slots a client may choose, narrowed to counsellors who offer `mode`."""
    return slots_free(session_type=session_type, counsellor=counsellor, mode=mode)


def waitlist_free_times_exist(entry: WaitlistEntry) -> bool:
    """Whether a client may already book a time that suits a waitlist entry (its kind of
    session, way of meeting, counsellor and days): offers are made only of times that become
    free later, so such a time would never be emailed to them. One query."""
    start, end = day_bounds(entry.date_from)[0], day_bounds(entry.date_to)[1]
    return slots_free(
        session_type=entry.session_type, counsellor=entry.counsellor, mode=entry.mode, start=start, end=end
    ).exists()


@dataclass(frozen=True, slots=True)
class FreeSlot:
    """A free slot as the picker shows it. Plain rows, not model instances: a busy day has
    hundreds of free slots, and building a Slot and a Counsellor for each costs more than
    the query."""

    pk: int
    start: datetime
    counsellor_name: str


# For the status lookup: only what it shows (the status, and whether the session has ended)
# is read. No ORDER BY: ack_id is unique, and first()'s default newest-first ordering only
# makes PostgreSQL plan longer.
_STATUS_BY_ACK_ID = CompiledQuery(
    lambda ack_id: (
        Booking.objects.filter(ack_id=ack_id)
        .order_by()
        .values("status", "anonymised_at", session_end=session_end_expression())[:1]
    ),
    ack_id="MS-000000",
)


@dataclass(frozen=True, slots=True)
class StatusFound:
    status: str
    erased: bool  # its details were erased: it has no links any more
    session_over: bool  # as Booking.session_over


def booking_status_by_ack_id(ack_id: str) -> StatusFound | None:
    """What the status lookup shows of the booking with this acknowledgement ID; None if
    there is none."""
    rows = _STATUS_BY_ACK_ID(ack_id=ack_id)
    if not rows:
        return None
    row = rows[0]
    return StatusFound(
        status=row["status"],
        erased=row["anonymised_at"] is not None,
        session_over=session_has_ended(row["session_end"]),
    )


# The booking page's link, its booking and the booking's session: one query, compiled once
# (mindsettler/compiled.py), as token_get(related=...) would read them. The preferred time is
# shown only while no time is reserved, so it is read only then, by another query.
_PAGE_JOINS = (
    ("", LinkToken),
    ("booking__", Booking),
    ("booking__session_type__", SessionType),
    ("booking__slot__", Slot),
    ("booking__counsellor__", Counsellor),
)
# Of the counsellor's account, only whether they are still at work (Booking.join_url).
_COUNSELLOR_ACCOUNT = ("booking__counsellor__user__id", "booking__counsellor__user__is_active")
_MANAGE_LINK = CompiledQuery(
    lambda token_hash: (
        LinkToken.objects.filter(token_hash=token_hash, purpose=LinkToken.Purpose.MANAGE)
        .order_by()
        .values(*(name for prefix, model in _PAGE_JOINS for name in columns(model, prefix)), *_COUNSELLOR_ACCOUNT)[:1]
    ),
    token_hash="0" * 64,
)

# What booking_timeline and the reschedule counts read of an event: the kind of actor
# (client, staff, system), not which staff user it was.
_TIMELINE_FIELDS = (
    "id",
    "booking_id",
    "action",
    "actor",
    "from_status",
    "to_status",
    "reason",
    "moved_from",
    "moved_to",
    "created_at",
)
_TIMELINE = CompiledQuery(
    lambda booking_id: BookingEvent.objects.filter(booking_id=booking_id).values(*_TIMELINE_FIELDS),
    booking_id=-1,
)


def booking_for_page(*, token: str) -> Booking:
    """The booking behind a private booking-page link, or TokenInvalid, with its events.

    The link stops working BOOKING_LINK_DAYS_AFTER_SESSION days after the session ends, so
    an old email found later does not open a record of someone's counselling.
    """
    rows = _MANAGE_LINK(token_hash=token_lookup_hash(token))
    if not rows:
        raise TokenInvalid("unknown")
    link, booking, session_type, slot, counsellor = (instance(model, rows[0], prefix) for prefix, model in _PAGE_JOINS)
    booking.session_type, booking.slot, booking.counsellor = session_type, slot, counsellor
    if counsellor is not None and counsellor.user_id is not None:
        counsellor.user = instance(Counsellor.user.field.related_model, rows[0], "booking__counsellor__user__")
    link.booking = booking
    token_check(link)
    events = [instance(BookingEvent, row) for row in _TIMELINE(booking_id=booking.pk)]
    _prefetched(booking, "events", events)
    if booking.slot_id is None:
        preferred_slot_read(booking)
    link_check_open(link, booking)
    return booking


def preferred_slot_read(booking: Booking) -> None:
    """Read the time a request asked for into `booking.preferred_slot`, with its counsellor and
    whether it can still be had, in one query: `taken` (another booking holds it) and `blocked`
    (a blocked period covers it). For preferred_time_lost."""
    if booking.preferred_slot_id is None:
        return
    booking.preferred_slot = (
        Slot.objects.select_related("counsellor__user")
        .annotate(
            taken=Exists(
                Booking.objects.filter(slot_id=OuterRef("pk"), status__in=SLOT_HOLDING_STATUSES).exclude(pk=booking.pk)
            ),
            blocked=Exists(
                BlockedPeriod.objects.filter(
                    counsellor_id=OuterRef("counsellor_id"), start__lt=OuterRef("end"), end__gt=OuterRef("start")
                )
            ),
        )
        .get(pk=booking.preferred_slot_id)
    )


def preferred_time_lost(booking: Booking, *, notice: bool = False, now: datetime | None = None) -> str:
    """Why a request can no longer have the time its client chose, if it cannot: "taken" (staff
    gave it to another booking), "withdrawn" (the clinic removed it or blocked it off, its
    counsellor left, or, for a client's own request, the clinic hid their profile) or, with
    `notice`, "too_soon" (it now starts within BOOKING_MIN_NOTICE_HOURS, too soon for a client
    to ask for it online; staff may still approve it); "" if it still can, or no time was
    chosen. Asked when the client confirms their email (drafts hold no slot, so anything may
    have happened to it meanwhile) and by the booking page while the request waits.

    Reads `booking.preferred_slot` as preferred_slot_read leaves it. The time asked for is kept
    on the booking even when lost: if it comes free again, staff find it chosen for them, and
    the approval email still says which counsellor the client asked for."""
    if booking.preferred_slot_id is None:
        # A slot removed while only a draft asked for it is deleted (SET_NULL): the request
        # then has neither a time nor days that suit. Staff bookings may start with neither.
        return "withdrawn" if booking.created_by_id is None and not booking.preferred_times.strip() else ""
    slot = booking.preferred_slot
    if getattr(slot, "taken", False):
        return "taken"
    if (
        getattr(slot, "blocked", False)
        or not counsellor_at_work(slot.counsellor)
        or booking.mode not in slot.counsellor.modes
    ):
        # Blocked off, its counsellor has left, or no longer meets this way: nobody can approve it.
        return "withdrawn"
    if not slot.counsellor.is_active and booking.created_by_id is None:
        # The clinic no longer offers this counsellor to clients. Staff may still approve it,
        # and choose such a time for a client themselves (a counsellor not yet shown, say).
        return "withdrawn"
    if notice and slot.start < (now or timezone.now()) + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS):
        return "too_soon"
    return ""


# Bookings that have ended: their page offers to book again with the same choices.
ENDED_STATUSES = frozenset({Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED, Status.REJECTED})


def book_again(booking: Booking) -> dict[str, object] | None:
    """For a booking that has ended, the wizard with its choices filled in: the kind of
    session, the way of meeting and the counsellor, each while still offered (the wizard checks
    them again), as `url`, and that `counsellor` or None. None while the booking is active,
    but for a session over and not yet recorded: a request made now is held until it is
    (services.booking_verify). Ongoing counselling is mostly a next session with the same
    person: the client should not have to find them again."""
    if booking.status not in ENDED_STATUSES and not (booking.status == Status.CONFIRMED and booking.session_over):
        return None
    query = {"mode": booking.mode, "lang": booking.language}
    if booking.session_type.is_active:
        query["type"] = booking.session_type.slug
    counsellor = booking.counsellor if booking.counsellor_id is not None and booking.counsellor.is_active else None
    if counsellor is not None:
        query["counsellor"] = counsellor.slug
    return {"url": f"{reverse('bookings:wizard')}?{urlencode(query)}", "counsellor": counsellor}


def held_requests() -> QuerySet[Booking]:
    """Requests held for their address's last session to be recorded (services.booking_verify):
    confirmed by their client, still drafts."""
    return Booking.objects.filter(status=Status.DRAFT, verified_at__isnull=False, anonymised_at__isnull=True)


def request_held_for(booking: Booking) -> bool:
    """Whether a request of the booking's address is held (held_requests). One query."""
    return held_requests().filter(email=booking.email).exists()


def next_asked_for() -> Exists:
    """For annotating bookings: whether their address has a request held (held_requests), for
    the session to be recorded first. In the bookings' own query, by the email's index."""
    return Exists(held_requests().filter(email=OuterRef("email")))


def booking_page_closed(booking: Booking) -> bool:
    """Whether the booking's session ended BOOKING_LINK_DAYS_AFTER_SESSION days ago, so that
    its page no longer opens by any link. `booking.slot` is read: select it with the booking."""
    if booking.slot is None:
        return False
    return booking.slot.end + timedelta(days=settings.BOOKING_LINK_DAYS_AFTER_SESSION) <= timezone.now()


def bookings_page_open(queryset: QuerySet[Booking]) -> QuerySet[Booking]:
    """`queryset` without the bookings whose page has closed (booking_page_closed), so that
    no email sends a link to a page that will not open."""
    since = timezone.now() - timedelta(days=settings.BOOKING_LINK_DAYS_AFTER_SESSION)
    return queryset.filter(Q(slot__isnull=True) | Q(slot__end__gt=since))


def link_check_open(link: LinkToken, booking: Booking) -> None:
    """TokenInvalid("expired") once the booking's page has closed (booking_page_closed): the
    page's link, and everything reached through it (the calendar file, paying), stop working
    together. `booking.slot` is read: select it with the booking."""
    if booking_page_closed(booking):
        raise TokenInvalid("expired", link=link)


def _prefetched(booking: Booking, name: str, objects: list[Any]) -> None:
    """Leave `objects` where prefetch_related leaves a booking's related rows (and on each
    row, its booking), so `booking.<name>.all()` reads them without a query."""
    manager = getattr(booking, name)
    for obj in objects:
        manager.field.set_cached_value(obj, booking)
    queryset = manager.get_queryset()
    queryset._result_cache, queryset._prefetch_done = objects, True
    booking.__dict__.setdefault("_prefetched_objects_cache", {})[name] = queryset


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str
    detail: str = ""
    # A move: the old and the new start, for the page to word in the client's language.
    moved: tuple[datetime, datetime] | None = None


def staff_moment(value: datetime) -> str:
    """A moment as the staff portal writes every date, "Wed 9 Dec, 11:00 IST" (the when_short
    filter, in the clinic's zone), for the words of events (an approval's, a move's) that staff
    read in the booking's timeline and the dashboard. In the portal's language whatever the
    request's: a client reading in Hindi moves their own session."""
    with translation.override(settings.LANGUAGE_CODE):
        return when_short(value)


def move_reason(
    *,
    old_start: datetime,
    new_start: datetime,
    old_counsellor: Counsellor | None = None,
    new_counsellor: Counsellor | None = None,
    link_cleared: bool = False,
) -> str:
    """The reason of a move's event: staff read it as it is (the staff portal is in English):
    "From Sat 28 Nov, 11:00 IST to Tue 1 Dec, 11:00 IST" (staff_moment). The event also keeps
    both times, for the client's page. A move to another counsellor (`new_counsellor`, from
    `old_counsellor`) names both: the history is where staff see who held the booking before."""
    reason = f"From {staff_moment(old_start)} to {staff_moment(new_start)}"
    return reason + handover_words(
        old_counsellor=old_counsellor, new_counsellor=new_counsellor, link_cleared=link_cleared
    )


def handover_words(
    *, old_counsellor: Counsellor | None, new_counsellor: Counsellor | None, link_cleared: bool = False
) -> str:
    """What a move's or an approval's event adds when the booking goes to another counsellor
    (`new_counsellor`, from `old_counsellor`): ", now with X (was Y)", and that the booking's
    own meeting link was cleared. Empty without a new counsellor."""
    words = ""
    if new_counsellor is not None:
        was = f" (was {old_counsellor.display_name})" if old_counsellor is not None else ""
        words += f", now with {new_counsellor.display_name}{was}"
    if link_cleared:
        words += "; the booking's own meeting link was cleared, so the new counsellor's room is used"
    return words


def booking_timeline(booking: Booking) -> list[TimelineEntry]:
    """The booking's events in words a client understands. Staff-only actions are left out.

    Uses the prefetched `events`; only a rejection's reason is shown, as the rejection
    email promises, because other reasons are written for colleagues.
    """
    entries: list[TimelineEntry] = []
    payment_started = False
    for event in booking.events.all():
        text, moved = _timeline_text(event), None
        if event.action == "transition" and event.to_status == Status.PAYMENT_PENDING and event.actor != Actor.STAFF:
            if payment_started:
                text = _("You started the payment again")
            payment_started = True
        if not text:
            continue
        if event.action == "rescheduled" and event.moved_from and event.moved_to:
            # The times, for the page to word in its language.
            moved = (event.moved_from, event.moved_to)
        entries.append(
            TimelineEntry(at=event.created_at, text=text, detail=event_reason_for_client(event), moved=moved)
        )
    return entries


def event_reason_for_client(event: BookingEvent) -> str:
    """The part of an event's reason its client may read (their timeline, their data export):
    a rejection's reason, as the rejection email promises, and a move recorded without its
    times (one whose reason could not be read when they were added). Every other reason is
    written for colleagues and may say what the client told them."""
    if event.to_status == Status.REJECTED and event.action == "transition":
        return event.reason
    if event.action == "rescheduled" and not (event.moved_from and event.moved_to):
        return event.reason
    return ""


def _timeline_text(event: BookingEvent) -> str:
    s = Status
    if event.action == "created":
        if event.actor == Actor.STAFF:
            return _("The clinic made this booking for you")
        return _("You sent your booking request")
    if event.action == ConsentGiven.PHONE:
        return _("You agreed to our privacy notice on the phone with the clinic")
    if event.action == ConsentGiven.IN_PERSON:
        return _("You agreed to our privacy notice in person at the clinic")
    if event.action == "rescheduled":
        return (
            _("You moved your session to a new time")
            if event.actor == Actor.CLIENT
            else _("The clinic moved your session to a new time")
        )
    if event.action != "transition":
        return {
            "slot_moved": _("Your session time was changed"),
            "time_withdrawn": _("The time you chose was no longer offered; the clinic will offer you another"),
            "held": _("You confirmed your email address; your request waited for your last session to be recorded"),
            "meeting_link": "",
            "email_corrected": _("The clinic corrected your email address; links sent before it no longer work"),
        }.get(event.action, "")
    frm, to = event.from_status, event.to_status
    if to == s.PENDING:
        return _("You confirmed your email address; your request reached the clinic")
    if to == s.APPROVED and frm == s.PAYMENT_PENDING:
        # Only the provider refuses a payment. The system closes an attempt the client left
        # when they start a new one (services.payment_restart): the next entry says so.
        return _("The payment did not go through; you can try again") if event.actor == Actor.PROVIDER else ""
    if to == s.APPROVED:
        return _("A counsellor reserved a time for you")
    if to == s.PAYMENT_PENDING:
        # By staff: the price paid at the clinic's desk, recorded (the next entry says so).
        return "" if event.actor == Actor.STAFF else _("You started the payment")
    if to == s.CONFIRMED:
        if event.actor == Actor.STAFF:
            return _("Paid at the clinic: your session is confirmed")
        return _("Payment received: your session is confirmed")
    if to == s.COMPLETED:
        return _("Your session took place")
    if to == s.NO_SHOW:
        return _("The session was recorded as missed")
    if to == s.REJECTED:
        return _("The clinic could not accept this request")
    if to == s.CANCELLED:
        if event.actor == Actor.CLIENT:
            return _("You cancelled this booking")
        if event.actor == Actor.SYSTEM:
            return _("The booking was cancelled because the payment time ran out")
        return _("The clinic cancelled this booking")
    return ""


# A booking's payment attempts, newest first; not the provider's raw payloads (JSON to decode
# for each attempt): no page shows them.
_PAYMENT_FIELDS = tuple(name for name in columns(Payment) if name != "raw")
_PAYMENTS = CompiledQuery(
    lambda booking_id: (
        Payment.objects.filter(booking_id=booking_id).order_by("-created_at", "-pk").values(*_PAYMENT_FIELDS)
    ),
    booking_id=-1,
)


def booking_payment_summary(*, booking: Booking) -> dict[str, object]:
    """What a booking's page shows about money, from one query: the attempt in progress,
    the payment that confirmed it, refunds, and a payment staff are looking into."""
    from bookings.payments import get_provider

    attempts = [instance(Payment, row) for row in _PAYMENTS(booking_id=booking.pk)]
    for attempt in attempts:
        Payment.booking.field.set_cached_value(attempt, booking)  # as booking.payments would
    state = Payment.State
    return {
        "current": next((p for p in attempts if p.status == state.PENDING and not p.provider_payment_id), None),
        "paid": next((p for p in attempts if p.confirmed_at is not None), None),
        "refunds": [p for p in attempts if p.refund_status],
        "attention": next((p for p in attempts if p.needs_attention and not p.refund_status), None),
        "test_mode": get_provider().is_test_mode(),
    }


def booking_with_session(booking_id: int, *, paid_at_clinic: bool = False) -> Booking:
    """A booking with what its pages show about the session, in one query. `paid_at_clinic`:
    also whether it was paid at the clinic's desk (`booking.paid_at_clinic`), whose money goes
    back from there, not online."""
    bookings = Booking.objects.select_related("session_type", "slot", "counsellor")
    if paid_at_clinic:
        bookings = bookings.annotate(
            paid_at_clinic=Exists(
                Payment.objects.filter(booking_id=OuterRef("pk"), provider=CLINIC_PROVIDER, confirmed_at__isnull=False)
            )
        )
    return bookings.get(pk=booking_id)


# --- Public counsellor profiles ---------------------------------------------------------


def counsellors_public() -> QuerySet[Counsellor]:
    """Active counsellors, each with the start and id of their next free slot a client may
    book, one that can hold a session type offered (None if none): one query, whatever the
    number of counsellors, with the session types'. Only public fields are loaded; nothing
    about clients or bookings."""
    fits = fits_q(shortest_by_mode(session_types_active()))
    free = slots_free().filter(fits, counsellor_id=OuterRef("pk")).order_by("start")
    return (
        Counsellor.objects.filter(is_active=True)
        .only(
            "pk",
            "display_name",
            "slug",
            "title",
            "bio",
            "approach",
            "title_hi",
            "bio_hi",
            "approach_hi",
            "languages",
            "offers_online",
            "offers_in_person",
            "sort_order",
        )
        .annotate(
            next_free_start=Subquery(free.values("start")[:1]),
            next_free_slot_id=Subquery(free.values("pk")[:1]),
        )
    )


def counsellor_by_previous_slug(slug: str) -> Counsellor | None:
    """The counsellor shown to clients whose profile had the link name `slug` before an
    administrator changed it, or None: for a link shared with the old name. Asked only once
    no counsellor has `slug` now, so the pages reached by their current name pay nothing."""
    return Counsellor.objects.filter(previous_slugs__slug=slug, is_active=True).only("pk", "slug").first()
