"""Authentication backends: Django's and allauth's, with the signed-in user read by a
compiled query (mindsettler/compiled.py). Every request of the staff portal reads its user,
and building Django's query for it costs more than the database takes to answer."""

from __future__ import annotations

from allauth.account import auth_backends as allauth_backends
from django.contrib.auth import backends as django_backends
from django.contrib.auth import get_user_model

from mindsettler.compiled import CompiledQuery, columns, instance

_USER = CompiledQuery(
    lambda pk: get_user_model()._default_manager.filter(pk=pk).values(*columns(get_user_model()))[:1],
    pk=-1,
)


class _CompiledGetUser:
    def get_user(self, user_id: object):
        """ModelBackend.get_user: the active user with this id, or None."""
        if not isinstance(user_id, int):
            return super().get_user(user_id)
        rows = _USER(pk=user_id)
        user = instance(get_user_model(), rows[0]) if rows else None
        return user if user is not None and self.user_can_authenticate(user) else None


class ModelBackend(_CompiledGetUser, django_backends.ModelBackend):
    pass


class AuthenticationBackend(_CompiledGetUser, allauth_backends.AuthenticationBackend):
    pass
