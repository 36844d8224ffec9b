"""The CSRF token and the CSP nonce for templates, made on first use, as Django's own.

Django hands both to templates as a SimpleLazyObject, which proxies every operation on the
value: the template engine's type checks (is it a date? a number?), its escaping and the
`{% csrf_token %}` tag's comparisons each go through it. A page shows the token four times
and the nonce four times, and the proxying cost more than making them. `Token` makes its
value once, on first use, and is an ordinary object after that.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.middleware.csp import get_nonce
from django.middleware.csrf import get_token


class Token:
    """A token-like string (letters, digits, '-' and '_': nothing to escape), made by
    `make` the first time the template uses it."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], object]) -> None:
        self._make = make
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = str(self._make())
        return self._value

    __html__ = __str__

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return str(self) == other

    __hash__ = None  # type: ignore[assignment]


def tokens(request: HttpRequest) -> dict[str, object]:
    """Replaces the values of Django's csrf (built in) and csp context processors, which stay
    installed (the deploy checks look for the csp one)."""
    nonce = get_nonce(request)  # None without the CSP middleware
    return {
        "csrf_token": Token(lambda: get_token(request)),
        "csp_nonce": None if nonce is None else Token(lambda: nonce),
    }
