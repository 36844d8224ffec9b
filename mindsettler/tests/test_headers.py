"""Security headers on every kind of page, under the settings production runs with (DEBUG
off, HTTPS): public pages, pages behind emailed links, staff pages, the API, health, 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from bookings.models import LinkToken, Status
from bookings.tokens import token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings):
    """What DEBUG=false with SECURE_SSL_REDIRECT on sets (see mindsettler/settings.py)."""
    settings.DEBUG = False
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True


def check_headers(response, *, referrer=("same-origin", "no-referrer")) -> None:
    where = f"{response.request['PATH_INFO']} ({response.status_code})"
    csp = response.get("Content-Security-Policy", "")
    assert csp, f"no CSP on {where}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, where
    assert response["Strict-Transport-Security"].startswith("max-age=31536000"), where
    assert "includeSubDomains" in response["Strict-Transport-Security"], where
    assert response["X-Frame-Options"] == "DENY", where
    assert response["X-Content-Type-Options"] == "nosniff", where
    assert response["Referrer-Policy"] in referrer, where
    policy = response["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()"):
        assert feature in policy, where
    for morsel in response.cookies.values():
        # Only cookies actually being set (a deletion has max-age 0).
        assert morsel["secure"], f"{morsel.key} not Secure on {where}"
        assert morsel["samesite"] in ("Lax", "Strict"), f"{morsel.key} SameSite on {where}"
        if morsel.key in ("sessionid", "csrftoken"):
            assert morsel["httponly"], f"{morsel.key} not HttpOnly on {where}"


def test_every_page_type_sends_the_security_headers(
    production, client, make_booking, counsellor, session_type, slot, admin_user, api_token, settings
):
    get = lambda c, path, **kw: c.get(path, secure=True, **kw)  # noqa: E731
    seen = []

    # Public pages. The wizard sets the session cookie; forms set the CSRF cookie.
    for path in ("/", "/status/", "/privacy/", "/policies/", "/accounts/login/"):
        response = get(client, path)
        assert response.status_code == 200, path
        check_headers(response)
        seen.append(path)
    started = get(client, "/book/")
    assert started.status_code == 302 and "sessionid" in started.cookies
    check_headers(started)
    step = get(client, started["Location"])
    assert step.status_code == 200 and "csrftoken" in step.cookies
    check_headers(step)

    # Pages behind emailed links: never cached, no Referer to other sites.
    draft = make_booking(Status.DRAFT, counsellor=counsellor)
    verify = token_create(booking=draft, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    manage = token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=1))
    for path in (f"/verify/{verify}/", f"/bookings/{manage}/", f"/bookings/{manage}/session.ics", "/verify/bad-token/"):
        response = get(client, path)
        assert response.status_code in (200, 404), path
        check_headers(response)
        if "session.ics" not in path:
            assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"], path
        seen.append(path)

    # A counsellor's calendar subscription, read by a calendar app: no cookie, no shared cache.
    from staff.services import calendar_subscription_create

    feed = calendar_subscription_create(user=counsellor.user).removeprefix(settings.SITE_URL)
    for path in (feed, "/staff/calendar/" + "x" * 43 + ".ics"):
        response = get(client, path)
        assert response.status_code in (200, 404) and not response.cookies, path
        check_headers(response)
        assert "private" in response["Cache-Control"] and response["X-Robots-Tag"] == "noindex, nofollow", path
        seen.append(path)

    # Staff pages, signed in with a second factor.
    from staff.tests.conftest import sign_in_with_second_factor

    staff = Client()
    sign_in_with_second_factor(staff, admin_user)
    for path in ("/staff/", "/staff/bookings/", f"/staff/bookings/{booking.pk}/", "/staff/calendar/"):
        response = get(staff, path)
        assert response.status_code == 200, path
        check_headers(response)
        seen.append(path)

    # The API, health, a 404, and plain HTTP (redirected to HTTPS, with the headers too).
    for path, headers in (
        ("/api/v1/session-types", {"HTTP_AUTHORIZATION": f"Bearer {api_token}"}),
        ("/api/v1/openapi.json", {}),
        ("/api/v1/session-types", {}),
        ("/no-such-page/", {}),
    ):
        response = get(client, path, **headers)
        assert response.status_code in (200, 401, 404), (path, response.status_code)
        check_headers(response)
        seen.append(path)
    # The health check's JSON is answered before the page middleware (no CSP or frame policy
    # to give a body no browser renders), but after SecurityMiddleware's headers.
    health = get(client, "/healthz")
    assert health.status_code == 200 and not health.cookies
    assert health["Strict-Transport-Security"].startswith("max-age=31536000")
    assert health["X-Content-Type-Options"] == "nosniff" and health["Referrer-Policy"] == "same-origin"
    seen.append("/healthz")
    plain = client.get("/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    assert len(seen) >= 19


def test_the_header_check_itself_fails_on_a_weak_policy(production, client, settings):
    settings.SECURE_CSP = {**settings.SECURE_CSP, "script-src": ["'self'", "'unsafe-inline'"]}
    with pytest.raises(AssertionError):
        check_headers(client.get("/", secure=True))
    settings.SECURE_CSP = {k: v for k, v in settings.SECURE_CSP.items() if k != "script-src"}
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"
    with pytest.raises(AssertionError, match="/"):
        check_headers(client.get("/", secure=True))


def test_static_files_carry_the_frame_and_feature_policies(production, settings):
    """WhiteNoise answers before the page middleware: its files get the policies too, and one
    opened as a document (the SVG icon) may run nothing."""
    settings.WHITENOISE_USE_FINDERS = settings.WHITENOISE_AUTOREFRESH = True
    for path in ("/static/img/favicon.svg", "/static/css/app.css", "/static/js/calendar.js"):
        response = Client().get(path, secure=True)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'", path
        assert response["X-Frame-Options"] == "DENY" and "camera=()" in response["Permissions-Policy"], path
        assert response["X-Content-Type-Options"] == "nosniff", path


def test_the_language_cookie_is_secure_and_kept_from_scripts(production, client, settings):
    settings.LANGUAGE_COOKIE_SECURE = True  # as DEBUG=false over HTTPS sets it
    client.get("/", secure=True)
    response = client.post("/i18n/setlang/", {"language": "hi", "next": "/"}, secure=True)
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "hi" and cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
