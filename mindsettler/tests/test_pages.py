"""The home page, security headers, and the committed CSS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_home_page_explains_offers_both_actions_and_the_crisis_note(client, session_type, settings):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Book a session" in html and 'href="/book/"' in html
    assert "Check a booking" in html and 'href="/status/"' in html
    assert "not for emergencies" in html
    assert settings.CRISIS_HELP_TEXT in html
    assert "Individual session" in html and "₹1,500" in html
    assert 'href="#main"' in html and '<main id="main"' in html  # skip link and landmark


def test_home_page_query_budget(client, django_assert_max_num_queries, session_type):
    with django_assert_max_num_queries(2):
        client.get("/")


def test_the_privacy_notice_gives_the_retention_the_clinic_applies(client, settings):
    """The periods are the settings retention runs with, not numbers written in the text."""
    settings.DRAFT_RETENTION_HOURS, settings.RETENTION_MONTHS = 24, 18
    html = client.get("/privacy/").content.decode()
    assert "Unconfirmed requests are deleted after 24 hours." in html
    assert "phone number and everything you wrote after 18 months." in html
    settings.RETENTION_MONTHS = 1
    assert "everything you wrote after 1 month." in client.get("/privacy/").content.decode()
    hindi = client.get("/privacy/", headers={"Accept-Language": "hi"}).content.decode()
    assert "24 घंटे बाद" in hindi and "के 1 महीने बाद" in hindi


def test_security_headers_on_pages(client):
    response = client.get("/")
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert re.search(r"script-src 'self' 'nonce-[\w+/=-]+'", csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert f'nonce="{nonce}"' in tag, tag
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response["Permissions-Policy"]
    assert response["X-Request-ID"]


def test_not_found_is_a_friendly_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "We could not find that page" in response.content.decode()


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo", days=3)
    first = capsys.readouterr().out
    call_command("seed_demo", days=3)
    second = capsys.readouterr().out
    from bookings.models import Counsellor, SessionType

    assert Counsellor.objects.count() == 2 and SessionType.objects.count() == 3
    assert "password:" in first and "password:" not in second
    assert "0 new slots" in second


def _template_classes() -> set[str]:
    classes: set[str] = set()
    for path in (ROOT / "templates").rglob("*.html"):
        if "emails" in path.parts:
            continue  # emails use inline styles; mail clients ignore stylesheets
        for value in re.findall(r'class="([^"]*)"', path.read_text()):
            value = re.sub(r"\{[%{].*?[%}]\}", " ", value)  # template logic inside the attribute
            classes.update(c for c in value.split() if c)
    return classes


def _css_escape(name: str) -> str:
    return re.sub(r"([:/.\[\]%!#(),=&'*])", r"\\\1", name)


def test_committed_css_has_every_class_the_templates_use():
    """Fails when templates changed and `npm run build:css` was forgotten."""
    css = (ROOT / "static/css/app.css").read_text()
    missing = sorted(c for c in _template_classes() if f".{_css_escape(c)}" not in css and not c.startswith("js-"))
    assert missing == [], f"rebuild the CSS (npm ci && npm run build:css); missing: {missing}"


def test_side_by_side_terms_stack_on_a_narrow_screen():
    """A grid whose first column is as wide as its longest term ("Payment reference") left
    too little for the answers at 320 px (zoom to 400 %): a date ran off the right edge. Such
    grids are one column until the sm breakpoint."""
    unprefixed = sorted(c for c in _template_classes() if c.startswith("grid-cols-[max-content"))
    assert unprefixed == [], f"use grid-cols-1 sm:{unprefixed[0] if unprefixed else ''}"


def test_a_disabled_button_looks_disabled():
    """The Razorpay checkout's Pay button is disabled until the provider's script loads (and
    buttons are while htmx sends their form): it must not look like one that works."""
    utility = re.search(r"@utility btn \{[^}]*\}", (ROOT / "assets/app.css").read_text()).group(0)
    assert "disabled:opacity-60" in utility and "disabled:cursor-not-allowed" in utility
    assert ":disabled{cursor:not-allowed;opacity:.6}" in (ROOT / "static/css/app.css").read_text()


def test_form_controls_are_outlined_at_three_to_one():
    """WCAG 1.4.11: a text box or select is found by its border, which needs 3:1 against the
    white inside and the page around it. Stone 400 is 2.6:1 on white, stone 300 1.5:1; stone
    500 is 4.8:1 (4.4:1 on the page's paper colour)."""
    light = re.compile(r"\bborder-stone-(?:50|100|200|300|400)\b")
    utility = re.search(r"@utility input \{[^}]*\}", (ROOT / "assets/app.css").read_text()).group(0)
    assert not light.search(utility), utility
    controls = []
    for path in (ROOT / "templates").rglob("*.html"):
        controls += [
            tag for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", path.read_text()) if light.search(tag)
        ]
    assert controls == []


def _words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("page", ["500", "503"])
def test_the_error_pages_give_the_configured_crisis_line_without_the_database(
    page, rf, settings, django_assert_num_queries
):
    """A clinic outside India configures its own emergency numbers: the pages shown when
    something failed (the database, perhaps) say those, and read nothing to say them."""
    from mindsettler.middleware import unavailable_response
    from mindsettler.views import server_error

    settings.CRISIS_HELP_TEXT = "In an emergency, call 999 or the Samaritans on 116 123."
    with django_assert_num_queries(0):
        response = server_error(rf.get("/book/")) if page == "500" else unavailable_response()
    html = _words(response.content.decode())
    assert response.status_code == int(page)
    assert "Not for emergencies. In an emergency, call 999 or the Samaritans on 116 123." in html
    assert "call 112" not in html


def test_the_500_page_promises_nothing_it_cannot_know(rf):
    from mindsettler.views import server_error

    html = _words(server_error(rf.get("/")).content.decode())
    assert "nothing was half-saved. Please try again in a minute." in html
    assert "has been lost" not in html


def test_the_home_page_gives_the_cancellation_cutoff_in_force(client, session_type, settings):
    settings.CANCELLATION_CUTOFF_HOURS = 48
    assert "You can cancel online up to 48 hours before." in client.get("/").content.decode()


def test_a_refused_page_says_what_to_do_instead(rf):
    from django.contrib.auth.models import AnonymousUser

    from mindsettler.views import permission_denied

    request = rf.get("/somewhere/")
    request.user = AnonymousUser()
    html = _words(permission_denied(request).content.decode())
    assert "This page is not available. If you followed a link from one of our emails, open your booking" in html
    assert "It is not open to you" not in html
