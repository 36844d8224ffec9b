"""The session engine (SESSION_ENGINE): Django's database sessions, read with a compiled query.

Every request of the booking wizard and of the staff portal reads its session, and building
Django's query for it costs more than the database takes to answer (mindsettler/compiled.py).
Everything else (saving, expiry, cycling keys, clearsessions) is Django's own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

from mindsettler.compiled import CompiledQuery

_LIVE_SESSION = CompiledQuery(
    lambda session_key, now: Session.objects.filter(session_key=session_key, expire_date__gt=now).values(
        "session_data", "expire_date"
    )[:1],
    session_key="0" * 32,
    now=datetime(2000, 1, 1, tzinfo=UTC),
)


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        rows = _LIVE_SESSION(session_key=self.session_key, now=timezone.now())
        if not rows:
            self._session_key = None
            return None
        return Session(session_key=self.session_key, **rows[0])
