"""The booking lifecycle: which moves are allowed, by whom, and how each status reads to a client.

This table is the one in DESIGN.md. `services.booking_transition` is the only code that
changes a booking's status, and it consults nothing but this table.
"""

from __future__ import annotations

from django.utils.functional import Promise as StrPromise
from django.utils.translation import gettext_lazy as _

from bookings.models import ACTIVE_STATUSES, Actor, Status

S, A = Status, Actor

TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (S.DRAFT, S.PENDING): frozenset({A.CLIENT}),
    (S.PENDING, S.APPROVED): frozenset({A.STAFF}),
    (S.PENDING, S.REJECTED): frozenset({A.STAFF}),
    # Staff: an administrator recording the price paid at the clinic's desk
    # (services.payment_record_at_clinic). Either way, only a payment of the booking's
    # amount confirms it (services.booking_transition checks).
    (S.APPROVED, S.PAYMENT_PENDING): frozenset({A.CLIENT, A.STAFF}),
    (S.PAYMENT_PENDING, S.CONFIRMED): frozenset({A.PROVIDER, A.STAFF}),
    (S.PAYMENT_PENDING, S.APPROVED): frozenset({A.SYSTEM, A.PROVIDER}),
    (S.CONFIRMED, S.COMPLETED): frozenset({A.STAFF}),
    (S.CONFIRMED, S.NO_SHOW): frozenset({A.STAFF}),
    (S.PENDING, S.CANCELLED): frozenset({A.CLIENT, A.STAFF}),
    (S.APPROVED, S.CANCELLED): frozenset({A.CLIENT, A.STAFF, A.SYSTEM}),
    (S.PAYMENT_PENDING, S.CANCELLED): frozenset({A.CLIENT, A.STAFF, A.SYSTEM}),
    (S.CONFIRMED, S.CANCELLED): frozenset({A.CLIENT, A.STAFF}),
}

# Where a booking made by staff may start (no email verification).
STAFF_CREATED_STATUSES = (S.PENDING, S.APPROVED)

FINAL_STATUSES = frozenset({S.COMPLETED, S.NO_SHOW, S.REJECTED, S.CANCELLED})


def allowed_targets(status: str, actor: str) -> list[str]:
    return [to for (frm, to), actors in TRANSITIONS.items() if frm == status and actor in actors]


# What a client reads about each status: a label and the next step. No personal data.
CLIENT_LABELS: dict[str, StrPromise] = {
    S.DRAFT: _("Waiting for email confirmation"),
    S.PENDING: _("Request received"),
    S.APPROVED: _("Time reserved, waiting for payment"),
    # The client started paying: whether they finished at the provider, nobody here knows
    # until the provider says so, and an attempt left half-way stays open until replaced.
    S.PAYMENT_PENDING: _("Payment started"),
    S.CONFIRMED: _("Confirmed"),
    S.COMPLETED: _("Session completed"),
    S.NO_SHOW: _("Session missed"),
    S.REJECTED: _("Not accepted"),
    S.CANCELLED: _("Cancelled"),
}

NEXT_STEPS: dict[str, StrPromise] = {
    S.DRAFT: _("Open the link in the email we sent you to confirm your email address."),
    S.PENDING: _("A counsellor is reviewing your request. We will email you when a time is reserved for you."),
    S.APPROVED: _("Your time is reserved. Pay from your booking page to confirm it."),
    # No time to pay by: an acknowledgement ID alone shows no session time, and the time to
    # pay is often the session's less PAYMENT_DEADLINE_BEFORE_SESSION_HOURS.
    S.PAYMENT_PENDING: _(
        "If you have paid, your booking is usually confirmed within a minute. If not, you can pay from "
        "your booking page (the link is in our emails) until the time to pay runs out."
    ),
    S.CONFIRMED: _("You are all set. Your booking page has the details and a calendar invitation."),
    S.COMPLETED: _("Your session has taken place. You are welcome to book another."),
    S.NO_SHOW: _(
        "Our records show this session did not take place. If that is wrong, please contact the "
        "clinic. You are welcome to book another session."
    ),
    S.REJECTED: _("We could not take this request. You are welcome to book again or contact us."),
    S.CANCELLED: _("This booking is cancelled. You are welcome to book again."),
}

# The booking page's own words: NEXT_STEPS (also read by the status lookup, the page after
# verifying and the API) sends the client to their booking page, which is where they are.
NEXT_STEPS_ON_BOOKING_PAGE: dict[str, StrPromise] = {
    **NEXT_STEPS,
    S.APPROVED: _("Your time is reserved. Pay below to confirm it."),
    S.PAYMENT_PENDING: _("If you have paid, your booking is usually confirmed within a minute. If not, pay below."),
    S.CONFIRMED: _("You are all set. The details of your session are below, with a file to add it to your calendar."),
}
# A confirmed session whose time has passed, not yet recorded as held or missed by the
# clinic: the booking stays active until then, and a client has one active booking at a time.
# A request made meanwhile is held, and reaches the clinic once it is (services.booking_verify).
CONFIRMED_SESSION_OVER = _(
    "Your session's time has passed. You can book your next session now: your request will reach the clinic "
    "as soon as they have recorded this one."
)


# A request confirmed and held for the client's last session to be recorded: still a draft.
HELD_REQUEST_LABEL = _("Saved, waiting for your last session to be recorded")
# The last session's page, once such a request is held for it.
NEXT_REQUEST_HELD = _(
    "Your session's time has passed. Your request for your next session is saved: it will reach the clinic as "
    "soon as they have recorded this one."
)


def next_step(status: str, *, session_over: bool, on_booking_page: bool = False) -> StrPromise:
    """What the client does next, for the status lookup, the API and (`on_booking_page`)
    the booking page. `session_over`: the reserved session has ended (Booking.session_over)."""
    if status == S.CONFIRMED and session_over:
        return CONFIRMED_SESSION_OVER
    return (NEXT_STEPS_ON_BOOKING_PAGE if on_booking_page else NEXT_STEPS)[status]


# The emails that tell a client where their booking stands, each with the statuses in which
# it still does. One that no longer does is neither resent ("Resend the last email") nor
# delivered late (a retry after the mail server was down): an "approved" email after the
# payment window closed would ask them to pay for a time released to others, a "confirmed"
# one after a cancellation would put the cancelled session back in their calendar.
STATUS_EMAILS: dict[str, tuple[str, ...]] = {
    "request_received": (S.PENDING,),
    "approved": (S.APPROVED, S.PAYMENT_PENDING),
    "rejected": (S.REJECTED,),
    "confirmed": (S.CONFIRMED,),
    # After a move, the earlier emails name the old time.
    "rescheduled": (S.APPROVED, S.PAYMENT_PENDING, S.CONFIRMED),
    "cancelled": (S.CANCELLED,),
    "expired": (S.CANCELLED,),
    "already_active": ACTIVE_STATUSES,
    # A request held for the client's last session to be recorded (services.booking_verify).
    "request_held": (S.DRAFT,),
}
