"""Staff sessions: end after inactivity, require a second factor before anything else, and
leave no account page in a cache."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model, logout, update_session_auth_hash
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import add_never_cache_headers

from staff.permissions import away_to, sign_in_again

_LAST_SEEN = "staff_last_seen"
# staff.urls' calendar_app_feed, matched without resolving every request's path.
_CALENDAR_FEED = re.compile(r"^/staff/calendar/[^/]+\.ics$")


class StaffSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _CALENDAR_FEED.match(request.path_info):
            # A counsellor's calendar subscription: its secret is its credential, whoever's
            # browser asks (a calendar app has no session). Sending a staff session that has
            # timed out to sign in would put the secret in the sign-in page and its session.
            return self.get_response(request)
        user = getattr(request, "user", None)
        second_factor = None
        if user is not None and user.is_authenticated:
            now = int(time.time())
            last_seen = request.session.get(_LAST_SEEN)
            if last_seen is not None and now - last_seen > settings.STAFF_SESSION_IDLE_MINUTES * 60:
                logout(request)
                return sign_in_again(request, timeout=1)
            # Refresh at most once a minute: a session write on every request would cost a
            # query per request (and the idle limit is counted in minutes anyway).
            if last_seen is None or now - last_seen >= 60:
                request.session[_LAST_SEEN] = now
            second_factor = _second_factor(request, user)
            if second_factor == _NOT_GIVEN:
                # Signed in with a password alone while the account had no authenticator app,
                # which has been set up since in another sign-in: this one gives its code at
                # sign-in, as every sign-in of the account now does. Ended on any page, not
                # only the portal's: the account's pages would show it the new recovery codes
                # for the password alone.
                logout(request)
                return sign_in_again(request)
            # path_info: the path within the site, whatever prefix a proxy mounts it under
            # (SCRIPT_NAME), as the URLs are resolved.
            if second_factor == _NONE and request.path_info.startswith("/staff/"):
                return away_to(request, reverse("mfa_activate_totp"))
            if (
                second_factor == _NONE
                and request.path_info.startswith("/accounts/")
                and not _open_before_setup(request)
            ):
                return away_to(request, reverse("mfa_activate_totp"))
        # The account pages show the portal's menu only to a session the portal is open to.
        request.staff_portal_open = second_factor == _GIVEN
        response = self.get_response(request)
        if second_factor == _NONE and _app_set_up_meanwhile(request, user):
            # The account had no app when this request began; it has one now, set up in
            # another sign-in while the view ran: this response may show what only the app's
            # holder may see (its recovery codes, for the password alone). Ended, as above.
            logout(request)
            return sign_in_again(request)
        if request.path_info.startswith("/accounts/"):
            # allauth's pages: the authenticator's key on its setup page (every later code
            # follows from it), the sign-in and password forms. No shared or browser cache
            # keeps them, as none keeps the portal's (staff.permissions.staff_required).
            add_never_cache_headers(response)
        return response


_MFA_CONFIRMED = "staff_mfa_confirmed_for"
_CODE_GIVEN = "staff_mfa_code_given_for"
_GIVEN, _NONE, _NOT_GIVEN = "given", "none", "not given"


def _second_factor(request: HttpRequest, user) -> str:
    """Whether this session gave a code of `user`'s authenticator app: at sign-in (allauth's
    second step) or when setting the app up (second_factor_given). _GIVEN if so; _NONE if the
    account has no app (to set one up); _NOT_GIVEN if it has one but this session never gave
    its code: a sign-in with the password alone, made before the app was set up in another.
    That the account has an app is not enough.

    A yes is remembered in the session (saving a query on every portal page) until the
    authenticator is removed (see forget_second_factor). When an administrator resets
    someone's second factor, that person's sessions are ended instead
    (staff.services.staff_second_factor_reset): their remembered yes goes with them."""
    from allauth.account.internal.flows.login import get_authentication_records

    from staff.selectors import has_authenticator_app  # staff.selectors imports this module's users

    if request.session.get(_MFA_CONFIRMED) == user.pk:
        return _GIVEN
    if not has_authenticator_app(user):
        return _NONE
    given = request.session.get(_CODE_GIVEN) == user.pk or any(
        record.get("method") == "mfa" for record in get_authentication_records(request, user)
    )
    if not given:
        return _NOT_GIVEN
    request.session[_MFA_CONFIRMED] = user.pk
    return _GIVEN


# The account pages a session signed in with a password alone reaches while the account has no
# authenticator app and the session has not shown that it reads the account's email: the setup
# (which offers the emailed link), signing out, and what a password link or allauth's asking
# for the password again need. Not the password change, nor the app's and its recovery codes'
# pages: with a phished password, they would lock the member out or race their setup.
_OPEN_BEFORE_SETUP = frozenset(
    {
        "mfa_activate_totp",
        "staff_setup_link_send",
        "staff_setup_link",
        "account_login",
        "account_logout",
        "account_inactive",
        "account_reauthenticate",
        "account_reset_password",
        "account_reset_password_done",
        "account_reset_password_from_key",
        "account_reset_password_from_key_done",
    }
)


def _open_before_setup(request: HttpRequest) -> bool:
    """Whether this account page is one a session without a second factor, on an account with
    none, may open before it has shown that it reads the account's email (setup_allowed)."""
    if setup_allowed(request.session, request.user):
        return True
    try:
        name = resolve(request.path_info).url_name
    except Resolver404:
        return False
    return name in _OPEN_BEFORE_SETUP


def _app_set_up_meanwhile(request: HttpRequest, user) -> bool:
    """Whether `user`, still this session's, now has an app whose code this session never gave
    (checked after a request that began with none)."""
    current = getattr(request, "user", None)
    if current is None or current.pk != user.pk:  # signed out or in as someone else meanwhile
        return False
    return _second_factor(request, user) == _NOT_GIVEN


def second_factor_given(session, user) -> None:
    """`session` gave a code of the authenticator app `user` is setting up (allauth records
    the codes given at sign-in itself)."""
    session[_CODE_GIVEN] = user.pk


def forget_second_factor(sender, request: HttpRequest | None = None, user=None, **kwargs) -> None:
    """allauth's authenticator_removed: the session must check again, and the member's other
    sessions, which gave the removed app's code and remember it, are ended (their session
    version bumped, as staff_second_factor_reset does; this one is kept). Their calendar
    subscription stops, as it does on that reset.

    The session that removed it had given its code (every session that opens an account page
    has: see _second_factor) and its password again (allauth asks before removing): it may
    set up the new app without the emailed link (setup_allow), as someone changing phones
    does straight away."""
    if user is not None and user.pk:
        get_user_model().objects.filter(pk=user.pk).update(session_version=F("session_version") + 1)
        # The phone the app was on may hold the calendar subscription's address too (as
        # staff_second_factor_reset says): it stops, and a new one is made from the new phone.
        from staff.models import CalendarSubscription

        CalendarSubscription.objects.filter(user_id=user.pk).delete()
        user.refresh_from_db(fields=["session_version"])
        if request is not None and getattr(request, "user", None) is not None and request.user.pk == user.pk:
            update_session_auth_hash(request, user)
    if request is not None and hasattr(request, "session"):
        gave_code = user is not None and user.pk in (
            request.session.pop(_MFA_CONFIRMED, None),
            request.session.pop(_CODE_GIVEN, None),
        )
        if gave_code:
            setup_allow(request.session, user)


# --- Setting up the first authenticator app -----------------------------------------------
#
# A password alone must not be enough to set up an account's first authenticator app (just
# invited, or after an administrator reset a lost one): whoever signed in first with a phished
# or reused password would own the account's second factor. The session must also have shown,
# recently, that it controls the account's email address (a password set through an emailed
# link, or an emailed setup link opened in it; staff.second_factor), or have given the code of
# the app it has just removed itself (forget_second_factor).

_SETUP_ALLOWED = "staff_totp_setup_allowed"  # {str(user pk): until, in Unix seconds}
SETUP_ALLOWED_SECONDS = 60 * 60


def setup_allow(session, user) -> None:
    """`session` may set up `user`'s first authenticator app for the next hour. Kept in the
    session when an anonymous one signs in (Django's login cycles its key and keeps its data),
    as after choosing a password through an emailed link."""
    now = int(time.time())
    allowed = {pk: until for pk, until in session.get(_SETUP_ALLOWED, {}).items() if until > now}
    allowed[str(user.pk)] = now + SETUP_ALLOWED_SECONDS
    session[_SETUP_ALLOWED] = allowed


def setup_allowed(session, user) -> bool:
    """Whether `session` may set up `user`'s first authenticator app now (setup_allow)."""
    return session.get(_SETUP_ALLOWED, {}).get(str(user.pk), 0) > time.time()


def setup_done(sender, request: HttpRequest | None = None, user=None, **kwargs) -> None:
    """allauth's authenticator_added: the permission was for one setup."""
    if request is not None and hasattr(request, "session") and user is not None:
        allowed = request.session.get(_SETUP_ALLOWED, {})
        if str(user.pk) in allowed:
            request.session[_SETUP_ALLOWED] = {pk: until for pk, until in allowed.items() if pk != str(user.pk)}
