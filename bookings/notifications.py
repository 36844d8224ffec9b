"""Which email each event sends, and what it says. Called inside the transaction of the
change it announces; delivery happens after commit (see emails.py)."""

from __future__ import annotations

import shlex
from datetime import date, datetime, timedelta

from django.conf import settings
from django.urls import reverse

from bookings import selectors
from bookings.calendar import booking_ics
from bookings.emails import absolute_url, email_queue
from bookings.models import (
    SLOTTED_STATUSES,
    Actor,
    ApiClient,
    Booking,
    Counsellor,
    LinkToken,
    Mode,
    OutboundEmail,
    Payment,
    Slot,
    Status,
    WaitlistEntry,
)
from bookings.tokens import token_create

# Booking-page links live long; the page itself also stops working some days after the
# session (see selectors.booking_for_page).
MANAGE_LINK_LIFETIME = timedelta(days=400)


def manage_url(booking: Booking) -> str:
    return absolute_url(manage_path(booking))


def manage_path(booking: Booking) -> str:
    """A new booking-page link (only tokens' hashes are stored, so each link is a new token):
    for emails, and for the pages that end a move or a cancellation, which are reached from
    single-use links that cannot lead back to the page."""
    raw = token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=MANAGE_LINK_LIFETIME)
    return reverse("bookings:booking_page", args=[raw])


def _context(booking: Booking, **extra: object) -> dict[str, object]:
    return {"booking": booking, "session_type": booking.session_type, "slot": booking.slot, **extra}


def verification(*, booking: Booking, raw_token: str) -> None:
    url = absolute_url(reverse("bookings:verify", args=[raw_token]))
    email_queue(
        kind="verify",
        to=booking.email,
        booking=booking,
        context=_context(booking, verify_url=url, link_hours=settings.VERIFICATION_LINK_HOURS),
    )


def already_active(*, booking: Booking) -> None:
    from bookings.services.decisions import cancellation_open_for_client  # services import this module

    email_queue(
        kind="already_active",
        to=booking.email,
        booking=booking,
        context=_context(
            booking, booking_url=manage_url(booking), cancel_online=cancellation_open_for_client(booking=booking)
        ),
    )


def request_held(*, draft: Booking, last: Booking, ask_staff: bool = True) -> None:
    """The client confirmed a new request while their last session (`last`, ended) waits to
    be recorded: the request is saved, and made once it is (services.held_requests_release).
    `ask_staff`: the session's counsellor, else the administrators, are asked to record it."""
    email_queue(
        kind="request_held",
        to=draft.email,
        booking=draft,
        context={"booking": draft, "last_slot": last.slot, "held_days": settings.HELD_REQUEST_DAYS},
    )
    if not ask_staff:
        return
    counsellor_user = last.counsellor.user if last.counsellor else None
    recipients = (
        [counsellor_user.email] if counsellor_user is not None and counsellor_user.is_active else administrator_emails()
    )
    context = {
        "booking": last,
        "slot": last.slot,
        "staff_booking_url": absolute_url(reverse("staff:booking_detail", args=[last.pk])),
    }
    for email in recipients:
        email_queue(kind="record_to_rebook", to=email, booking=last, context=context)


def request_not_made(*, draft: Booking, why: str) -> None:
    """A held request given up (`why`: "not_recorded" in HELD_REQUEST_DAYS, or "not_offered",
    its session type no longer offered the client's way): the client is told, and asked to
    book again. About no booking, as the draft is deleted soon (drafts_purge)."""
    email_queue(
        kind="request_not_made",
        to=draft.email,
        language=draft.language,
        context={
            "client_name": draft.client_name,
            "why": why,
            "held_days": settings.HELD_REQUEST_DAYS,
            "book_url": absolute_url(reverse("bookings:wizard")),
        },
    )


def cancel_confirmation(*, booking: Booking, raw_token: str) -> None:
    url = absolute_url(reverse("bookings:cancel_confirm", args=[raw_token]))
    email_queue(
        kind="cancel_confirm",
        to=booking.email,
        booking=booking,
        context=_context(booking, confirm_url=url, link_minutes=settings.CANCELLATION_LINK_MINUTES),
    )


def on_transition(
    *,
    booking: Booking,
    from_status: str,
    actor: str,
    user: object = None,
    client_asked: bool = False,
    counsellor_before_id: int | None = None,
) -> None:
    """The emails (if any) for a booking that has just moved from `from_status`, by `actor`
    (`user`, for staff; `client_asked`, staff acting on the client's request): the client's,
    and its counsellor's when a session of theirs is cancelled or approved into their time by
    someone else. `counsellor_before_id`: the booking's counsellor before the move."""
    to = booking.status
    if to == Status.CANCELLED and from_status in SLOTTED_STATUSES and actor != Actor.SYSTEM:
        session_changed(booking=booking, change="cancelled", counsellor=booking.counsellor, actor=actor, user=user)
    elif to == Status.APPROVED and from_status in (Status.PENDING, Status.DRAFT) and actor == Actor.STAFF:
        # From DRAFT: a booking staff made straight into a counsellor's time (a client who phoned).
        session_changed(booking=booking, change="approved", counsellor=booking.counsellor, actor=actor, user=user)
    if to == Status.PENDING:
        kind = "request_received"
        if actor == Actor.CLIENT:
            new_request(booking=booking)
        elif from_status == Status.DRAFT:
            # A request staff made for a client who phoned, to a counsellor other than themselves.
            new_request(booking=booking, made_by=user)
    elif to == Status.APPROVED and from_status != Status.PAYMENT_PENDING:
        kind = "approved"
    elif to == Status.REJECTED:
        kind = "rejected"
    elif to == Status.CONFIRMED:
        kind = "confirmed"
    elif to == Status.CANCELLED:
        # The system cancels only when the payment window runs out.
        kind = "expired" if actor == Actor.SYSTEM else "cancelled"
    else:
        return
    _status_email(
        booking=booking,
        kind=kind,
        from_status=from_status,
        actor=actor,
        client_asked=client_asked,
        counsellor_before_id=counsellor_before_id,
    )


def confirmed_again(*, booking: Booking) -> OutboundEmail:
    """The "confirmed" email written afresh from the booking as it is now, for "Resend the last
    email" (services.booking_resend_last_email): what confirming it now would send. The copy
    kept of the first says what held then: that it can be cancelled online (the cutoff may
    have passed since, or its hours changed), that the link to join will be added (it may be
    there now), the counsellor's and the clinic's names and address as they were, in its
    calendar invitation too. Nothing in it is a fact of that moment alone, as the old time of
    a move or the refund of a cancellation are: those emails are sent again as they were."""
    return _status_email(booking=booking, kind="confirmed", from_status=Status.PAYMENT_PENDING, actor=Actor.PROVIDER)


def _status_email(
    *,
    booking: Booking,
    kind: str,
    from_status: str,
    actor: str,
    client_asked: bool = False,
    counsellor_before_id: int | None = None,
) -> OutboundEmail:
    """The client's email `kind` about `booking`, which has just moved from `from_status`."""
    to = booking.status
    ics = ""
    if to == Status.CONFIRMED:
        ics = booking_ics(booking=booking)
    elif to == Status.CANCELLED and from_status == Status.CONFIRMED:
        ics = booking_ics(booking=booking, cancel=True)
    payment = booking.payments.filter(status="confirmed").first() if to == Status.CONFIRMED else None
    # Money captured that could not confirm the booking, being refunded as it expires.
    refund = booking.payments.filter(refund_status=Payment.RefundState.PENDING).first() if kind == "expired" else None
    # Money captured before it expired that is not being refunded now: staff settled it
    # (refunded, or a refund that failed). The email must not say nothing was received.
    received = (
        booking.payments.filter(captured_amount__isnull=False)
        .exclude(refund_status=Payment.RefundState.PENDING)
        .first()
        if kind == "expired" and refund is None
        else None
    )
    if kind == "cancelled" and from_status == Status.CONFIRMED:
        refund = _cancellation_refund(booking)
    # Money captured that could not confirm the booking (a wrong amount, held for staff):
    # services.booking_cancel sends it back. (Imported here: services import this module.)
    from bookings.services.decisions import cancellation_open_for_client
    from bookings.services.payments import PAYMENT_HELD

    held = booking.payments.filter(PAYMENT_HELD).first() if kind == "cancelled" else None
    # The clinic cancelled, not at the client's request: the email apologises and offers to
    # book again with the same choices. Staff's reason stays in the audit trail, never here.
    by_clinic = kind == "cancelled" and actor == Actor.STAFF and not client_asked
    again = selectors.book_again(booking) if by_clinic else None
    asked = _counsellor_asked_for(booking, counsellor_before_id) if kind == "approved" else None
    return email_queue(
        kind=kind,
        to=booking.email,
        booking=booking,
        ics=ics,
        context=_context(
            booking,
            booking_url=manage_url(booking),
            from_status=from_status,
            payment=payment,
            refund=refund,
            received=received,
            held=held,
            by_clinic=by_clinic,
            book_again_url=absolute_url(again["url"]) if again else "",
            cancellation_cutoff_hours=settings.CANCELLATION_CUTOFF_HOURS,
            # Paid inside the cutoff (paying closes 12 hours before): no online cancellation.
            cancel_online=cancellation_open_for_client(booking=booking),
            join_link_ready=bool(booking.join_url),
            # Approved into another counsellor's time than the one the client asked for.
            asked_counsellor=asked if asked is not None and asked.pk != booking.counsellor_id else None,
            # A booking staff made for a client who phoned or came in: they agreed to the
            # privacy notice as it was read to them, and here it is in writing.
            # Made and paid for at the clinic's desk, its first email is the confirmation.
            privacy_url=absolute_url(reverse("bookings:privacy"))
            if actor == Actor.STAFF
            and booking.consent_policy_version
            and (
                from_status == Status.DRAFT
                or (
                    to == Status.CONFIRMED
                    and booking.created_by_id is not None
                    and not booking.emails.filter(to=booking.email).exists()
                )
            )
            else "",
        ),
    )


def _counsellor_asked_for(booking: Booking, counsellor_before_id: int | None) -> Counsellor | None:
    """The counsellor a request was made to: the one of the time the client chose, else the
    one they chose (or staff assigned) without a time; None for "any counsellor"."""
    if booking.preferred_slot_id is not None:
        return booking.preferred_slot.counsellor
    if counsellor_before_id is None:
        return None
    return Counsellor.objects.filter(pk=counsellor_before_id).first()


def _cancellation_refund(booking: Booking) -> dict[str, int] | None:
    """What cancelling a paid booking sends back (services.booking_cancel asks for it just
    after this transition): all of the payment, or the rest after part went back earlier."""
    paid = booking.payments.filter(
        status__in=(Payment.State.CONFIRMED, Payment.State.PARTIALLY_REFUNDED), confirmed_at__isnull=False
    ).first()
    if paid is None or not paid.provider_payment_id:
        return None
    if paid.status == Payment.State.CONFIRMED and not paid.refund_status:
        earlier = 0
    elif paid.status == Payment.State.PARTIALLY_REFUNDED and paid.refund_status == Payment.RefundState.PROCESSED:
        earlier = paid.refunded_amount
    else:
        return None
    captured = paid.amount if paid.captured_amount is None else paid.captured_amount
    return {"amount": captured - earlier, "earlier": earlier, "currency": paid.currency, "at_clinic": paid.at_clinic}


def administrator_emails() -> list[str]:
    """Where alerts for "the administrators" go: every active administrator's address."""
    from django.contrib.auth import get_user_model

    return list(get_user_model().objects.filter(is_active=True, role="administrator").values_list("email", flat=True))


# Why the time a request asked for can no longer be given, by selectors.preferred_time_lost.
_TIME_LOST_FOR_STAFF = {
    "taken": "since taken by another booking",
    "withdrawn": "no longer offered",
    "too_soon": "now too soon to book online",
}


def new_request(*, booking: Booking, made_by: object = None) -> None:
    """Tell staff a client's request is waiting for review: the counsellor the client chose,
    else the administrators. The booking by its acknowledgement ID, never the client's name
    or words: those stay in the portal.

    `made_by`: the member of staff who made the request for a client who phoned. Only its
    counsellor is told, if that is someone else: its maker knows, and reviews it otherwise."""
    counsellor_user = booking.counsellor.user if booking.counsellor else None
    if made_by is not None:
        if (
            counsellor_user is None
            or not counsellor_user.is_active
            or counsellor_user.pk == getattr(made_by, "pk", None)
        ):
            return
        recipients = [counsellor_user.email]
    elif counsellor_user is not None and counsellor_user.is_active:
        recipients = [counsellor_user.email]
    else:
        recipients = administrator_emails()
    # The time asked for, and whether it can still be had: the client confirmed their email
    # only now, and another booking may have taken it meanwhile (one query, with its counsellor).
    selectors.preferred_slot_read(booking)
    preferred = booking.preferred_slot
    context = {
        "booking": booking,
        "session_type": booking.session_type,
        "preferred_slot": preferred,
        "preferred_with": preferred.counsellor.display_name if preferred else "",
        # Staff may choose a time inside the online notice for a client who phoned.
        "preferred_lost": _TIME_LOST_FOR_STAFF.get(selectors.preferred_time_lost(booking, notice=made_by is None), ""),
        "staff_booking_url": absolute_url(reverse("staff:booking_detail", args=[booking.pk])),
        "made_by": str(made_by) if made_by is not None else "",
    }
    for email in recipients:
        email_queue(kind="new_request", to=email, booking=booking, context=context)


def session_changed(
    *,
    booking: Booking,
    change: str,
    counsellor: Counsellor | None,
    actor: str,
    user: object = None,
    old_slot: Slot | None = None,
    other: Counsellor | None = None,
) -> None:
    """Tell `counsellor` that a session of theirs changed, so that nobody waits in an empty
    room for a session that moved: `change` is "cancelled", "moved" (from `old_slot`),
    "approved" (into their time, by someone else), "handed_to_you" (from `other`, at
    `old_slot`), "handed_away" (to `other`: they can no longer open it; from `old_slot`, or
    with none, a request made to them and approved into `other`'s time) or "unheld" (coming
    up, with a counsellor who has left: told by services.reminders_send). Done by `actor`,
    `user` for staff: nobody is told of their own change, nor a counsellor who has turned
    these emails off in their profile (Counsellor.change_emails).

    A counsellor who has left (their account deactivated), or one with no account, has nobody
    to read it: the active administrators are told instead, one message each, since their
    clients' changes would otherwise reach nobody on the staff.
    By acknowledgement ID, never the client's name or words; in English, like the portal."""
    account = counsellor.user if counsellor is not None and counsellor.user_id is not None else None
    acting = getattr(user, "pk", None)
    if account is not None and account.is_active:
        if account.pk == acting or not counsellor.change_emails:  # their own change, or turned off
            return
        recipients, stand_in = [account.email], False
    else:
        recipients, stand_in = [e for e in administrator_emails() if e != getattr(user, "email", None)], True
    context = {
        "booking": booking,
        "change": change,
        "by": "the client" if actor == Actor.CLIENT else (str(user) if user is not None else "the clinic"),
        "old_slot": old_slot,
        "other": other,
        "session_type": booking.session_type,
        # Administrators told in the place of `counsellor`: whose session it was, and why.
        "stand_in": stand_in,
        "counsellor_name": counsellor.display_name if counsellor is not None else "",
        "counsellor_left": account is not None,
        # The booking is theirs no more once handed away: their dashboard instead.
        "staff_booking_url": absolute_url(reverse("staff:booking_detail", args=[booking.pk])),
        "staff_url": absolute_url(reverse("staff:dashboard")),
    }
    for email in recipients:
        email_queue(kind="session_changed", to=email, booking=booking, context=context)


def booking_links(*, email: str, bookings: list[Booking]) -> None:
    """The answer to "email me my booking links" from /status/: one fresh link per booking.

    Only acknowledgement IDs and status labels: no times, names or session types, since
    the message answers a request anyone could have made for this address.
    """
    links = [_booking_link(b) for b in bookings]
    # Asked for from /status/, so in the language of that page.
    email_queue(kind="booking_links", to=email, context={"links": links})


def _booking_link(booking: Booking) -> dict[str, object]:
    """A booking as "email me my booking links" lists it: its ID, its status, a new link."""
    from bookings.lifecycle import CLIENT_LABELS

    return {"ack_id": booking.ack_id, "status": CLIENT_LABELS[booking.status], "url": manage_url(booking)}


def booking_link_again(*, booking: Booking) -> None:
    """A new link to `booking`'s page, to its address, in its language: what staff send after
    correcting the address when no status email says where the booking stands (see
    services.booking_correct_email). In the words of "email me my booking links"."""
    email_queue(kind="booking_links", to=booking.email, booking=booking, context={"links": [_booking_link(booking)]})


def payment_refunding(*, booking: Booking, payment: Payment) -> None:
    """A payment arrived for a booking that can no longer take it; it is being refunded."""
    if booking.anonymised_at is not None:
        return  # erased: see payment_returned
    email_queue(
        kind="payment_refunding",
        to=booking.email,
        booking=booking,
        context=_context(booking, booking_url=manage_url(booking), payment=payment),
    )


def payment_returned(*, booking: Booking, payment: Payment, refunded: bool) -> None:
    """Money that confirmed nothing is going back (`refunded`: has gone back), as staff
    settled it; and if the time is still reserved, how to pay the right amount."""
    if booking.anonymised_at is not None:
        # Erased at the client's request: its address is no one's (anonymised-N@invalid), and
        # a booking-page link would be a new working link to a page that says so.
        return
    email_queue(
        kind="payment_returned",
        to=booking.email,
        booking=booking,
        context=_context(booking, booking_url=manage_url(booking), payment=payment, refunded=refunded),
    )


def privacy_link(*, booking: Booking, purpose: str, raw_token: str) -> None:
    """The link that confirms an erasure request, or downloads the client's data."""
    if purpose == LinkToken.Purpose.ERASE:
        kind, url = "privacy_erase", absolute_url(reverse("bookings:privacy_erase", args=[raw_token]))
    else:
        kind, url = "privacy_export", absolute_url(reverse("bookings:privacy_export", args=[raw_token]))
    from bookings.services.privacy import PRIVACY_LINK_HOURS  # services import this module

    email_queue(
        kind=kind,
        to=booking.email,
        booking=booking,
        context=_context(booking, link_url=url, link_hours=PRIVACY_LINK_HOURS),
    )


def reminder(*, booking: Booking, cancel_online: bool = True) -> OutboundEmail:
    """A reminder before a CONFIRMED session: when, how, how to join or where to go, and
    whether it can still be cancelled online (`cancel_online`: a reminder a day before comes as
    the usual cutoff of a day closes; then it says to contact the clinic).

    The meeting link (the booking's own, or the counsellor's room) goes only into reminders of
    confirmed online sessions, which is the only kind `services.reminders_send` sends.
    """
    meeting_url = ""
    if booking.status == Status.CONFIRMED and booking.mode == Mode.ONLINE:
        meeting_url = booking.join_url
    return email_queue(
        kind="reminder",
        to=booking.email,
        booking=booking,
        context=_context(
            booking,
            booking_url=manage_url(booking),
            meeting_url=meeting_url,
            cancellation_cutoff_hours=settings.CANCELLATION_CUTOFF_HOURS,
            cancel_online=cancel_online,
        ),
    )


def daily_summary(*, counsellor: Counsellor, day: date, bookings: list[Booking]) -> OutboundEmail:
    """A counsellor's sessions of the day: times, acknowledgement IDs, client initials. Nothing
    else about the clients, since the message may be read on a phone's lock screen."""
    sessions = [
        {
            "start": b.slot.start,
            "end": b.session_end,  # the session's, not its slot's (which may be longer)
            "ack_id": b.ack_id,
            "initials": b.client_initials,
            # The label itself (lazy), so that it is read in the email's language, not the caller's.
            "mode": Mode(b.mode).label,
            "confirmed": b.status == Status.CONFIRMED,
        }
        for b in bookings
    ]
    return email_queue(
        kind="daily_summary",
        to=counsellor.user.email,
        context={
            "counsellor": counsellor,
            "day": day,
            "sessions": sessions,
            "staff_url": absolute_url(reverse("staff:dashboard")),
        },
    )


def api_token_expiring(*, client: ApiClient, to: str, now: datetime) -> OutboundEmail:
    """An administrator told that a chatbot's API token expires soon (or has expired), and how
    to give it a new one without a gap. The client's name and the date only: never the token."""
    from bookings.api.auth import ROTATION_OVERLAP_DAYS  # the API's services import this module

    return email_queue(
        kind="api_token_expiring",
        to=to,
        context={
            "client_name": client.name,
            "expires_at": client.expires_at,
            "expired": client.expires_at <= now,
            # Rounded: a token made for 10 days is told "in 10 days", not "in 9", seconds later.
            "days_left": round((client.expires_at - now) / timedelta(days=1)),
            "overlap_days": ROTATION_OVERLAP_DAYS,
            # Ready to paste, a name with spaces quoted.
            "command": f"manage.py api_token rotate {shlex.quote(client.name)}",
        },
    )


# --- Rescheduling -------------------------------------------------------------------------


def reschedule_confirmation(*, booking: Booking, slot: Slot, raw_token: str) -> None:
    """The single-use link that confirms moving the booking to `slot`."""
    url = absolute_url(reverse("bookings:reschedule_confirm", args=[raw_token]))
    email_queue(
        kind="reschedule_confirm",
        to=booking.email,
        booking=booking,
        context=_context(booking, new_slot=slot, confirm_url=url, link_minutes=settings.RESCHEDULE_LINK_MINUTES),
    )


def rescheduled(
    *,
    booking: Booking,
    old_slot: Slot,
    actor: str,
    old_counsellor: Counsellor | None = None,
    user: object = None,
    client_asked: bool = False,
) -> None:
    """The booking now has another time (`old_counsellor`'s before, if it was handed over;
    `client_asked`: staff moved it at the client's request, and the email says so).
    The client's confirmed session's calendar event is updated in place: the same UID, and
    SEQUENCE (the booking's version) higher than before. Its counsellors are told too."""
    if old_counsellor is not None and old_counsellor.pk != booking.counsellor_id:
        for counsellor, change, other in (
            (old_counsellor, "handed_away", booking.counsellor),
            (booking.counsellor, "handed_to_you", old_counsellor),
        ):
            session_changed(
                booking=booking,
                change=change,
                counsellor=counsellor,
                actor=actor,
                user=user,
                old_slot=old_slot,
                other=other,
            )
    else:
        session_changed(
            booking=booking, change="moved", counsellor=booking.counsellor, actor=actor, user=user, old_slot=old_slot
        )
    ics = booking_ics(booking=booking) if booking.status == Status.CONFIRMED else ""
    email_queue(
        kind="rescheduled",
        to=booking.email,
        booking=booking,
        ics=ics,
        context=_context(
            booking,
            old_slot=old_slot,
            by_clinic=actor != Actor.CLIENT and not client_asked,
            booking_url=manage_url(booking),
        ),
    )


# --- The waitlist -------------------------------------------------------------------------


def _waitlist_context(entry: WaitlistEntry, **extra: object) -> dict[str, object]:
    return {"entry": entry, "counsellor": entry.counsellor, **extra}


def waitlist_verify(*, entry: WaitlistEntry, raw_token: str) -> None:
    url = absolute_url(reverse("bookings:waitlist_verify", args=[raw_token]))
    email_queue(
        kind="waitlist_verify",
        to=entry.email,
        language=entry.language,
        context=_waitlist_context(entry, verify_url=url, link_hours=settings.VERIFICATION_LINK_HOURS),
    )


def waitlist_joined(*, entry: WaitlistEntry, leave_url: str) -> None:
    email_queue(
        kind="waitlist_joined",
        to=entry.email,
        language=entry.language,
        context=_waitlist_context(entry, leave_url=leave_url),
    )


def waitlist_offer(*, entry: WaitlistEntry, slot: Slot, book_url: str, leave_url: str) -> OutboundEmail:
    """A time on the client's waitlist has become free: a link to book it, first come first served."""
    return email_queue(
        kind="waitlist_offer",
        to=entry.email,
        language=entry.language,
        context=_waitlist_context(entry, slot=slot, book_url=book_url, leave_url=leave_url),
    )


def waitlist_ended(*, entry: WaitlistEntry, reason: str, book_url: str) -> None:
    """The clinic stopped offering what the client was waiting for (see
    services.waitlist_end_unserved): their place has ended, and why, in general words."""
    email_queue(
        kind="waitlist_ended",
        to=entry.email,
        language=entry.language,
        context=_waitlist_context(entry, reason=reason, book_url=book_url),
    )
