"""A seeded random walk over the real booking operations, with the invariants checked after
every step.

The other tests check each transition and each rule one at a time. This one interleaves them
the way a busy week does: twelve clients and three counsellors sharing a few slots, and a few
hundred operations chosen at random from everything the code can do to a booking (see
OPERATIONS): requests through the services and the wizard's pages, verification (and a
corrected address), approvals and rejections into slots another booking may have taken,
bookings made by staff, payments started, paid, failed, paid late, paid the wrong amount or
reported twice, by Razorpay webhooks and returns signed with the real `razorpay` library,
refunds (ours, and staff's from Razorpay's dashboard) and their news, payment alerts settled,
cancellations and moves by clients and staff (handovers to another counsellor among them),
outcomes, the waitlist, slots published, blocked and withdrawn, session types edited,
counsellors leaving, erasure, and time passing with the cron commands run. Some steps go
through the public pages, the staff portal and the chatbot API with the test client; the
rest call the services.

An operation the current state does not allow must be refused cleanly: the service's own
BookingError (and no booking changed), or a 4xx page; never an IntegrityError, another
exception or a 500. After every step the invariants are read back from the database (`check`):
each booking's history is a path of the lifecycle table that ends at its status, with its
version counting its changes; a slot holds one booking at most, of the slot's counsellor, long
enough for the session; an email has one active booking at most; money that arrived is
accounted for (a confirmed booking is paid exactly, money that confirmed nothing is held for
staff or going back, a cancelled booking's money goes back, and what we count as given back is
what Razorpay has given back, never asked for twice); the staff's, the wizard's and the API's
free slots are the slots nobody holds; no email quotes what a client (or staff) typed, and an
email names only its recipient's own bookings. A walk must also have approved, confirmed a
payment and cancelled; one that has not yet walks on, up to three times its length. A failure names the seed and lists the steps
that led to it; `WALK_SEEDS=7 WALK_STEPS=120 pytest bookings/tests/test_lifecycle_walk.py`
walks that walk again (it is deterministic for a seed, the clock included), and
WALK_VERBOSE=1 (with -s) prints a walk's steps and what it reached.

Razorpay's HTTP API is answered at the HTTP layer by `responses` (as test_payments_razorpay
does), by a small fake that keeps the orders, payments and refunds it was asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import responses
from django.apps import apps
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from bookings import selectors, services
from bookings.api.auth import api_client_create
from bookings.errors import BookingError
from bookings.lifecycle import CLIENT_LABELS, TRANSITIONS
from bookings.models import (
    ACK_REGEX,
    ACTIVE_STATUSES,
    SLOT_HOLDING_STATUSES,
    SLOTTED_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    ConsentGiven,
    Counsellor,
    LinkToken,
    OutboundEmail,
    Payment,
    SessionType,
    Slot,
    Status,
    WaitlistOffer,
)
from bookings.slot_picker import free_days_and_times
from bookings.tests import journey
from bookings.tokens import token_create
from staff.models import User
from staff.services import staff_deactivate, staff_reactivate
from staff.tests.conftest import sign_in_with_second_factor, totp_enable

pytestmark = pytest.mark.django_db

SEEDS = [int(s) for s in os.environ.get("WALK_SEEDS", "1,2,3").split(",")]
STEPS = int(os.environ.get("WALK_STEPS", "200"))

KEY_ID = "rzp_test_WalkWalkWalk01"
KEY_SECRET = "walk_key_secret"
WEBHOOK_SECRET = "walk_webhook_secret"
API = "https://api.razorpay.com/v1"

# A Tuesday morning in the clinic's zone: the walk's clock starts here and only moves forward.
START = datetime(2027, 3, 2, 9, 0, tzinfo=UTC) - timedelta(hours=5, minutes=30)
# Every client's own words, and every reason staff type, carry this: none may reach an email.
MARK = "ZQXWALK"
CLIENTS = [f"client{n:02}@example.com" for n in range(1, 13)]


def _sign(message: str, secret: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class WalkFailure(AssertionError):
    pass


class FlushingClient(Client):
    """A browser whose each request is followed by the work its commits queued (emails...)."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def request(self, **request: Any) -> Any:
        response = super().request(**request)
        self.world.flush()
        return response


class FakeRazorpay:
    """Razorpay's API as far as the provider uses it: orders, payments, refunds. Its answers
    (an order refused, a refund pending or failing) are drawn from the walk's generator."""

    def __init__(self, world: World, rsps: responses.RequestsMock) -> None:
        self.world = world
        self.orders: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        rsps.add_callback(responses.POST, f"{API}/orders", callback=self.order_create)
        rsps.add_callback(responses.GET, re.compile(rf"{API}/payments/(\w+)$"), callback=self.payment_fetch)
        rsps.add_callback(responses.POST, re.compile(rf"{API}/payments/(\w+)/refund$"), callback=self.refund_create)
        rsps.add_callback(responses.GET, re.compile(rf"{API}/refunds/(\w+)$"), callback=self.refund_fetch)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_Walk{next(self.ids):010d}"

    def order_create(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.world.rng.random() < 0.08:
            return 502, {}, json.dumps({"error": {"code": "SERVER_ERROR", "description": "try again"}})
        body = json.loads(request.body)
        order = {"id": self.new_id("order"), "entity": "order", "status": "created", **body}
        self.orders[order["id"]] = order
        return 200, {}, json.dumps(order)

    def payment_fetch(self, request: Any) -> tuple[int, dict[str, str], str]:
        found = self.payments.get(request.url.rsplit("/", 1)[1])
        if found is None:
            return 400, {}, json.dumps({"error": {"code": "BAD_REQUEST_ERROR", "description": "no such payment"}})
        return 200, {}, json.dumps(found)

    def refund_create(self, request: Any) -> tuple[int, dict[str, str], str]:
        payment_id = request.url.rsplit("/", 2)[1]
        body = json.loads(request.body)
        roll = self.world.rng.random()
        if roll < 0.12:
            return 500, {}, json.dumps({"error": {"code": "SERVER_ERROR", "description": "try again"}})
        paid = self.payments[payment_id]
        if body["amount"] > paid["amount"] - paid["amount_refunded"]:
            self.world.over_asked.append(
                f"{body['amount']} of {payment_id[-4:]}, which holds {paid['amount'] - paid['amount_refunded']}"
            )
            return 400, {}, json.dumps({"error": {"code": "BAD_REQUEST_ERROR", "description": "more than paid"}})
        refund = {
            "id": self.new_id("rfnd"),
            "entity": "refund",
            "payment_id": payment_id,
            "amount": body["amount"],
            "currency": paid["currency"],
            "status": "processed" if roll < 0.6 else "pending",
        }
        paid["amount_refunded"] += body["amount"]
        self.refunds[refund["id"]] = refund
        return 200, {}, json.dumps(refund)

    def refund_fetch(self, request: Any) -> tuple[int, dict[str, str], str]:
        found = self.refunds.get(request.url.rsplit("/", 1)[1])
        if found is None:
            return 400, {}, json.dumps({"error": {"code": "BAD_REQUEST_ERROR", "description": "no such refund"}})
        return 200, {}, json.dumps(found)

    def dashboard_refund(self, paid: dict[str, Any], amount: int) -> dict[str, Any]:
        """A refund made by staff on Razorpay's dashboard: processed at once."""
        refund = {
            "id": self.new_id("rfnd"),
            "entity": "refund",
            "payment_id": paid["id"],
            "amount": amount,
            "currency": paid["currency"],
            "status": "processed",
        }
        self.refunds[refund["id"]] = refund
        paid["amount_refunded"] += amount
        return refund

    def pay(self, order_id: str, amount: int, *, status: str = "captured") -> dict[str, Any]:
        order = self.orders[order_id]
        payment = {
            "id": self.new_id("pay"),
            "entity": "payment",
            "amount": amount,
            "currency": order["currency"],
            "status": status,
            "order_id": order_id,
            "amount_refunded": 0,
            "captured": status == "captured",
            "method": "upi",
            "error_description": "Declined by the bank" if status == "failed" else None,
        }
        self.payments[payment["id"]] = payment
        return payment


class World:
    """One walk: the clinic, the clock, the steps taken and what the fakes remember."""

    def __init__(self, seed: int, clock: Clock, rsps: responses.RequestsMock) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = clock
        # The test's transaction never commits: `flush` runs what would run after each commit.
        self.committed = len(connection.run_on_commit)
        self.razorpay = FakeRazorpay(self, rsps)
        self.steps: list[str] = []
        self.outcomes: Counter[str] = Counter()
        self.labels: dict[tuple[str, int], str] = {}
        self.counters: Counter[str] = Counter()
        self.markers = itertools.count(1)
        self.webhooks: list[tuple[bytes, str]] = []
        self.untold: list[dict[str, Any]] = []  # payments captured whose news has not come yet
        self.later: list[dict[str, Any]] = []  # dashboard refunds recorded whose webhook is still to come
        self.over_asked: list[str] = []  # refunds asked of Razorpay for more than it holds
        self.tokens: dict[tuple[int, str], str] = {}  # (booking pk, purpose) -> raw link token
        self.manage: dict[int, str] = {}
        self.said = self.page_refused = False
        self.composite = False  # the step makes more than one change: a refusal may follow one
        self.mail_seen = 0
        self.counsellors_of: dict[int, set[int | None]] = {}  # every counsellor each booking had
        self.emails_of: dict[int, set[str]] = {}  # and every email address
        self.offers_seen = 0
        self.email_seen = 0

        self.admin = User.objects.create_user(
            email="walk-admin@example.com", password="x" * 20, first_name="Ada", role=User.Role.ADMINISTRATOR
        )
        totp_enable(self.admin)
        self.api = {"Authorization": f"Bearer {api_client_create(name='chatbot')[1]}"}
        self.browser = FlushingClient(self)
        self.counsellors = []
        for n, (name, online, in_person) in enumerate(
            [("Asha Menon", True, True), ("Rohan Kapoor", True, True), ("Meera Iyer", True, False)]
        ):
            user = User.objects.create_user(
                email=f"counsellor{n}@example.com", password="x" * 20, first_name=name.split()[0]
            )
            totp_enable(user)
            self.counsellors.append(
                Counsellor.objects.create(
                    user=user,
                    display_name=name,
                    slug=f"c{n}",
                    offers_online=online,
                    offers_in_person=in_person,
                    meeting_url=f"https://meet.example/c{n}",
                    daily_summary=n == 0,
                )
            )
        kinds = [
            SessionType.objects.create(name="Individual", slug="individual", duration_minutes=50, price=150000),
            SessionType.objects.create(
                name="Check-in", slug="check-in", duration_minutes=30, price=80000, offers_in_person=False
            ),
            SessionType.objects.create(name="Long session", slug="long", duration_minutes=80, price=250000),
        ]
        self.type_ids = [kind.pk for kind in kinds]
        # A few slots each over the coming week: few enough that bookings compete for them.
        for counsellor in self.counsellors:
            for _ in range(4):
                self.publish(counsellor, days=self.rng.randint(1, 5))

    def session_types(self) -> list[SessionType]:
        """As they are now: staff may have changed them."""
        return list(SessionType.objects.filter(pk__in=self.type_ids).order_by("pk"))

    # --- Names that stay the same from run to run (primary keys do not, on PostgreSQL) ---

    def label(self, kind: str, pk: int) -> str:
        key = (kind, pk)
        if key not in self.labels:
            self.counters[kind] += 1
            self.labels[key] = f"{kind}{self.counters[kind]}"
        return self.labels[key]

    def b(self, booking: Booking | int) -> str:
        return self.label("B", booking if isinstance(booking, int) else booking.pk)

    def s(self, slot: Slot | int | None) -> str:
        if slot is None:
            return "-"
        return self.label("S", slot if isinstance(slot, int) else slot.pk)

    def p(self, payment: Payment) -> str:
        return self.label("P", payment.pk)

    def marker(self, what: str) -> str:
        return f"{MARK}-{what}-{next(self.markers)}"

    def now(self) -> datetime:
        return timezone.now()

    def publish(self, counsellor: Counsellor, *, days: int) -> Slot | None:
        local = timezone.localtime(self.now()).replace(minute=0, second=0, microsecond=0)
        start = local.replace(hour=self.rng.randint(9, 18)) + timedelta(days=days)
        minutes = self.rng.choice([60, 60, 90])
        try:
            slot = services.slot_create(counsellor=counsellor, start=start, end=start + timedelta(minutes=minutes))
        except BookingError:
            return None
        self.s(slot)
        return slot

    # --- Choosing ---

    def pick_booking(self, statuses: tuple[str, ...] | None = None, *, stray: float = 0.15) -> Booking | None:
        """A booking in one of `statuses` (any booking, `stray` of the time: to be refused)."""
        bookings = list(Booking.objects.order_by("pk"))
        if statuses is not None and self.rng.random() >= stray:
            bookings = [b for b in bookings if b.status in statuses]
        return self.rng.choice(bookings) if bookings else None

    def pick_slot(self, *, free_bias: float = 0.7, fits: Booking | None = None) -> Slot | None:
        """Any slot; or, `free_bias` of the time, a free one (that can hold `fits`' session)."""
        slots = list(Slot.objects.select_related("counsellor").order_by("pk"))
        if not slots:
            return None
        if self.rng.random() < free_bias:
            free = set(selectors.slots_free_for_staff(start=self.now()).values_list("pk", flat=True))
            candidates = [s for s in slots if s.pk in free]
            if fits is not None:
                candidates = [
                    s
                    for s in candidates
                    if s.duration >= fits.session_type.duration and fits.mode in s.counsellor.modes
                ]
            if candidates:
                return self.rng.choice(candidates)
        return self.rng.choice(slots)

    def staff_client(self, user: User | None = None) -> Client:
        # A fresh sign-in each time: staff sessions end after idle minutes, and the clock moves.
        staff = FlushingClient(self)
        sign_in_with_second_factor(staff, user or self.admin)
        return staff

    def manage_token(self, booking: Booking) -> str:
        if booking.pk not in self.manage:
            self.manage[booking.pk] = token_create(
                booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=365)
            )
        return self.manage[booking.pk]

    def new_links(self, prefix: str, since: int, to: str) -> list[str]:
        """Raw tokens of links starting with `prefix` in emails to `to` sent since `since`."""
        self.flush()
        found = []
        for message in mail.outbox[since:]:
            if message.to == [to]:
                found += re.findall(rf"http://testserver{re.escape(prefix)}([^/\s\"<]+)/", message.body)
        return found

    # --- The walk ---

    def flush(self) -> None:
        """Run the work queued for after commit (emails, refunds, waitlist offers), as a
        commit would: in order, with what that work queues in turn. Call it between service
        calls, never inside a transaction."""
        while self.committed < len(connection.run_on_commit):
            _savepoints, work, _robust = connection.run_on_commit[self.committed]
            self.committed += 1
            work()

    def run(self, steps: int) -> None:
        ops = list(OPERATIONS)
        weights = [OPERATIONS[op] for op in ops]
        n = len(self.steps)  # steps taken so far: a walk may go on after a first run
        end = n + steps
        while n < end:
            op = self.rng.choices(ops, weights)[0]
            if self.step(n + 1, op):
                n += 1

    def taken(self) -> Counter:
        """How many times the walk took each (from, to) transition."""
        rows = BookingEvent.objects.filter(action="transition").values_list("from_status", "to_status")
        return Counter(rows.order_by())

    def say(self, text: str) -> None:
        """What the step is doing, in the step list (said before doing it, in case it fails)."""
        self.steps[-1] = f"{self.steps[-1].split('.', 1)[0]}. {text}"
        self.said = True

    def step(self, n: int, op: Callable[[World], str | None]) -> bool:
        """Take one step; False if `op` found nothing to do (no step is counted then)."""
        before = _booking_rows()
        for pk, row in before.items():
            self.counsellors_of.setdefault(pk, set()).add(row[3])
            self.emails_of.setdefault(pk, set()).add(row[6])
        self.steps.append(f"{n:3}. {op.__name__}")  # replaced by the operation's own words
        refused: BookingError | None = None
        self.composite = self.said = self.page_refused = False
        try:
            said = op(self)
            self.flush()
        except BookingError as exc:
            refused = exc
            said = None
        except IntegrityError as exc:
            self.fail(f"an IntegrityError leaked out: {exc}")
        except WalkFailure:
            raise
        except Exception as exc:
            self.fail(f"{type(exc).__name__} raised: {exc}")
        if said is None and refused is None and not self.said:
            self.steps.pop()
            return False
        if said is not None:
            self.say(said)
        if refused is not None:
            self.flush()  # what committed before the refusal (a failed payment attempt, say)
            self.steps[-1] += f"  -> refused ({type(refused).__name__}: {refused.message})"
            self.outcomes[f"{op.__name__}:refused"] += 1
            after = _booking_rows()
            if after != before and not self.composite:
                changed = sorted(k for k in after.keys() | before.keys() if after.get(k) != before.get(k))
                self.fail(f"refused, but bookings changed: {[self.b(pk) for pk in changed]}")
        else:
            self.outcomes[op.__name__] += 1
            if self.page_refused and not self.composite and _booking_rows() != before:
                self.fail("a page refused, but bookings changed")
        if self.over_asked:
            self.fail(f"Razorpay was asked to refund more than it holds: {self.over_asked}")
        self.check()
        return True

    def fail(self, message: str) -> None:
        raise WalkFailure(
            f"\nseed {self.seed}, step {len(self.steps)}: {message}\n"
            f"rerun: WALK_SEEDS={self.seed} WALK_STEPS={len(self.steps)} "
            "pytest bookings/tests/test_lifecycle_walk.py\nsteps:\n" + "\n".join(self.steps)
        )

    # --- The invariants ---

    def check(self) -> None:
        now = self.now()
        bookings = {b.pk: b for b in Booking.objects.select_related("slot")}
        types = {t.pk: t for t in SessionType.objects.all()}
        events: dict[int, list[BookingEvent]] = {}
        for event in BookingEvent.objects.order_by("pk"):
            events.setdefault(event.booking_id, []).append(event)
        payments: dict[int, list[Payment]] = {}
        for payment in Payment.objects.order_by("pk"):
            payments.setdefault(payment.booking_id, []).append(payment)
        slots = {s.pk: s for s in Slot.objects.select_related("counsellor__user")}
        holders: dict[int, list[int]] = {}
        active_emails: Counter[str] = Counter()

        if len({b.ack_id for b in bookings.values()}) != len(bookings):
            self.fail("two bookings share an acknowledgement ID")
        for booking in bookings.values():
            name = self.b(booking)
            if not re.fullmatch(ACK_REGEX, booking.ack_id):
                self.fail(f"{name}'s acknowledgement ID {booking.ack_id} is not of the form MS-XXXXXX")
            self.counsellors_of.setdefault(booking.pk, set()).add(booking.counsellor_id)
            self.emails_of.setdefault(booking.pk, set()).add(booking.email)
            self._check_history(booking, events.get(booking.pk, []))
            if booking.status in SLOTTED_STATUSES and booking.slot_id is None:
                self.fail(f"{name} is {booking.status} without a slot")
            if booking.slot_id is not None and booking.counsellor_id != booking.slot.counsellor_id:
                self.fail(f"{name}'s counsellor is not the counsellor of its slot {self.s(booking.slot_id)}")
            if booking.status in SLOT_HOLDING_STATUSES and booking.slot_id is not None:
                holders.setdefault(booking.slot_id, []).append(booking.pk)
            if booking.status in ACTIVE_STATUSES:
                active_emails[booking.email] += 1
                # A way of meeting stays offered while open bookings are held that way.
                if booking.mode not in types[booking.session_type_id].modes:
                    self.fail(
                        f"{name} is {booking.status}, held {booking.mode}, which its session type no longer offers"
                    )
            if booking.status in SLOTTED_STATUSES and booking.slot.duration < types[booking.session_type_id].duration:
                self.fail(f"{name}'s slot {self.s(booking.slot_id)} is shorter than its session")
            if booking.status in (Status.APPROVED, Status.PAYMENT_PENDING):
                if booking.approved_at is None or booking.payment_due_at is None:
                    self.fail(f"{name} is {booking.status} without approval and payment times")
                latest = booking.slot.start - timedelta(hours=settings.PAYMENT_DEADLINE_BEFORE_SESSION_HOURS)
                if booking.payment_due_at > latest:
                    self.fail(f"{name} may be paid until {booking.payment_due_at}, after {latest}")
            self._check_money(booking, payments.get(booking.pk, []))

        for slot_id, held_by in holders.items():
            if len(held_by) > 1:
                self.fail(f"slot {self.s(slot_id)} is held by {[self.b(pk) for pk in held_by]}")
        for email, count in active_emails.items():
            if count > 1:
                self.fail(f"{email} has {count} active bookings")

        self._check_slots(slots, holders, now)
        self._check_emails()
        self._check_offers(bookings)

    def _check_history(self, booking: Booking, events: list[BookingEvent]) -> None:
        name = self.b(booking)
        if not events or events[0].action != "created":
            self.fail(f"{name}'s history does not start with its creation")
        first = events[0]
        if (first.actor, first.to_status) not in {
            (Actor.CLIENT, Status.DRAFT),
            (Actor.STAFF, Status.PENDING),
            (Actor.STAFF, Status.APPROVED),
        }:
            self.fail(f"{name} was created {first.to_status} by {first.actor}")
        status, moves = first.to_status, 0
        last_at = first.created_at
        for event in events[1:]:
            if event.created_at < last_at:
                self.fail(f"{name}'s history goes back in time at event {event.pk}")
            last_at = event.created_at
            if event.action == "created":
                self.fail(f"{name} was created twice")
            if event.actor == Actor.STAFF and event.actor_user_id is None:
                self.fail(f"{name}'s {event.action} event by staff does not say who")
            if event.action == "transition":
                allowed = TRANSITIONS.get((event.from_status, event.to_status), frozenset())
                if event.from_status != status or event.actor not in allowed:
                    self.fail(
                        f"{name}'s history has {event.from_status} -> {event.to_status} by {event.actor} "
                        f"while it was {status}"
                    )
                status = event.to_status
                moves += 1
            else:
                if event.from_status != status or event.to_status != status:
                    self.fail(f"{name}'s {event.action} event says {event.from_status}, while it was {status}")
                if event.action == services.RESCHEDULED:
                    moves += 1
        if status != booking.status:
            self.fail(f"{name} is {booking.status}, but its history ends at {status}")
        if booking.version != 1 + moves:
            self.fail(f"{name} is at version {booking.version} after {moves} recorded changes")

    def _check_money(self, booking: Booking, payments: list[Payment]) -> None:
        name = self.b(booking)
        confirmed = [p for p in payments if p.status == Payment.State.CONFIRMED]
        for payment in payments:
            label = f"{name}'s payment {self.p(payment)}"
            captured = services.payment_captured_amount(payment)
            at_razorpay = self.razorpay.payments.get(payment.provider_payment_id)
            if at_razorpay is not None and payment.refunded_amount != at_razorpay["amount_refunded"]:
                self.fail(
                    f"{label}: we count {payment.refunded_amount} given back, "
                    f"Razorpay has given back {at_razorpay['amount_refunded']}"
                )
            if not 0 <= payment.refunded_earlier <= payment.refunded_amount <= captured:
                self.fail(
                    f"{label} refunded {payment.refunded_amount} (earlier {payment.refunded_earlier}) of {captured}"
                )
            if payment.status == Payment.State.REFUNDED and payment.refunded_amount != captured:
                self.fail(f"{label} is refunded, but only {payment.refunded_amount} of {captured}")
            if payment.refunded_amount and not payment.provider_payment_id:
                self.fail(f"{label} was refunded without money arriving")
            # Money that confirmed nothing is held for staff or on its way back.
            held = payment.provider_payment_id and payment.confirmed_at is None
            if held and not (payment.needs_attention or payment.refund_status):
                self.fail(f"{label}: money arrived, confirmed nothing, and nobody was told")
            if payment.confirmed_at is not None and booking.status not in (
                Status.CONFIRMED,
                Status.COMPLETED,
                Status.NO_SHOW,
                Status.CANCELLED,
            ):
                self.fail(f"{label} confirmed the booking, which is {booking.status}")
            if (
                booking.status == Status.CANCELLED
                and payment.provider_payment_id
                and payment.refunded_amount < services.payment_captured_amount(payment)
                and not payment.refund_status
            ):
                self.fail(f"{label}: the booking is cancelled and its money is kept")
        if booking.status in (Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW):
            paid = [p for p in payments if p.confirmed_at is not None]
            # (Staff may give some or all of it back from the dashboard: a goodwill refund.)
            if len(paid) != 1:
                self.fail(f"{name} is {booking.status} with {len(paid)} payments that confirmed it")
            if (paid[0].captured_amount, paid[0].currency) != (booking.amount, booking.currency):
                self.fail(f"{name} is {booking.status}, paid {paid[0].captured_amount} of {booking.amount}")
        elif confirmed and booking.status != Status.CANCELLED:
            self.fail(f"{name} is {booking.status} with a confirmed payment")
        if booking.status == Status.PAYMENT_PENDING and not any(p.status == Payment.State.PENDING for p in payments):
            self.fail(f"{name} is waiting for a payment, but none is open or held")

    def _check_slots(self, slots: dict[int, Slot], holders: dict[int, list[int]], now: datetime) -> None:
        blocked = list(BlockedPeriod.objects.all())
        by_counsellor: dict[int, list[Slot]] = {}
        for slot in slots.values():
            by_counsellor.setdefault(slot.counsellor_id, []).append(slot)
        for own in by_counsellor.values():
            own.sort(key=lambda s: s.start)
            for a, c in itertools.pairwise(own):
                if c.start < a.end:
                    self.fail(f"slots {self.s(a)} and {self.s(c)} of one counsellor overlap")

        def is_blocked(slot: Slot) -> bool:
            return any(
                p.counsellor_id == slot.counsellor_id and p.start < slot.end and p.end > slot.start for p in blocked
            )

        # The staff view: every slot from now on that nobody holds and no leave covers.
        free = set(selectors.slots_free_for_staff(start=now).values_list("pk", flat=True))
        expected = {
            pk
            for pk, slot in slots.items()
            if slot.start >= now
            and pk not in holders
            and not is_blocked(slot)
            and selectors.counsellor_at_work(slot.counsellor)
        }
        if free != expected:
            self.fail(
                "the staff's free slots are "
                f"{sorted(self.s(pk) for pk in free)}, expected {sorted(self.s(pk) for pk in expected)}"
            )
        # The wizard's and the API's view, per session type: the slots a client may choose are
        # those free ones in the booking window, long enough, with a way of meeting in common.
        earliest = now + timedelta(hours=settings.BOOKING_MIN_NOTICE_HOURS)
        latest = now + timedelta(days=settings.BOOKING_HORIZON_DAYS)
        for session_type in self.session_types():
            listed = set(selectors.slots_free(session_type=session_type).values_list("pk", flat=True))
            expected = {
                pk
                for pk in free
                if earliest <= slots[pk].start < latest
                and slots[pk].duration >= session_type.duration
                and slots[pk].counsellor.is_active
                and set(session_type.modes) & set(slots[pk].counsellor.modes)
            }
            if listed != expected:
                self.fail(
                    f"the wizard offers {sorted(self.s(pk) for pk in listed)} for {session_type.slug}, "
                    f"expected {sorted(self.s(pk) for pk in expected)}"
                )
            # And submitting one of them is accepted, and any other refused (for a sample of
            # slots: the check costs a query each).
            for pk in self.rng.sample(sorted(slots), min(1, len(slots))):
                bookable = services.slot_is_bookable(slot=slots[pk], session_type=session_type, now=now) is None
                if bookable != (pk in listed) and (
                    pk in listed or set(session_type.modes) & set(slots[pk].counsellor.modes)
                ):
                    self.fail(
                        f"slot {self.s(pk)} for {session_type.slug}: the wizard lists it: {pk in listed}, "
                        f"submitting it would be accepted: {bookable}"
                    )

    def _check_offers(self, bookings: dict[int, Booking]) -> None:
        """A freed time is offered only to a waiting client it suits, while clients may book it."""
        offers = list(
            WaitlistOffer.objects.filter(pk__gt=self.offers_seen)
            .select_related("slot__counsellor", "entry__session_type")
            .order_by("pk")
        )
        if not offers:
            return
        bookable = set(selectors.slots_free().values_list("pk", flat=True))
        busy = {b.email for b in bookings.values() if b.status in ACTIVE_STATUSES}
        for offer in offers:
            self.offers_seen = offer.pk
            entry, slot = offer.entry, offer.slot
            suits = (
                slot.pk in bookable
                and entry.verified_at is not None
                and entry.email not in busy
                and entry.date_from <= timezone.localdate(slot.start) <= entry.date_to
                and entry.session_type.duration <= slot.duration
                and entry.mode in entry.session_type.modes
                and entry.mode in slot.counsellor.modes
                and entry.counsellor_id in (None, slot.counsellor_id)
            )
            if not suits:
                self.fail(f"{self.s(slot)} was offered to waitlist entry {entry.pk}, which it does not suit")

    def _check_emails(self) -> None:
        for message in mail.outbox[self.mail_seen :]:
            parts = [message.subject, message.body]
            parts += [content for content, _type in getattr(message, "alternatives", [])]
            parts += [str(a[1]) for a in message.attachments if isinstance(a, tuple)]
            if MARK.lower() in "\n".join(parts).lower():
                self.fail(f"an email to {message.to} ({message.subject!r}) quotes what a client or staff typed")
            if len(message.to) != 1 or message.cc or message.bcc:
                self.fail(f"an email ({message.subject!r}) went to more than one recipient")
        self.mail_seen = len(mail.outbox)
        counsellor_by_email = {c.user.email: c.pk for c in self.counsellors}
        new = list(OutboundEmail.objects.filter(pk__gt=self.email_seen).order_by("pk"))
        booking_by_ack = dict(Booking.objects.values_list("ack_id", "pk")) if new else {}
        for email in new:
            # Whoever an email goes to, the bookings it names are theirs: a client's own, or a
            # counsellor's client's (an administrator's alerts name any).
            for ack_id in set(re.findall(r"MS-[A-Z0-9]{6}", email.subject + email.body_text)):
                pk = booking_by_ack.get(ack_id)
                if pk is None:
                    continue
                counsellor = counsellor_by_email.get(email.to)
                if email.to in CLIENTS and email.to not in self.emails_of.get(pk, ()):
                    self.fail(f"a {email.kind} email to {email.to} names {self.b(pk)}, another client's booking")
                if counsellor and counsellor not in self.counsellors_of.get(pk, ()):
                    self.fail(f"a {email.kind} email to a counsellor names {self.b(pk)}, another's client")
            text = "\n".join([email.subject, email.body_text, email.body_html, email.ics])
            if MARK.lower() in text.lower():
                self.fail(f"the outbox's {email.kind} email quotes what a client or staff typed")
            # A counsellor hears only of their own clients' sessions (or of one handed away).
            counsellor = counsellor_by_email.get(email.to)
            if counsellor and email.booking_id and counsellor not in self.counsellors_of.get(email.booking_id, ()):
                self.fail(f"a {email.kind} email about {self.b(email.booking_id)} went to another counsellor")
            self.email_seen = email.pk


def _booking_rows() -> dict[int, tuple[Any, ...]]:
    return {
        row[0]: row[1:]
        for row in Booking.objects.values_list(
            "pk", "status", "version", "slot_id", "counsellor_id", "payment_due_at", "amount", "email"
        )
    }


# --- The operations --------------------------------------------------------------------
# Each chooses what to do with the walk's generator, does it through the real code, and
# returns a line for the step list. A BookingError raised out of one is a clean refusal.


def op_submit(w: World) -> str | None:
    """A client sends the wizard's request (through the pages, now and then)."""
    email = w.rng.choice(CLIENTS)
    session_type = w.rng.choice(w.session_types())
    mode = w.rng.choice(session_type.modes)
    slot = w.pick_slot() if w.rng.random() < 0.75 else None
    concerns, times = w.marker("concerns"), w.marker("times")
    since = len(mail.outbox)
    key = f"walk-{w.seed}-{len(w.steps)}"
    said = f"submit {email} {session_type.slug} {mode} slot {w.s(slot)}"
    w.say(said)
    booking, _created = services.booking_submit(
        submission_key=key,
        session_type=session_type,
        mode=mode,
        counsellor=None,
        preferred_slot=slot,
        preferred_times="" if slot else times,
        client_name=f"Client {email[6:8]}",
        email=email,
        phone="",
        age_confirmation="adult",
        concerns=concerns,
    )
    for raw in w.new_links("/verify/", since, email):
        w.tokens[(booking.pk, "verify")] = raw
    return f"{said} = {w.b(booking)}"


def op_verify(w: World) -> str | None:
    booking = w.pick_booking((Status.DRAFT,), stray=0.1)
    if booking is None or (booking.pk, "verify") not in w.tokens:
        return None
    token = w.tokens[(booking.pk, "verify")]
    w.say(f"verify {w.b(booking)} ({booking.status})")
    if w.rng.random() < 0.5:
        response = w.browser.post(reverse("bookings:verify", args=[token]))
        _expect(w, response, {200, 404, 409, 410}, "verify page")
        return f"verify {w.b(booking)} (page: {response.status_code})"
    services.booking_verify(token=token)
    return f"verify {w.b(booking)}"


def op_staff_create(w: World) -> str | None:
    status = w.rng.choice([Status.PENDING, Status.APPROVED])
    session_type = w.rng.choice(w.session_types())
    mode = w.rng.choice(session_type.modes)
    slot = w.pick_slot() if status == Status.APPROVED or w.rng.random() < 0.3 else None
    email = w.rng.choice(CLIENTS)
    w.say(f"staff book {email} {status} {session_type.slug} {mode} slot {w.s(slot)}")
    booking = services.booking_create_by_staff(
        user=w.admin,
        status=status,
        session_type=session_type,
        mode=mode,
        client_name=f"Phoned {email[6:8]}",
        email=email,
        phone="",
        slot=slot,
        consent=w.rng.choice(ConsentGiven.values),
        policy_version=settings.POLICY_VERSION,
    )
    return f"staff book {email} {status} {session_type.slug} {mode} slot {w.s(slot)} = {w.b(booking)}"


def op_approve(w: World) -> str | None:
    booking = w.pick_booking((Status.PENDING,))
    slot = w.pick_slot(fits=booking)
    if booking is None or slot is None:
        return None
    said = f"approve {w.b(booking)} ({booking.status}) into {w.s(slot)}"
    w.say(said)
    if w.rng.random() < 0.4:
        response = w.staff_client().post(
            reverse("staff:booking_approve", args=[booking.pk]),
            {"approve-slot": slot.pk, "approve-version": booking.version},
        )
        _expect(w, response, {302, 400, 409}, "approve page")
        return f"{said} (portal: {response.status_code})"
    services.booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=w.admin, expected_version=booking.version)
    return said


def op_reject(w: World) -> str | None:
    booking = w.pick_booking((Status.PENDING,), stray=0.3)
    if booking is None:
        return None
    reason = w.marker("rejected")
    said = f"reject {w.b(booking)} ({booking.status})"
    w.say(said)
    if w.rng.random() < 0.4:
        response = w.staff_client().post(
            reverse("staff:booking_reject", args=[booking.pk]),
            {"reject-version": booking.version, "reject-reason": reason},
        )
        _expect(w, response, {302, 400, 409}, "reject page")
        return f"{said} (portal: {response.status_code})"
    services.booking_reject(booking_id=booking.pk, user=w.admin, reason=reason)
    return said


def op_pay(w: World) -> str | None:
    """The client presses Pay (or Pay again, from a payment in progress)."""
    booking = w.pick_booking((Status.APPROVED, Status.PAYMENT_PENDING))
    if booking is None:
        return None
    said = f"pay {w.b(booking)} ({booking.status})"
    w.say(said)
    if w.rng.random() < 0.5:
        response = w.browser.post(reverse("bookings:pay", args=[w.manage_token(booking)]))
        _expect(w, response, {302, 404, 410}, "pay")
        said += f" (page: {response.status_code})"
    elif booking.status == Status.PAYMENT_PENDING:
        # Two changes: the open attempt is closed (the booking payable again), then a new one
        # is started, which the provider may refuse.
        w.composite = True
        services.payment_restart(booking_id=booking.pk)
    else:
        services.payment_start(booking_id=booking.pk)
    started = (
        Payment.objects.filter(booking=booking, status=Payment.State.PENDING, provider_payment_id="")
        .exclude(provider_order_id="")
        .order_by("pk")
        .last()
    )
    if started is not None and w.rng.random() < 0.5:
        said += f", and pays {w.p(started)} at once, told by {_money_arrives(w, started, started.amount)}"
    return said


def _webhook(w: World, kind: str, *, replay: tuple[bytes, str] | None = None, **entities: Any) -> int:
    if replay is None:
        body = json.dumps(
            {
                "entity": "event",
                "event": kind,
                "contains": list(entities),
                "payload": {name: {"entity": entity} for name, entity in entities.items()},
            }
        ).encode()
        event_id = f"evt_walk_{len(w.webhooks) + 1}"
        w.webhooks.append((body, event_id))
    else:
        body, event_id = replay
    response = w.browser.post(
        reverse("bookings:razorpay_webhook"),
        data=body,
        content_type="application/json",
        headers={"X-Razorpay-Event-Id": event_id, "X-Razorpay-Signature": _sign(body.decode(), WEBHOOK_SECRET)},
    )
    _expect(w, response, {200}, f"webhook {kind}")
    return response.status_code


def op_client_pays(w: World) -> str | None:
    """Money arrives for an order (the one in progress, mostly; else any, however late):
    told by a webhook, by the browser's return, by both, or by neither yet."""
    orders = list(Payment.objects.exclude(provider_order_id="").order_by("pk"))
    if not orders:
        return None
    pending = [p for p in orders if p.status == Payment.State.PENDING and not p.provider_payment_id]
    payment = w.rng.choice(pending) if pending and w.rng.random() < 0.9 else w.rng.choice(orders)
    amount = payment.amount if w.rng.random() < 0.85 else payment.amount + w.rng.choice([-100, 5000])
    w.say(f"client pays {amount} for {w.p(payment)} of {w.b(payment.booking_id)} ({payment.status})")
    how = _money_arrives(w, payment, amount)
    return f"client pays {amount} for {w.p(payment)} of {w.b(payment.booking_id)} ({payment.status}), told by {how}"


def _money_arrives(w: World, payment: Payment, amount: int) -> str:
    """Razorpay captures `amount` for `payment`'s order and says so: how, it returns."""
    paid = w.razorpay.pay(payment.provider_order_id, amount)
    how = w.rng.choice(["webhook", "webhook", "return", "both", "order.paid", "nobody yet"])
    if how in ("webhook", "both"):
        _webhook(w, "payment.captured", payment=paid)
    if how == "order.paid":
        _webhook(w, "order.paid", payment=paid, order=w.razorpay.orders[payment.provider_order_id])
    if how in ("return", "both"):
        booking = Booking.objects.get(pk=payment.booking_id)
        response = w.browser.post(
            reverse("bookings:pay_return", args=[w.manage_token(booking), payment.pk]),
            {
                "razorpay_order_id": payment.provider_order_id,
                "razorpay_payment_id": paid["id"],
                "razorpay_signature": _sign(f"{payment.provider_order_id}|{paid['id']}", KEY_SECRET),
            },
        )
        _expect(w, response, {302, 404, 410}, "payment return")
    if how == "nobody yet":
        w.untold.append(paid)
    return how


def op_late_news(w: World) -> str | None:
    """A payment nobody was told of yet: its webhook arrives at last."""
    if not w.untold:
        return None
    paid = w.untold.pop(w.rng.randrange(len(w.untold)))
    w.say(f"Razorpay's webhook for {paid['id'][-4:]} arrives late")
    _webhook(w, "payment.captured", payment=paid)
    return None


def op_dashboard_refund(w: World) -> str | None:
    """Staff refund part or all of a payment from Razorpay's dashboard (a goodwill refund,
    say); its webhook tells us."""
    # Of payments we have heard of, and of ones whose news has not come yet: news of their
    # refunds is kept until it does.
    captured = [p for p in w.razorpay.payments.values() if p["captured"] and p["amount_refunded"] < p["amount"]]
    if not captured:
        return None
    paid = w.rng.choice(captured)
    rest = paid["amount"] - paid["amount_refunded"]
    amount = w.rng.choice([rest, rest // 2, min(rest, 10000)])
    w.say(f"dashboard refund of {amount} of {paid['id'][-4:]} ({rest} left)")
    refund = w.razorpay.dashboard_refund(paid, amount)
    if w.rng.random() < 0.3:
        # Razorpay's news that it took the refund on, before (or, replayed, after) the news
        # that it went through.
        _webhook(w, "refund.created", refund={**refund, "status": "pending"})
    _webhook(w, "refund.processed", refund=refund)
    return None


def op_dashboard_news(w: World) -> str | None:
    """The webhook of a refund staff made from the dashboard (and recorded) arrives."""
    if not w.later:
        return None
    refund = w.later.pop(0)
    w.say(f"the webhook of dashboard refund {refund['id'][-4:]} arrives")
    _webhook(w, "refund.processed", refund=refund)
    return None


def op_payment_fails(w: World) -> str | None:
    open_ = list(Payment.objects.filter(status=Payment.State.PENDING, provider_payment_id="").order_by("pk"))
    if not open_:
        return None
    payment = w.rng.choice(open_)
    failed = w.razorpay.pay(payment.provider_order_id, payment.amount, status="failed")
    _webhook(w, "payment.failed", payment=failed)
    return f"payment {w.p(payment)} of {w.b(payment.booking_id)} fails (webhook)"


def op_webhook_replay(w: World) -> str | None:
    if not w.webhooks:
        return None
    # Half the time news of a refund, whose repeats are the hardest to recognise.
    refunds = [n for n, (body, _id) in enumerate(w.webhooks) if b'"event": "refund.' in body]
    n = w.rng.choice(refunds) if refunds and w.rng.random() < 0.5 else w.rng.randrange(len(w.webhooks))
    body, event_id = w.webhooks[n]
    if w.rng.random() < 0.5:
        # The same news by another event (order.paid after payment.captured, say).
        event_id += "-again"
    _webhook(w, "replay", replay=(body, event_id))
    return f"webhook {n + 1} sent again{' as another event' if event_id.endswith('again') else ''}"


def op_refund_news(w: World) -> str | None:
    """Razorpay settles a refund that was pending, and says so by webhook."""
    pending = [r for r in w.razorpay.refunds.values() if r["status"] == "pending"]
    if not pending:
        return None
    refund = w.rng.choice(pending)
    if w.rng.random() < 0.2:
        # Its news that Razorpay took it on (which may also come after the outcome's, replayed).
        _webhook(w, "refund.created", refund=refund)
        return f"refund {refund['id'][-4:]} created (webhook)"
    refund["status"] = "processed" if w.rng.random() < 0.75 else "failed"
    if refund["status"] == "failed":
        w.razorpay.payments[refund["payment_id"]]["amount_refunded"] -= refund["amount"]
    # A failure is always told (a processed refund we already count may go unreported): so
    # that what we count as given back is always what Razorpay has given back (see check).
    told = refund["status"] == "failed" or w.rng.random() < 0.7
    if told:
        _webhook(w, f"refund.{refund['status']}", refund=refund)
    return f"refund {refund['id'][-4:]} {refund['status']}" + (" (webhook)" if told else " (no webhook)")


def op_client_cancel(w: World) -> str | None:
    """From the booking page: ask for the link, then confirm it (or the service directly)."""
    booking = w.pick_booking(ACTIVE_STATUSES)
    if booking is None:
        return None
    said = f"client cancels {w.b(booking)} ({booking.status})"
    w.say(said)
    if w.rng.random() < 0.5:
        since = len(mail.outbox)
        response = w.browser.post(reverse("bookings:booking_cancel_request", args=[w.manage_token(booking)]))
        _expect(w, response, {303, 404, 410, 429}, "cancel request")
        links = w.new_links("/cancel/", since, booking.email)
        if not links:
            return f"{said} (page: {response.status_code}, no link sent)"
        response = w.browser.post(reverse("bookings:cancel_confirm", args=[links[-1]]))
        _expect(w, response, {200, 404, 409, 410}, "cancel confirm")
        return f"{said} (pages: {response.status_code})"
    services.booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason=w.marker("client-cancel"))
    return said


def op_staff_cancel(w: World) -> str | None:
    booking = w.pick_booking(ACTIVE_STATUSES)
    if booking is None:
        return None
    reason, asked = w.marker("staff-cancel"), w.rng.random() < 0.5
    said = f"staff cancel {w.b(booking)} ({booking.status}){' at the client asking' if asked else ''}"
    w.say(said)
    if w.rng.random() < 0.4:
        data = {"cancel-version": booking.version, "cancel-reason": reason}
        if asked:
            data["cancel-client_asked"] = "on"
        response = w.staff_client().post(reverse("staff:booking_cancel", args=[booking.pk]), data)
        _expect(w, response, {302, 400, 409}, "cancel page")
        return f"{said} (portal: {response.status_code})"
    services.booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=w.admin, reason=reason, client_asked=asked)
    return said


def op_staff_move(w: World) -> str | None:
    """Staff move a session to another time, perhaps another counsellor's (a handover)."""
    booking = w.pick_booking((Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED))
    slot = w.pick_slot(fits=booking)
    if booking is None or slot is None:
        return None
    said = f"staff move {w.b(booking)} ({booking.status}) from {w.s(booking.slot_id)} to {w.s(slot)}"
    w.say(said)
    roll = w.rng.random()
    if roll < 0.3:
        response = w.staff_client().post(
            reverse("staff:booking_move", args=[booking.pk]), {"move-slot": slot.pk, "move-version": booking.version}
        )
        _expect(w, response, {302, 400, 409}, "move page")
        return f"{said} (portal: {response.status_code})"
    if roll < 0.4:
        services.booking_move_to_start(
            booking_id=booking.pk, start=slot.start, user=w.admin, expected_version=booking.version
        )
        return f"{said} (calendar drop)"
    services.booking_reschedule(booking_id=booking.pk, slot_id=slot.pk, actor=Actor.STAFF, user=w.admin)
    return said


def op_client_move(w: World) -> str | None:
    """The client asks to move to another time, and confirms from the emailed link."""
    booking = w.pick_booking((Status.APPROVED, Status.CONFIRMED))
    if booking is None or booking.slot_id is None:
        return None
    own = list(Slot.objects.filter(counsellor_id=booking.counsellor_id).order_by("pk"))
    slot = w.rng.choice(own) if own and w.rng.random() < 0.8 else w.pick_slot()
    said = f"client moves {w.b(booking)} ({booking.status}) from {w.s(booking.slot_id)} to {w.s(slot)}"
    w.say(said)
    since = len(mail.outbox)
    services.booking_reschedule_request(booking=booking, slot=slot)
    links = w.new_links("/reschedule/", since, booking.email)
    if w.rng.random() < 0.2:
        return f"{said}: asked, not confirmed"
    if w.rng.random() < 0.5:
        response = w.browser.post(reverse("bookings:reschedule_confirm", args=[links[-1]]))
        _expect(w, response, {200, 302, 303, 404, 409, 410}, "move confirm")
        return f"{said} (page: {response.status_code})"
    services.booking_reschedule_confirm(token=links[-1])
    return said


def op_outcome(w: World) -> str | None:
    ended = list(Booking.objects.filter(status=Status.CONFIRMED, slot__end__lte=w.now()).order_by("pk"))
    booking = w.rng.choice(ended) if ended and w.rng.random() < 0.8 else w.pick_booking((Status.CONFIRMED,))
    if booking is None:
        return None
    no_show = w.rng.random() < 0.25
    said = f"{'no-show' if no_show else 'complete'} {w.b(booking)} ({booking.status})"
    w.say(said)
    if w.rng.random() < 0.4:
        if no_show:
            url, data = "staff:booking_no_show", {"no_show-version": booking.version, "no_show-confirm": "on"}
        else:
            url, data = "staff:booking_complete", {"complete-version": booking.version}
        response = w.staff_client().post(reverse(url, args=[booking.pk]), data)
        _expect(w, response, {302, 400, 409}, "outcome page")
        return f"{said} (portal: {response.status_code})"
    if no_show:
        services.booking_no_show(booking_id=booking.pk, user=w.admin)
    else:
        services.booking_complete(booking_id=booking.pk, user=w.admin)
    return said


def op_time_passes(w: World) -> str | None:
    """The clock moves on and the cron jobs run, as their commands."""
    delta = w.rng.choice(
        [timedelta(minutes=20), timedelta(hours=1), timedelta(hours=5), timedelta(hours=13), timedelta(days=1)]
    )
    w.clock.tick(delta)
    out = StringIO()
    for command in ("expire_bookings", "send_reminders", "expire_waitlist", "purge_drafts"):
        call_command(command, stdout=out)
    if timezone.localtime(w.now()).hour < 10:
        call_command("send_daily_summaries", stdout=out)
    # Nothing is left waiting for a payment after its time ran out.
    overdue = Booking.objects.filter(
        status__in=(Status.APPROVED, Status.PAYMENT_PENDING), payment_due_at__lte=w.now()
    ).values_list("pk", flat=True)
    if overdue:
        w.fail(f"after the sweep, {[w.b(pk) for pk in overdue]} are still waiting for payment past their time")
    # Times keep being published, as counsellors do: a couple ahead for each, at least.
    for counsellor in w.counsellors:
        if Slot.objects.filter(counsellor=counsellor, start__gt=w.now() + timedelta(days=2)).count() < 2:
            w.publish(counsellor, days=w.rng.randint(2, 6))
    return f"time passes: {delta} (now {timezone.localtime(w.now()):%a %d %b %H:%M})"


def op_settle(w: World) -> str | None:
    """An administrator deals with a payment's alert."""
    alerts = list(Payment.objects.exclude(needs_attention="").order_by("pk"))
    if not alerts:
        return None
    payment = w.rng.choice(alerts)
    how = w.rng.choice(["refund", "refunded", "dealt_with"])
    said = f"settle {w.p(payment)} of {w.b(payment.booking_id)}: {how}"
    w.say(said)
    reference = ""
    if how == "refunded" and how in services.payment_settle_choices(payment):
        # What they record, they did: the rest refunded from the dashboard, its webhook
        # perhaps arriving too.
        paid = w.razorpay.payments[payment.provider_payment_id]
        rest = paid["amount"] - paid["amount_refunded"]
        if rest > 0:
            refund = w.razorpay.dashboard_refund(paid, rest)
            reference = refund["id"]
            said += f" (dashboard refund {reference[-4:]} of {rest})"
            if w.rng.random() < 0.5:
                w.later.append(refund)
    services.payment_settle(payment_id=payment.pk, user=w.admin, how=how, note=w.marker("note"), reference=reference)
    return said


def op_publish(w: World) -> str | None:
    counsellor = w.rng.choice(w.counsellors)
    slot = w.publish(counsellor, days=w.rng.randint(1, 6))
    return f"publish for {counsellor.slug}: {w.s(slot) if slot else 'overlaps, refused'}"


def op_block(w: World) -> str | None:
    """Leave over one of a counsellor's slots (refused while bookings hold or ask for it)."""
    slot = w.pick_slot(free_bias=0.5)
    if slot is None:
        return None
    w.say(f"block {slot.counsellor.slug} over {w.s(slot)}")
    services.blocked_period_create(counsellor=slot.counsellor, start=slot.start, end=slot.end, reason=w.marker("leave"))
    return f"block {slot.counsellor.slug} over {w.s(slot)}"


def op_slot_delete(w: World) -> str | None:
    slot = w.pick_slot(free_bias=0.5)
    if slot is None:
        return None
    said = f"withdraw {w.s(slot)}"
    w.say(said)
    services.slot_delete(slot_id=slot.pk)
    return said


def op_waitlist(w: World) -> str | None:
    """A client joins the waitlist and confirms the address; a freed slot is then offered."""
    email = w.rng.choice(CLIENTS)
    session_type = w.rng.choice(w.session_types())
    mode = w.rng.choice(session_type.modes)
    counsellor = w.rng.choice([None, *w.counsellors])
    today = timezone.localdate(w.now())
    since = len(mail.outbox)
    w.say(f"waitlist {email} {session_type.slug} {mode} with {counsellor.slug if counsellor else 'anyone'}")
    entry = services.waitlist_join(
        client_name=f"Waiting {email[6:8]}",
        email=email,
        session_type=session_type,
        mode=mode,
        counsellor=counsellor,
        date_from=today,
        date_to=today + timedelta(days=w.rng.randint(1, 10)),
    )
    for raw in w.new_links("/waitlist/verify/", since, email):
        services.waitlist_verify(token=raw)
    return f"waitlist {email} {session_type.slug} {mode} with {counsellor.slug if counsellor else 'anyone'}: {entry.pk}"


def op_resend(w: World) -> str | None:
    booking = w.pick_booking(None)
    if booking is None:
        return None
    said = f"resend the last email of {w.b(booking)} ({booking.status})"
    w.say(said)
    services.booking_resend_last_email(booking_id=booking.pk, user=w.admin)
    return said


def op_submit_page(w: World) -> str | None:
    """A client goes through the booking wizard's pages, without JavaScript."""
    email = w.rng.choice(CLIENTS)
    session_type = w.rng.choice(w.session_types())
    mode = w.rng.choice(session_type.modes)
    slot = w.pick_slot() if w.rng.random() < 0.75 else None
    w.say(f"wizard {email} {session_type.slug} {mode} slot {w.s(slot)}")
    run = journey.start(w.browser)
    about = {"client_name": f"Client {email[6:8]}", "email": email, "phone": "", "age": "on"}
    session = journey.session_data(
        session_type=session_type, slot=slot, mode=mode, preferred_times="" if slot else w.marker("times")
    )
    for step, data in (("session", session), ("about", about), ("concerns", {"concerns": w.marker("concerns")})):
        response = w.browser.post(journey.url(run, step), data)
        _expect(w, response, {200, 303}, f"wizard {step}")
        if response.status_code == 200:
            return f"wizard {email} {session_type.slug} {mode} slot {w.s(slot)}: refused at {step}"
    since = len(mail.outbox)
    response = journey.submit(w.browser, run)
    _expect(w, response, {200, 303, 409, 429}, "wizard submit")
    links = w.new_links("/verify/", since, email)
    booking = Booking.objects.filter(email=email, status=Status.DRAFT).order_by("pk").last()
    if not links or booking is None:
        return f"wizard {email} {session_type.slug} {mode} slot {w.s(slot)}: not sent ({response.status_code})"
    w.tokens[(booking.pk, "verify")] = links[-1]
    return f"wizard {email} {session_type.slug} {mode} slot {w.s(slot)} = {w.b(booking)}"


def op_correct_email(w: World) -> str | None:
    """A client whose draft went to a mistyped address asks for the link again, to another."""
    booking = w.pick_booking((Status.DRAFT,), stray=0.1)
    if booking is None:
        return None
    email = w.rng.choice(CLIENTS)
    w.say(f"{w.b(booking)} ({booking.status}) asks for the link again, to {email}")
    since = len(mail.outbox)
    services.booking_resend_verification(booking=booking, email=email)
    for raw in w.new_links("/verify/", since, email):
        w.tokens[(booking.pk, "verify")] = raw
    return None


def op_erase(w: World) -> str | None:
    """A client asks for their data to be erased, and confirms from the emailed link."""
    booking = w.pick_booking(None)
    if booking is None or booking.anonymised_at is not None or booking.status == Status.DRAFT:
        return None
    w.say(f"erase {booking.email}, from {w.b(booking)} ({booking.status})")
    since = len(mail.outbox)
    services.privacy_request(booking=booking, purpose=LinkToken.Purpose.ERASE)
    links = w.new_links("/privacy/erase/", since, booking.email)
    services.privacy_erase(token=links[-1])
    return None


def op_counsellor_leaves(w: World) -> str | None:
    """An administrator deactivates a counsellor's account (their profile is hidden), or
    reactivates one and shows the profile again."""
    counsellor = w.rng.choice(w.counsellors)
    counsellor.refresh_from_db()
    user = counsellor.user
    if user.is_active:
        w.say(f"deactivate {counsellor.slug}")
        staff_deactivate(user=user, by=w.admin)
    else:
        w.say(f"reactivate {counsellor.slug}, profile shown")
        staff_reactivate(user=user, by=w.admin)
        counsellor.refresh_from_db()
        counsellor.is_active = True
        services.counsellor_save(counsellor=counsellor)
    return None


def op_look(w: World) -> str | None:
    """People look: a client at their booking page, staff at its details, the chatbot at its
    status and at the free times. Every page answers, and says what the database says."""
    booking = w.pick_booking(None)
    if booking is None:
        return None
    w.say(f"look at {w.b(booking)} ({booking.status}) and the free times")
    page = w.browser.get(reverse("bookings:booking_page", args=[w.manage_token(booking)]))
    _expect(w, page, {200, 404, 410}, "booking page")
    if page.status_code == 200 and escape(str(CLIENT_LABELS[booking.status])) not in page.content.decode():
        w.fail(f"{w.b(booking)}'s page does not say it is {CLIENT_LABELS[booking.status]}")
    detail = w.staff_client().get(reverse("staff:booking_detail", args=[booking.pk]))
    _expect(w, detail, {200}, "staff booking page")
    # A counsellor opens it: only their own client's (and their words) are theirs to see.
    counsellor = w.rng.choice(w.counsellors)
    counsellor.user.refresh_from_db()
    if counsellor.user.is_active:
        theirs = w.staff_client(counsellor.user).get(reverse("staff:booking_detail", args=[booking.pk]))
        own = booking.counsellor_id == counsellor.pk
        _expect(w, theirs, {200} if own else {404}, f"{counsellor.slug}'s view of the booking page")
        if not own and MARK.lower() in theirs.content.decode().lower():
            w.fail(f"{counsellor.slug} read another counsellor's client's words")
    status = w.browser.get(reverse("api:booking_status", args=[booking.ack_id]), headers=w.api)
    _expect(w, status, {200}, "API booking status")
    if status.json()["status"] != booking.status:
        w.fail(f"the API says {w.b(booking)} is {status.json()['status']}, not {booking.status}")
    today = timezone.localdate()
    last = today + timedelta(days=13)
    for session_type in [kind for kind in w.session_types() if kind.is_active]:
        answer = w.browser.get(
            reverse("api:availability"), {"session_type": session_type.slug, "limit": 100}, headers=w.api
        )
        _expect(w, answer, {200}, "API availability")
        offered = {slot["slot_id"] for slot in answer.json()["slots"]}
        # The wizard's time picker reads the free slots with SQL of its own: the same ones.
        for mode in session_type.modes:
            counsellor = w.rng.choice([None, *w.counsellors])
            free_slots = list(selectors.slots_free(session_type=session_type, mode=mode, counsellor=counsellor))
            days, shown, times = free_days_and_times(
                session_type=session_type, counsellor=counsellor, mode=mode, day=None
            )
            expected_days = sorted({timezone.localdate(slot.start) for slot in free_slots})
            on_shown = Counter(slot.start for slot in free_slots if timezone.localdate(slot.start) == shown)
            if days != expected_days or {t["start"]: t["count"] for t in times} != dict(on_shown):
                w.fail(
                    f"the time picker ({session_type.slug}, {mode}, {counsellor and counsellor.slug}) shows "
                    f"{days} and {[(t['start'], t['count']) for t in times]}, the free slots are {expected_days}"
                    f" and {sorted(on_shown.items())}"
                )
        free = {
            slot.pk
            for slot in selectors.slots_free(session_type=session_type)
            if timezone.localdate(slot.start) <= last
        }
        if offered != free:
            w.fail(
                f"the API offers {sorted(w.s(pk) for pk in offered)} for {session_type.slug}, "
                f"the wizard {sorted(w.s(pk) for pk in free)}"
            )
    return None


def op_session_type_edit(w: World) -> str | None:
    """An administrator edits a session type: its price, its length, whether it is offered,
    or a way of meeting (refused where bookings depend on it)."""
    session_type = w.rng.choice(w.session_types())
    change = w.rng.choice(["price", "length", "offered", "mode"])
    if change == "price":
        session_type.price = w.rng.choice([80000, 150000, 200000])
    elif change == "length":
        session_type.duration_minutes = w.rng.choice([30, 50, 80])
    elif change == "offered":
        session_type.is_active = not session_type.is_active
    else:
        flag = w.rng.choice(["offers_online", "offers_in_person"])
        setattr(session_type, flag, not getattr(session_type, flag))
        if not (session_type.offers_online or session_type.offers_in_person):
            return None
    w.say(
        f"edit {session_type.slug}: {change} -> {session_type.price} {session_type.duration_minutes}min "
        f"{'offered' if session_type.is_active else 'withdrawn'} {'/'.join(session_type.modes)}"
    )
    services.session_type_save(session_type=session_type)
    return None


def op_calendar(w: World) -> str | None:
    """Staff open the calendar: every session of theirs in its slot, once, as it stands."""
    counsellor = w.rng.choice([None, *w.counsellors])
    if counsellor is not None:
        counsellor.user.refresh_from_db()
        if not counsellor.user.is_active:
            return None
    w.say(f"{counsellor.slug if counsellor else 'an administrator'} opens the calendar")
    start, end = START - timedelta(days=1), START + timedelta(days=44)
    response = w.staff_client(counsellor.user if counsellor else None).get(
        reverse("staff:calendar_feed"), {"start": start.isoformat(), "end": end.isoformat()}
    )
    _expect(w, response, {200}, "calendar feed")
    shown = Counter()
    for event in response.json():
        if "url" not in event:
            continue  # free time, shaded
        booking = Booking.objects.select_related("slot").get(pk=int(event["url"].rstrip("/").split("/")[-1]))
        shown[booking.pk] += 1
        if event["start"] != booking.slot.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"):
            w.fail(f"the calendar shows {w.b(booking)} at {event['start']}, not at its slot {w.s(booking.slot)}")
        if event["extendedProps"]["status"] != Status(booking.status).label:
            w.fail(f"the calendar shows {w.b(booking)} as {event['extendedProps']['status']}, not {booking.status}")
    expected = Booking.objects.filter(
        slot__start__gte=start,
        slot__start__lt=end,
        status__in=(*SLOT_HOLDING_STATUSES, Status.CANCELLED),
    )
    if counsellor is not None:
        expected = expected.filter(counsellor=counsellor)
    if dict(shown) != dict.fromkeys(expected.values_list("pk", flat=True), 1):
        w.fail(
            f"the calendar shows {sorted((w.b(pk), n) for pk, n in shown.items())}, "
            f"expected {sorted(w.b(pk) for pk in expected.values_list('pk', flat=True))}"
        )
    return None


OPERATIONS: dict[Callable[[World], str | None], float] = {
    op_submit: 10,
    op_verify: 12,
    op_staff_create: 3,
    op_approve: 12,
    op_reject: 3,
    op_pay: 10,
    op_client_pays: 12,
    op_payment_fails: 2,
    op_webhook_replay: 2,
    op_refund_news: 3,
    op_client_cancel: 4,
    op_staff_cancel: 3,
    op_staff_move: 5,
    op_client_move: 3,
    op_outcome: 4,
    op_time_passes: 7,
    op_settle: 2,
    op_publish: 3,
    op_block: 1,
    op_slot_delete: 1,
    op_waitlist: 4,
    op_resend: 1,
    op_submit_page: 3,
    op_correct_email: 1,
    op_erase: 1,
    op_counsellor_leaves: 1,
    op_look: 2,
    op_session_type_edit: 2,
    op_late_news: 2,
    op_dashboard_refund: 2,
    op_dashboard_news: 1,
    op_calendar: 1,
}


def _expect(w: World, response: Any, codes: set[int], what: str) -> None:
    if response.status_code not in codes:
        w.fail(f"{what} answered {response.status_code}, expected one of {sorted(codes)}")
    if response.status_code in (400, 409):
        w.page_refused = True  # a page said no: then nothing may have changed
    if response.status_code in (301, 302, 303) and response["Location"].startswith("/accounts/"):
        w.fail(f"{what} sent the browser to sign in: {response['Location']}")


@pytest.fixture
def razorpay_settings(settings):
    settings.PAYMENT_PROVIDER = "razorpay"
    settings.RAZORPAY_KEY_ID = KEY_ID
    settings.RAZORPAY_KEY_SECRET = KEY_SECRET
    settings.RAZORPAY_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "walk"}}


class Clock:
    """The walk's clock: stands still at START until the walk moves it on."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def tick(self, delta: timedelta) -> None:
        self.at += delta


@pytest.fixture
def clock(monkeypatch):
    return clock_everywhere(monkeypatch)


def clock_everywhere(monkeypatch) -> Clock:
    """Every reading of the time the code makes goes through `timezone.now`: the function
    itself, and the fields whose default it is (created_at...). Plain datetimes, as in
    production (mindsettler/compiled.py refuses freezegun's datetime subclass)."""
    clock = Clock(START)
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", clock.now)
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if field.default is real_now:
                # `_get_default` is a cached_property: patched first, monkeypatch reads (and
                # puts back afterwards) the real one. Patched after `default`, it read the
                # clock, and every later test in the process made that field's rows at the
                # walk's time (an authenticator app "set up" in 2027 counted as new).
                monkeypatch.setattr(field, "_get_default", clock.now)
                monkeypatch.setattr(field, "default", clock.now)
    return clock


def test_the_clock_is_put_back_after_the_walk():
    """Including a field default not read before (its `_get_default` not yet cached)."""
    from allauth.mfa.models import Authenticator

    real_now = timezone.now
    field = Authenticator._meta.get_field("created_at")
    field.__dict__.pop("_get_default", None)
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert clock_everywhere(monkeypatch).now() == START
        assert field.get_default() == START
    assert timezone.now is real_now and field.default is real_now and field._get_default is real_now


@pytest.mark.parametrize("seed", SEEDS)
def test_random_walk_keeps_every_invariant(seed, razorpay_settings, clock):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = World(seed, clock, rsps)
        world.check()
        world.run(STEPS)
        # A short walk may not have reached a payment yet (few approvals, one order paid
        # wrongly...): it walks on, checking as before, until it has, for up to three times STEPS.
        while _not_taken(world.taken()) and len(world.steps) < 3 * STEPS:
            world.run(25)
    if os.environ.get("WALK_VERBOSE"):
        print(f"seed {seed}:", *world.steps, sep="\n")
        print(dict(world.outcomes))
        print(dict(Counter(BookingEvent.objects.values_list("action", "from_status", "to_status").order_by())))
        print(dict(Counter(OutboundEmail.objects.values_list("kind", flat=True).order_by())))
        print(f"waitlist offers: {WaitlistOffer.objects.count()}")
    # The walk went where it matters: money arrived, sessions took place, bookings ended.
    taken = world.taken()
    if missed := _not_taken(taken):
        world.fail(f"the walk never {missed}: {dict(taken)}")


MUST_TAKE = [(Status.PENDING, Status.APPROVED), (Status.PAYMENT_PENDING, Status.CONFIRMED)]


def _not_taken(taken: Counter) -> str:
    """What the walk has not done yet of what it must ("" once it has done all of it)."""
    for move in MUST_TAKE:
        if not taken[move]:
            return f"took {move}"
    if not sum(n for (_frm, to), n in taken.items() if to == Status.CANCELLED):
        return "cancelled a booking"
    return ""
