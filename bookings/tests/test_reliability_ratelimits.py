"""Every rate limit answers 429 with a plain-words message and Retry-After.

Counters live in the shared store (the database, or Redis when REDIS_URL is set: CI runs
this file both ways), so the limits hold across app servers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from bookings.models import LinkToken, Status
from bookings.tests.journey import ABOUT, consent, submit, walk_to_review
from bookings.tokens import token_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits_on(settings):
    settings.RATELIMIT_ENABLED = True
    if settings.REDIS_URL:  # counters in Redis outlive a test's transaction: start afresh
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()


def limited(response, words: str, *, longest: int = 3600) -> None:
    assert response.status_code == 429, response.status_code
    assert 0 < int(response["Retry-After"]) <= longest
    assert words in response.content.decode()


def test_wizard_submissions_per_ip(client, settings, session_type, slot, other_slot):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "wizard_submit_ip": (1, 3600)}
    assert submit(client, walk_to_review(client, session_type=session_type, slot=slot)).status_code == 303
    about = {**ABOUT, "email": "another@example.com"}
    run = walk_to_review(client, session_type=session_type, slot=other_slot, about=about)
    limited(submit(client, run), "several booking requests")


def test_wizard_submissions_per_email_from_any_address(client, settings, session_type, slot, other_slot):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "wizard_submit_email": (1, 3600)}
    assert submit(client, walk_to_review(client, session_type=session_type, slot=slot)).status_code == 303
    run = walk_to_review(client, session_type=session_type, slot=other_slot)
    response = client.post(f"/book/?run={run}&step=review", consent(client, run), REMOTE_ADDR="203.0.113.9")
    limited(response, "several booking requests")


def test_verification_resends(client, settings, make_booking, counsellor):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "verify_resend": (2, 3600)}
    draft = make_booking(Status.DRAFT, counsellor=counsellor)
    token = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    for _ in range(2):
        assert client.post(f"/verify/{token}/resend/").status_code == 200
    limited(client.post(f"/verify/{token}/resend/"), "several times")


def test_status_lookups(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (3, 60)}
    for _ in range(3):
        assert client.post("/status/", {"lookup": "ack", "ack_id": "MS-ABCDEF"}).status_code == 200
    limited(client.post("/status/", {"lookup": "ack", "ack_id": "MS-ABCDEF"}), "several lookups", longest=60)


def test_cancellation_requests(client, settings, make_booking, counsellor, manage_token, presses_apart):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "cancel_request": (2, 3600)}
    page = f"/bookings/{manage_token(make_booking(Status.APPROVED, counsellor=counsellor))}/"
    for _ in range(2):
        assert client.post(page + "cancel/").status_code == 303
        presses_apart()
    limited(client.post(page + "cancel/"), "several cancellation emails")
    assert len(mail.outbox) == 2


def test_staff_sign_in_after_repeated_failures(client, settings, admin_user):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl"}}
    from django.core.cache import cache

    cache.clear()
    wrong = {"login": admin_user.email, "password": "not-the-password"}
    for _ in range(5):
        response = client.post("/accounts/login/", wrong)
        assert response.status_code == 200
    refused = client.post("/accounts/login/", wrong)
    limited(refused, "Too many failed sign-in attempts", longest=300)
    assert refused["Retry-After"] == "300"
    # Even the right password waits: the limit is per account as well as per IP.
    right = client.post("/accounts/login/", {"login": admin_user.email, "password": "a-long-admin-password"})
    assert right.status_code == 429
