"""Staff-portal fixtures: signed-in personas that satisfy the two-factor requirement."""

from __future__ import annotations

import re
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.conf import settings
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from staff.middleware import _LAST_SEEN, second_factor_given
from staff.models import User


@pytest.fixture(autouse=True)
def _local_cache(settings):
    # allauth keeps login rate limits and used TOTP codes in the cache; a fresh local one per test.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "staff-tests"}
    }
    from django.core.cache import cache

    cache.clear()


def totp_enable(user: User) -> str:
    """Give `user` an authenticator app, as activation would. Returns the secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str) -> str:
    """The code an authenticator app would show right now.

    The server accepts only the current period's code, so a code read in the last moments of
    its period can expire before the form reaches the server (a sign-in that fails one run in
    a few dozen): as a person would, wait for the next code rather than type one about to change.
    """
    import time

    from allauth.mfa import app_settings

    period = app_settings.TOTP_PERIOD
    left = period - time.time() % period
    if left < 3:
        time.sleep(left + 0.05)
    return format_hotp_value(hotp_value(secret, int(time.time()) // period))


def sign_in_with_second_factor(browser: Client, user: User) -> None:
    """`browser` signed in as `user`, as after giving their authenticator app's code at
    sign-in (the portal requires it); the app is set up first if they have none."""
    if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
        totp_enable(user)
    browser.force_login(user)
    session = browser.session
    second_factor_given(session, user)
    session.save()


def seen_just_now(browser: Client) -> None:
    """Mark the browser's staff session as seen this second, as StaffSessionMiddleware does at
    most once a minute: a request within the next minute writes no session. A query count
    that relied on an earlier request's mark counted one write more whenever the machine was
    slow enough for that minute to pass."""
    session = browser.session
    session[_LAST_SEEN] = int(time.time())
    session.save()


def setup_link_in(message: mail.EmailMessage) -> str:
    """The path of the authenticator setup link in `message`."""
    prefix = reverse("staff_setup_link_send")
    found = re.search(rf"http://testserver({re.escape(prefix)}[\w-]+/)", message.body)
    assert found, message.body
    return found.group(1)


def setup_link_opened(browser: Client, user: User) -> None:
    """`browser`, signed in as `user` (whose account has no authenticator app) with the
    password alone, asks for the emailed setup link and opens it, as the setup page asks:
    it may then set up the app."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert browser.post(reverse("staff_setup_link_send"))["Location"] == reverse("mfa_activate_totp")
    message = mail.outbox[-1]
    assert message.to == [user.email]
    link = setup_link_in(message)
    assert browser.get(link).status_code == 200
    assert browser.post(link)["Location"] == reverse("mfa_activate_totp")


@pytest.fixture
def login(client, django_capture_on_commit_callbacks):
    """`login(user)`: a browser of its own, signed in as `user` with a second factor set up
    (the portal requires it). Like the root `client`, it runs on-commit work (emails)."""

    def do(user: User | None):
        if user is None:
            return client
        browser = Client()
        original = browser.request

        def request(**kwargs):
            with django_capture_on_commit_callbacks(execute=True):
                return original(**kwargs)

        browser.request = request
        sign_in_with_second_factor(browser, user)
        return browser

    return do


@pytest.fixture
def admin_client(login, admin_user):
    return login(admin_user)


@pytest.fixture
def counsellor_client(login, counsellor_user, counsellor):
    return login(counsellor_user)


HX = {"HTTP_HX_REQUEST": "true"}

# What the new-booking form posts once the client on the phone agreed to the privacy notice
# whose summary was read to them: the box ticked, for the version the page showed.
CONSENTED = {"consent": "on", "consent_by": "consent_by_phone", "policy_shown": settings.POLICY_VERSION}
