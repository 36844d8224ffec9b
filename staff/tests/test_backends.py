"""staff/backends.py: the signed-in user is read as Django's ModelBackend reads it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from staff.backends import AuthenticationBackend, ModelBackend

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("backend", [ModelBackend(), AuthenticationBackend()], ids=["django", "allauth"])
def test_get_user_reads_the_whole_active_user_in_one_query(backend, counsellor_user):
    with CaptureQueriesContext(connection) as queries:
        user = backend.get_user(counsellor_user.pk)
    assert len(queries) == 1
    assert user == counsellor_user
    # Every field, as the ORM loads it: the session's auth hash is made from the password.
    assert user.get_session_auth_hash() == counsellor_user.get_session_auth_hash()
    assert user.email == counsellor_user.email and user.is_active
    assert backend.get_user(counsellor_user.pk + 1000) is None
    assert backend.get_user(str(counsellor_user.pk)) == counsellor_user  # not an int: Django's own way


def test_an_inactive_user_is_not_signed_in(counsellor_user):
    counsellor_user.is_active = False
    counsellor_user.save(update_fields=["is_active"])
    assert ModelBackend().get_user(counsellor_user.pk) is None


def test_a_signed_in_client_session_uses_these_backends(client, counsellor_user):
    client.force_login(counsellor_user)
    assert client.session["_auth_user_backend"] == "staff.backends.ModelBackend"
