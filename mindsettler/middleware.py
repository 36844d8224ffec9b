from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.template.loader import render_to_string
from django.utils import translation

from bookings.api import problems
from bookings.context_processors import crisis_help_text
from mindsettler.logging import request_id_var

logger = logging.getLogger(__name__)


def head_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A HEAD request gets the answer GET would, without its body (RFC 9110): gunicorn drops
    a body sent anyway, with a warning per request, which an uptime probe every few seconds
    turns into thousands of log lines a day. Content-Length stays the body's."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        # 204 and 304 answers have no body and must not say a length (RFC 9110, 8.6).
        if request.method == "HEAD" and not response.streaming and response.status_code not in (204, 304):
            length = len(response.content)
            response.content = b""
            response["Content-Length"] = str(length)
        return response

    return middleware


class RequestIDMiddleware:
    """Gives each request an ID for the logs, taken from the proxy when it sends one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else secrets.token_hex(8)
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


# Served in English whatever the client's language: the staff portal and its sign-in, the
# API (its messages are a contract).
ENGLISH_ONLY_PREFIXES = ("/staff/", "/accounts/", "/api/")


class LocaleMiddleware(DjangoLocaleMiddleware):
    """Django's, choosing from the switcher's cookie then Accept-Language, except for the
    English-only parts of the site. Public URLs carry no language prefix."""

    def process_request(self, request: HttpRequest) -> None:
        if request.path_info.startswith(ENGLISH_ONLY_PREFIXES):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE  # type: ignore[attr-defined]
            return
        super().process_request(request)


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


def health_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """`/healthz` answered before the host is checked. A load balancer probes each app server
    at its own address (`Host: 10.0.0.7:8000`), over plain HTTP: through the rest of the
    stack that is a 400 (a host not in ALLOWED_HOSTS), or a 301 to HTTPS, and the server is
    taken out of service while healthy. The answer names no host, so none is needed.
    SECURE_REDIRECT_EXEMPT spares it the redirect; it stands after SecurityMiddleware, whose
    headers it still gets."""
    from mindsettler.views import healthz

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path_info == "/healthz":
            return healthz(request)
        return get_response(request)

    return middleware


class DatabaseUnavailableMiddleware:
    """A calm 503 page instead of a 500 when the database cannot be reached.

    Nothing is half-written: every state change runs in a transaction, which the database
    rolls back when the connection drops.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.error("database unavailable: %s", type(exception).__name__)
        if request.path_info.startswith(problems.API_PREFIX):
            # The chatbot reads problem details, not a page.
            return problems.service_unavailable(UNAVAILABLE_RETRY_AFTER).response()
        return unavailable_response()


UNAVAILABLE_RETRY_AFTER = 30


def unavailable_response() -> HttpResponse:
    # Without the database: the context processors are not run, and crisis_help_text needs none.
    html = render_to_string("503.html", {"clinic_name": settings.CLINIC_NAME, "crisis_help_text": crisis_help_text()})
    response = HttpResponse(html, status=503)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response
