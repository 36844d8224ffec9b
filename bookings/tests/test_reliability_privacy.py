"""Erasure and export on the client's request: asked for on the booking page, confirmed from
a link emailed to the booking's address."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail
from django.template.loader import render_to_string
from django.utils import timezone

from bookings.models import Actor, Booking, BookingEvent, ConsentGiven, LinkToken, Mode, OutboundEmail, Payment, Status
from bookings.services import booking_anonymise, booking_cancel, booking_create_by_staff
from bookings.templatetags.mindsettler import when
from bookings.tokens import token_create

pytestmark = pytest.mark.django_db


def page(booking) -> str:
    return f"/bookings/{token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=30))}/"


def emailed_link(kind_path: str) -> str:
    body = mail.outbox[-1].body
    return re.search(rf"http://testserver(/privacy/{kind_path}/[^\s]+/)", body).group(1)


@pytest.fixture
def history(make_booking, counsellor):
    """One client (same email): a paid, completed session; a cancelled request; and an active
    booking. Plus someone else's booking that must never be touched."""
    email = "meera@example.com"
    paid = make_booking(Status.COMPLETED, counsellor=counsellor, email=email, concerns="Grief since March")
    Payment.objects.create(
        booking=paid,
        provider="sandbox",
        provider_order_id="order_1",
        provider_payment_id="pay_1",
        amount=paid.amount,
        currency="INR",
        status=Payment.State.CONFIRMED,
        raw={"return": {"payment": "pay_1"}},
    )
    cancelled = make_booking(Status.CANCELLED, counsellor=counsellor, email=email, phone="+919876543210")
    active = make_booking(Status.PENDING, counsellor=counsellor, email=email, concerns="Work stress")
    other = make_booking(Status.CANCELLED, counsellor=counsellor, email="someone-else@example.com")
    return {"paid": paid, "cancelled": cancelled, "active": active, "other": other}


def test_the_booking_page_offers_both_requests(client, history):
    html = client.get(page(history["active"])).content.decode()
    assert 'id="privacy"' in html
    assert "Email me a copy of my data" in html and "Erase my data" in html


def test_export_by_emailed_link_is_a_json_file_of_every_booking_and_event(client, history):
    response = client.post(page(history["active"]) + "privacy/export/")
    assert response.status_code == 303
    assert mail.outbox[-1].to == ["meera@example.com"]
    assert "Grief" not in mail.outbox[-1].body  # the client's words stay out of email
    BookingEvent.objects.create(
        booking=history["cancelled"], from_status="pending", to_status="cancelled", actor="client"
    )

    link = emailed_link("export")
    # The link opens a page showing what is held, the client's own words too (only they have it).
    shown = client.get(link)
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    html = shown.content.decode()
    assert all(history[k].ack_id in html for k in ("paid", "cancelled", "active"))
    assert "Grief since March" in html and history["other"].ack_id not in html
    assert f'href="{urlsplit(link).path}?download"' in html

    download = client.get(link + "?download")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("application/json")
    assert "attachment" in download["Content-Disposition"]
    assert download["Cache-Control"] and "no-store" in download["Cache-Control"]
    data = json.loads(download.content)
    assert {b["acknowledgement_id"] for b in data["bookings"]} == {
        history[k].ack_id for k in ("paid", "cancelled", "active")
    }
    by_id = {b["acknowledgement_id"]: b for b in data["bookings"]}
    assert by_id[history["paid"].ack_id]["what_brings_you"] == "Grief since March"
    assert by_id[history["paid"].ack_id]["payments"][0]["status"] == "confirmed"
    assert by_id[history["cancelled"].ack_id]["events"][0]["to"] == "cancelled"
    # The session's own end (its slot may be longer), in the clinic's time, as pages show it.
    paid = history["paid"]
    exported = by_id[paid.ack_id]
    assert exported["session_end"] == timezone.localtime(paid.slot.start + paid.session_type.duration).isoformat()
    assert exported["session_start"] == timezone.localtime(paid.slot.start).isoformat()
    assert history["other"].ack_id not in download.content.decode()
    # A made-up link shows and downloads nothing.
    assert client.get("/privacy/export/not-a-real-token-at-all/").status_code == 404
    assert client.get("/privacy/export/not-a-real-token-at-all/?download").status_code == 404


def test_erasure_is_refused_while_a_booking_is_active_then_done_once_it_is_cancelled(client, history):
    page_link = page(history["paid"])
    client.post(page(history["active"]) + "privacy/erase/")
    link = emailed_link("erase")
    assert "Erase my data" in mail.outbox[-1].body

    # Opening the link changes nothing (mail scanners open links).
    shown = client.get(link)
    assert shown.status_code == 200 and history["active"].ack_id in shown.content.decode()
    refused = client.post(link)
    assert refused.status_code == 409
    assert "still active" in refused.content.decode()
    assert not Booking.objects.filter(anonymised_at__isnull=False).exists()

    booking_cancel(booking_id=history["active"].pk, actor=Actor.CLIENT, reason="Cancelled by the client")
    confirm = client.get(link).content.decode()
    assert 'action="/privacy/erase/' in confirm
    done = client.post(link)
    assert done.status_code == 200 and "erased" in done.content.decode()
    # Both pages say what is kept, in the words of the privacy notice.
    kept = " ".join(render_to_string("bookings/_privacy_kept.html").split())
    assert kept in " ".join(confirm.split()) and kept in " ".join(done.content.decode().split())
    assert "Nothing in them identifies you" not in confirm

    for key in ("paid", "cancelled", "active"):
        b = Booking.objects.get(pk=history[key].pk)
        assert b.anonymised_at is not None
        assert "meera" not in b.email and b.concerns == "" and b.phone == "" and b.client_name != "Test Client"
    # What the accounts need from the paid session stays: reference, amount, payment reference.
    paid = Booking.objects.get(pk=history["paid"].pk)
    assert paid.ack_id == history["paid"].ack_id and paid.amount == history["paid"].amount
    payment = Payment.objects.get(booking=paid)
    assert payment.provider_payment_id == "pay_1" and payment.status == Payment.State.CONFIRMED
    assert payment.raw == {}
    # Someone else's booking is untouched; the link worked once.
    assert Booking.objects.get(pk=history["other"].pk).anonymised_at is None
    assert client.post(link).status_code in (404, 410)
    # The booking's page, opened later, says why it is gone rather than that the link was mistyped.
    gone = client.get(page_link)
    assert gone.status_code == 410 and "This booking's details have been erased" in gone.content.decode()
    looked_up = client.post("/status/", {"lookup": "ack", "ack_id": paid.ack_id}).content.decode()
    assert "so it has no booking page or links any more" in looked_up and "ask for its link below" not in looked_up


def test_privacy_requests_are_rate_limited_with_retry_after(client, history, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "data_request": (2, 3600)}
    url = page(history["active"])
    assert client.post(url + "privacy/export/").status_code == 303
    assert client.post(url + "privacy/erase/").status_code == 303
    limited = client.post(url + "privacy/erase/")
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 3600
    assert "several privacy emails" in limited.content.decode()
    assert len(mail.outbox) == 2


def test_only_the_newest_erasure_link_works(client, history, presses_apart):
    url = page(history["cancelled"])
    client.post(url + "privacy/erase/")
    first = emailed_link("erase")
    presses_apart()
    client.post(url + "privacy/erase/")
    second = emailed_link("erase")
    assert client.get(first).status_code == 410
    assert client.get(second).status_code == 200


def test_waitlist_entries_are_exported_and_erased_with_the_bookings(client, history, session_type):
    from datetime import date

    from bookings.models import WaitlistEntry

    WaitlistEntry.objects.create(
        client_name="Meera",
        email="meera@example.com",
        session_type=session_type,
        mode="online",
        date_from=date(2026, 12, 1),
        date_to=date(2026, 12, 20),
        verified_at=timezone.now(),
    )
    WaitlistEntry.objects.create(
        client_name="Someone",
        email="someone-else@example.com",
        session_type=session_type,
        mode="online",
        date_from=date(2026, 12, 1),
        date_to=date(2026, 12, 20),
    )
    client.post(page(history["active"]) + "privacy/export/")
    link = emailed_link("export")
    data = json.loads(client.get(link + "?download").content)
    assert [w["name"] for w in data["waitlist"]] == ["Meera"]
    html = client.get(link).content.decode()
    assert "Waitlist places" in html and "any day from Tue 1 Dec to Sun 20 Dec" in html
    # In Hindi: days and months named whole, a session type given no Hindi name marked English.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    html = client.get(link).content.decode()
    assert f'<span lang="en">{session_type.name}</span>, मंगलवार 1 दिसंबर से रविवार 20 दिसंबर तक का कोई भी दिन' in html
    del client.cookies[settings.LANGUAGE_COOKIE_NAME]

    booking_cancel(booking_id=history["active"].pk, actor=Actor.CLIENT, reason="Cancelled by the client")
    client.post(page(history["active"]) + "privacy/erase/")
    assert client.post(emailed_link("erase")).status_code == 200
    assert list(WaitlistEntry.objects.values_list("email", flat=True)) == ["someone-else@example.com"]


def test_the_export_carries_no_note_staff_wrote_for_colleagues(client, history, admin_user):
    """The timeline shows a client only a rejection's reason (the rest is written for
    colleagues); the downloaded file must not show them more than that."""
    cancelled = history["cancelled"]
    BookingEvent.objects.create(
        booking=cancelled,
        from_status="pending",
        to_status="cancelled",
        actor="staff",
        actor_user=admin_user,
        reason="Colleague note: sounded very low on the phone, call back",
    )
    BookingEvent.objects.create(
        booking=cancelled,
        action="payment_settled",
        actor="staff",
        actor_user=admin_user,
        reason="Payment 7: Payment alert dealt with. Spoke to her brother",
    )
    rejected = Booking.objects.create(
        **{
            f: getattr(cancelled, f)
            for f in ("client_name", "email", "session_type", "mode", "amount", "currency", "counsellor")
        },
        ack_id="MS-REJ234",
        status=Status.REJECTED,
    )
    BookingEvent.objects.create(
        booking=rejected, from_status="pending", to_status="rejected", actor="staff", reason="We do not offer that"
    )
    client.post(page(history["active"]) + "privacy/export/")
    download = client.get(emailed_link("export") + "?download").content.decode()
    assert "Colleague note" not in download and "her brother" not in download
    data = json.loads(download)
    by_id = {b["acknowledgement_id"]: b for b in data["bookings"]}
    # The events themselves are still there; the client's own rejection reason too.
    assert {e["action"] for e in by_id[cancelled.ack_id]["events"]} >= {"transition", "payment_settled"}
    assert [e["reason"] for e in by_id["MS-REJ234"]["events"]] == ["We do not offer that"]


def test_erasure_leaves_no_email_to_the_address_in_the_outbox(client, history):
    """Emails about no booking (the waitlist's, "your booking links") hold the address and,
    in their text, the client's name: they go with the rest."""
    from bookings.models import OutboundEmail

    for kind in ("waitlist_joined", "booking_links"):
        OutboundEmail.objects.create(
            kind=kind, to="meera@example.com", subject="Your place", body_text="Hello Meera Iyer", body_html="Meera"
        )
    others = OutboundEmail.objects.create(
        kind="booking_links", to="someone-else@example.com", subject="s", body_text="x"
    )
    booking_cancel(booking_id=history["active"].pk, actor=Actor.CLIENT, reason="Cancelled by the client")
    client.post(page(history["cancelled"]) + "privacy/erase/")
    assert client.post(emailed_link("erase")).status_code == 200
    assert not OutboundEmail.objects.filter(to__icontains="meera").exists()
    assert not OutboundEmail.objects.filter(body_text__icontains="meera").exists()
    assert OutboundEmail.objects.filter(pk=others.pk).exists()


def test_a_client_who_phoned_sees_how_and_when_they_agreed_to_the_privacy_notice(
    client, make_booking, admin_user, counsellor, session_type
):
    email = "kiran@example.com"
    online = make_booking(
        Status.CANCELLED,
        email=email,
        consent_policy_version="2025-01-01",
        consented_at=timezone.now() - timedelta(days=60),
    )
    unrecorded = make_booking(Status.CANCELLED, email=email)  # made by staff before agreement was recorded
    phoned = booking_create_by_staff(
        user=admin_user,
        status=Status.PENDING,
        session_type=session_type,
        mode=Mode.ONLINE,
        client_name="Kiran Rao",
        email=email,
        phone="",
        slot=None,
        counsellor=counsellor,
        consent=ConsentGiven.PHONE,
        policy_version=settings.POLICY_VERSION,
    )
    version, agreed = settings.POLICY_VERSION, phoned.consented_at
    # Their booking's timeline says so, with the booking it agreed to.
    html = client.get(page(phoned)).content.decode()
    assert html.index("The clinic made this booking for you") < html.index(
        "You agreed to our privacy notice on the phone with the clinic"
    )

    client.post(page(phoned) + "privacy/export/")
    link = emailed_link("export")
    shown = client.get(link).content.decode()
    assert f"Version {version}: you agreed on the phone with the clinic, {when(agreed, autoescape=True)}" in shown
    assert f"Version 2025-01-01: you agreed in the booking form, {when(online.consented_at, autoescape=True)}" in shown
    assert shown.count("you agreed") == 2  # nothing is claimed for the booking without a record
    download = client.get(link + "?download").content.decode()
    by_id = {b["acknowledgement_id"]: b for b in json.loads(download)["bookings"]}
    exported = by_id[phoned.ack_id]
    assert (exported["consent_policy_version"], exported["consent_given"]) == (version, "by_phone")
    assert exported["consented_at"] == timezone.localtime(agreed).isoformat()
    assert ConsentGiven.PHONE in [e["action"] for e in exported["events"]]
    assert (by_id[online.ack_id]["consent_given"], by_id[unrecorded.ack_id]["consent_given"]) == ("online", None)
    assert "admin@example.com" not in download  # who took the call stays with the clinic

    # Anonymised, the booking still shows that the client agreed, how, when and to whom.
    booking_cancel(booking_id=phoned.pk, actor=Actor.CLIENT, reason="")
    assert booking_anonymise(booking_id=phoned.pk, reason="Erased at the client's request")
    phoned.refresh_from_db()
    assert (phoned.consent_policy_version, phoned.consented_at) == (version, agreed)
    event = phoned.events.get(action=ConsentGiven.PHONE)
    assert (event.actor_user, event.created_at, event.reason) == (admin_user, agreed, "")


# What each field of a booking is called where the pages say what erasure removes or keeps
# (templates/bookings/_privacy_kept.html); None: not about the client, so not listed.
REMOVED_AS = {
    "client_name": "name",
    "email": "email address",
    "phone": "phone number",
    "concerns": "everything you wrote",
    "preferred_times": "everything you wrote",
    "meeting_url": None,  # the clinic's room for the session
    "submission_key": None,  # a random key against double submission
}
KEPT_AS = {
    "ack_id": "acknowledgement ID",
    "status": "the status and its history",
    "session_type": "the kind of session",
    "mode": "the way of meeting",
    "amount": "its price",
    "currency": "its price",
    "slot": "the date and time",
    "preferred_slot": "the date and time",
    "counsellor": "the counsellor",
    "age_confirmation": "your answer about your age",
    "consent_policy_version": "the version of the privacy notice you agreed to",
    "consented_at": "the version of the privacy notice you agreed to",
    "id": None,
    "version": None,
    "language": None,
    "created_by": None,
    "created_at": None,
    "updated_at": None,
    "approved_at": None,
    "payment_due_at": None,
    "anonymised_at": None,
    "verified_at": None,  # when the address was confirmed
}


def test_what_the_pages_say_erasure_keeps_is_what_it_keeps(client, history):
    """Every field of a booking is either cleared by anonymisation and named among what is
    removed, or kept and named among what is kept (or about the clinic, not the client). A new
    field fails here until the pages say what becomes of it."""
    paid = history["paid"]
    Booking.objects.filter(pk=paid.pk).update(
        phone="+919876543210", preferred_times="Evenings", meeting_url="https://meet.example/x", submission_key="k"
    )
    before = Booking.objects.get(pk=paid.pk)
    assert booking_anonymise(booking_id=paid.pk, reason="test")
    after = Booking.objects.get(pk=paid.pk)
    fields = Booking._meta.concrete_fields
    assert {f.name for f in fields} <= {*REMOVED_AS, *KEPT_AS}
    kept_text = " ".join(render_to_string("bookings/_privacy_kept.html").split())
    notice = " ".join(client.get("/privacy/").content.decode().split())
    assert "we remove your name, email address, phone number and everything you wrote" in notice
    for field in fields:
        if field.name in REMOVED_AS:
            assert getattr(after, field.attname) != getattr(before, field.attname), field.name
            if REMOVED_AS[field.name]:
                assert REMOVED_AS[field.name] in notice, field.name
        elif field.name not in ("updated_at", "anonymised_at", "version"):
            assert getattr(after, field.attname) == getattr(before, field.attname), field.name
            if KEPT_AS[field.name]:
                assert KEPT_AS[field.name] in kept_text, field.name
    # The payment reference and amounts stay for the accounts, and the pages say so.
    payment = Payment.objects.get(booking=paid)
    assert payment.provider_payment_id == "pay_1" and payment.amount == paid.amount
    assert "the amounts paid and refunded and the payment references" in kept_text
    # Every page that speaks of erasure says the same list.
    assert kept_text in notice
    booking_page = client.get(page(history["cancelled"])).content.decode()
    assert kept_text in " ".join(booking_page.split())


def test_a_payment_arriving_after_the_client_erased_their_data_is_refunded_without_an_email(
    make_booking, counsellor, settings
):
    """The client cancelled while paying, then had their data erased; the capture comes
    afterwards. The money goes back; no email to the erased address, no new link to the page."""
    from bookings.services import booking_anonymise, payment_confirm, payment_start

    settings.PAYMENT_PROVIDER = "sandbox"
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    payment = payment_start(booking_id=booking.pk)
    booking_cancel(booking_id=booking.pk, actor=Actor.CLIENT, reason="")
    assert booking_anonymise(booking_id=booking.pk, reason="The client asked")
    links = set(LinkToken.objects.filter(booking=booking).values_list("pk", flat=True))
    emails = OutboundEmail.objects.filter(booking=booking).count()

    payment_confirm(
        payment_id=payment.pk,
        provider_payment_id="pay_late",
        amount=booking.amount,
        currency=booking.currency,
        raw={},
        source="webhook",
    )
    payment.refresh_from_db()
    assert payment.refund_status in (Payment.RefundState.PENDING, Payment.RefundState.PROCESSED)
    assert set(LinkToken.objects.filter(booking=booking).values_list("pk", flat=True)) == links
    assert OutboundEmail.objects.filter(booking=booking).count() == emails


def test_the_copy_holds_nothing_someone_else_typed_with_the_address_and_never_confirmed(client, history, session_type):
    """Anyone may type an address into the booking or waitlist form: until it is confirmed,
    what they wrote is theirs, not the address owner's."""

    from bookings.models import WaitlistEntry

    Booking.objects.create(
        status=Status.DRAFT,
        ack_id="MS-DRAFTS",
        client_name="Stranger Ravi",
        email="meera@example.com",
        phone="+919812345678",
        concerns="STRANGER-WORDS",
        session_type=session_type,
        mode=Mode.ONLINE,
        amount=session_type.price,
        currency=session_type.currency,
    )
    today = timezone.localdate()
    WaitlistEntry.objects.create(
        client_name="Stranger Ravi",
        email="meera@example.com",
        session_type=session_type,
        mode=Mode.ONLINE,
        date_from=today,
        date_to=today + timedelta(days=10),
    )
    client.post(page(history["paid"]) + "privacy/export/")
    link = emailed_link("export")
    shown = client.get(link).content.decode()
    data = json.loads(client.get(link + "?download").content)
    assert "Stranger" not in shown and "STRANGER-WORDS" not in shown
    assert "Stranger" not in json.dumps(data) and data["waitlist"] == []
    assert len(data["bookings"]) == 3


def test_the_copy_gives_what_was_paid_and_refunded_and_the_providers_references(client, history):
    Payment.objects.filter(booking=history["paid"]).update(
        captured_amount=history["paid"].amount,
        refunded_amount=500,
        status=Payment.State.PARTIALLY_REFUNDED,
        provider_refund_id="rfnd_1",
    )
    client.post(page(history["paid"]) + "privacy/export/")
    data = json.loads(client.get(emailed_link("export") + "?download").content)
    (paid,) = [b for b in data["bookings"] if b["acknowledgement_id"] == history["paid"].ack_id]
    (payment,) = paid["payments"]
    assert payment["captured_minor_units"] == history["paid"].amount and payment["refunded_minor_units"] == 500
    assert (payment["provider_order_id"], payment["provider_payment_id"], payment["provider_refund_id"]) == (
        "order_1",
        "pay_1",
        "rfnd_1",
    )


def test_erasure_waits_while_money_is_still_to_settle_with_the_client(client, history, admin_user):
    """A refund that failed: the client's name and address are how staff reach them about it."""
    booking_cancel(booking_id=history["active"].pk, actor=Actor.CLIENT, reason="Cancelled by the client")
    Payment.objects.create(
        booking=history["cancelled"],
        provider="sandbox",
        provider_order_id="order_2",
        provider_payment_id="pay_2",
        amount=history["cancelled"].amount,
        currency="INR",
        status=Payment.State.CONFIRMED,
        refund_status=Payment.RefundState.FAILED,
        needs_attention="The automatic refund failed.",
    )
    client.post(page(history["paid"]) + "privacy/erase/")
    link = emailed_link("erase")
    shown = client.get(link).content.decode()
    assert "Money is still to be settled between you and the clinic" in shown
    assert history["cancelled"].ack_id in shown and 'action="/privacy/erase/' not in shown
    refused = client.post(link)
    assert refused.status_code == 409 and "We keep your name and email address until it is" in (
        refused.content.decode()
    )
    assert not Booking.objects.filter(anonymised_at__isnull=False).exists()
    # Settled: the same link erases.
    Payment.objects.filter(provider_payment_id="pay_2").update(
        refund_status=Payment.RefundState.PROCESSED, needs_attention=""
    )
    assert client.post(link).status_code == 200
    assert Booking.objects.filter(email="meera@example.com").count() == 0


def test_the_copy_gives_who_opened_each_booking_and_the_emails_kept(client, history, admin_user, oncommit):
    from bookings.models import BookingView

    BookingView.objects.create(booking=history["paid"], user=admin_user)
    with oncommit():
        client.post(page(history["paid"]) + "privacy/export/")
    someone_elses = OutboundEmail.objects.create(
        kind="verify", to="someone-else@example.com", subject="Not theirs", body_text="x", status="sent"
    )
    data = json.loads(client.get(emailed_link("export") + "?download").content)
    (paid,) = [b for b in data["bookings"] if b["acknowledgement_id"] == history["paid"].ack_id]
    assert [v["role"] for v in paid["opened_by_staff"]] == ["administrator"]
    subjects = [e["subject"] for e in data["emails"]]
    assert subjects and someone_elses.subject not in subjects
    assert all("/privacy/export/" not in e["text"] or "[redacted]" in e["text"] for e in data["emails"])
