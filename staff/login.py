"""The staff sign-in page: allauth's, with an honest 429 and Retry-After when too many
attempts failed (allauth itself answers 200 with a form error)."""

from __future__ import annotations

from allauth.account.views import LoginView
from django.conf import settings
from django.http import HttpRequest, HttpResponse

_allauth_login = LoginView.as_view()


def login_retry_after() -> int:
    """The longest window of the `login_failed` limit, e.g. "5/5m/ip,5/5m/key" -> 300."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    longest = 60
    for rule in settings.ACCOUNT_RATE_LIMITS.get("login_failed", "").split(","):
        parts = rule.strip().split("/")
        if len(parts) >= 2 and parts[1]:
            period = parts[1]
            number = int(period[:-1]) if period[:-1].isdigit() else 1
            longest = max(longest, number * units.get(period[-1], 1))
    return longest


def login(request: HttpRequest) -> HttpResponse:
    response = _allauth_login(request)
    form = (getattr(response, "context_data", None) or {}).get("form")
    if request.method == "POST" and form is not None and form.is_bound:
        from staff.adapters import TOO_MANY_LOGINS

        if TOO_MANY_LOGINS in form.non_field_errors():
            response.status_code = 429
            response["Retry-After"] = str(login_retry_after())
    return response
