"""A large, consistent data set for `make bench`: counsellors, weeks of slots, thousands of bookings.

Fills an EMPTY database only (it refuses otherwise), fast: everything goes in with bulk_create
inside one transaction. The rows respect every invariant the app relies on: one active booking
per email, one holding booking per slot, a slot for every slotted status, an audit trail of
events for every booking (ending in its current status), payments for paid bookings.

It also creates what the benchmark needs to reach every page: an administrator with a TOTP
authenticator, an API client token, and a booking-page link token. Only hashes of those secrets
are stored; `--json PATH` writes the raw values (and the chosen targets) for the harness.
"""

from __future__ import annotations

import json
import random
import secrets
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from bookings.management.commands.seed_demo import SESSION_TYPES
from bookings.models import (
    ACK_ALPHABET,
    ACK_LENGTH,
    ACTIVE_STATUSES,
    Actor,
    ApiClient,
    Booking,
    BookingEvent,
    Clinic,
    Counsellor,
    LinkToken,
    Mode,
    Payment,
    SessionType,
    Slot,
    Status,
)
from bookings.tokens import token_create, token_hash

S = Status

# Share of each status in the data set; the remainder of the rounding goes to CANCELLED.
STATUS_MIX: dict[str, float] = {
    S.COMPLETED: 0.27,
    S.NO_SHOW: 0.03,
    S.CONFIRMED: 0.15,
    S.APPROVED: 0.05,
    S.PAYMENT_PENDING: 0.03,
    S.PENDING: 0.075,
    S.REJECTED: 0.10,
    S.DRAFT: 0.025,
    S.CANCELLED: 0.27,
}

FIRST = [
    "Aarav",
    "Aditi",
    "Ananya",
    "Arjun",
    "Diya",
    "Ishaan",
    "Kabir",
    "Kavya",
    "Meera",
    "Neha",
    "Nikhil",
    "Priya",
    "Rahul",
    "Riya",
    "Rohan",
    "Sara",
    "Tara",
    "Vikram",
]
LAST = [
    "Bose",
    "Das",
    "Gupta",
    "Iyer",
    "Joshi",
    "Kapoor",
    "Khan",
    "Menon",
    "Mehta",
    "Nair",
    "Patel",
    "Rao",
    "Reddy",
    "Shah",
    "Singh",
    "Verma",
]
CONCERNS = [
    "Trouble sleeping and a lot of worry about work.",
    "Feeling low since a bereavement last year.",
    "Arguments at home; we would like to talk together.",
    "Exam stress and panic before presentations.",
]
REJECT_REASONS = ["Outside our scope of practice.", "Needs a specialist service; referred.", "Duplicate request."]
SLOT_MINUTES = 50


class Command(BaseCommand):
    help = "Seed a large benchmark data set into an empty database (see benchmarks/README.md)."

    def add_arguments(self, parser):
        parser.add_argument("--counsellors", type=int, default=50)
        parser.add_argument("--days", type=int, default=60, help="Days of slots; a third in the past.")
        parser.add_argument("--slots-per-day", type=int, default=8, help="Hourly slots from 09:00.")
        parser.add_argument("--bookings", type=int, default=20_000)
        parser.add_argument("--seed", type=int, default=7, help="Random seed, for a repeatable data set.")
        parser.add_argument("--json", dest="json_path", default="", help="Write the secrets and targets here.")

    def handle(self, *args: Any, **opts: Any) -> None:
        if Booking.objects.exists() or Counsellor.objects.exists():
            raise CommandError("seed_bench fills an empty database only; this one already has counsellors or bookings.")
        if opts["counsellors"] < 1 or opts["days"] < 6 or not 1 <= opts["slots_per_day"] <= 14:
            raise CommandError("Need at least 1 counsellor, 6 days, and 1 to 14 slots a day.")
        started = timezone.now()
        with transaction.atomic():
            summary = Seeder(
                counsellors=opts["counsellors"],
                days=opts["days"],
                slots_per_day=opts["slots_per_day"],
                bookings=opts["bookings"],
                rng=random.Random(opts["seed"]),
            ).run()
        # A live database has planner statistics (autovacuum); a freshly bulk-loaded one does
        # not until the daemon gets to it, and its plans would be the benchmark's bottleneck.
        with connection.cursor() as cursor:
            # VACUUM (visibility map, for index-only scans) cannot run inside a transaction.
            vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
            cursor.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")
        seconds = (timezone.now() - started).total_seconds()
        counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["counts"].items()))
        self.stdout.write(f"Benchmark data ready in {seconds:.1f} s: {counts}; {summary['rows']}.")
        if opts["json_path"]:
            Path(opts["json_path"]).write_text(json.dumps(summary, indent=2))
            self.stdout.write(f"Secrets and targets written to {opts['json_path']}.")


class Seeder:
    def __init__(self, *, counsellors: int, days: int, slots_per_day: int, bookings: int, rng: random.Random):
        self.n_counsellors = counsellors
        self.days = days
        self.slots_per_day = slots_per_day
        self.n_bookings = bookings
        self.rng = rng
        self.now = timezone.now()
        self.today = timezone.localdate()
        self.tz = timezone.get_current_timezone()

    # --- Steps ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        Clinic.objects.get_or_create(pk=1)
        self.session_types = [
            SessionType.objects.get_or_create(slug=data["slug"], defaults=data)[0] for data in SESSION_TYPES
        ]
        # Sessions that fit a 50-minute slot; the 80-minute couples session does not.
        self.fitting_types = [t for t in self.session_types if t.duration_minutes <= SLOT_MINUTES]
        self.admin = self._staff()
        self.counsellors = self._counsellors()
        slots = self._slots()
        plan = self._plan(slots)
        bookings = self._bookings(plan)
        events = self._events(bookings)
        payments = self._payments(bookings)
        tokens = self._link_tokens(bookings)
        return self._summary(bookings, events=events, payments=payments, tokens=tokens, slots=len(slots))

    def _staff(self):
        from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

        User = get_user_model()
        admin = User.objects.create_user(
            email="bench-admin@bench.example",
            password=None,
            first_name="Bench",
            last_name="Administrator",
            role=User.Role.ADMINISTRATOR,
        )
        # The staff portal requires a second factor; the harness signs in with a session.
        TOTP.activate(admin, generate_totp_secret())
        return admin

    def _counsellors(self) -> list[Counsellor]:
        User = get_user_model()
        users = User.objects.bulk_create(
            User(
                email=f"counsellor{i:02d}@bench.example",
                first_name=self.rng.choice(FIRST),
                last_name=self.rng.choice(LAST),
                role=User.Role.COUNSELLOR,
                password=make_password(None),
            )
            for i in range(self.n_counsellors)
        )
        return Counsellor.objects.bulk_create(
            Counsellor(
                user=user,
                display_name=f"Counsellor {i:02d} {user.last_name}",
                slug=f"bench-counsellor-{i:02d}",
                title="Counselling psychologist",
                bio="Works with adults and young people.",
                languages="English, Hindi",
                meeting_url=f"https://meet.bench.example/c{i:02d}",
                offers_in_person=i % 3 != 0,
                sort_order=i,
            )
            for i, user in enumerate(users)
        )

    def _slots(self) -> list[Slot]:
        self.first_day = self.today - timedelta(days=self.days // 3)
        rows = []
        for d in range(self.days):
            day = self.first_day + timedelta(days=d)
            for h in range(self.slots_per_day):
                start = self._at(day, 9 + h)
                for c in self.counsellors:
                    rows.append(Slot(counsellor=c, start=start, end=start + timedelta(minutes=SLOT_MINUTES)))
        return Slot.objects.bulk_create(rows, batch_size=2000)

    def _plan(self, slots: list[Slot]) -> list[tuple[str, Slot | None]]:
        """Which booking gets which status and slot, respecting one holding booking per slot."""
        counts = {status: int(self.n_bookings * share) for status, share in STATUS_MIX.items()}
        counts[S.CANCELLED] += self.n_bookings - sum(counts.values())

        # A busy day three days ahead (past the minimum notice): half of its slots are taken.
        self.busy_day = self.today + timedelta(days=3)
        past = [s for s in slots if s.end <= self.now]
        future = [s for s in slots if s.start >= self.now + timedelta(hours=36)]
        self.rng.shuffle(past)
        busy = [s for s in future if timezone.localtime(s.start, self.tz).date() == self.busy_day]
        rest = [s for s in future if timezone.localtime(s.start, self.tz).date() != self.busy_day]
        self.rng.shuffle(busy)
        self.rng.shuffle(rest)
        future = busy[: len(busy) // 2] + rest + busy[len(busy) // 2 :]

        future_holders = counts[S.CONFIRMED] + counts[S.APPROVED] + counts[S.PAYMENT_PENDING]
        if counts[S.COMPLETED] + counts[S.NO_SHOW] > len(past) or future_holders > len(future):
            raise CommandError(
                f"Not enough slots: {len(past)} past and {len(future)} future for {counts[S.COMPLETED]} completed "
                f"and {future_holders} upcoming bookings. Add --days or --slots-per-day, or lower --bookings."
            )
        plan: list[tuple[str, Slot | None]] = []
        plan += [(S.COMPLETED, past.pop()) for _ in range(counts[S.COMPLETED])]
        plan += [(S.NO_SHOW, past.pop()) for _ in range(counts[S.NO_SHOW])]
        for status in (S.CONFIRMED, S.APPROVED, S.PAYMENT_PENDING):
            plan += [(status, future.pop(0)) for _ in range(counts[status])]
        released = past + future  # slots nobody holds now; cancelled bookings may have had them
        for status in (S.PENDING, S.REJECTED, S.DRAFT):
            plan += [(status, None) for _ in range(counts[status])]
        for i in range(counts[S.CANCELLED]):
            # Every other cancelled booking had been approved into a slot, since released.
            plan.append((S.CANCELLED, self.rng.choice(released) if i % 2 and released else None))
        self.rng.shuffle(plan)
        return plan

    def _bookings(self, plan: list[tuple[str, Slot | None]]) -> list[Booking]:
        ack_ids: set[str] = set()
        while len(ack_ids) < len(plan):
            ack_ids.add("MS-" + "".join(self.rng.choice(ACK_ALPHABET) for _ in range(ACK_LENGTH)))
        returning_clients = max(1, len(plan) // 2)
        active_emails = 0
        rows = []
        for (status, slot), ack_id in zip(plan, sorted(ack_ids, key=lambda _: self.rng.random()), strict=True):
            session_type = self.rng.choice(self.fitting_types)
            counsellor = (
                slot.counsellor if slot else (self.rng.choice(self.counsellors) if self.rng.random() < 0.6 else None)
            )
            if status in ACTIVE_STATUSES:
                # One active booking per email: active clients get addresses nobody else active has.
                email = f"active{active_emails}@bench.example"
                active_emails += 1
            else:
                email = f"client{self.rng.randrange(returning_clients)}@bench.example"
            created_at, approved_at, due = self._times(status, slot)
            rows.append(
                Booking(
                    ack_id=ack_id,
                    status=status,
                    version=1 + len(self._path(status, slot)),
                    client_name=f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}",
                    email=email,
                    phone=f"+9198{self.rng.randrange(10**8):08d}",
                    age_confirmation=Booking.AgeConfirmation.ADULT,
                    consent_policy_version="2026-11-01",
                    consented_at=created_at,
                    concerns=self.rng.choice(CONCERNS),
                    session_type=session_type,
                    mode=Mode.IN_PERSON
                    if counsellor and counsellor.offers_in_person and self.rng.random() < 0.3
                    else Mode.ONLINE,
                    counsellor=counsellor,
                    preferred_slot=slot if status in (S.PENDING, S.APPROVED) else None,
                    slot=slot,
                    amount=session_type.price,
                    currency=session_type.currency,
                    created_at=created_at,
                    approved_at=approved_at,
                    payment_due_at=due,
                )
            )
        return Booking.objects.bulk_create(rows, batch_size=1000)

    def _times(self, status: str, slot: Slot | None) -> tuple[datetime, datetime | None, datetime | None]:
        if status == S.DRAFT:
            return self.now - timedelta(minutes=self.rng.randrange(10, 40 * 60)), None, None
        if status == S.PENDING:
            return self.now - timedelta(minutes=self.rng.randrange(10, 7 * 24 * 60)), None, None
        if slot is None:
            return self.now - timedelta(minutes=self.rng.randrange(60, 90 * 24 * 60)), None, None
        # Requested days before the session, approved within a day and a half (and before the
        # later moves, which follow within hours): the audit trail stays in order.
        created = min(slot.start - timedelta(days=self.rng.randrange(3, 20)), self.now - timedelta(days=2))
        approved = created + timedelta(hours=self.rng.randrange(12, 36))
        due = None
        if status in (S.APPROVED, S.PAYMENT_PENDING):
            due = min(self.now + timedelta(hours=self.rng.randrange(2, 40)), slot.start - timedelta(hours=12))
        return created, approved, due

    @staticmethod
    def _path(status: str, slot: Slot | None) -> list[tuple[str, str, str]]:
        """The (from, to, actor) moves that led to `status`, after the draft was created."""
        to_pending = [(S.DRAFT, S.PENDING, Actor.CLIENT)]
        to_confirmed = [
            *to_pending,
            (S.PENDING, S.APPROVED, Actor.STAFF),
            (S.APPROVED, S.PAYMENT_PENDING, Actor.CLIENT),
            (S.PAYMENT_PENDING, S.CONFIRMED, Actor.PROVIDER),
        ]
        paths: dict[str, list[tuple[str, str, str]]] = {
            S.DRAFT: [],
            S.PENDING: to_pending,
            S.APPROVED: to_confirmed[:2],
            S.PAYMENT_PENDING: to_confirmed[:3],
            S.CONFIRMED: to_confirmed,
            S.COMPLETED: [*to_confirmed, (S.CONFIRMED, S.COMPLETED, Actor.STAFF)],
            S.NO_SHOW: [*to_confirmed, (S.CONFIRMED, S.NO_SHOW, Actor.STAFF)],
            S.REJECTED: [*to_pending, (S.PENDING, S.REJECTED, Actor.STAFF)],
        }
        if status == S.CANCELLED:
            if slot is None:
                return [*to_pending, (S.PENDING, S.CANCELLED, Actor.CLIENT)]
            return [*to_confirmed[:2], (S.APPROVED, S.CANCELLED, Actor.SYSTEM)]
        return paths[status]

    def _events(self, bookings: list[Booking]) -> int:
        rows = []
        for b in bookings:
            at = b.created_at
            rows.append(BookingEvent(booking=b, to_status=S.DRAFT, action="created", actor=Actor.CLIENT, created_at=at))
            for frm, to, actor in self._path(b.status, b.slot):
                at = b.approved_at if to == S.APPROVED else at + timedelta(minutes=self.rng.randrange(5, 600))
                if b.slot is not None and to in (S.COMPLETED, S.NO_SHOW):
                    at = b.slot.end + timedelta(minutes=30)
                at = min(at, self.now)
                reason = self.rng.choice(REJECT_REASONS) if to == S.REJECTED else ""
                if to == S.CANCELLED and actor == Actor.SYSTEM:
                    reason = "Payment window expired; the slot was released."
                rows.append(
                    BookingEvent(
                        booking=b,
                        from_status=frm,
                        to_status=to,
                        actor=actor,
                        actor_user=self.admin if actor == Actor.STAFF else None,
                        reason=reason,
                        created_at=at,
                    )
                )
        BookingEvent.objects.bulk_create(rows, batch_size=2000)
        return len(rows)

    def _payments(self, bookings: list[Booking]) -> int:
        rows = []
        for b in bookings:
            if b.status not in (S.PAYMENT_PENDING, S.CONFIRMED, S.COMPLETED, S.NO_SHOW):
                continue
            paid = b.status != S.PAYMENT_PENDING
            rows.append(
                Payment(
                    booking=b,
                    provider="sandbox",
                    provider_order_id=f"bench_order_{b.pk}",
                    provider_payment_id=f"bench_pay_{b.pk}" if paid else "",
                    amount=b.amount,
                    currency=b.currency,
                    status=Payment.State.CONFIRMED if paid else Payment.State.PENDING,
                    created_at=b.approved_at or b.created_at,
                    confirmed_at=(b.approved_at or b.created_at) + timedelta(hours=2) if paid else None,
                )
            )
        Payment.objects.bulk_create(rows, batch_size=2000)
        return len(rows)

    def _link_tokens(self, bookings: list[Booking]) -> int:
        # Every non-draft booking has a booking-page link, as in production; their raw values
        # are thrown away (only hashes are stored). The harness gets one fresh token below.
        rows = [
            LinkToken(
                booking=b,
                purpose=LinkToken.Purpose.MANAGE,
                token_hash=token_hash(secrets.token_urlsafe(24)),
                created_at=b.created_at,
                expires_at=self.now + timedelta(days=90),
            )
            for b in bookings
            if b.status != S.DRAFT
        ]
        LinkToken.objects.bulk_create(rows, batch_size=2000)
        return len(rows)

    def _summary(self, bookings: list[Booking], **rows: int) -> dict[str, Any]:
        # The benchmark's booking: confirmed, online, with a full timeline and a payment, and
        # far enough ahead that the client may still cancel online: the usual page, the same
        # whatever the day the data is seeded (an in-person one, or one past the cutoff, also
        # reads the clinic's address or phone).
        cutoff = self.now + timedelta(hours=settings.CANCELLATION_CUTOFF_HOURS)
        target = min(
            (b for b in bookings if b.status == S.CONFIRMED and b.mode == Mode.ONLINE and b.slot.start > cutoff),  # type: ignore[union-attr]
            key=lambda b: (b.slot.start, b.pk),  # type: ignore[union-attr]
        )
        booking_token = token_create(booking=target, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=90))
        api_token = self._api_token()
        busy_type = next((t for t in self.fitting_types if t.slug == "individual"), self.fitting_types[0])
        return {
            "counts": dict(Counter(b.status for b in bookings)),
            "rows": ", ".join(f"{n} {name}" for name, n in rows.items()),
            "counsellors": len(self.counsellors),
            "ack_id": target.ack_id,
            "booking_token": booking_token,
            "api_token": api_token,
            "admin_email": self.admin.email,
            "busy_day": self.busy_day.isoformat(),
            "session_type": busy_type.slug,
            "session_type_id": busy_type.pk,
            "first_day": self.first_day.isoformat(),
            "today": self.today.isoformat(),
        }

    @staticmethod
    def _api_token() -> str:
        try:
            from bookings.api.auth import api_client_create
        except ImportError:  # before the chatbot API exists: the same hashed-token scheme
            raw = secrets.token_urlsafe(32)
            ApiClient.objects.create(name="benchmark", token_hash=token_hash(raw))
            return raw
        return api_client_create(name="benchmark")[1]

    def _at(self, day: date, hour: int) -> datetime:
        return timezone.make_aware(datetime.combine(day, time(hour)), self.tz)
