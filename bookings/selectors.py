"""Reads that several views share. Each returns a queryset or a small value, in few queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Value,
    prefetch_related_objects,
)
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from bookings.errors import TokenInvalid
from bookings.models import (
    SLOT_HOLDING_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    Counsellor,
    LinkToken,
    Mode,
    SessionType,
    Slot,
    Status,
)
from bookings.tokens import token_get

# What makes a slot free whatever the moment and the filters: nobody holds it, its counsellor
# takes bookings, and no blocked period overlaps it (slots kept only because past bookings
# refer to them are hidden inside blocked periods). Filters, not annotations: an annotated
# EXISTS would also be computed for every row returned. Built once, at import: resolving the
# two subqueries into the outer query was about half of building slots_free's queryset, and
# came out the same every time. Each call filters a copy (filter() never changes this
# queryset); this one is never evaluated, so it holds no rows. values() drops the
# select_related, so it costs the callers that read rows nothing.
_SLOTS_FREE = (
    Slot.objects.filter(
        ~Exists(Booking.objects.filter(slot=OuterRef("pk"), status__in=SLOT_HOLDING_STATUSES)),
        ~Exists(
            BlockedPeriod.objects.filter(
                counsellor_id=OuterRef("counsellor_id"), start__lt=OuterRef("end"), end__gt=OuterRef("start")
            )
        ),
        counsellor__is_active=True,
    )
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
    """Published slots nobody holds, in one query (NOT EXISTS on the holding bookings), by
    start and then the counsellors' order, with their counsellor.

    `session_type`: only slots long enough for it, of counsellors offering one of its modes;
    `mode`: only slots of counsellors offering it. `for_clients` applies the minimum notice
    and booking horizon.
    """
    now = timezone.now()
    if for_clients:
        earliest = now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS)
        latest = now + timedelta(days=settings.BOOKING_HORIZON_DAYS)
        start = max(start, earliest) if start else earliest
        end = min(end, latest) if end else latest
    else:
        start = start or now
    # One filter() call: each call copies the query and each condition is built once.
    where: dict[str, Any] = {"start__gte": start}
    if end is not None:
        where["start__lt"] = end
    if counsellor is not None:
        where["counsellor"] = counsellor
    if session_type is not None:
        where["end__gte"] = _plus_minutes("start", session_type.duration_minutes)
    if mode == Mode.ONLINE or (session_type is not None and not session_type.offers_in_person):
        where["counsellor__offers_online"] = True
    if mode == Mode.IN_PERSON or (session_type is not None and not session_type.offers_online):
        where["counsellor__offers_in_person"] = True
    return _SLOTS_FREE.filter(**where)


def slot_modes(
    *, length: timedelta, offers_online: bool, offers_in_person: bool, session_type: SessionType
) -> list[str]:
    """The modes in which a slot can hold a `session_type` session; empty if it cannot hold one.
    The slot is given by its `length` and the modes its counsellor offers (`offers_online`,
    `offers_in_person`): plain values, so a caller reading rows need not build a Slot and a
    Counsellor for each.

    The same rules as `slots_free`'s session-type filter and the services' checks: long enough,
    and a mode both the session type and the slot's counsellor offer.
    """
    if length < session_type.duration:
        return []
    offered = {Mode.ONLINE: offers_online, Mode.IN_PERSON: offers_in_person}
    return [mode for mode in session_type.modes if offered[mode]]


def session_types_bookable(*, counsellor_slug: str = "") -> QuerySet[SessionType]:
    """The session types clients can book.

    With `counsellor_slug`, each row also carries `counsellor_pk`: the id of that active
    counsellor, or None if there is none. This checks a counsellor in the same query, for the
    chatbot API's query budget.
    """
    qs = SessionType.objects.filter(is_active=True)
    if counsellor_slug:
        found = Counsellor.objects.filter(slug=counsellor_slug, is_active=True).values("pk")[:1]
        qs = qs.annotate(counsellor_pk=Subquery(found))
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


@dataclass(frozen=True, slots=True)
class FreeSlot:
    """A free slot as the picker shows it. Plain rows, not model instances: a busy day has
    hundreds of free slots, and building a Slot and a Counsellor for each costs more than
    the query."""

    pk: int
    start: datetime
    counsellor_name: str


def booking_by_ack_id(ack_id: str) -> Booking | None:
    """For the status lookup: only what it shows (status) is read. No ORDER BY: ack_id is
    unique, and first()'s default newest-first ordering only makes PostgreSQL plan longer."""
    return next(iter(Booking.objects.filter(ack_id=ack_id).order_by().only("pk", "ack_id", "status")), None)


def booking_for_page(*, token: str) -> Booking:
    """The booking behind a private booking-page link, or TokenInvalid.

    The link stops working BOOKING_LINK_DAYS_AFTER_SESSION days after the session ends, so
    an old email found later does not open a record of someone's counselling.
    """
    # The booking and its session come with the token, in one query. The preferred time is
    # shown only while no time is reserved, so it is read only then: each further join costs
    # PostgreSQL more planning (about 0.4 ms each here) than the query takes to run.
    link = token_get(
        raw=token,
        purpose=LinkToken.Purpose.MANAGE,
        related=("booking__session_type", "booking__slot", "booking__counsellor"),
    )
    booking = link.booking
    prefetch_related_objects([booking], Prefetch("events", queryset=_TIMELINE_EVENTS))
    if booking.slot_id is None and booking.preferred_slot_id is not None:
        booking.preferred_slot = Slot.objects.select_related("counsellor").get(pk=booking.preferred_slot_id)
    if booking.slot is not None:
        closes = booking.slot.end + timedelta(days=settings.BOOKING_LINK_DAYS_AFTER_SESSION)
        if closes <= timezone.now():
            raise TokenInvalid("expired", link=link)
    return booking


# What booking_timeline and the reschedule counts read of an event: the kind of actor
# (client, staff, system), not which staff user it was.
_TIMELINE_EVENTS = BookingEvent.objects.only(
    "booking_id", "action", "actor", "from_status", "to_status", "reason", "created_at"
)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str
    detail: str = ""


def booking_timeline(booking: Booking) -> list[TimelineEntry]:
    """The booking's events in words a client understands. Staff-only actions are left out.

    Uses the prefetched `events`; only a rejection's reason is shown, as the rejection
    email promises, because other reasons are written for colleagues.
    """
    entries: list[TimelineEntry] = []
    for event in booking.events.all():
        text, detail = _timeline_text(event), ""
        if not text:
            continue
        if event.to_status == Status.REJECTED and event.action == "transition":
            detail = event.reason
        elif event.action == "rescheduled":
            detail = event.reason  # "From <time> to <time>", written by the service
        entries.append(TimelineEntry(at=event.created_at, text=text, detail=detail))
    return entries


def _timeline_text(event: BookingEvent) -> str:
    s = Status
    if event.action == "created":
        if event.actor == Actor.STAFF:
            return _("The clinic made this booking for you")
        return _("You sent your booking request")
    if event.action == "rescheduled":
        return (
            _("You moved your session to a new time")
            if event.actor == Actor.CLIENT
            else _("The clinic moved your session to a new time")
        )
    if event.action != "transition":
        return {"slot_moved": _("Your session time was changed"), "meeting_link": ""}.get(event.action, "")
    frm, to = event.from_status, event.to_status
    if to == s.PENDING:
        return _("You confirmed your email address; your request reached the clinic")
    if to == s.APPROVED and frm == s.PAYMENT_PENDING:
        return _("The payment did not go through; you can try again")
    if to == s.APPROVED:
        return _("A counsellor reserved a time for you")
    if to == s.PAYMENT_PENDING:
        return _("You started the payment")
    if to == s.CONFIRMED:
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


def booking_payment_summary(*, booking: Booking) -> dict[str, object]:
    """What a booking's page shows about money, from one query: the attempt in progress,
    the payment that confirmed it, refunds, and a payment staff are looking into."""
    from bookings.models import Payment
    from bookings.payments import get_provider

    # Not the provider's raw payloads (JSON to decode for each attempt): no page shows them.
    attempts = list(booking.payments.defer("raw").order_by("-created_at", "-pk"))
    state = Payment.State
    return {
        "current": next((p for p in attempts if p.status == state.PENDING and not p.provider_payment_id), None),
        "paid": next((p for p in attempts if p.confirmed_at is not None), None),
        "refunds": [p for p in attempts if p.refund_status],
        "attention": next((p for p in attempts if p.needs_attention and not p.refund_status), None),
        "test_mode": get_provider().is_test_mode(),
    }


def booking_with_session(booking_id: int) -> Booking:
    """A booking with what its pages show about the session, in one query."""
    return Booking.objects.select_related("session_type", "slot", "counsellor").get(pk=booking_id)


# --- Public counsellor profiles ---------------------------------------------------------


def counsellors_public() -> QuerySet[Counsellor]:
    """Active counsellors, each with the start and id of their next free slot a client may
    book (None if none): one query, whatever the number of counsellors. Only public fields
    are loaded; nothing about clients or bookings."""
    free = slots_free().filter(counsellor_id=OuterRef("pk")).order_by("start")
    return (
        Counsellor.objects.filter(is_active=True)
        .only(
            "pk",
            "display_name",
            "slug",
            "title",
            "bio",
            "approach",
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
