from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.login import get_authentication_records
from allauth.core import context
from django.conf import settings
from django.contrib.sites.shortcuts import get_current_site
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.http import HttpRequest
from django.utils import translation

from bookings.emails import Message, email_queue_rendered
from bookings.ratelimit import client_ip

TOO_MANY_LOGINS = "Too many failed sign-in attempts. Please wait 5 minutes and try again, or reset your password."


class StaffAccountAdapter(DefaultAccountAdapter):
    """Accounts are for staff only, and only an administrator creates them (by invitation)."""

    error_messages = {**DefaultAccountAdapter.error_messages, "too_many_login_attempts": TOO_MANY_LOGINS}

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def add_message(
        self, request: HttpRequest, level: int, message_template: str | None = None, *args: Any, **kwargs: Any
    ) -> None:
        """Leaves out what the next page says better: "Successfully signed in" (the next page
        may be the second-factor setup, before signing in is done), and "Password changed"
        after a link (the page after it says "Password saved")."""
        if message_template == "account/messages/logged_in.txt":
            return
        match = getattr(request, "resolver_match", None)
        from_link = match is not None and match.url_name == "account_reset_password_from_key"
        if message_template == "account/messages/password_changed.txt" and from_link:
            return
        super().add_message(request, level, message_template, *args, **kwargs)

    def get_client_ip(self, request: HttpRequest) -> str:
        """The caller as allauth's rate limits (failed sign-ins, reset requests) count them: as
        the app's own limits do, behind NUM_PROXIES proxies and by /64 for IPv6. allauth's
        own reads REMOTE_ADDR, the proxy's address for every caller, so that a few wrong
        passwords from anyone locked all staff out of signing in."""
        return client_ip(request)

    def send_password_reset_mail(self, user: Any, email: str, context: dict[str, Any]) -> None:
        """Reset links go to the account's own address only. allauth would also send one to
        any other address recorded for the account, and setting a password through a link
        marks the account's address verified (staff.services.address_proved_by_reset), which
        only a link sent to that address proves. The page that asked says the same either way."""
        if email.casefold() == user.email.casefold():
            super().send_password_reset_mail(user, email, context)

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """Queued in the outbox as the app's own staff emails are (bookings.emails), not sent
        here: allauth's own would send from the request, so that a mail server down, slow or
        refusing the address failed the page (or held it), lost the email, logged the address
        in the traceback, and, failing only for a staff address, told anyone which addresses
        are staff's. Delivered after commit, retried, and its link redacted once sent.

        allauth renders the subject without the request's context processors: the clinic's
        name is given to both (templates/account/email/). In English, as the portal is."""
        ctx = {
            "request": self.request,
            "email": email,
            "current_site": get_current_site(self.request),
            **context,
            "clinic_name": settings.CLINIC_NAME,
        }
        with translation.override(settings.LANGUAGE_CODE):
            rendered = self.render_mail(template_prefix, email, ctx)
        html = [a.content for a in getattr(rendered, "alternatives", []) if a.mimetype == "text/html"]
        email_queue_rendered(
            kind="staff_account",
            to=email,
            subject=rendered.subject,
            body_text=rendered.body,
            body_html=html[0] if html else "",
        )

    def render_mail(
        self,
        template_prefix: str,
        email: str | list[str],
        context: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> EmailMessage:
        """Written as the app's own emails are (bookings.emails.Message): a link stays whole on
        one line, in the console too, where quoted-printable's 76-character lines split the
        password-reset link over two."""
        rendered = super().render_mail(template_prefix, email, context, headers)
        if type(rendered) is not EmailMultiAlternatives:
            return rendered
        message = Message(
            rendered.subject, rendered.body, rendered.from_email, rendered.to, headers=rendered.extra_headers
        )
        for alternative in rendered.alternatives:
            message.attach_alternative(alternative.content, alternative.mimetype)
        return message

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """Setting up the first authenticator (and reading its recovery codes) straight
        after signing in with a password does not ask for the password again: the portal
        sends every new staff member there right after their first sign-in. Changing a
        second factor that existed before this sign-in still does."""
        if app == "allauth.mfa":
            request = context.request
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                records = [r for r in get_authentication_records(request, user) if r.get("method") == "password"]
                recent = bool(records) and time.time() - records[-1]["at"] < account_settings.REAUTHENTICATION_TIMEOUT
                if recent and not _has_totp_before(user, records[-1]["at"]):
                    return False
        return super().is_reauthentication_required(app=app, **kwargs)


def _has_totp_before(user: Any, timestamp: float) -> bool:
    from allauth.mfa.models import Authenticator

    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP, created_at__lt=moment).exists()
