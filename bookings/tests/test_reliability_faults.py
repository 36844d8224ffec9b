"""Faults survived: the mail server down during an approval, the database connection cut in
the middle of a request, a task worker killed in the middle of sending.

(The payment provider timing out or erroring is covered in test_payments.py and
test_payments_razorpay.py: the booking stays payable and the client is asked to retry.)
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from bookings.models import Booking, BookingEvent, OutboundEmail, Status
from bookings.services import booking_approve
from bookings.tests.test_emails import smtp_at
from staff.tests.conftest import sign_in_with_second_factor

ROOT = Path(__file__).resolve().parents[2]


def postgres_only(test):
    """PostgreSQL's own behaviour (its locks and backends); run alone, see the Makefile's test."""
    return pytest.mark.postgres(pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")(test))


class Inbox:
    """An SMTP server's mailbox. `slow` holds every RCPT (the client waits mid-send)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.slow = False
        self.client_waiting = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        self.client_waiting.set()
        while self.slow:
            await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 Message accepted"


def staff_browser(user, capture) -> Client:
    browser = Client()
    original = browser.request

    def request(**kwargs):
        with capture(execute=True):
            return original(**kwargs)

    browser.request = request
    sign_in_with_second_factor(browser, user)
    return browser


@pytest.mark.django_db
def test_smtp_down_during_an_approval_keeps_it_and_delivers_the_email_once_when_back(
    settings, make_booking, slot, admin_user, django_capture_on_commit_callbacks
):
    inbox = Inbox()
    port = 8170
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    server.stop()  # the mail server goes down
    smtp_at(settings, port, timeout=3)
    booking = make_booking(Status.PENDING, counsellor=slot.counsellor)
    staff = staff_browser(admin_user, django_capture_on_commit_callbacks)

    response = staff.post(
        f"/staff/bookings/{booking.pk}/approve/", {"approve-slot": slot.pk, "approve-version": booking.version}
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Status.APPROVED and booking.slot_id == slot.pk
    outbox = OutboundEmail.objects.get(booking=booking, kind="approved")
    assert outbox.status == OutboundEmail.State.PENDING and outbox.attempts == 1
    assert outbox.last_error  # e.g. ConnectionRefusedError
    assert outbox.next_attempt_at > timezone.now()

    call_command("send_emails")  # too early: the retry waits for its backoff
    assert OutboundEmail.objects.get(pk=outbox.pk).attempts == 1

    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()  # back up
    try:
        OutboundEmail.objects.filter(pk=outbox.pk).update(next_attempt_at=timezone.now())  # time passes
        call_command("send_emails")
        call_command("send_emails")  # and cron runs again: nothing twice
    finally:
        server.stop()
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["To"] == booking.email and booking.ack_id in inbox.messages[0]["Subject"]
    outbox.refresh_from_db()
    assert outbox.status == OutboundEmail.State.SENT and outbox.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_slow_mail_server_holds_up_no_one_else_writing(settings, make_booking, slot):
    """While the mail server keeps the sender waiting (up to EMAIL_TIMEOUT a step), the rest of
    the app writes as usual, to the email's own row too (an erasure gives it up): no database
    transaction is held open across the send, which on SQLite would stop every write."""
    from bookings.emails import email_deliver

    inbox = Inbox()
    inbox.slow = True
    port = 8172
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    smtp_at(settings, port, timeout=3)
    settings.MAILERS["default"]["OPTIONS"]["timeout"] = 30
    booking = make_booking(Status.APPROVED, counsellor=slot.counsellor)
    queued = OutboundEmail.objects.create(kind="approved", booking=booking, to=booking.email, subject="Approved")
    result: dict = {}

    def deliver() -> None:
        try:
            result["sent"] = email_deliver(email_id=queued.pk)
        finally:
            connections.close_all()

    sender = threading.Thread(target=deliver)
    try:
        sender.start()
        assert inbox.client_waiting.wait(timeout=10), "the sender never reached the mail server"
        # A writer that would wait for a lock fails at once instead.
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET lock_timeout = '1s'")
            else:
                cursor.execute("PRAGMA busy_timeout = 1000")
        OutboundEmail.objects.filter(pk=queued.pk).update(last_error="touched meanwhile")
        Booking.objects.filter(pk=booking.pk).update(updated_at=timezone.now())
        # Another delivery of the same email, meanwhile, leaves it to the first.
        assert email_deliver(email_id=queued.pk) is False
    finally:
        inbox.slow = False
        sender.join(timeout=30)
        server.stop()
    assert result["sent"] is True
    assert len(inbox.messages) == 1
    queued.refresh_from_db()
    assert queued.status == OutboundEmail.State.SENT and queued.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_an_email_erased_while_it_was_being_sent_is_recorded_sent_and_stays_empty(settings, make_booking):
    """An erasure that gives up a pending email while the mail server is still taking it: the
    sender's end does not write the client's words back, and records that it went out."""
    from bookings.emails import email_deliver
    from bookings.services.privacy import booking_anonymise

    inbox = Inbox()
    port = 8173
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    smtp_at(settings, port, timeout=3)
    booking = make_booking(Status.CANCELLED)
    queued = OutboundEmail.objects.create(
        kind="cancelled", booking=booking, to=booking.email, subject="Cancelled", body_text="Dear client"
    )

    original = inbox.handle_DATA

    async def erase_then_accept(server_, session, envelope):
        await asyncio.to_thread(erase)
        return await original(server_, session, envelope)

    def erase() -> None:
        try:
            assert booking_anonymise(booking_id=booking.pk, reason="erasure")
        finally:
            connections.close_all()

    inbox.handle_DATA = erase_then_accept
    try:
        assert email_deliver(email_id=queued.pk) is True
    finally:
        server.stop()
    queued.refresh_from_db()
    assert queued.status == OutboundEmail.State.SENT and queued.sent_at is not None and queued.last_error == ""
    assert queued.body_text == "" and queued.subject == "(removed)" and queued.to.endswith("@invalid")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_database_connection_cut_mid_request_gives_a_calm_503_and_no_partial_state(
    make_booking, slot, admin_user, django_capture_on_commit_callbacks
):
    booking = make_booking(Status.PENDING, counsellor=slot.counsellor)
    staff = staff_browser(admin_user, django_capture_on_commit_callbacks)
    result: dict = {}

    def approve() -> None:
        try:
            result["response"] = staff.post(
                f"/staff/bookings/{booking.pk}/approve/", {"approve-slot": slot.pk, "approve-version": booking.version}
            )
        finally:
            connections.close_all()

    holder = connections.create_connection("default")  # another client holding the booking's row
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute("SELECT id FROM bookings_booking WHERE id = %s FOR UPDATE", [booking.pk])
        request = threading.Thread(target=approve)
        request.start()
        # The request has locked the slot and now waits for the booking: cut its connection.
        victim = None
        deadline = time.monotonic() + 20
        while victim is None and time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                row = cursor.fetchone()
            victim = row[0] if row else None
            time.sleep(0.02)
        assert victim is not None, "the request never reached the booking's lock"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [victim])
        request.join(timeout=30)
    finally:
        holder.rollback()
        holder.close()

    response = result["response"]
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert b"back in a moment" in response.content
    # Nothing half-written: the slot is not taken, no event, no email.
    booking.refresh_from_db()
    assert booking.status == Status.PENDING and booking.slot_id is None and booking.version == 1
    assert not BookingEvent.objects.filter(booking=booking).exists()
    assert not OutboundEmail.objects.exists()
    # Once the database answers again, so does the app, and the approval goes through.
    assert Client().get("/healthz").status_code == 200
    again = staff.post(f"/staff/bookings/{booking.pk}/approve/", {"approve-slot": slot.pk, "approve-version": 1})
    assert again.status_code == 302
    assert Booking.objects.get(pk=booking.pk).status == Status.APPROVED


def use_task_backend(settings, backend: dict | None) -> None:
    """Switch django.tasks' default backend (its handler caches backends; None: forget)."""
    from django.tasks import task_backends

    if backend is not None:
        settings.TASKS = {"default": backend}
    task_backends.__dict__.pop("settings", None)
    if hasattr(task_backends._connections, "default"):
        del task_backends["default"]


def _db_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(settings, make_booking, slot):
    """`db_worker` (django-tasks-db) takes the delivery task; the mail server is slow, and the
    worker is killed with SIGKILL while it waits. The email is still pending, claimed by the
    dead worker for the send's longest time. django-tasks-db leaves the task RUNNING and a
    new worker does not take it again; once the claim lapses, the `send_emails` sweep is
    the recovery path."""
    from django_tasks_db.models import DBTaskResult

    inbox = Inbox()
    inbox.slow = True
    port = 8171
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="mindsettler.settings",
        DATABASE_URL=_db_url(),
        TASKS_BACKEND="database",
        EMAIL_BACKEND="smtp",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
        EMAIL_USE_TLS="false",
        EMAIL_TIMEOUT="60",
    )
    env.pop("REDIS_URL", None)
    worker_cmd = [sys.executable, "manage.py", "db_worker", "--interval", "0.1", "--no-reload"]
    try:
        use_task_backend(settings, {"BACKEND": "django_tasks_db.DatabaseBackend"})
        booking = make_booking(Status.PENDING, counsellor=slot.counsellor)
        # The approval commits, and its email's delivery is enqueued for the worker. (By the
        # counsellor: approved by someone else, they would be emailed too.)
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=slot.counsellor.user)
        queued = OutboundEmail.objects.get(booking=booking, kind="approved")
        assert DBTaskResult.objects.count() == 1
        assert queued.status == "pending", "delivered before any worker ran"

        worker = subprocess.Popen(worker_cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert inbox.client_waiting.wait(timeout=30), "the worker never reached the mail server"
        os.kill(worker.pid, signal.SIGKILL)  # mid-send
        worker.wait(timeout=10)
        inbox.slow = False

        queued.refresh_from_db()
        # Claimed for the send's longest time, then left to the sweep.
        assert queued.status == OutboundEmail.State.PENDING and queued.attempts == 1
        assert queued.next_attempt_at > timezone.now() + timedelta(minutes=10)
        assert DBTaskResult.objects.get().status == "RUNNING"  # orphaned by the dead worker

        # A new worker does not pick up the orphan...
        subprocess.run([*worker_cmd, "--batch"], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True)
        assert inbox.messages == []
        # ...and once the claim has lapsed, the retry sweep delivers it, once, however often
        # it runs.
        OutboundEmail.objects.filter(pk=queued.pk).update(next_attempt_at=timezone.now())  # time passes
        for _ in range(2):
            subprocess.run(
                [sys.executable, "manage.py", "send_emails"],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=60,
                capture_output=True,
            )
    finally:
        server.stop()
        use_task_backend(settings, None)
    assert len(inbox.messages) == 1
    queued.refresh_from_db()
    assert queued.status == OutboundEmail.State.SENT and queued.attempts == 2
    assert timezone.now() - queued.sent_at < timedelta(minutes=1)
