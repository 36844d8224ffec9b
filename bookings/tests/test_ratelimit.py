from __future__ import annotations

import hashlib

import pytest
from django.test import RequestFactory

from bookings.models import RateCounter
from bookings.ratelimit import client_ip, counters_prune, ratelimit_hit

pytestmark = pytest.mark.django_db


def test_allows_up_to_the_limit_then_says_how_long_to_wait(settings, django_assert_num_queries):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (3, 60)}
    with django_assert_num_queries(1):
        assert ratelimit_hit(scope="status_lookup", key="ip:1.2.3.4") is None
    assert ratelimit_hit(scope="status_lookup", key="ip:1.2.3.4") is None
    assert ratelimit_hit(scope="status_lookup", key="ip:1.2.3.4") is None
    wait = ratelimit_hit(scope="status_lookup", key="ip:1.2.3.4")
    assert wait is not None and 1 <= wait <= 60
    # Another key, and the same key in another scope, are counted apart.
    assert ratelimit_hit(scope="status_lookup", key="ip:5.6.7.8") is None
    assert ratelimit_hit(scope="cancel_request", key="ip:1.2.3.4") is None


def test_a_new_window_starts_afresh(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (1, 60)}
    assert ratelimit_hit(scope="status_lookup", key="k") is None
    assert ratelimit_hit(scope="status_lookup", key="k") is not None
    RateCounter.objects.update(period_start=0)  # the window has passed
    assert ratelimit_hit(scope="status_lookup", key="k") is None
    assert counters_prune() == 0
    RateCounter.objects.update(period_start=0)
    assert counters_prune() == 1


def test_keys_are_stored_as_a_keyed_hash(settings):
    ratelimit_hit(scope="status_lookup", key="email:someone@example.com")
    stored = RateCounter.objects.get().key
    assert "someone" not in stored
    # Not a plain hash, which could be matched against a list of addresses: the digest depends
    # on SECRET_KEY.
    plain = hashlib.sha256(b"status_lookup:email:someone@example.com").hexdigest()[:40]
    assert plain not in stored
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    ratelimit_hit(scope="status_lookup", key="email:someone@example.com")
    assert RateCounter.objects.count() == 2


def test_can_be_switched_off(settings):
    settings.RATELIMIT_ENABLED = False
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (1, 60)}
    assert all(ratelimit_hit(scope="status_lookup", key="k") is None for _ in range(5))


def test_client_ip_trusts_only_the_configured_proxies(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.NUM_PROXIES = 0
    assert client_ip(request) == "10.0.0.1"
    settings.NUM_PROXIES = 1
    assert client_ip(request) == "203.0.113.7"
