"""The session engine (mindsettler/sessions.py) reads sessions as Django's database engine does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mindsettler.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_a_saved_session_reads_back_in_one_query():
    store = SessionStore()
    store["run"] = {"step": "session", "day": "2026-12-01"}
    store.save()
    again = SessionStore(session_key=store.session_key)
    with CaptureQueriesContext(connection) as queries:
        assert again["run"] == {"step": "session", "day": "2026-12-01"}
    assert len(queries) == 1
    assert again.session_key == store.session_key


def test_an_expired_or_unknown_session_reads_as_empty():
    store = SessionStore()
    store["secret"] = "x"
    store.save()
    Session.objects.filter(session_key=store.session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    for key in (store.session_key, "no-such-session-key-0123456789ab"):
        reread = SessionStore(session_key=key)
        assert reread.load() == {} and "secret" not in reread
        assert reread.session_key is None  # a new key is made when it is saved: no fixation
