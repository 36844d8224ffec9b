from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.http.request import validate_host


@register(Tags.security, deploy=True)
def check_payment_provider(app_configs, **kwargs):
    if settings.PAYMENT_PROVIDER == "sandbox":
        return [
            Warning(
                "PAYMENT_PROVIDER is 'sandbox': bookings would be confirmed without any money moving.",
                hint="Set PAYMENT_PROVIDER=razorpay with RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET and RAZORPAY_WEBHOOK_SECRET.",
                id="mindsettler.W001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_site_url(app_configs, **kwargs):
    """SITE_URL makes every link in every email. Left at its local default, or naming a host
    the app refuses, each client's link to their booking is dead."""
    site = urlsplit(settings.SITE_URL)
    problems = []
    if site.scheme != "https" and settings.SECURE_SSL_REDIRECT:
        problems.append(
            Warning(
                f"SITE_URL is {settings.SITE_URL!r}: links in emails would not use HTTPS.",
                hint="Set SITE_URL to the site's public address, e.g. https://book.example.org.",
                id="mindsettler.W002",
            )
        )
    host = site.hostname or ""
    if not host or not validate_host(f"[{host}]" if ":" in host else host, settings.ALLOWED_HOSTS):
        problems.append(
            Warning(
                f"SITE_URL's host ({site.netloc or 'none'}) is not in ALLOWED_HOSTS: links in emails would be refused.",
                hint="Set SITE_URL to the site's public address and list its host in ALLOWED_HOSTS.",
                id="mindsettler.W003",
            )
        )
    return problems


# Where docs/deployment.md has a server keep its environment file.
ENVIRONMENT_FILE = Path("/etc/mindsettler.env")


@register(Tags.staticfiles)  # so that collectstatic, which runs only these, runs it too
def check_environment_file_was_read(app_configs, **kwargs):
    """On a server, a command run without the environment file has no settings at all: debug
    mode on SQLite. `migrate` would make a db.sqlite3 beside the code and report success, and
    `collectstatic` would skip the compressed, hashed files. Refused here instead (every
    management command runs the checks; gunicorn and the workers read the file through systemd)."""
    if settings.DEBUG and not os.environ.get("DATABASE_URL") and ENVIRONMENT_FILE.exists():
        return [
            Error(
                f"{ENVIRONMENT_FILE} exists but was not read: DEBUG is on and there is no DATABASE_URL, "
                "so this command would work on a SQLite file in the app's directory.",
                hint=f"Read it first, as the service user: set -a; . {ENVIRONMENT_FILE}; set +a "
                "(docs/deployment.md, section 2).",
                id="mindsettler.E001",
            )
        ]
    return []
