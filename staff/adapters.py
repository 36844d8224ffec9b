from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class StaffAccountAdapter(DefaultAccountAdapter):
    """Accounts are for staff only, and only an administrator creates them (by invitation)."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False
