"""Setting up the first authenticator app of a staff account: allauth's setup page, shown
only to a session that may (staff.middleware.setup_allowed). Any other is offered an emailed
link that lets it, opened in a browser signed in as the member.

A password alone is not enough: the account has no second factor yet (just invited, or after
an administrator reset a lost one), and whoever signed in first with a phished or reused
password would set up their own app and own the account's second factor."""

from __future__ import annotations

from allauth.mfa.totp import views as totp_views
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from bookings.errors import TokenInvalid
from bookings.ratelimit import ratelimit_hit
from bookings.views import private_page, wait_text
from staff import selectors, services
from staff.middleware import setup_allow, setup_allowed

_allauth_activate_totp = totp_views.activate_totp


@require_http_methods(["GET", "HEAD", "POST"])
def activate_totp(request: HttpRequest) -> HttpResponse:
    """allauth's setup page (the app's key and QR code) if this session may set up the
    account's first app; otherwise the page that emails the link that lets it. allauth's own
    answers the rest: signed out, or an account that has an app already."""
    user = request.user
    if user.is_authenticated and not selectors.has_authenticator_app(user) and not setup_allowed(request.session, user):
        return _email_first(request, status=200 if request.method in ("GET", "HEAD") else 403)
    return _allauth_activate_totp(request)


def _email_first(request: HttpRequest, *, status: int, error: str = "") -> HttpResponse:
    context = {
        "email": request.user.email,
        "sent": selectors.setup_link_live(user=request.user),
        "minutes": services.SETUP_LINK_MINUTES,
        "error": error,
    }
    return render(request, "mfa/totp/email_first.html", context, status=status)


@require_POST
def setup_link_send(request: HttpRequest) -> HttpResponse:
    """Email the member the link. Three an hour: each one goes to the member's own inbox."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(reverse("mfa_activate_totp"))
    if selectors.has_authenticator_app(user) or setup_allowed(request.session, user):
        return redirect("mfa_activate_totp")
    wait = ratelimit_hit(scope="staff_setup_link", key=f"user:{user.pk}")
    if wait:
        error = (
            f"We have already emailed you several links in the last hour. Please try again in {wait_text(wait)}, "
            "or ask an administrator."
        )
        response = _email_first(request, status=429, error=error)
        response["Retry-After"] = str(wait)
        return response
    services.setup_link_send(user=user)
    messages.success(request, f"We have emailed a link to {user.email}.")
    return redirect("mfa_activate_totp")


# Why an emailed setup link cannot be used here: (status, heading).
_REFUSALS = {
    "unknown": (404, "This link does not work"),
    "used": (410, "This link has already been used"),
    "expired": (410, "This link has expired"),
    "signed_out": (403, "Sign in to use this link"),
    "other_account": (403, "This link is for another staff account"),
    "has_app": (409, "Two-factor sign-in is already set up"),
}


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def setup_link(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed setup link: GET shows one button (link scanners only GET), its POST lets
    this session set up the account's first app. Only in a browser signed in as the member
    it was sent to: the link proves the inbox, the sign-in the password."""
    user = request.user
    try:
        link = services.setup_link_get(raw=token)
    except TokenInvalid as exc:
        return _refused(request, exc.reason, token)
    if not user.is_authenticated:
        return _refused(request, "signed_out", token)
    if link.user_id != user.pk:
        return _refused(request, "other_account", token)
    if selectors.has_authenticator_app(user):
        return _refused(request, "has_app", token)
    if request.method != "POST":
        return render(request, "mfa/totp/setup_link.html", {"token": token, "email": user.email})
    try:
        services.setup_link_claim(raw=token, user=user)
    except TokenInvalid as exc:  # used up or expired since the page was shown
        return _refused(request, exc.reason, token)
    setup_allow(request.session, user)
    return redirect("mfa_activate_totp")


def _refused(request: HttpRequest, reason: str, token: str) -> HttpResponse:
    status, title = _REFUSALS.get(reason, _REFUSALS["unknown"])
    context = {"reason": reason, "title": title, "token": token, "minutes": services.SETUP_LINK_MINUTES}
    return render(request, "mfa/totp/setup_link.html", context, status=status)
