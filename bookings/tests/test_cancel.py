"""/cancel/<token>/: the emailed single-use link; GET shows a button, only POST cancels."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db.models import F
from django.utils import timezone

from bookings.models import Booking, LinkToken, Slot, Status
from bookings.services import booking_cancel_request
from bookings.tests.journey import link_in_last_email, main_part

pytestmark = pytest.mark.django_db


@pytest.fixture
def cancel_link(make_booking, counsellor, oncommit):
    def make(status=Status.APPROVED, **fields):
        booking = make_booking(status, counsellor=counsellor, **fields)
        with oncommit():
            booking_cancel_request(booking=booking)
        return booking, link_in_last_email("/cancel/")

    return make


def test_get_shows_one_button_and_changes_nothing(client, cancel_link):
    booking, link = cancel_link()
    for _ in range(2):
        response = client.get(link)
        html = response.content.decode()
        assert response.status_code == 200
        assert "Cancel my booking" in html and main_part(html).count('type="submit"') == 1
        assert booking.ack_id in html
    booking.refresh_from_db()
    assert booking.status == Status.APPROVED
    assert LinkToken.objects.get(purpose=LinkToken.Purpose.CANCEL).used_at is None
    assert response["Referrer-Policy"] == "same-origin" and "no-store" in response["Cache-Control"]


def test_the_heading_keeps_the_booking_id_on_one_line(client, cancel_link):
    """On a phone "Cancel booking MS-7K3QXP?" broke after "MS-", and the ID read as two."""
    booking, link = cancel_link()
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", client.get(link).content.decode()).group(1)
    assert heading == f'Cancel booking <span class="whitespace-nowrap">{booking.ack_id}</span>?'


def test_a_paid_booking_says_how_much_comes_back_before_the_button(client, cancel_link):
    _, link = cancel_link(Status.CONFIRMED)
    html = client.get(link).content.decode()
    assert "You paid ₹1,500. Cancelling now refunds all of it, the way you paid." in html
    assert html.index("You paid") < html.index("Cancel my booking")
    _, link = cancel_link(Status.APPROVED, email="unpaid@example.com")
    assert "You paid" not in client.get(link).content.decode()


def test_post_cancels_and_emails(client, cancel_link):
    booking, link = cancel_link()
    response = client.post(link)
    booking.refresh_from_db()
    assert response.status_code == 200
    assert booking.status == Status.CANCELLED
    assert "Your booking is cancelled" in response.content.decode()
    event = booking.events.get(to_status=Status.CANCELLED)
    assert event.actor == "client"
    assert mail.outbox[-1].to == [booking.email] and "cancelled" in mail.outbox[-1].subject
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize(("status", "wording"), [(Status.APPROVED, "keeps the record"), (Status.CONFIRMED, "refund")])
def test_the_cancelled_page_links_to_the_booking_page(client, cancel_link, status, wording):
    booking, link = cancel_link(status)
    if status == Status.CONFIRMED:
        booking.payments.create(
            provider="sandbox", provider_payment_id="pay_1", amount=booking.amount, currency=booking.currency
        )
    html = client.post(link).content.decode()
    paragraph = re.search(r"<p>([^<]*<a href=\"/bookings/[^\"]+/\">[^<]*</a>[^<]*)</p>", html).group(1)
    assert wording in paragraph
    page = client.get(re.search(r'href="(/bookings/[^"]+/)"', paragraph).group(1))
    assert page.status_code == 200 and "Cancelled" in page.content.decode()


def test_a_confirmed_session_gets_a_calendar_cancellation(client, cancel_link):
    _, link = cancel_link(Status.CONFIRMED)
    client.post(link)
    attachment = mail.outbox[-1].attachments[0]
    assert "METHOD:CANCEL" in attachment[1]


def test_the_link_works_once(client, cancel_link):
    booking, link = cancel_link()
    client.post(link)
    again = client.post(link)
    assert again.status_code == 410 and "already been used" in again.content.decode()
    assert booking.events.filter(to_status=Status.CANCELLED).count() == 1


def test_a_link_pressed_again_says_the_booking_is_cancelled(client, cancel_link):
    """A double click, or the link opened again from the email: the first press cancelled, and
    the page says so, not that the booking has not changed unless it was confirmed."""
    booking, link = cancel_link()
    client.post(link)
    html = client.get(link).content.decode()
    assert f"your booking {booking.ack_id} is cancelled" in html
    assert "has not changed" not in html


def test_a_link_pressed_again_after_the_booking_page_closed_names_no_booking(client, cancel_link, settings):
    """An old email cannot open a record of counselling (the booking page has closed): the
    used link says no more of the booking than a link of any other booking would."""
    booking, link = cancel_link()
    client.post(link)
    # Time passes: the session was longer ago than the page stays open.
    ago = booking.slot.end - timezone.now() + timedelta(days=settings.BOOKING_LINK_DAYS_AFTER_SESSION, hours=1)
    Slot.objects.filter(pk=booking.slot_id).update(start=F("start") - ago, end=F("end") - ago)
    html = client.get(link).content.decode()
    assert "already been used" in html and booking.ack_id not in html


def test_a_used_link_of_a_booking_not_cancelled_says_nothing_changed(client, cancel_link):
    booking, link = cancel_link()
    LinkToken.objects.filter(booking=booking, purpose=LinkToken.Purpose.CANCEL).update(used_at=timezone.now())
    html = client.get(link).content.decode()
    assert "already been used" in html and "has not changed unless" in html and "is cancelled" not in html


def test_an_expired_link_changes_nothing(client, cancel_link):
    booking, link = cancel_link()
    LinkToken.objects.filter(purpose=LinkToken.Purpose.CANCEL).update(expires_at=timezone.now())
    assert client.get(link).status_code == 410
    response = client.post(link)
    assert response.status_code == 410 and "Cancellation links work once, for 1 hour." in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == Status.APPROVED


def test_tampered_and_wrong_purpose_links_are_refused(client, cancel_link):
    booking, link = cancel_link()
    token = link.rstrip("/").split("/")[-1]
    assert client.post(f"/cancel/{token[:-1]}/").status_code == 404
    assert client.post("/cancel/x/").status_code == 404
    from bookings.tokens import token_create

    manage = token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=1))
    assert client.post(f"/cancel/{manage}/").status_code == 404
    booking.refresh_from_db()
    assert booking.status == Status.APPROVED


@pytest.mark.parametrize(("asked", "starts", "cancelled"), [(10, 23 * 60 + 55, True), (50, -5, False)])
def test_a_cancellation_asked_for_in_time_is_confirmed_after_the_cutoff_but_not_once_begun(
    client, cancel_link, asked, starts, cancelled
):
    """Asked for at 24 h 05 min before the session, confirmed from the email ten minutes later
    (the link works for an hour): asking in time is what counts. Never once the session began."""
    booking, link = cancel_link(Status.CONFIRMED)
    start = timezone.now() + timedelta(minutes=starts)
    Slot.objects.filter(pk=booking.slot_id).update(start=start, end=start + timedelta(hours=1))
    LinkToken.objects.filter(purpose=LinkToken.Purpose.CANCEL).update(
        created_at=timezone.now() - timedelta(minutes=asked)
    )
    page = client.get(link).content.decode()
    assert ("can no longer be cancelled online" in page) is not cancelled
    response = client.post(link)
    assert response.status_code == (200 if cancelled else 409)
    booking.refresh_from_db()
    assert booking.status == (Status.CANCELLED if cancelled else Status.CONFIRMED)


def test_inside_the_cutoff_cancellation_is_refused_with_clinic_contact(client, cancel_link, counsellor):
    from bookings.models import Clinic

    Clinic.objects.update_or_create(pk=1, defaults={"phone": "+91 484 000 0000"})
    booking, link = cancel_link(Status.CONFIRMED)
    # The session moved closer after the link was sent.
    start = timezone.now() + timedelta(hours=3)
    Slot.objects.filter(pk=booking.slot_id).update(start=start, end=start + timedelta(hours=1))
    page = client.get(link).content.decode()
    assert "can no longer be cancelled online" in page and "+91 484 000 0000" in page
    response = client.post(link)
    assert response.status_code == 409
    assert "+91 484 000 0000" in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == Status.CONFIRMED
    assert LinkToken.objects.get(purpose=LinkToken.Purpose.CANCEL).used_at is None


def test_a_booking_already_cancelled_by_staff_is_explained(client, cancel_link):
    booking, link = cancel_link(Status.PENDING)
    from bookings.models import Booking

    Booking.objects.filter(pk=booking.pk).update(status=Status.REJECTED)
    response = client.post(link)
    assert response.status_code == 409
    assert "not cancelled" in response.content.decode()


# --- purge_drafts -------------------------------------------------------------------------


def test_purge_drafts_deletes_only_old_unverified_drafts(make_booking, settings, oncommit):
    from django.core.management import call_command

    from bookings.models import Booking, OutboundEmail
    from bookings.tasks import purge_drafts

    old = timezone.now() - timedelta(hours=settings.DRAFT_RETENTION_HOURS, minutes=1)
    stale = make_booking(Status.DRAFT, created_at=old)
    OutboundEmail.objects.create(kind="verify", booking=stale, to=stale.email, subject="s", body_text="Hello Test")
    fresh = make_booking(Status.DRAFT)
    verified = make_booking(Status.PENDING, created_at=old)
    from io import StringIO

    out = StringIO()
    call_command("purge_drafts", stdout=out)
    assert "Deleted 1 " in out.getvalue()
    assert set(Booking.objects.values_list("pk", flat=True)) == {fresh.pk, verified.pk}
    assert not OutboundEmail.objects.exists()
    # Cron-safe: a second run finds nothing and does nothing.
    out = StringIO()
    call_command("purge_drafts", stdout=out)
    assert "Deleted 0 " in out.getvalue()
    # The task wraps the same service.
    make_booking(Status.DRAFT, created_at=old)
    assert purge_drafts.call() == 1


def test_the_expired_link_page_and_the_email_give_the_links_life_from_the_setting(client, cancel_link, settings):
    settings.CANCELLATION_LINK_MINUTES = 30
    _booking, link = cancel_link()
    assert "The link works once and for 30 minutes." in mail.outbox[-1].body
    LinkToken.objects.filter(purpose=LinkToken.Purpose.CANCEL).update(expires_at=timezone.now())
    assert "Cancellation links work once, for 30 minutes." in client.get(link).content.decode()


def test_purge_drafts_keeps_a_draft_whose_new_link_still_works(session_type, client, oncommit):
    """ "Send the email again" late in a draft's life: the new link works the hours it says."""
    from bookings.services import booking_submit, drafts_purge

    with oncommit():
        draft, _ = booking_submit(
            submission_key="k1",
            session_type=session_type,
            mode="online",
            counsellor=None,
            preferred_slot=None,
            preferred_times="Mornings",
            client_name="Kavya",
            email="kavya@example.com",
            phone="",
            age_confirmation="adult",
            concerns="",
        )
    first = re.search(r"/verify/([^/\s]+)/", mail.outbox[-1].body).group(1)
    Booking.objects.filter(pk=draft.pk).update(created_at=F("created_at") - timedelta(hours=40))
    LinkToken.objects.filter(booking=draft).update(
        created_at=F("created_at") - timedelta(hours=40), expires_at=F("expires_at") - timedelta(hours=40)
    )
    client.post(f"/verify/{first}/resend/")
    second = re.search(r"/verify/([^/\s]+)/", mail.outbox[-1].body).group(1)
    assert second != first
    assert drafts_purge(now=timezone.now() + timedelta(hours=9)) == 0
    assert client.get(f"/verify/{second}/").status_code == 200
    # Once no link of it works, it goes.
    assert drafts_purge(now=timezone.now() + timedelta(hours=25)) == 1
