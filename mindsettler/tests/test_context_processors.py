"""The CSRF token and CSP nonce handed to templates (mindsettler/context_processors.py)."""

from __future__ import annotations

import re

import pytest
from django.middleware.csrf import _unmask_cipher_token
from django.template import engines
from django.test import Client, RequestFactory

from mindsettler.context_processors import Token

pytestmark = pytest.mark.django_db


def _render(source: str, request) -> str:
    return engines["django"].from_string(source).render({}, request)


def _request():
    request = RequestFactory().get("/")
    request.META["CSRF_COOKIE"] = "a" * 32
    request._csp_nonce = None
    return request


def test_the_token_is_made_on_first_use_only():
    request = _request()
    assert _render("{% if csp_nonce is None %}no nonce{% endif %}", request) == "no nonce"
    assert "CSRF_COOKIE_NEEDS_UPDATE" not in request.META  # untouched: no cookie to send

    html = _render('{{ csrf_token }} {% csrf_token %}{% if csrf_token == "NOTPROVIDED" %}!{% endif %}', request)
    shown, field = re.fullmatch(r'(\w+) <input type="hidden" name="csrfmiddlewaretoken" value="(\w+)">', html).groups()
    assert shown == field  # one token per rendering, as with Django's lazy object
    assert _unmask_cipher_token(shown) == "a" * 32
    assert request.META["CSRF_COOKIE_NEEDS_UPDATE"] is True


def test_a_value_is_made_once():
    made = []
    token = Token(lambda: made.append(1) or "abc-_1")
    assert made == [] and token
    assert str(token) == token.__html__() == "abc-_1" and token == "abc-_1" and token != "x"
    assert made == [1]


def test_the_status_page_token_passes_the_csrf_check_and_the_nonce_is_the_headers():
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/status/")
    html = page.content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert f'"X-CSRFToken": "{token}"' in html
    nonce = re.search(r"'nonce-([^']+)'", page["Content-Security-Policy"]).group(1)
    assert html.count(f'nonce="{nonce}"') >= 2 and f'"inlineScriptNonce": "{nonce}"' in html
    response = browser.post("/status/", {"csrfmiddlewaretoken": token, "lookup": "ack", "ack_id": "MS-7K3QXP"})
    assert response.status_code == 200
