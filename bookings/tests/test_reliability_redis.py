"""The scale-out path on a real Redis (CI starts Debian's redis-server; skipped without
REDIS_URL): rate-limit counters shared in Redis, and the email and expiry tasks queued in
Redis by the RQ backend (django-tasks-rq) and run by an RQ worker."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import OutboundEmail, RateCounter, Status
from bookings.ratelimit import ratelimit_hit
from bookings.services import booking_approve
from bookings.tests.test_reliability_faults import use_task_backend

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = [
    pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (a running redis-server)"),
    pytest.mark.django_db,
]


@pytest.fixture
def redis(settings):
    import redis as redis_py

    settings.REDIS_URL = REDIS_URL
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    client = redis_py.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def rq_backend(settings, redis):
    settings.RQ_QUEUES = {"default": {"URL": REDIS_URL}}
    use_task_backend(settings, {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]})
    yield
    use_task_backend(settings, None)


def run_rq_worker() -> int:
    """Run every queued job once, in this process (RQ's SimpleWorker in burst mode)."""
    import django_rq
    from django_tasks_rq.backend import Job
    from rq import SimpleWorker

    queue = django_rq.get_queue("default", job_class=Job)
    jobs = len(queue)
    SimpleWorker([queue], connection=queue.connection, job_class=Job).work(burst=True)
    return jobs


def test_rate_limits_count_in_redis(settings, redis):
    settings.RATELIMIT_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (2, 60)}
    assert ratelimit_hit(scope="status_lookup", key="ip:203.0.113.5") is None
    assert ratelimit_hit(scope="status_lookup", key="ip:203.0.113.5") is None
    assert 0 < ratelimit_hit(scope="status_lookup", key="ip:203.0.113.5") <= 60
    assert not RateCounter.objects.exists()
    keys = [k.decode() for k in redis.keys("rl:*")]
    assert len(keys) == 1 and "203.0.113.5" not in keys[0]  # hashed, like the database's
    assert 0 < redis.ttl(keys[0]) <= 65


def test_the_approval_email_is_queued_in_redis_and_sent_by_an_rq_worker(rq_backend, make_booking, slot, oncommit):
    from django.core import mail

    booking = make_booking(Status.PENDING, counsellor=slot.counsellor)
    with oncommit():
        # By the counsellor: approved by someone else, they would be emailed too.
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=slot.counsellor.user)
    email = OutboundEmail.objects.get(kind="approved")
    assert email.status == OutboundEmail.State.PENDING and mail.outbox == []  # waiting in Redis
    assert run_rq_worker() == 1
    email.refresh_from_db()
    assert email.status == OutboundEmail.State.SENT and len(mail.outbox) == 1
    assert run_rq_worker() == 0  # nothing left, nothing sent twice
    assert len(mail.outbox) == 1


def test_the_expiry_sweep_runs_as_an_rq_task(rq_backend, make_booking, counsellor, oncommit):
    from bookings.tasks import expire_bookings

    due = make_booking(Status.APPROVED, counsellor=counsellor, payment_due_at=timezone.now() - timedelta(minutes=1))
    live = make_booking(Status.APPROVED, counsellor=counsellor)
    expire_bookings.enqueue()
    with oncommit():
        assert run_rq_worker() == 1
    due.refresh_from_db()
    live.refresh_from_db()
    assert due.status == Status.CANCELLED and live.status == Status.APPROVED
    assert OutboundEmail.objects.filter(booking=due, kind="expired").count() == 1
    from django.core import mail

    run_rq_worker()  # the email's delivery, queued after the sweep's commit
    assert OutboundEmail.objects.get(booking=due, kind="expired").status == OutboundEmail.State.SENT
    assert [m.to for m in mail.outbox] == [[due.email]]
