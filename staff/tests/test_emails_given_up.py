"""An administrator sends again, from the dashboard, the emails the outbox gave up on: after a
long mail outage, or once the email settings are mended. The emails are given up here as in
production, by the outbox failing against a mail server on loopback that is down."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from html import unescape

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bookings import notifications
from bookings.emails import emails_send_due
from bookings.models import BookingEvent, OutboundEmail, Status
from bookings.services import booking_anonymise, booking_approve, booking_reject
from bookings.tests.test_emails import Inbox, free_port, smtp_at
from staff.tests.conftest import seen_just_now

pytestmark = pytest.mark.django_db

FAILED, PENDING, SENT = OutboundEmail.State.FAILED, OutboundEmail.State.PENDING, OutboundEmail.State.SENT


@pytest.fixture
def outage(settings) -> int:
    """The mail server is down: nothing listens at its address (yet). Returns its port."""
    port = free_port()
    smtp_at(settings, port)
    return port


@pytest.fixture
def mended(settings):
    """`mended()`: the email settings put right (Django's in-memory mailbox, mail.outbox)."""

    def mend() -> None:
        settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

    return mend


def given_up(*emails: OutboundEmail) -> None:
    """Their retries ran out while the mail server was down: EMAIL_GIVE_UP_AFTER has passed
    since they were written, and the sweep tries them once more."""
    from django.conf import settings

    OutboundEmail.objects.filter(pk__in=[e.pk for e in emails]).update(
        created_at=timezone.now() - settings.EMAIL_GIVE_UP_AFTER - timedelta(minutes=1),
        next_attempt_at=timezone.now(),
    )
    emails_send_due()
    for email in emails:
        email.refresh_from_db()
        assert email.status == FAILED, email.last_error


def new_request_given_up(make_booking, counsellor, oncommit) -> OutboundEmail:
    """The counsellor's "new booking request" email (no link with a secret in it), given up."""
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with oncommit():
        notifications.new_request(booking=booking)
    email = OutboundEmail.objects.get(booking=booking, kind="new_request")
    given_up(email)
    assert email.last_error == "ConnectionRefusedError"
    return email


def send_again(browser, email: OutboundEmail) -> str:
    """Press "Send again" beside `email` and follow back to the dashboard: the page's text."""
    response = browser.post(reverse("staff:email_send_again", args=[email.pk]), follow=True)
    assert response.redirect_chain == [(reverse("staff:dashboard"), 302)]
    return text_of(response)


def text_of(response) -> str:
    """A page's text, without its tags (the messages keep acknowledgement IDs on one line)."""
    return unescape(re.sub(r"<[^>]+>", "", response.content.decode()))


def given_up_part(html: str) -> str:
    return html.split("Emails that could not be sent")[1].split("Recent activity")[0]


def test_an_email_given_up_in_an_outage_goes_again_through_the_outbox_with_a_fresh_start(
    admin_client, admin_user, make_booking, counsellor, oncommit, outage, settings, caplog
):
    email = new_request_given_up(make_booking, counsellor, oncommit)
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert reverse("staff:email_send_again", args=[email.pk]) in given_up_part(html)

    # Sent again while the server is still down: its first try fails, but the email waits
    # for the next, although it was written more than EMAIL_GIVE_UP_AFTER ago.
    with caplog.at_level(logging.INFO, logger="bookings"):
        page = send_again(admin_client, email)
    assert f"Sent again: “{email.subject}”." in page
    email.refresh_from_db()
    assert (email.status, email.attempts, email.refusals, email.last_error) == (PENDING, 1, 0, "ConnectionRefusedError")
    assert email.requeued_at is not None and email.created_at < email.requeued_at - settings.EMAIL_GIVE_UP_AFTER
    # Who sent it again, and why it had been given up: on the booking's timeline, and in the
    # log by the email's id, without its address.
    event = BookingEvent.objects.get(booking=email.booking_id, action="email_resent")
    assert event.actor_user == admin_user
    assert event.reason == f"{email.subject} (it had been given up: ConnectionRefusedError)"
    [line] = [r.getMessage() for r in caplog.records if "put back in the queue" in r.getMessage()]
    assert line == (
        f"email {email.pk} (new_request) put back in the queue by staff account {admin_user.pk}; "
        "it had been given up: ConnectionRefusedError"
    )
    assert not [r for r in caplog.records if email.to in r.getMessage()]

    # The server is back: the outbox's sweep delivers it, once.
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=outage)
    controller.start()
    try:
        OutboundEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
        assert emails_send_due() == 1
        assert emails_send_due() == 0
        for _ in range(50):
            if inbox.messages:
                break
            time.sleep(0.05)
    finally:
        controller.stop()
    [received] = inbox.messages
    assert email.booking.ack_id.encode() in received
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (SENT, 2, "")


def test_the_give_up_clock_runs_again_from_when_it_was_sent_again(
    admin_client, make_booking, counsellor, oncommit, outage, settings
):
    email = new_request_given_up(make_booking, counsellor, oncommit)
    send_again(admin_client, email)
    # EMAIL_GIVE_UP_AFTER later, the server still down: given up again, as any email is.
    OutboundEmail.objects.filter(pk=email.pk).update(
        requeued_at=timezone.now() - settings.EMAIL_GIVE_UP_AFTER - timedelta(minutes=1),
        next_attempt_at=timezone.now(),
    )
    assert emails_send_due() == 0
    email.refresh_from_db()
    assert (email.status, email.last_error) == (FAILED, "ConnectionRefusedError")


def test_once_the_settings_are_mended_it_is_sent_at_once_and_a_second_press_does_nothing(
    admin_client, make_booking, counsellor, oncommit, outage, mended
):
    email = new_request_given_up(make_booking, counsellor, oncommit)
    mended()
    page = send_again(admin_client, email)
    assert f"Sent again: “{email.subject}”." in page
    [sent] = mail.outbox
    assert sent.to == [counsellor.user.email] and sent.subject == email.subject
    email.refresh_from_db()
    assert (email.status, email.attempts) == (SENT, 1)

    # Pressed again (a double click, the Back button, a second administrator): nothing more.
    page = send_again(admin_client, email)
    assert f"“{email.subject}” has been sent already." in page
    assert len(mail.outbox) == 1
    assert BookingEvent.objects.filter(booking=email.booking_id, action="email_resent").count() == 1
    # Sent, it leaves the list of those given up.
    assert "Emails that could not be sent" not in admin_client.get(reverse("staff:dashboard")).content.decode()


def test_pressed_twice_before_it_went_the_second_press_does_nothing(
    admin_client, make_booking, counsellor, oncommit, outage
):
    email = new_request_given_up(make_booking, counsellor, oncommit)
    send_again(admin_client, email)  # its first try fails: waiting for the next
    page = send_again(admin_client, email)
    assert f"“{email.subject}” is already waiting to be sent." in page
    email.refresh_from_db()
    assert (email.status, email.attempts) == (PENDING, 1)
    assert BookingEvent.objects.filter(booking=email.booking_id, action="email_resent").count() == 1


def test_only_a_post_by_an_administrator_sends_it_again(
    admin_client, counsellor_client, client, make_booking, counsellor, oncommit, outage, mended
):
    email = new_request_given_up(make_booking, counsellor, oncommit)
    mended()
    one = reverse("staff:email_send_again", args=[email.pk])
    every = reverse("staff:emails_send_again")
    for url in (one, every):
        # The address opened (a GET) shows the dashboard and changes nothing; other methods: 405.
        response = admin_client.get(url)
        assert response.status_code == 302 and response["Location"] == reverse("staff:dashboard")
        assert admin_client.put(url).status_code == 405
        # A counsellor: 403, as every administrators' action; signed out: to the sign-in page.
        assert counsellor_client.post(url).status_code == 403
        assert client.post(url)["Location"].startswith(reverse("account_login"))
    email.refresh_from_db()
    assert (email.status, email.requeued_at) == (FAILED, None)
    assert mail.outbox == []
    assert admin_client.post(reverse("staff:email_send_again", args=[email.pk + 1000])).status_code == 404


def test_an_email_that_no_longer_holds_is_not_sent_again_and_says_why(
    admin_client, admin_user, make_booking, counsellor, slot, oncommit, outage, mended
):
    """The request was approved meanwhile: its "new request" email would ask the counsellor to
    review what has been decided. The rules of every delivery (emails._outdated), said now."""
    email = new_request_given_up(make_booking, counsellor, oncommit)
    mended()
    booking_approve(booking_id=email.booking_id, slot_id=slot.pk, user=admin_user)
    mail.outbox = []
    page = send_again(admin_client, email)
    assert (
        f"“{email.subject}” no longer holds, so it was not sent again: "
        "the request had been decided or withdrawn before it was sent."
    ) in page
    email.refresh_from_db()
    # Its row says so from now on, with no button that would only refuse again.
    said = "No longer holds: The request had been decided or withdrawn before it was sent"
    assert (email.status, email.requeued_at, email.last_error) == (FAILED, None, said)
    assert mail.outbox == []
    assert not BookingEvent.objects.filter(action="email_resent").exists()
    dashboard = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert said in dashboard and reverse("staff:email_send_again", args=[email.pk]) not in dashboard


def test_a_clients_email_given_up_kept_no_working_link_so_it_is_sent_again_from_the_bookings_page(
    admin_client, admin_user, make_booking, counsellor, slot, oncommit, outage, mended
):
    """ "Pay to confirm" given up: its link to the booking's page was forgotten (only its hash is
    stored). The booking's own "Resend the last email" sends it with a new link."""
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with oncommit():
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    approved = OutboundEmail.objects.get(booking=booking, kind="approved")
    given_up(approved)
    assert "/bookings/[redacted]/" in approved.body_text
    mended()

    part = given_up_part(admin_client.get(reverse("staff:dashboard")).content.decode())
    row = part.split(approved.subject)[1].split("</li>")[0]
    assert reverse("staff:email_send_again", args=[approved.pk]) not in row
    assert "Its links no longer work." in row
    assert f'href="{reverse("staff:booking_detail", args=[booking.pk])}#emails-h"' in row

    page = send_again(admin_client, approved)  # a form kept from before, say
    assert (
        f"“{approved.subject}” cannot be sent again: its links stopped working when it was given up. "
        f"Use “Resend the last email” on the page of {booking.ack_id}"
    ) in page
    approved.refresh_from_db()
    assert approved.status == FAILED and mail.outbox == []

    # Where the dashboard points: the booking's own action sends it, with a working link.
    admin_client.post(reverse("staff:booking_resend", args=[booking.pk]))
    [again] = mail.outbox
    assert again.subject == approved.subject and "[redacted]" not in again.body


def test_an_invitation_given_up_points_to_the_staff_page(admin_client, outage, mended, oncommit):
    from staff.services import staff_invite

    with oncommit():
        staff_invite(email="new.counsellor@example.com", name="Nia Rao", role="counsellor")
    invite = OutboundEmail.objects.get(kind="staff_invite")
    given_up(invite)
    mended()
    part = given_up_part(admin_client.get(reverse("staff:dashboard")).content.decode())
    assert reverse("staff:email_send_again", args=[invite.pk]) not in part
    assert f'<a href="{reverse("staff:team")}">Send a new invitation from the Staff page</a>' in part
    page = send_again(admin_client, invite)
    assert "cannot be sent again: its links stopped working when it was given up. Send a new invitation" in page
    assert mail.outbox == []


def test_an_email_of_a_client_whose_details_were_erased_is_not_sent_again(
    admin_client, admin_user, make_booking, counsellor, oncommit, outage, mended
):
    email = new_request_given_up(make_booking, counsellor, oncommit)
    mended()
    booking_reject(booking_id=email.booking_id, user=admin_user, reason="No time")
    assert booking_anonymise(booking_id=email.booking_id, reason="Asked by the client")
    mail.outbox = []
    part = given_up_part(admin_client.get(reverse("staff:dashboard")).content.decode())
    assert "The client's details were erased: it cannot be sent again." in part
    assert reverse("staff:email_send_again", args=[email.pk]) not in part
    page = send_again(admin_client, email)
    assert "cannot be sent again: the client's details were erased" in page
    assert mail.outbox == []


def test_send_all_again_sends_those_that_can_go_and_says_how_many_could_not(
    admin_client, admin_user, make_booking, counsellor, slot, oncommit, outage, mended
):
    fine = [new_request_given_up(make_booking, counsellor, oncommit) for _ in range(2)]
    stale = new_request_given_up(make_booking, counsellor, oncommit)
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with oncommit():
        booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    with_link = OutboundEmail.objects.get(booking=booking, kind="approved")
    given_up(with_link)
    mended()
    booking_reject(booking_id=stale.booking_id, user=admin_user, reason="No time")  # meanwhile
    mail.outbox = []

    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert reverse("staff:emails_send_again") in html
    response = admin_client.post(reverse("staff:emails_send_again"), follow=True)
    assert response.redirect_chain == [(reverse("staff:dashboard"), 302)]
    page = text_of(response)
    assert "Sent again: 2 emails." in page
    assert "Not sent again, as no longer true: 1 email (" in page
    assert sorted(m.subject for m in mail.outbox) == sorted(e.subject for e in fine)
    assert {e.status for e in OutboundEmail.objects.filter(pk__in=[e.pk for e in fine])} == {SENT}
    assert {e.status for e in OutboundEmail.objects.filter(pk__in=[stale.pk, with_link.pk])} == {FAILED}

    # The one that no longer holds says so, with no button that would only refuse again.
    row = text_of(response).split(stale.subject)[1]
    assert "No longer holds: The request had been decided or withdrawn before it was sent" in row
    assert reverse("staff:email_send_again", args=[stale.pk]) not in response.content.decode()
    # Again: none is left to send.
    response = admin_client.post(reverse("staff:emails_send_again"), follow=True)
    assert len(mail.outbox) == 2
    assert "No email was waiting to be sent again." in text_of(response)


def test_the_dashboard_reads_the_emails_given_up_in_one_query_however_many(
    admin_client, make_booking, counsellor, oncommit, outage, mended
):
    def count() -> int:
        seen_just_now(admin_client)
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(reverse("staff:dashboard")).status_code == 200
        return len(queries)

    new_request_given_up(make_booking, counsellor, oncommit)
    admin_client.get(reverse("staff:dashboard"))  # the session's first request does its one-off work
    few = count()
    for _ in range(25):
        new_request_given_up(make_booking, counsellor, oncommit)
    assert count() == few
