"""Freed slots and the waitlist."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from functools import reduce
from operator import or_
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from bookings import notifications, selectors
from bookings.after_commit import enqueue_on_commit
from bookings.errors import (
    BookingError,
)
from bookings.models import (
    ACTIVE_STATUSES,
    MODE_FLAGS,
    Booking,
    Counsellor,
    Mode,
    SessionType,
    Slot,
    Status,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistToken,
)
from bookings.services.transitions import _check_mode, email_normalise
from bookings.tokens import REPEAT_PRESS, waitlist_token_claim, waitlist_token_create

logger = logging.getLogger(__name__)


# --- Freed slots and the waitlist ---------------------------------------------------------

WAITLIST_LIVE = (WaitlistEntry.State.WAITING, WaitlistEntry.State.OFFERED)
WAITLIST_FINISHED_KEEP_DAYS = 30
# A free time offered this long ago that nobody has taken goes to the next waiting clients.
WAITLIST_OFFER_AGAIN_AFTER = timedelta(hours=6)
# At most one offer to an address in this long: the first, of the earliest time freed. A time
# it was passed over for stays owed, and the hourly sweep offers it after.
WAITLIST_QUIET = timedelta(hours=1)
# A freed slot's own task offers it within moments; only one still owed an offer this long
# after it was freed is taken to be lost and offered by the sweep. Waiting keeps the sweep
# from doing a queue's work while the queue is merely slow; the slot's lock (and its offer
# owed being cleared under it) keeps the two to one batch if they do meet.
WAITLIST_FREED_GRACE = timedelta(minutes=15)


def slots_freed(*, slot_ids: list[int]) -> None:
    """The one place that hears "these slots are free (again)": a held booking was cancelled
    or expired, moved away, or new slots were published. Call it inside the transaction
    that frees them; the waitlist is offered the slots only after that commits.

    The offer owed is written down (Slot.freed_at) as the change commits, before its task is
    queued, so that one whose task never runs (the queue unreachable, a worker killed) is made
    by the hourly sweep. Not inside the change's transaction: a cancellation or expiry holds
    its booking's row there, and writing the slot's row after it waited on a move holding the
    slot and waiting for the booking (a deadlock on PostgreSQL; the lock order is counsellor,
    slot, booking)."""
    ids = sorted(set(slot_ids))
    if ids:

        def owed() -> None:
            Slot.objects.filter(pk__in=ids).update(freed_at=timezone.now())

        # The change itself has committed; a missed offer must never turn it into an error.
        transaction.on_commit(owed, robust=True)
        enqueue_on_commit("offer_freed_slots", ids, otherwise="the hourly waitlist sweep offers these slots")


def waitlist_offer_slots(*, slot_ids: list[int]) -> int:
    """Offer each slot to the waitlist, if still owed (the sweep may have stood in for a late
    task, or the task run twice); returns how many offers were emailed."""
    if not WaitlistEntry.objects.filter(status__in=WAITLIST_LIVE, verified_at__isnull=False).exists():
        # The usual case: publishing a month of slots costs one query here. The offers
        # owed are left for the sweep to clear: nobody was waiting when they were freed.
        return 0
    # The earliest first: what a client waiting is offered (WAITLIST_QUIET) is the soonest time.
    in_order = Slot.objects.filter(pk__in=slot_ids).order_by("start", "pk").values_list("pk", flat=True)
    return sum(waitlist_offer_slot(slot_id=pk, only_if_owed=True) for pk in list(in_order))


def waitlist_offer_slot(*, slot_id: int, offered_before: datetime | None = None, only_if_owed: bool = False) -> int:
    """Email a free slot to the earliest waiting clients it suits (oldest entry first), at
    most WAITLIST_OFFERS_PER_SLOT, each at most once per slot. Returns how many were emailed.

    The link opens the wizard with the slot chosen; the first request approved gets it (the
    wizard and `booking_one_per_slot` keep it to one). The slot row is locked while offering,
    so two runs for one slot take turns, and the unique (entry, slot) offer is the backstop.
    `offered_before`: offer it again only if its last offer is older (waitlist_offer_again),
    checked under that lock, so that two sweeps at once send one batch. `only_if_owed`: only
    if its freeing has not been offered yet (Slot.freed_at, cleared under that lock by
    whichever run offers it), so that its task and the sweep send one batch between them.
    """
    from bookings.emails import absolute_url

    with transaction.atomic():
        slot = Slot.objects.select_for_update(of=("self",)).select_related("counsellor").filter(pk=slot_id).first()
        if slot is None or (only_if_owed and slot.freed_at is None):
            return 0
        owed_since = slot.freed_at  # when the slot was freed, if this run is its offer
        if owed_since is not None:
            # This run is the offer its freeing was owed, whoever it reaches (maybe nobody:
            # then there is nobody to offer it to until it is freed again).
            Slot.objects.filter(pk=slot.pk).update(freed_at=None)
        # Only a slot a client could book online right now (free, notice, horizon, not blocked).
        if not selectors.slots_free().filter(pk=slot.pk).exists():
            return 0
        if (
            offered_before is not None
            and WaitlistOffer.objects.filter(slot=slot, created_at__gte=offered_before).exists()
        ):
            return 0
        counsellor = slot.counsellor
        day = timezone.localtime(slot.start).date()
        recent = WaitlistOffer.objects.filter(
            entry__email=OuterRef("email"), created_at__gt=timezone.now() - WAITLIST_QUIET
        )
        waiting = WaitlistEntry.objects.filter(verified_at__isnull=False)
        if owed_since is not None:
            # Its offer goes to those waiting when it was freed: a place confirmed while it
            # was free already was told of the free times then, and is emailed only of later ones.
            waiting = waiting.filter(verified_at__lte=owed_since)
        candidates = (
            waiting.filter(
                status__in=WAITLIST_LIVE,
                date_from__lte=day,
                date_to__gte=day,
                mode__in=counsellor.modes,
                session_type__is_active=True,
                session_type__duration_minutes__lte=int(slot.duration.total_seconds() // 60),
            )
            .filter(Q(counsellor__isnull=True) | Q(counsellor=counsellor))
            .filter(  # held that way by the session type too
                Q(mode=Mode.ONLINE, session_type__offers_online=True)
                | Q(mode=Mode.IN_PERSON, session_type__offers_in_person=True)
            )
            .exclude(Exists(WaitlistOffer.objects.filter(entry=OuterRef("pk"), slot=slot)))
            .annotate(
                # Emailed a time moments ago (the same publishing, or a cancellation just
                # before): that email's link opens the booking form, which shows every free
                # time. Times published by the dozen sent one client one email per time.
                quiet=Exists(recent),
                # ... by an offer made before this time was freed: it is news to them, owed
                # after their hour (an offer of the same batch, or later, showed it already).
                quiet_before=Exists(recent.filter(created_at__lt=owed_since)) if owed_since else Value(False),
                has_active=Exists(Booking.objects.filter(email=OuterRef("email"), status__in=ACTIVE_STATUSES)),
                has_held=Exists(_times_held(OuterRef("email"), OuterRef("created_at"))),
            )
            .select_related("session_type")
            .order_by("created_at", "pk")
        )
        emailed: set[str] = set(WaitlistOffer.objects.filter(slot=slot).values_list("entry__email", flat=True))
        offered = 0
        quieted = False
        for entry in candidates.iterator(chunk_size=50):
            if offered >= settings.WAITLIST_OFFERS_PER_SLOT:
                break
            if entry.quiet:
                quieted = quieted or entry.quiet_before
                continue
            if entry.has_held and _booked_within(entry):
                # They have had a time on their days since they joined: their wait is over.
                WaitlistEntry.objects.filter(pk=entry.pk, status__in=WAITLIST_LIVE).update(
                    status=WaitlistEntry.State.BOOKED, updated_at=timezone.now()
                )
                continue
            if entry.has_active:
                # A request waiting for a time, or a time on other days: they could not take
                # this one (one active booking per address), but their place stays. They may
                # yet lose the race for an offered time, or have their request turned down.
                continue
            if entry.email in emailed:
                continue  # one email per address per slot, whatever their number of entries
            # Still live? The place may have ended since it was read (waitlist_end_unserved,
            # which holds its row until it commits): then it is passed by.
            if not WaitlistEntry.objects.filter(pk=entry.pk, status__in=WAITLIST_LIVE).update(
                status=WaitlistEntry.State.OFFERED, updated_at=timezone.now()
            ):
                continue
            try:
                with transaction.atomic():
                    offer = WaitlistOffer.objects.create(entry=entry, slot=slot)
            except IntegrityError:
                continue
            # The way of meeting too: the wizard chooses it for them, as they chose it here.
            # In the place's language too: the booking it makes writes in the one it was made in.
            query = urlencode(
                {"slot": slot.pk, "type": entry.session_type.slug, "mode": entry.mode, "lang": entry.language}
            )
            offer.email = notifications.waitlist_offer(
                entry=entry,
                slot=slot,
                book_url=absolute_url(f"{reverse('bookings:wizard')}?{query}"),
                leave_url=_waitlist_leave_url(entry),
            )
            offer.save(update_fields=["email"])
            emailed.add(entry.email)
            offered += 1
        if quieted and offered < settings.WAITLIST_OFFERS_PER_SLOT:
            # Passed over for now, not for good: still owed an offer since it was freed, which
            # the hourly sweep makes once their hour is over.
            Slot.objects.filter(pk=slot.pk).update(freed_at=owed_since)
    if offered:
        logger.info("slot %s offered to %s waiting client(s)", slot_id, offered)
    return offered


# Bookings holding a time now.
_HOLDING_A_TIME = (Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED)
# Bookings that were given a time (held, or used since).
_GIVEN_A_TIME = (Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW)


def _times_held(email: Any, since: Any) -> QuerySet[Booking]:
    """Bookings made with `email` after `since` that were given a time."""
    return Booking.objects.filter(email=email, created_at__gt=since, status__in=_GIVEN_A_TIME, slot__isnull=False)


def _booked_within(entry: WaitlistEntry) -> bool:
    """Whether the client has been given a time on the place's days since they joined."""
    starts = _times_held(entry.email, entry.created_at).values_list("slot__start", flat=True)
    return any(entry.date_from <= timezone.localdate(start) <= entry.date_to for start in starts)


def waitlist_offer_again(*, now: datetime | None = None) -> int:
    """The sweep's offers, of free times no request waits for, each to the next waiting
    clients it suits, WAITLIST_OFFERS_PER_SLOT at a time and never twice to one person, as
    first:

    - times offered WAITLIST_OFFER_AGAIN_AFTER ago or more and still free (those offered them
      booked elsewhere, or not at all). Without it, the clients after the first few never
      heard of a time nobody took.
    - times freed WAITLIST_FREED_GRACE ago or more whose offer is still owed (Slot.freed_at):
      the task that should have offered them was lost (the queue unreachable, a worker
      killed). Only those that suit a place that was waiting when they were freed, as the
      task would have found it: a time free already when someone joins is never emailed to
      them (the page confirming their place says such times exist). That is decided in the
      query (_waited_for), so a calendar of free times costs nothing here; the offers owed
      that suit nobody are then cleared, as the task would have.

    Returns how many were emailed."""
    now = now or timezone.now()
    owed_by = now - WAITLIST_FREED_GRACE
    cutoff = now - WAITLIST_OFFER_AGAIN_AFTER
    # Asked for by a request waiting for review (one of those offered it, most likely).
    asked_for = Exists(Booking.objects.filter(preferred_slot=OuterRef("pk"), status=Status.PENDING))
    offered = 0
    if WaitlistEntry.objects.filter(status__in=WAITLIST_LIVE, verified_at__isnull=False).exists():
        last_offered = (
            WaitlistOffer.objects.filter(slot=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
        )
        due = (
            selectors.slots_free()
            .alias(last_offered=Subquery(last_offered), day=TruncDate("start", tzinfo=timezone.get_current_timezone()))
            .filter(Q(last_offered__lt=cutoff) | (Q(freed_at__lt=owed_by) & _waited_for()))
            .exclude(asked_for)
            .order_by("start")
            .values_list("pk", "freed_at")
        )
        due = list(due)
    else:
        due = []
    # Owed, and not offered now: they suit nobody who was waiting when they were freed, or
    # are no longer free (freed again, they are owed again). One a request waits for stays
    # owed, to be offered if the request goes elsewhere. Cleared before the offers below, which
    # may keep one owed (a client passed over in their quiet hour).
    Slot.objects.filter(freed_at__lt=owed_by).exclude(asked_for).exclude(pk__in=[pk for pk, _ in due]).update(
        freed_at=None
    )
    for pk, freed_at in due:
        if freed_at is not None and freed_at < owed_by:
            offered += waitlist_offer_slot(slot_id=pk, only_if_owed=True)
        else:
            offered += waitlist_offer_slot(slot_id=pk, offered_before=cutoff)
    return offered


def _waited_for() -> Q:
    """Slots (annotated with their `day` in the clinic's zone) that suit a live place confirmed
    by the time they were freed: its days, its counsellor (if it names one), its session type
    (offered, long enough, held its way) and its way of meeting (offered by the slot's
    counsellor too), its client holding no booking meanwhile. waitlist_offer_slot's rules, as
    far as a query says them (it applies them all). One query, for the session types' lengths:
    as in selectors.fits_q, a slot's length is compared with each length in turn."""
    places = (
        WaitlistEntry.objects.filter(
            status__in=WAITLIST_LIVE,
            verified_at__lte=OuterRef("freed_at"),
            date_from__lte=OuterRef("day"),
            date_to__gte=OuterRef("day"),
            session_type__is_active=True,
        )
        .filter(Q(counsellor__isnull=True) | Q(counsellor=OuterRef("counsellor")))
        .exclude(Exists(Booking.objects.filter(email=OuterRef("email"), status__in=ACTIVE_STATUSES)))
    )
    lengths = (
        SessionType.objects.filter(is_active=True).order_by().values_list("duration_minutes", flat=True).distinct()
    )
    waited = [
        Q(**{f"counsellor__{offers}": True})
        & Q(end__gte=ExpressionWrapper(F("start") + Value(timedelta(minutes=minutes)), output_field=DateTimeField()))
        & Exists(places.filter(mode=mode, session_type__duration_minutes=minutes, **{f"session_type__{offers}": True}))
        for minutes in sorted(lengths)
        for mode, offers in MODE_FLAGS.items()
    ]
    return reduce(or_, waited) if waited else Q(pk__in=[])


def _waitlist_leave_url(entry: WaitlistEntry) -> str:
    from bookings.emails import absolute_url

    end = timezone.make_aware(datetime.combine(entry.date_to + timedelta(days=1), time.min))
    raw = waitlist_token_create(
        entry=entry, purpose=WaitlistToken.Purpose.LEAVE, lifetime=max(end - timezone.now(), timedelta(days=1))
    )
    return absolute_url(reverse("bookings:waitlist_leave", args=[raw]))


def waitlist_join(
    *,
    client_name: str,
    email: str,
    session_type: SessionType,
    mode: str,
    counsellor: Counsellor | None,
    date_from: date,
    date_to: date,
    language: str = "en",
) -> WaitlistEntry:
    """Put a client on the waitlist, unconfirmed, and email them a link to confirm the
    address. Only confirmed entries are ever offered a time."""
    today = timezone.localdate()
    if date_from < today:
        raise BookingError(_("Choose a first day that is today or later."), field="date_from")
    if date_to < date_from:
        raise BookingError(_("The last day must be on or after the first day."), field="date_to")
    # Offers are only of times a client may book online (slots_free), from the minimum notice
    # on: a range that ends before then could never be offered anything.
    earliest = timezone.localtime(selectors.client_window()[0]).date()
    if date_to < earliest:
        hours = settings.BOOKING_MIN_NOTICE_HOURS
        raise BookingError(
            ngettext(
                "Sessions are booked at least %(hours)s hour ahead, so the first day a time can be offered "
                "is %(day)s. Choose a last day on or after it.",
                "Sessions are booked at least %(hours)s hours ahead, so the first day a time can be offered "
                "is %(day)s. Choose a last day on or after it.",
                hours,
            )
            % {"hours": hours, "day": date_format(earliest, "l j F Y")},
            field="date_to",
        )
    if date_to > today + timedelta(days=settings.BOOKING_HORIZON_DAYS):
        raise BookingError(
            gettext("Choose days within the next %(days)s days.") % {"days": settings.BOOKING_HORIZON_DAYS},
            field="date_to",
        )
    _check_mode(session_type=session_type, mode=mode, counsellor=counsellor)
    choices = {
        "email": email_normalise(email),
        "session_type": session_type,
        "mode": mode,
        "counsellor": counsellor,
        "date_from": date_from,
        "date_to": date_to,
    }
    # The button pressed twice (a double click, a form sent again): the first press's
    # email is on its way, and a second place would be offered every time twice.
    pressed = WaitlistEntry.objects.filter(
        **choices, verified_at__isnull=True, created_at__gt=timezone.now() - REPEAT_PRESS
    ).first()
    if pressed is not None:
        return pressed
    with transaction.atomic():
        entry = WaitlistEntry.objects.create(client_name=client_name.strip(), language=language, **choices)
        raw = waitlist_token_create(
            entry=entry,
            purpose=WaitlistToken.Purpose.VERIFY,
            lifetime=timedelta(hours=settings.VERIFICATION_LINK_HOURS),
        )
        notifications.waitlist_verify(entry=entry, raw_token=raw)
    return entry


def waitlist_verify(*, token: str) -> WaitlistEntry:
    """The client confirmed their address: the entry starts waiting, in the order it was made.

    Refused (BookingError), the place closed and the link used, when it could never be offered
    a time: the address has a booking holding a time (one active booking per address; its link
    is emailed again, to move it instead), or the days chosen have come too close to be booked."""
    refusal = ""
    with transaction.atomic():
        link = waitlist_token_claim(raw=token, purpose=WaitlistToken.Purpose.VERIFY)
        entry = (
            WaitlistEntry.objects.select_for_update(of=("self",))
            .select_related("session_type", "counsellor")
            .get(pk=link.entry_id)
        )
        if entry.status not in WAITLIST_LIVE:
            raise BookingError(_("This waitlist request has ended. You are welcome to join again."))
        if entry.verified_at is None:
            refusal = _verify_refusal(entry)
            if refusal:
                entry.status = WaitlistEntry.State.CLOSED
                entry.save(update_fields=["status", "updated_at"])
            else:
                entry.verified_at = timezone.now()
                entry.save(update_fields=["verified_at", "updated_at"])
                notifications.waitlist_joined(entry=entry, leave_url=_waitlist_leave_url(entry))
    if refusal:
        raise BookingError(refusal)
    return entry


def _verify_refusal(entry: WaitlistEntry) -> str:
    """Why a place being confirmed could never be offered a time ("" if it could)."""
    # A request still waiting for a time may yet be turned down: the place waits with it (the
    # offers pass it by meanwhile). A time held already is moved from the booking's page.
    active = Booking.objects.filter(email=entry.email, status__in=_HOLDING_A_TIME).order_by("created_at").first()
    if active is not None:
        notifications.already_active(booking=active)
        return gettext(
            "This email address already has a booking, %(ack_id)s, so the waitlist could not offer you a time "
            "while it goes ahead. We have emailed you the link to its page, where you can move it to another "
            "time. You have not been added to the waitlist."
        ) % {"ack_id": active.ack_id}
    earliest = timezone.localtime(selectors.client_window()[0]).date()
    if entry.date_to < earliest:
        hours = settings.BOOKING_MIN_NOTICE_HOURS
        return ngettext(
            "Your last day, %(day)s, is now too soon: sessions are booked at least %(hours)s hour ahead. "
            "You have not been added to the waitlist; you are welcome to join it again with later days.",
            "Your last day, %(day)s, is now too soon: sessions are booked at least %(hours)s hours ahead. "
            "You have not been added to the waitlist; you are welcome to join it again with later days.",
            hours,
        ) % {"day": date_format(entry.date_to, "l j F Y"), "hours": hours}
    return ""


def waitlist_leave(*, token: str) -> WaitlistEntry:
    """The client left the waitlist from an emailed link (a POST): every place of theirs, as
    the page then says that no more free times are emailed. Leaving twice is harmless."""
    with transaction.atomic():
        link = waitlist_token_claim(raw=token, purpose=WaitlistToken.Purpose.LEAVE)
        entry = WaitlistEntry.objects.get(pk=link.entry_id)
        WaitlistEntry.objects.filter(email=entry.email, status__in=WAITLIST_LIVE).update(
            status=WaitlistEntry.State.LEFT, updated_at=timezone.now()
        )
        entry.refresh_from_db()
        return entry


def _unserved_reason(entry: WaitlistEntry) -> str | None:
    """Why `entry` can no longer be offered a time, or None. The session type comes first: it
    is what the client asked for, whoever they asked to see."""
    kind, counsellor = entry.session_type, entry.counsellor
    if not kind.is_active:
        return "type"
    if entry.mode not in kind.modes:
        return f"type_{entry.mode}"
    if counsellor is not None:
        if not counsellor.is_active:
            return "counsellor"
        if entry.mode not in counsellor.modes:
            return f"counsellor_{entry.mode}"
    return None


def waitlist_end_unserved(*, session_type: SessionType | None = None, counsellor: Counsellor | None = None) -> int:
    """End the live waitlist places the clinic can no longer serve, and tell each confirmed
    client why: their session type is no longer offered (or no longer held their way), or
    the counsellor they asked for is hidden from clients (or no longer meets their way).
    Otherwise they would be sent no times and learn nothing until their last day passed.

    Call it in the transaction that changed `session_type` or `counsellor` (a session type,
    a counsellor's profile or ways of meeting, an account deactivated), for the places
    waiting for that one; the emails leave after it commits. The daily sweep
    (waitlist_expire) calls it for all. Returns how many clients were told (places never
    confirmed end silently). Live places are few: one small query when none end."""
    from bookings.emails import absolute_url

    unserved = Q(session_type__is_active=False) | Q(counsellor__is_active=False)
    for mode, offers in MODE_FLAGS.items():
        unserved |= Q(mode=mode) & (Q(**{f"session_type__{offers}": False}) | Q(**{f"counsellor__{offers}": False}))
    entries = WaitlistEntry.objects.filter(unserved, status__in=WAITLIST_LIVE)
    if session_type is not None:
        entries = entries.filter(session_type=session_type)
    if counsellor is not None:
        entries = entries.filter(counsellor=counsellor)
    # Locked in one order, as offers lock them one by one (waitlist_offer_slot).
    entries = entries.select_for_update(of=("self",)).select_related("session_type", "counsellor").order_by("pk")
    told = 0
    with transaction.atomic():
        for entry in entries:
            reason = _unserved_reason(entry)
            if reason is None:  # pragma: no cover - the query and the rule say the same
                continue
            entry.status = WaitlistEntry.State.CLOSED
            entry.save(update_fields=["status", "updated_at"])
            if entry.verified_at is not None:  # an unconfirmed address is never written to again
                book_url = absolute_url(reverse("bookings:wizard"))
                notifications.waitlist_ended(entry=entry, reason=reason, book_url=book_url)
                told += 1
    if told:
        logger.info("%s waitlist place(s) ended: no longer offered", told)
    return told


def waitlist_expire(*, now: datetime | None = None) -> dict[str, int]:
    """The waitlist sweep, hourly, safe to run often and concurrently (each change is one
    guarded UPDATE or DELETE, or made on locked rows): entries whose last day has passed
    expire; those the clinic can no longer serve end, their clients told
    (waitlist_end_unserved, for changes made outside the portal); free times nobody took are
    offered to the next waiting clients, and freed times whose offer was lost (its task never
    ran) are offered as it would have (waitlist_offer_again); unconfirmed entries older than
    DRAFT_RETENTION_HOURS and entries finished WAITLIST_FINISHED_KEEP_DAYS ago are deleted
    with their links, since they hold a name and an email address."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    expired = WaitlistEntry.objects.filter(status__in=WAITLIST_LIVE, date_to__lt=today).update(
        status=WaitlistEntry.State.EXPIRED, updated_at=now
    )
    ended = waitlist_end_unserved()  # any a change outside the portal left waiting
    offered_again = waitlist_offer_again(now=now)
    stale = Q(verified_at__isnull=True, created_at__lt=now - timedelta(hours=settings.DRAFT_RETENTION_HOURS)) | (
        ~Q(status__in=WAITLIST_LIVE) & Q(updated_at__lt=now - timedelta(days=WAITLIST_FINISHED_KEEP_DAYS))
    )
    _count, per_model = WaitlistEntry.objects.filter(stale).delete()
    return {
        "expired": expired,
        "ended": ended,
        "offered_again": offered_again,
        "deleted": per_model.get(WaitlistEntry._meta.label, 0),
    }
