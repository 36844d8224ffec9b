from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register
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
