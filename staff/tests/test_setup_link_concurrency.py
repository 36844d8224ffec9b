"""Two "Email me a link" presses at once leave one working link (PostgreSQL, real threads):
the second waits for the first's member row, then replaces its link."""

from __future__ import annotations

import pytest
from django.db import connection

from bookings.tests.threads import held_open
from staff.models import SetupLink
from staff.services import setup_link_create

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency"),
    pytest.mark.django_db(transaction=True),
]


def test_two_links_asked_for_at_once_leave_one(counsellor_user):
    assert held_open(
        lambda: setup_link_create(user=counsellor_user), lambda: setup_link_create(user=counsellor_user)
    ) == (
        "ok",
        "ok",
    )
    assert SetupLink.objects.filter(user=counsellor_user).count() == 1
