"""Setting up the first authenticator app of an account takes more than its password: the
session must have shown, recently, that it reads the account's email (a password set through
an emailed link, or the emailed setup link opened in it), or have given the code of the app
it has just removed itself. Otherwise whoever signed in first with a phished or reused
password would own the second factor of an account that has none (just invited, or reset)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, generate_totp_secret
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from staff.middleware import setup_allow
from staff.models import SetupLink
from staff.services import staff_invite, staff_second_factor_reset
from staff.tests.conftest import setup_link_in, setup_link_opened, sign_in_with_second_factor, totp_code

PASSWORD = "a-long-counsellor-password"  # conftest's
KEY_IMAGE = 'src="data:image/svg+xml;base64,'


def sign_in(browser, email: str, password: str = PASSWORD):
    return browser.post(reverse("account_login"), {"login": email, "password": password})


def setup_page(browser) -> str:
    response = browser.get(reverse("mfa_activate_totp"))
    assert response.status_code == 200
    return response.content.decode()


def shows_the_key(browser) -> bool:
    page = setup_page(browser)
    secret = browser.session.get(SECRET_SESSION_KEY)
    return KEY_IMAGE in page and bool(secret) and secret in page


def has_app(user) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def activate(browser) -> int:
    """Enter the code of the key the setup page showed; the response's status."""
    setup_page(browser)
    return browser.post(
        reverse("mfa_activate_totp"), {"code": totp_code(browser.session[SECRET_SESSION_KEY])}
    ).status_code


def ask_for_link(browser) -> str:
    """Press "Email me a link"; the path of the link emailed."""
    response = browser.post(reverse("staff_setup_link_send"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp")
    return setup_link_in(mail.outbox[-1])


# --- A password alone -------------------------------------------------------------------


def test_a_password_alone_shows_no_key_and_activates_nothing(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    assert client.get(reverse("staff:dashboard"))["Location"] == reverse("mfa_activate_totp")
    page = setup_page(client)
    assert KEY_IMAGE not in page and SECRET_SESSION_KEY not in client.session  # no key made, none shown
    assert "we first email a link to your address, <strong>asha@example.com</strong>" in page
    assert f'action="{reverse("staff_setup_link_send")}"' in page and "Email me a link" in page
    assert page.count("<h1") == 1 and "<title>Set up two-factor sign-in" in page

    # Posting a code (for a key it chose itself, say) is refused, and sets up nothing.
    secret = generate_totp_secret()
    session = client.session
    session[SECRET_SESSION_KEY] = secret
    session.save()
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 403 and "Email me a link" in response.content.decode()
    assert not has_app(counsellor_user)
    assert client.get(reverse("staff:dashboard"))["Location"] == reverse("mfa_activate_totp")  # still


def test_after_an_administrators_reset_signing_in_needs_the_emailed_link(
    client, admin_user, counsellor_user, counsellor
):
    """The member lost their phone; an administrator reset their second factor. Their
    password alone (which someone else may have) does not set up a new app."""
    sign_in_with_second_factor(Client(), counsellor_user)
    staff_second_factor_reset(user=counsellor_user, by=admin_user)
    sign_in(client, counsellor_user.email)
    assert not shows_the_key(client)
    setup_link_opened(client, counsellor_user)
    assert shows_the_key(client)
    assert activate(client) == 302 and has_app(counsellor_user)
    assert client.get(reverse("staff:dashboard")).status_code == 200


# --- A password set through an emailed link ---------------------------------------------


def _choose_password(browser, link: str, password: str) -> None:
    form_url = browser.get(link, follow=True).redirect_chain[-1][0]
    assert browser.post(form_url, {"password1": password, "password2": password}).status_code == 302


def _password_link() -> str:
    return re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[-1].body).group(1)


def test_the_invitation_link_is_proof_enough_through_signing_in(client, oncommit, admin_user):
    """The session that chose the password through the invitation's link is anonymous; signing
    in keeps what it holds (Django's login cycles its key and keeps its data), so the new member
    sets up the app straight away, with no second email."""
    with oncommit():
        member = staff_invite(email="nila@example.com", role="counsellor", name="Nila Rao", invited_by=admin_user)
    _choose_password(client, _password_link(), "river-lantern-pebble-42")
    anonymous_key = client.session.session_key
    sent = len(mail.outbox)
    sign_in(client, member.email, "river-lantern-pebble-42")
    assert client.session.session_key != anonymous_key  # a new session key, the same data
    assert shows_the_key(client)
    assert activate(client) == 302 and has_app(member)
    assert len(mail.outbox) == sent and not SetupLink.objects.exists()  # no second email
    assert client.get(reverse("staff:dashboard")).status_code == 200


def test_forgotten_password_after_a_reset_is_proof_enough(client, admin_user, counsellor_user, counsellor):
    staff_second_factor_reset(user=counsellor_user, by=admin_user)
    client.post(reverse("account_reset_password"), {"email": counsellor_user.email})
    _choose_password(client, _password_link(), "a-brand-new-password-7")
    sign_in(client, counsellor_user.email, "a-brand-new-password-7")
    assert shows_the_key(client)


def test_the_proof_from_a_password_link_lasts_an_hour(client, oncommit, admin_user, monkeypatch):
    monkeypatch.setattr("staff.middleware.SETUP_ALLOWED_SECONDS", 0)  # the hour has passed
    with oncommit():
        member = staff_invite(email="nila@example.com", role="counsellor", name="Nila Rao", invited_by=admin_user)
    _choose_password(client, _password_link(), "river-lantern-pebble-42")
    sign_in(client, member.email, "river-lantern-pebble-42")
    assert not shows_the_key(client)
    assert "Email me a link" in setup_page(client)


def test_the_proof_is_for_the_account_whose_password_was_set(client, oncommit, admin_user, counsellor_user, counsellor):
    """A browser that set one member's password through its link, then signs in as another
    member (whose password it knows), may not set up the other's app."""
    with oncommit():
        staff_invite(email="nila@example.com", role="counsellor", name="Nila Rao", invited_by=admin_user)
    _choose_password(client, _password_link(), "river-lantern-pebble-42")
    sign_in(client, counsellor_user.email)
    assert not shows_the_key(client)


# --- The emailed setup link -------------------------------------------------------------


def test_the_emailed_link_opened_in_the_signed_in_browser_opens_the_setup(client, counsellor_user, counsellor):
    # An address recorded unverified would stop allauth's setup: the link proves it.
    EmailAddress.objects.create(user=counsellor_user, email=counsellor_user.email, verified=False, primary=True)
    sign_in(client, counsellor_user.email)
    link = ask_for_link(client)
    message = mail.outbox[-1]
    assert message.to == [counsellor_user.email]
    assert message.subject == "Set up two-factor sign-in for the MindSettler staff portal"
    assert "works for 30 minutes and only once" in message.body
    assert "If you did not ask for this, do not open the link" in message.body
    # Only the hash of the link's secret is kept.
    raw = link.rstrip("/").rsplit("/", 1)[-1]
    stored = SetupLink.objects.get(user=counsellor_user)
    assert raw not in stored.token_hash and len(stored.token_hash) == 64
    page = setup_page(client)
    assert "We have emailed a link to asha@example.com." in page and "Email me a new link" in page
    until = timezone.localtime(stored.expires_at)
    assert f"works until {until:%H:%M} {until.tzname()}, once" in page  # the clinic's time, its zone named

    # The link's page changes nothing until its button is pressed (link scanners only GET).
    confirm = client.get(link)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert f'<form method="post" action="{link}">' in html and "Continue to set up the app" in html
    assert confirm["Referrer-Policy"] == "same-origin" and "no-store" in confirm["Cache-Control"]
    assert not shows_the_key(client)

    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp")
    assert shows_the_key(client)
    assert EmailAddress.objects.filter(user=counsellor_user, email=counsellor_user.email, verified=True).exists()
    assert activate(client) == 302 and has_app(counsellor_user)
    assert client.get(reverse("staff:dashboard")).status_code == 200


def test_a_link_works_once(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    link = ask_for_link(client)
    assert client.post(link).status_code == 302
    again = client.post(link)
    assert again.status_code == 410 and "This link has already been used" in again.content.decode()
    assert client.get(link).status_code == 410


def test_an_expired_link_is_refused(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    link = ask_for_link(client)
    SetupLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for response in (client.get(link), client.post(link)):
        assert response.status_code == 410 and "This link has expired" in response.content.decode()
    assert not shows_the_key(client)


def test_only_the_newest_link_works(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    first = ask_for_link(client)
    newest = ask_for_link(client)
    assert client.post(first).status_code == 404
    assert not shows_the_key(client)
    assert client.post(newest).status_code == 302 and shows_the_key(client)


def test_a_link_opened_as_someone_else_is_refused_and_stays_unused(
    client, counsellor_user, counsellor, other_counsellor
):
    """The member's link, opened in a browser signed in as another member (who has no app
    either): refused, without using it up."""
    sign_in(client, counsellor_user.email)
    link = ask_for_link(client)
    someone = Client()
    sign_in(someone, other_counsellor.user.email, "another-long-password")
    for response in (someone.get(link), someone.post(link)):
        assert response.status_code == 403
        assert "This link is for another staff account" in response.content.decode()
        assert counsellor_user.email not in response.content.decode()
    assert not shows_the_key(someone)
    assert client.post(link).status_code == 302 and shows_the_key(client)


def test_a_link_opened_signed_out_is_refused_until_signing_in(client, counsellor_user, counsellor):
    """Opened on another device (the phone the email arrived on, say): it asks to sign in,
    then opens again."""
    sign_in(client, counsellor_user.email)
    link = ask_for_link(client)
    phone = Client()
    for response in (phone.get(link), phone.post(link)):
        assert response.status_code == 403 and "Sign in to use this link" in response.content.decode()
    page = phone.get(link).content.decode()
    assert f'href="{reverse("account_login")}?next={link}"' in page
    signed_in = phone.post(
        f"{reverse('account_login')}?next={link}", {"login": counsellor_user.email, "password": PASSWORD}
    )
    assert signed_in["Location"] == link
    assert phone.post(link).status_code == 302 and shows_the_key(phone)
    assert not shows_the_key(client)  # the proof is the session's that opened the link


def test_a_link_for_an_account_that_has_an_app_changes_nothing(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    link = ask_for_link(client)
    sign_in_with_second_factor(client, counsellor_user)  # set up since, in another sign-in
    response = client.post(link)
    assert response.status_code == 409 and "already set up" in response.content.decode()
    assert SetupLink.objects.get().used_at is None


def test_an_unknown_link_is_refused(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    response = client.post(reverse("staff_setup_link", kwargs={"token": "not-a-real-token-0123456789"}))
    assert response.status_code == 404 and "This link does not work" in response.content.decode()


def test_links_are_emailed_three_times_an_hour_at_most(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    for _ in range(3):
        ask_for_link(client)
    response = client.post(reverse("staff_setup_link_send"))
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    html = response.content.decode()
    assert "<title>Error: Set up two-factor sign-in" in html
    assert '<p class="field-error" id="send-link-error">We have already emailed you several links' in html
    assert 'aria-describedby="send-link-error"' in html and '<a href="#send-link">' in html
    assert len(mail.outbox) == 3


def test_asking_for_a_link_needs_the_pages_csrf_token(counsellor_user, counsellor):
    browser = Client(enforce_csrf_checks=True)
    sign_in_response = browser.get(reverse("account_login"))
    token = sign_in_response.cookies["csrftoken"].value
    browser.post(
        reverse("account_login"),
        {"login": counsellor_user.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert browser.post(reverse("staff_setup_link_send")).status_code == 403
    assert mail.outbox == [] and not SetupLink.objects.exists()


def test_signed_out_asking_for_a_link_is_sent_to_sign_in(client, db):
    response = client.post(reverse("staff_setup_link_send"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    assert mail.outbox == []


# --- Changing phones --------------------------------------------------------------------


def test_removing_ones_own_app_lets_that_session_set_up_the_new_one(client, counsellor_user, counsellor):
    """ "Changing phones? Turn it off and set it up again": the session gave the old app's code
    at sign-in and the password again to remove it; it sets up the new one straight away."""
    sign_in_with_second_factor(client, counsellor_user)
    asked = client.post(reverse("mfa_deactivate_totp"))
    assert client.post(asked["Location"], {"password": PASSWORD}).status_code == 302
    assert not has_app(counsellor_user)
    assert client.get(reverse("staff:dashboard"))["Location"] == reverse("mfa_activate_totp")
    assert shows_the_key(client)
    assert activate(client) == 302 and has_app(counsellor_user)
    assert client.get(reverse("staff:dashboard")).status_code == 200
    assert not SetupLink.objects.exists()  # no emailed link


@pytest.mark.parametrize("how", ["signed in again", "administrator's reset"])
def test_the_permission_from_removing_an_app_does_not_outlive_the_session(
    client, admin_user, counsellor_user, counsellor, how
):
    sign_in_with_second_factor(client, counsellor_user)
    asked = client.post(reverse("mfa_deactivate_totp"))
    client.post(asked["Location"], {"password": PASSWORD})
    if how == "signed in again":
        client.post(reverse("account_logout"))
    else:
        staff_second_factor_reset(user=counsellor_user, by=admin_user)  # ends their sessions
    sign_in(client, counsellor_user.email)
    assert not shows_the_key(client)


def test_a_link_opened_long_after_signing_in_asks_for_the_password_again_then_sets_up(
    client, counsellor_user, counsellor, settings
):
    """allauth asks for the password again before a change to the second factor made some
    minutes after signing in; the emailed link's permission waits for it."""
    sign_in(client, counsellor_user.email)
    link = ask_for_link(client)
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 0  # the email took its time
    assert client.post(link)["Location"] == reverse("mfa_activate_totp")
    asked = client.get(reverse("mfa_activate_totp"))
    assert asked.status_code == 302 and asked["Location"].startswith(reverse("account_reauthenticate"))
    back = client.post(asked["Location"], {"password": PASSWORD})
    assert back.status_code == 302 and back["Location"] == reverse("mfa_activate_totp")
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 300  # and the password was given just now
    assert shows_the_key(client)
    assert activate(client) == 302 and has_app(counsellor_user)


# --- Printed by whoever runs the server ---------------------------------------------------


def test_the_server_can_print_a_setup_link_when_email_cannot_reach_the_member(client, counsellor_user, counsellor):
    """`manage.py staff_setup_link EMAIL`: the first administrator before SMTP works, or a
    broken mail server. The printed link does what the emailed one does, and no email goes."""
    from io import StringIO
    from urllib.parse import urlsplit

    from django.core.management import call_command

    out = StringIO()
    call_command("staff_setup_link", "  ASHA@example.com ", stdout=out)
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("A setup link for asha@example.com, for 30 minutes and once")
    link = urlsplit(printed[1]).path
    assert not mail.outbox and SetupLink.objects.filter(user=counsellor_user).count() == 1
    sign_in(client, counsellor_user.email)
    assert not shows_the_key(client)
    assert client.post(link).status_code == 302
    assert shows_the_key(client) and activate(client) == 302 and has_app(counsellor_user)


def test_the_printed_setup_link_is_refused_where_it_would_not_help(counsellor_user, counsellor, admin_user):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=re.escape("no staff account with the email address 'nobody@example.com'")):
        call_command("staff_setup_link", "nobody@example.com")
    Authenticator.objects.create(user=counsellor_user, type=Authenticator.Type.TOTP, data={"secret": "x"})
    with pytest.raises(CommandError, match="already has an authenticator app"):
        call_command("staff_setup_link", counsellor_user.email)
    counsellor_user.is_active = False
    counsellor_user.save(update_fields=["is_active"])
    with pytest.raises(CommandError, match="is deactivated"):
        call_command("staff_setup_link", counsellor_user.email)
    assert not SetupLink.objects.exists()


# --- A password alone, while the member sets up the app ---------------------------------


def test_a_session_never_reads_the_codes_of_an_app_set_up_while_its_request_ran(
    client, counsellor_user, counsellor, monkeypatch
):
    """Someone signed in without the app's code asks for the recovery codes page
    over and over, while the member sets up the app in their own sign-in. A request that found
    no app when it began, and reaches the page after the member's setup was saved, must not
    show its codes: with them and the password, that someone could sign in for good."""
    from allauth.mfa.recovery_codes.internal import flows as recovery_flows

    from staff.tests.conftest import totp_enable

    sign_in(client, counsellor_user.email)
    # With the email proved too (a password alone no longer reaches this page at all: below),
    # the check after the view is what keeps the codes of an app set up meanwhile unseen.
    session = client.session
    setup_allow(session, counsellor_user)
    session.save()
    original = recovery_flows.view_recovery_codes

    def member_sets_up_meanwhile(request):
        # The member's setup (the app and its recovery codes) is saved between this request's
        # check of the account and the page reading the codes.
        totp_enable(counsellor_user)
        recovery_flows.RecoveryCodes.activate(counsellor_user)
        return original(request)

    monkeypatch.setattr(recovery_flows, "view_recovery_codes", member_sets_up_meanwhile)
    response = client.get(reverse("mfa_view_recovery_codes"))
    codes = Authenticator.objects.get(user=counsellor_user, type=Authenticator.Type.RECOVERY_CODES)
    page = response.content.decode()
    assert not any(code in page for code in codes.wrap().get_unused_codes())
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in client.session  # signed out, as any later request would be


@pytest.mark.parametrize(
    "name",
    [
        "mfa_index",
        "mfa_view_recovery_codes",
        "mfa_generate_recovery_codes",
        "mfa_download_recovery_codes",
        "mfa_deactivate_totp",
        "account_change_password",
        "account_set_password",
        "account_email",
    ],
)
def test_a_password_alone_reaches_only_the_setup_among_the_account_pages(client, counsellor_user, counsellor, name):
    """Before the email is proved, the account's other pages send a password-only session to
    the setup: with a phished password, changing the password would lock the member out, and
    the app's pages would race the member's own setup."""
    sign_in(client, counsellor_user.email)
    old_password = counsellor_user.password
    for method in ("get", "post"):
        response = getattr(client, method)(reverse(name), {"oldpassword": PASSWORD, "password1": "x" * 20})
        assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp"), (name, method)
    counsellor_user.refresh_from_db()
    assert counsellor_user.password == old_password and not Authenticator.objects.filter(user=counsellor_user).exists()
    # Once the email is proved, the member's own pages open as before.
    link = ask_for_link(client)
    client.post(link)
    if name in ("mfa_index", "account_change_password"):
        assert client.get(reverse(name)).status_code == 200


def test_signing_out_and_asking_for_the_link_stay_open_to_a_password_alone(client, counsellor_user, counsellor):
    sign_in(client, counsellor_user.email)
    assert client.get(reverse("mfa_activate_totp")).status_code == 200
    assert client.post(reverse("staff_setup_link_send")).status_code == 302 and len(mail.outbox) == 1
    assert client.post(reverse("account_logout")).status_code == 302
    assert "_auth_user_id" not in client.session
