from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_is_ok_with_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.django_db
def test_a_load_balancer_probing_an_app_server_by_its_address_over_http_is_answered(client, settings):
    """In production (DEBUG off, HTTPS redirect, one public host), a probe of the app server
    itself: `Host` is the server's address and there is no X-Forwarded-Proto. Everything
    else at that address is still refused."""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["book.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for host in ("10.0.0.7:8000", "127.0.0.1:8000"):
        response = client.get("/healthz", HTTP_HOST=host)
        assert response.status_code == 200, (host, response.status_code, response.get("Location"))
        assert response.json() == {"status": "ok", "database": "ok"}
        assert response["X-Content-Type-Options"] == "nosniff"
        assert client.head("/healthz", HTTP_HOST=host).status_code == 200
        assert client.get("/", HTTP_HOST=host).status_code == 400
    assert client.get("/", HTTP_HOST="book.example.org").status_code == 301


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/healthz", "/", "/counsellors/", "/privacy/", "/policies/", "/status/", "/waitlist/", "/book/"]
)
def test_monitors_may_ask_with_head(client, path):
    """Uptime checks, link checkers and load balancers send HEAD: the answer GET would give, no
    body. Pages that also take a form answer it too, and never as if the form were sent."""
    response = client.head(path)
    got = client.get(path)
    assert response.status_code == got.status_code and response.status_code in (200, 302)
    assert response.content == b"" and int(response["Content-Length"]) == len(got.content)


@pytest.mark.parametrize("status", [204, 304])
def test_a_head_answer_without_a_body_says_no_length(rf, status):
    from django.http import HttpResponse

    from mindsettler.middleware import head_middleware

    response = head_middleware(lambda request: HttpResponse(status=status))(rf.head("/"))
    assert response.status_code == status and not response.has_header("Content-Length")


def test_healthz_and_pages_answer_503_when_the_database_is_unreachable(tmp_path):
    """A real unreachable database: an SQLite file in a directory that does not exist."""
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "c = Client()\n"
        "h = c.get('/healthz'); print('healthz', h.status_code, h.content.decode())\n"
        "p = c.get('/'); print('home', p.status_code, p['Retry-After'])\n"
        "print('calm' if b'back in a moment' in p.content else 'not calm')\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "mindsettler.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/db.sqlite3",
            "ALLOWED_HOSTS": "testserver",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "healthz 503" in result.stdout, result.stdout + result.stderr
    assert '"database": "unreachable"' in result.stdout
    assert "home 503 30" in result.stdout
    assert "calm" in result.stdout.splitlines()[-1] and "not calm" not in result.stdout
