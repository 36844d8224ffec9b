"""Privacy: anonymisation, retention, and erasure and export on the client's request."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connections, router, transaction
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_tasks_db.models import DBTaskResult

from bookings import notifications
from bookings.errors import (
    BookingError,
)
from bookings.models import (
    ACTIVE_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    BookingView,
    ConsentGiven,
    LinkToken,
    OutboundEmail,
    Payment,
    RefundHeardEarly,
    Status,
    WaitlistEntry,
)
from bookings.ratelimit import counters_prune
from bookings.selectors import event_reason_for_client
from bookings.services.payments import PAYMENT_HELD
from bookings.services.transitions import booking_record
from bookings.tokens import booking_lock_for_link, token_claim, token_create, token_just_sent

logger = logging.getLogger(__name__)


# --- Privacy: anonymisation and retention -------------------------------------------------

ANONYMISED_NAME = "Anonymised client"

# Money not yet settled with the client (a refund under way or failed, money held, an alert
# staff have not answered): their name and address are how staff reach them about it, so
# neither retention nor erasure removes them until it is settled.
MONEY_OWED = Exists(
    Payment.objects.filter(booking=OuterRef("pk")).filter(
        ~Q(needs_attention="")
        | Q(refund_status__in=(Payment.RefundState.PENDING, Payment.RefundState.FAILED))
        | PAYMENT_HELD
    )
)


def booking_anonymise(*, booking_id: int, reason: str) -> bool:
    """Clear a booking's personal data, keeping the audit skeleton and the amounts.

    Kept: acknowledgement ID, status, session type, slot, amounts, payment references and
    the events' from/to/actor/when (the accounts need them). Cleared: name, email, phone, the
    client's own words, meeting link, outgoing emails' text (those not sent yet are given up),
    payment payloads, link tokens.
    Refuses (returns False) for active bookings: cancel them first.
    """
    from bookings.models import OutboundEmail, Payment

    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.anonymised_at is not None:
            return True
        if booking.status in ACTIVE_STATUSES:
            return False
        Booking.objects.filter(pk=booking.pk).update(
            client_name=ANONYMISED_NAME,
            email=f"anonymised-{booking.pk}@invalid",
            phone="",
            concerns="",
            preferred_times="",
            meeting_url="",
            submission_key=None,
            anonymised_at=timezone.now(),
        )
        # An email still being retried (a cancellation's, say, while the mail server is down)
        # is given up: emptied, it would go out blank to an address that is no one's.
        OutboundEmail.objects.filter(booking=booking, status=OutboundEmail.State.PENDING).update(
            status=OutboundEmail.State.FAILED, last_error="Erased before it was sent"
        )
        OutboundEmail.objects.filter(booking=booking).update(
            to=f"anonymised-{booking.pk}@invalid", subject="(removed)", body_text="", body_html="", ics=""
        )
        _initials_forgotten(booking)
        # The provider's payloads go; the amounts and references stay (the accounts need them),
        # the earlier refunds' among them: by them, news of one arriving again is known as old
        # news (services.payments._earlier_refunds), not taken for the refund still on its way.
        for payment_id, raw in Payment.objects.filter(booking=booking).values_list("pk", "raw"):
            kept = {key: entry for key, entry in (raw or {}).items() if key.split("#")[0] == "refund_earlier"}
            Payment.objects.filter(pk=payment_id).update(raw=kept)
        # Revoked, not deleted: a link opened later says the details were erased, rather than
        # that it was mistyped. (A token is the hash of a random secret: nothing personal.)
        LinkToken.objects.filter(booking=booking, revoked_at__isnull=True).update(revoked_at=timezone.now())
        BookingEvent.objects.filter(booking=booking).update(reason="")
        booking_record(booking=booking, action="anonymised", actor=Actor.SYSTEM, reason=reason)
    logger.info("booking %s anonymised", booking_id)
    return True


def _initials_forgotten(booking: Booking) -> None:
    """The counsellors' daily summaries (an email about a day, not a booking) name each session
    by its ID and the client's initials (notifications.daily_summary): their copies keep the ID."""
    ack = re.escape(booking.ack_id)
    for email in OutboundEmail.objects.filter(kind="daily_summary", body_text__contains=booking.ack_id):
        email.body_text = re.sub(rf"({ack}  )\S+", r"\1--", email.body_text)
        email.body_html = re.sub(rf"(>{ack}</td><td[^>]*>)[^<]*", r"\1--", email.body_html)
        email.save(update_fields=["body_text", "body_html"])


def retention_apply(*, now: datetime | None = None) -> dict[str, int]:
    """The retention policy, safe to run from cron concurrently with the app:
    finished bookings anonymised after RETENTION_MONTHS; emails deleted 30 days after they
    were sent, or after they were given up on (their links have long expired by then, and an
    email about no booking, such as "your links", would otherwise stay for ever); expired
    sessions deleted; the staff view log kept for RETENTION_MONTHS; rate-limit counters
    deleted a day after their window; expired rows of the database cache deleted; the
    reasons of counsellors' leave that ended RETENTION_MONTHS ago cleared."""
    from bookings.models import OutboundEmail

    now = now or timezone.now()
    cutoff = now - timedelta(days=30 * settings.RETENTION_MONTHS)
    finished = Booking.objects.filter(
        status__in=(Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED, Status.REJECTED),
        anonymised_at__isnull=True,
        updated_at__lt=cutoff,
    )
    owed = finished.filter(MONEY_OWED)
    anonymised = sum(
        booking_anonymise(booking_id=pk, reason="Retention period ended")
        for pk in list(finished.exclude(pk__in=owed.values("pk")).values_list("pk", flat=True))
    )
    money_owed = owed.count()
    # Kept for the money, but what the client wrote is no help in settling it: it goes on time.
    words_cleared = owed.exclude(concerns="", preferred_times="").update(concerns="", preferred_times="")
    if money_owed:
        logger.warning("%s finished booking(s) kept for the retention period: money still to settle", money_owed)
    # Active bookings nobody has touched for as long (a request never answered, a session
    # never recorded as held or missed) are never anonymised: that takes a decision staff
    # must make (it may email the client, or refund). Counted, so that the cron's line says so.
    untouched = Booking.objects.filter(status__in=ACTIVE_STATUSES, updated_at__lt=cutoff).count()
    if untouched:
        logger.warning("%s active booking(s) untouched for the retention period: settle them", untouched)
    month_ago = now - timedelta(days=30)
    emails, _ = OutboundEmail.objects.filter(
        Q(status=OutboundEmail.State.SENT, sent_at__lt=month_ago)
        | Q(status=OutboundEmail.State.FAILED, created_at__lt=month_ago)
    ).delete()
    # Expired sessions: Django never deletes them itself, and an abandoned booking wizard's
    # session holds what the client typed (name, email, phone, their words).
    sessions, _ = Session.objects.filter(expire_date__lt=now).delete()
    # The staff view log (who opened whose booking): an access record, kept as long as the
    # bookings themselves are.
    views, _ = BookingView.objects.filter(viewed_at__lt=cutoff).delete()
    # Rate-limit counters of windows long ended: keyed by a hash of an address or an IP.
    counters = counters_prune()
    # The task queue's finished rows: a failed task's row keeps its traceback, in which the
    # database's error may quote a client's row (the logs have it redacted; this copy is not).
    tasks, _ = DBTaskResult.objects.finished().filter(finished_at__lt=month_ago).delete()
    # News of refunds of payments never heard of (services.payments: RefundHeardEarly): the
    # provider repeats a capture's news for a day at most, so a month on it will not come.
    # (WebhookEvent is kept: it is what refuses a signed event replayed later.)
    refunds, _ = RefundHeardEarly.objects.filter(received_at__lt=month_ago).delete()
    cache_entries = _cache_expired_delete(now=now)
    # A counsellor's leave, past: its reason is staff's own words about themselves ("surgery",
    # "maternity leave"), of no use once the leave is long over. The period itself stays, so
    # that the calendar still shows those old slots as blocked.
    leave_reasons = BlockedPeriod.objects.filter(end__lt=cutoff).exclude(reason="").update(reason="")
    return {
        "anonymised": anonymised,
        "active_untouched": untouched,
        "money_owed": money_owed,
        "words_cleared": words_cleared,
        "emails_deleted": emails,
        "sessions_deleted": sessions,
        "views_deleted": views,
        "rate_counters_deleted": counters,
        "task_results_deleted": tasks,
        "refund_news_deleted": refunds,
        "cache_entries_deleted": cache_entries,
        "leave_reasons_cleared": leave_reasons,
    }


def _cache_expired_delete(*, now: datetime) -> int:
    """Expired rows of the database cache (without Redis): staff sign-in's and password
    reset's rate limits (allauth's) are kept there, keyed by an unsalted hash of the address
    typed, which anyone holding a list of addresses can match. Django deletes expired rows only
    once the table outgrows MAX_ENTRIES; this deletes them the way its own cull does."""
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache

    deleted = 0
    for alias in settings.CACHES:
        cache = caches[alias]
        if not isinstance(cache, DatabaseCache):
            continue
        connection = connections[router.db_for_write(cache.cache_model_class)]
        table, expires = connection.ops.quote_name(cache._table), connection.ops.quote_name("expires")
        moment = now.replace(microsecond=0) if settings.USE_TZ else timezone.make_naive(now).replace(microsecond=0)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {expires} < %s",  # noqa: S608 (the names are quoted settings)
                [connection.ops.adapt_datetimefield_value(moment)],
            )
            deleted += cursor.rowcount
    return deleted


# --- Privacy: erasure and export on the client's request ----------------------------------

PRIVACY_LINK_HOURS = 24


def privacy_request(*, booking: Booking, purpose: str) -> None:
    """Email the booking's address a link that confirms erasure (single use) or downloads
    the client's data (for PRIVACY_LINK_HOURS). Only the address's owner can act on it."""
    if purpose not in (LinkToken.Purpose.ERASE, LinkToken.Purpose.EXPORT):
        raise ValueError(f"not a privacy purpose: {purpose}")
    with transaction.atomic():
        booking_lock_for_link(booking)
        if token_just_sent(booking=booking, purpose=purpose):
            return
        # An older link of the same kind stops working: only the newest email counts.
        LinkToken.objects.filter(booking=booking, purpose=purpose, used_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        raw = token_create(booking=booking, purpose=purpose, lifetime=timedelta(hours=PRIVACY_LINK_HOURS))
        notifications.privacy_link(booking=booking, purpose=purpose, raw_token=raw)
    logger.info("booking %s: %s link sent", booking.pk, purpose)


class ErasureRefused(BookingError):
    code = "erasure_refused"
    default_message = _(
        "You have a booking that is still active. Cancel it first from its booking page (or ask "
        "the clinic to), then use this link again: it stays valid until it expires."
    )


class MoneyStillOwed(ErasureRefused):
    code = "erasure_refused_money"
    default_message = _(
        "Money is still to be settled between you and the clinic: a refund on its way to you, or a "
        "payment the clinic is looking into. We keep your name and email address until it is, so "
        "that we can reach you about it. This link keeps working until it expires; after that, ask "
        "for a new one from your booking page."
    )


def bookings_owed_money(email: str) -> list[Booking]:
    """The address's bookings with money still to settle (MONEY_OWED), which erasure waits for."""
    return list(Booking.objects.filter(MONEY_OWED, email=email, anonymised_at__isnull=True).order_by("created_at"))


def privacy_erase(*, token: str) -> int:
    """The client confirmed erasure (a POST from the emailed link): anonymise every booking
    made with that address. Returns how many. Refused while any of them is active
    (ErasureRefused) or has money still to settle (MoneyStillOwed), and then the link is not
    used up.

    What is kept for paid sessions, because the accounts must keep it: see booking_anonymise
    (acknowledgement ID, date, session type, amount, payment and refund references).
    """
    with transaction.atomic():
        link = token_claim(raw=token, purpose=LinkToken.Purpose.ERASE)
        email = link.booking.email
        bookings = Booking.objects.select_for_update().filter(email=email, anonymised_at__isnull=True)
        ids = list(bookings.values_list("pk", flat=True))
        if Booking.objects.filter(pk__in=ids, status__in=ACTIVE_STATUSES).exists():
            raise ErasureRefused()
        if Booking.objects.filter(MONEY_OWED, pk__in=ids).exists():
            raise MoneyStillOwed()
        for booking_id in ids:
            booking_anonymise(booking_id=booking_id, reason="Erased at the client's request")
        # Waitlist entries hold the same personal data and no accounts need them.
        WaitlistEntry.objects.filter(email=email).delete()
        # As do the outbox's copies of emails about no booking (the waitlist's, "your
        # booking links"): those about a booking were cleared with it above.
        OutboundEmail.objects.filter(to=email, booking__isnull=True).delete()
    logger.info("erasure: %s booking(s) anonymised", len(ids))
    return len(ids)


@dataclass(frozen=True)
class HeldData:
    """Everything held about one email address: what an export link shows and downloads."""

    link: LinkToken
    bookings: list[Booking]  # oldest first (with their events, payments and views if read `full`)
    waitlist: list[WaitlistEntry]
    emails: list[OutboundEmail] = field(default_factory=list)  # if read `full`

    @property
    def email(self) -> str:
        return self.link.booking.email


# How a client agreed to the privacy notice, as their export says it (consent_way).
CONSENT_WAYS = {ConsentGiven.PHONE: "by_phone", ConsentGiven.IN_PERSON: "in_person"}


def consent_way(booking: Booking) -> str | None:
    """How the booking's client agreed to the privacy notice: "by_phone" or "in_person" (to the
    staff member who made the booking, its consent event says), "online" (in the booking
    form); None if no agreement is recorded (bookings staff made before they recorded one).
    Reads the booking's `consent_events` (privacy_held prefetches them)."""
    if not booking.consent_policy_version:
        return None
    for event in booking.consent_events:
        return CONSENT_WAYS[event.action]
    return "online"


def privacy_held(*, token: str, full: bool = False) -> HeldData:
    """What is held about the address behind an export link (TokenInvalid if it is not live).
    `full`: each booking's history, payments and staff views too, and the copies kept of the
    emails sent to the address, as the downloaded file has them. Each booking's `consent_way`
    says how its client agreed to the privacy notice."""
    from bookings.tokens import token_get

    link = token_get(raw=token, purpose=LinkToken.Purpose.EXPORT)
    email = link.booking.email
    # Not requests never confirmed, nor waitlist places: anyone may have typed this address
    # into the booking form, and what they wrote is theirs, not the address owner's. A request
    # confirmed and held for the last session to be recorded (verified_at) is the owner's.
    bookings = (
        Booking.objects.filter(email=email, anonymised_at__isnull=True)
        .exclude(status=Status.DRAFT, verified_at__isnull=True)
        .select_related("session_type", "counsellor", "slot", "preferred_slot")
        .prefetch_related(
            Prefetch("events", BookingEvent.objects.filter(action__in=ConsentGiven.values), to_attr="consent_events")
        )
        .order_by("created_at")
    )
    if full:
        bookings = bookings.prefetch_related(
            "events", "payments", Prefetch("views", BookingView.objects.select_related("user").order_by("viewed_at"))
        )
    held = list(bookings)
    for booking in held:
        booking.consent_way = consent_way(booking)
    waitlist = WaitlistEntry.objects.filter(email=email, verified_at__isnull=False).select_related(
        "session_type", "counsellor"
    )
    emails: list[OutboundEmail] = []
    if full:
        # Those sent (their links no longer work), about their bookings or about none. Not the
        # waitlist's confirmation request, which names whoever typed the address.
        emails = list(
            OutboundEmail.objects.filter(
                Q(booking__in=[b.pk for b in held]) | Q(booking__isnull=True),
                to=email,
                status__in=(OutboundEmail.State.SENT, OutboundEmail.State.FAILED),
            )
            .exclude(kind="waitlist_verify")
            .order_by("created_at")
        )
    return HeldData(link=link, bookings=held, waitlist=list(waitlist.order_by("created_at")), emails=emails)


def privacy_export(*, held: HeldData) -> dict[str, Any]:
    """Everything held (privacy_held, read `full`), as JSON-ready data."""

    def when(value: datetime | None) -> str | None:
        """In the clinic's time zone, with its offset, as every page and email shows times."""
        return timezone.localtime(value).isoformat() if value else None

    logger.info("export: data for %s booking(s) downloaded", len(held.bookings))
    return {
        "exported_at": timezone.now().isoformat(),
        "email": held.email,
        "bookings": [
            {
                "acknowledgement_id": b.ack_id,
                "status": b.status,
                "created_at": when(b.created_at),
                "name": b.client_name,
                "email": b.email,
                "phone": b.phone,
                "age_confirmation": b.age_confirmation,
                "consent_policy_version": b.consent_policy_version,
                "consented_at": when(b.consented_at),
                # "online" (in the booking form), "by_phone" or "in_person" (to the clinic's staff).
                "consent_given": b.consent_way,
                "what_brings_you": b.concerns,
                "preferred_times": b.preferred_times,
                "session_type": b.session_type.name,
                "mode": b.mode,
                "counsellor": b.counsellor.display_name if b.counsellor else None,
                "time_asked_for": when(b.preferred_slot.start) if b.preferred_slot else None,
                "session_start": when(b.slot.start) if b.slot else None,
                "session_end": when(b.slot.start + b.session_type.duration) if b.slot else None,
                "amount_minor_units": b.amount,
                "currency": b.currency,
                "events": [
                    {
                        "at": when(e.created_at),
                        "from": e.from_status,
                        "to": e.to_status,
                        "action": e.action,
                        "by": e.actor,
                        # Only what the client's own timeline shows: staff notes are for colleagues.
                        "reason": event_reason_for_client(e),
                    }
                    for e in b.events.all()
                ],
                "payments": [
                    {
                        "amount_minor_units": p.amount,
                        "captured_minor_units": p.captured_amount,
                        "refunded_minor_units": p.refunded_amount,
                        "currency": p.currency,
                        "status": p.status,
                        "refund_status": p.refund_status,
                        "created_at": when(p.created_at),
                        # The references that match it in the payment provider's own records.
                        "provider": p.provider,
                        "provider_order_id": p.provider_order_id,
                        # A payment at the clinic: its receipt number ("" if none was given).
                        "provider_payment_id": p.reference,
                        "provider_refund_id": p.provider_refund_id,
                    }
                    for p in b.payments.all()
                ],
                # Who on the staff opened its details, by their role, and when.
                "opened_by_staff": [{"at": when(v.viewed_at), "role": v.user.role} for v in b.views.all()],
            }
            for b in held.bookings
        ],
        "waitlist": [
            {
                "name": w.client_name,
                "session_type": w.session_type.name,
                "mode": w.mode,
                "counsellor": w.counsellor.display_name if w.counsellor else None,
                "from": w.date_from.isoformat(),
                "to": w.date_to.isoformat(),
                "status": w.status,
                "created_at": when(w.created_at),
            }
            for w in held.waitlist
        ],
        # The copies kept of what we emailed (for 30 days after sending), links removed.
        "emails": [{"sent_at": when(e.sent_at), "subject": e.subject, "text": e.body_text} for e in held.emails],
    }
