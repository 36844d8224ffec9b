"""Races through the whole HTTP stack, on PostgreSQL, with two app servers.

Two gunicorn processes (production settings: DEBUG off, the manifest static storage) on
loopback share the test database. Threads fire concurrent requests at them, alternating
between the two, the way a load balancer would. After each race the invariants are checked
in SQL, directly against the tables, not through the models that enforce them.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.test import Client
from django.utils import timezone

from bookings import services
from bookings.models import Booking, BookingEvent, LinkToken, OutboundEmail, Payment, Status
from bookings.payments import SandboxProvider
from bookings.tokens import token_create

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "reliability-" + secrets.token_urlsafe(40)
CSRF = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
PORTS = (8161, 8162)


# --- Two production app servers -------------------------------------------------------------


def database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mindsettler.settings",
            "STATIC_ROOT": str(tmp / "static"),
            "DEBUG": "false",
            "SECRET_KEY": SECRET_KEY,
            "SECURE_SSL_REDIRECT": "false",
            "RATELIMIT_ENABLED": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": "http://127.0.0.1",
            "DATABASE_URL": database_url(),
            "EMAIL_BACKEND": "locmem",
            "TASKS_BACKEND": "immediate",
            "PAYMENT_PROVIDER": "sandbox",
            "LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    env.pop("REDIS_URL", None)
    return env


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn on {port} exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn on {port} did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[list[str]]:
    tmp = tmp_path_factory.mktemp("reliability")
    with django_db_blocker.unblock():
        env = server_env(tmp)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        for port in PORTS:
            log = tmp / f"gunicorn-{port}.log"
            with log.open("wb") as out:
                cmd = [gunicorn, "mindsettler.wsgi:application", "--bind", f"127.0.0.1:{port}"]
                cmd += ["--workers", "2", "--worker-class", "gthread", "--threads", "16", "--preload"]
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            procs.append((proc, log))
        for port, (proc, log) in zip(PORTS, procs, strict=True):
            _wait_healthy(port, proc, log)
        yield [f"http://127.0.0.1:{port}" for port in PORTS]
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for _, log in procs:
            # The app logs only warnings and errors here: a traceback means a 500 somewhere.
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture
def same_secret(settings):
    """Sessions, sandbox signatures and the servers must share one SECRET_KEY."""
    settings.SECRET_KEY = SECRET_KEY


# --- Firing requests at once ------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: str
    server: str


def race(
    servers: list[str], requests_: list[tuple[str, dict, dict]], *, delay: tuple[float, float] | None = None
) -> list[Answer]:
    """POST each (path, cookies-or-none, form) at the same moment, alternating servers."""
    barrier = threading.Barrier(len(requests_))

    def post(i: int, path: str, cookies: dict, data: dict) -> Answer:
        base = servers[i % len(servers)]
        barrier.wait(timeout=30)
        if delay:
            time.sleep(random.uniform(*delay))
        response = requests.post(
            base + path,
            data={"csrfmiddlewaretoken": CSRF, **data},
            cookies={"csrftoken": CSRF, **cookies},
            allow_redirects=False,
            timeout=60,
        )
        return Answer(response.status_code, response.text, base)

    with ThreadPoolExecutor(max_workers=len(requests_)) as pool:
        futures = [pool.submit(post, i, *req) for i, req in enumerate(requests_)]
        return [f.result() for f in futures]


# --- The invariants, in SQL -------------------------------------------------------------------

ACTIVE = ("pending", "approved", "payment_pending", "confirmed")
HOLDING = (*ACTIVE, "completed")


def _rows(sql: str, params: list | tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def invariant_violations() -> list[str]:
    problems = []
    for row in _rows(
        "SELECT slot_id, count(*) FROM bookings_booking WHERE slot_id IS NOT NULL AND status = ANY(%s) "
        "GROUP BY slot_id HAVING count(*) > 1",
        [list(HOLDING)],
    ):
        problems.append(f"slot {row[0]} held by {row[1]} bookings")
    for row in _rows(
        "SELECT email, count(*) FROM bookings_booking WHERE status = ANY(%s) GROUP BY email HAVING count(*) > 1",
        [list(ACTIVE)],
    ):
        problems.append(f"an email has {row[1]} active bookings")
    # Every change of state has its event: as many transition events as version bumps, each
    # starting where the previous one ended, the last one ending at the current status.
    for row in _rows(
        """
        WITH ev AS (
            SELECT booking_id, from_status, to_status,
                   lag(to_status) OVER (PARTITION BY booking_id ORDER BY created_at, id) AS prev_to,
                   row_number() OVER (PARTITION BY booking_id ORDER BY created_at DESC, id DESC) AS from_end
            FROM bookings_bookingevent WHERE action = 'transition'
        )
        SELECT b.id, b.status, b.version,
               (SELECT count(*) FROM ev WHERE ev.booking_id = b.id),
               (SELECT to_status FROM ev WHERE ev.booking_id = b.id AND from_end = 1),
               (SELECT count(*) FROM ev WHERE ev.booking_id = b.id AND prev_to IS NOT NULL
                                              AND prev_to <> from_status)
        FROM bookings_booking b
        """
    ):
        booking_id, status, version, transitions, last_to, breaks = row
        if transitions != version - 1:
            problems.append(f"booking {booking_id}: version {version} but {transitions} transition events")
        if transitions and last_to != status:
            problems.append(f"booking {booking_id}: is {status}, last event says {last_to}")
        if breaks:
            problems.append(f"booking {booking_id}: its event chain is broken")
    for row in _rows(
        "SELECT b.id FROM bookings_booking b WHERE b.status = 'confirmed' AND NOT EXISTS ("
        "SELECT 1 FROM bookings_payment p WHERE p.booking_id = b.id AND p.status = 'confirmed' "
        "AND p.amount = b.amount AND p.currency = b.currency)"
    ):
        problems.append(f"booking {row[0]} confirmed without a confirmed payment of its amount")
    for row in _rows(
        "SELECT booking_id, count(*) FROM bookings_payment WHERE status = 'confirmed' "
        "GROUP BY booking_id HAVING count(*) > 1"
    ):
        problems.append(f"booking {row[0]} has {row[1]} confirmed payments")
    # Money that arrived for a booking that cannot take it is being refunded.
    for row in _rows(
        "SELECT p.id FROM bookings_payment p JOIN bookings_booking b ON b.id = p.booking_id "
        "WHERE p.provider_payment_id <> '' AND p.status <> 'confirmed' AND p.refund_status = ''"
    ):
        problems.append(f"payment {row[0]} was captured but is neither confirmed nor refunded")
    return problems


# --- Set-up helpers ---------------------------------------------------------------------------


def staff_cookies(user) -> dict[str, str]:
    """A signed-in administrator's session, with a second factor set up (as the portal needs)."""
    from staff.tests.conftest import sign_in_with_second_factor

    browser = Client()
    sign_in_with_second_factor(browser, user)
    return {"sessionid": browser.cookies["sessionid"].value}


def sandbox_fields(payment: Payment) -> dict[str, str]:
    fields = {
        "order": payment.provider_order_id,
        "payment": f"sandbox_pay_{payment.pk}_paid",
        "outcome": "paid",
        "amount": str(payment.amount),
        "currency": payment.currency,
    }
    return {**fields, "signature": SandboxProvider.sign(fields)}


def payment_pending(make_booking, **fields) -> tuple[Booking, Payment, str]:
    booking = make_booking(Status.APPROVED, **fields)
    payment = services.payment_start(booking_id=booking.pk)
    token = token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=30))
    return Booking.objects.get(pk=booking.pk), payment, token


def no_server_errors(answers: list[Answer]) -> None:
    errors = [(a.status, a.server, a.body[:300]) for a in answers if a.status >= 500]
    assert not errors, errors
    assert {a.server for a in answers} == set(PORTS_URLS), "both app servers took requests"


PORTS_URLS = [f"http://127.0.0.1:{port}" for port in PORTS]


# --- The races --------------------------------------------------------------------------------


def test_fifty_portal_approvals_into_one_slot_let_exactly_one_through(
    servers, same_secret, make_booking, slot, admin_user
):
    bookings = [make_booking(Status.PENDING, counsellor=slot.counsellor) for _ in range(50)]
    cookies = staff_cookies(admin_user)
    answers = race(
        servers,
        [
            (f"/staff/bookings/{b.pk}/approve/", cookies, {"approve-slot": slot.pk, "approve-version": b.version})
            for b in bookings
        ],
    )
    no_server_errors(answers)
    outcomes = Counter(a.status for a in answers)
    assert outcomes[302] == 1, outcomes
    refused = [a for a in answers if a.status != 302]
    assert all(a.status in (400, 409) for a in refused), outcomes
    # Whether the slot was gone before the form was checked (400) or inside the service's
    # lock (409), the answer says so in words.
    assert all("no longer free" in a.body or "already taken" in a.body for a in refused)
    statuses = Counter(Booking.objects.filter(pk__in=[b.pk for b in bookings]).values_list("status", flat=True))
    assert statuses == Counter({Status.APPROVED: 1, Status.PENDING: 49})
    assert OutboundEmail.objects.filter(kind="approved").count() == 1
    assert invariant_violations() == []


def test_fifty_verifications_for_one_email_make_exactly_one_active_booking(
    servers, same_secret, make_booking, counsellor
):
    tokens = []
    for _ in range(50):
        draft = make_booking(Status.DRAFT, email="same@example.com", counsellor=counsellor)
        tokens.append(token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1)))
    answers = race(servers, [(f"/verify/{t}/", {}, {}) for t in tokens])
    no_server_errors(answers)
    outcomes = Counter(a.status for a in answers)
    assert outcomes == Counter({200: 1, 409: 49}), outcomes
    assert Booking.objects.filter(email="same@example.com", status__in=ACTIVE).count() == 1
    assert Booking.objects.filter(email="same@example.com", status=Status.DRAFT).count() == 49
    assert OutboundEmail.objects.filter(kind="request_received").count() == 1
    assert invariant_violations() == []


def test_twenty_payment_returns_for_one_payment_confirm_it_once(servers, same_secret, make_booking, counsellor):
    booking, payment, token = payment_pending(make_booking, counsellor=counsellor)
    fields = sandbox_fields(payment)
    answers = race(servers, [(f"/bookings/{token}/pay/{payment.pk}/return/", {}, fields) for _ in range(20)])
    no_server_errors(answers)
    assert Counter(a.status for a in answers) == Counter({302: 20})
    payment.refresh_from_db()
    booking.refresh_from_db()
    assert payment.status == Payment.State.CONFIRMED and booking.status == Status.CONFIRMED
    assert BookingEvent.objects.filter(booking=booking, to_status=Status.CONFIRMED, action="transition").count() == 1
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed").count() == 1
    assert OutboundEmail.objects.filter(booking=booking, kind="confirmed", status="sent").count() == 1
    assert invariant_violations() == []


def test_expiry_sweeps_racing_payments_and_cancellations_leave_every_booking_consistent(
    servers, same_secret, make_booking, counsellor, tmp_path
):
    past = timezone.now() - timedelta(minutes=5)
    due_paying = [payment_pending(make_booking, counsellor=counsellor) for _ in range(10)]
    due_cancelling = []
    for _ in range(10):
        b = make_booking(Status.APPROVED, counsellor=counsellor, payment_due_at=past)
        due_cancelling.append(
            (b, token_create(booking=b, purpose=LinkToken.Purpose.CANCEL, lifetime=timedelta(hours=1)))
        )
    live_paying = [payment_pending(make_booking, counsellor=counsellor) for _ in range(10)]
    Booking.objects.filter(pk__in=[b.pk for b, _, _ in due_paying]).update(payment_due_at=past)

    calls: list[tuple[str, dict, dict]] = []
    calls += [(f"/bookings/{t}/pay/{p.pk}/return/", {}, sandbox_fields(p)) for _, p, t in due_paying]
    calls += [(f"/cancel/{t}/", {}, {}) for _, t in due_cancelling]
    calls += [(f"/bookings/{t}/pay/{p.pk}/return/", {}, sandbox_fields(p)) for _, p, t in live_paying]

    env = server_env(tmp_path)
    sweeps: list[subprocess.Popen] = []

    def start_sweeps() -> None:
        for _ in range(3):
            sweeps.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "expire_bookings"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            time.sleep(0.3)

    others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    idle = _rows(others)[0][0]
    starter = threading.Thread(target=start_sweeps)
    starter.start()
    # Fire when the first sweep has connected (Django takes a second or more to start).
    deadline = time.monotonic() + 30
    while _rows(others)[0][0] <= idle and time.monotonic() < deadline:
        time.sleep(0.02)
    answers = race(servers, calls, delay=(0.0, 0.6))
    starter.join()
    outputs = [s.communicate(timeout=60)[0] for s in sweeps]
    assert all(s.returncode == 0 for s in sweeps), outputs
    no_server_errors(answers)

    expired_by_sweep = sum(int(re.search(r"^expired (\d+) booking", out, re.M).group(1)) for out in outputs)
    ends: Counter = Counter()
    for booking, payment, _ in due_paying:
        booking.refresh_from_db()
        payment.refresh_from_db()
        # Paid in time and confirmed, or expired first and the late payment refunded.
        if booking.status == Status.CONFIRMED:
            assert payment.status == Payment.State.CONFIRMED
            ends["paid before the sweep"] += 1
        else:
            assert booking.status == Status.CANCELLED, booking.status
            assert payment.refund_status, "a late payment is refunded"
            assert OutboundEmail.objects.filter(booking=booking, kind="payment_refunding").count() == 1
            ends["expired, payment refunded"] += 1
    for booking, _ in due_cancelling:
        booking.refresh_from_db()
        assert booking.status == Status.CANCELLED
        cancels = BookingEvent.objects.filter(booking=booking, to_status=Status.CANCELLED, action="transition")
        assert cancels.count() == 1
        actor = cancels.get().actor
        ends[f"cancelled by {actor}"] += 1
        # One email: "cancelled" for the client's own cancellation, "expired" for the sweep's.
        assert OutboundEmail.objects.filter(booking=booking, kind__in=("cancelled", "expired")).count() == 1
    for booking, payment, _ in live_paying:
        booking.refresh_from_db()
        payment.refresh_from_db()
        assert booking.status == Status.CONFIRMED and payment.status == Payment.State.CONFIRMED
    system_cancels = BookingEvent.objects.filter(
        to_status=Status.CANCELLED, actor="system", action="transition"
    ).count()
    assert system_cancels == expired_by_sweep, (system_cancels, outputs)
    assert invariant_violations() == []
    print(f"end states of the 20 due bookings: {dict(ends)}; sweeps expired {expired_by_sweep}")


def test_the_invariant_check_itself_sees_a_broken_database(make_booking, slot):
    """The SQL above must be able to fail: break each invariant behind the models' back."""
    a = make_booking(Status.APPROVED, email="twice@example.com")
    make_booking(Status.DRAFT, email="twice@example.com")
    assert invariant_violations() == []
    with connection.cursor() as cursor:
        cursor.execute("UPDATE bookings_booking SET status = 'confirmed', version = version + 1 WHERE id = %s", [a.pk])
    problems = invariant_violations()
    assert any("transition events" in p for p in problems)
    assert any("confirmed without a confirmed payment" in p for p in problems)
