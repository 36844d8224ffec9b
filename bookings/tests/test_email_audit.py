"""Every email the system sends, produced through the services as in production (in English
and in Hindi), read as its recipient would: a subject that says what happened and names the
booking, a plain-text and an HTML part that say the same, links that work and say where they
go, calendar attachments that update in place, and none of the client's own words."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone
from icalendar import Calendar

from bookings import services
from bookings.api.auth import api_client_create, api_token_warnings_send
from bookings.models import Actor, Booking, ConsentGiven, LinkToken, Mode, OutboundEmail, Payment, Slot, Status
from bookings.tests.test_i18n import STAFF_EMAILS, assert_hindi, names_in_the_database
from conftest import next_weekday_at
from staff.services import setup_link_send, staff_invite
from staff.tests.conftest import sign_in_with_second_factor

pytestmark = pytest.mark.django_db

# What clients type in their own words; none of it may reach an email or a calendar file.
OWN_WORDS = ("Sleepless-since-the-move", "Weekday-evenings-only", "Too-busy-reason")
URL = re.compile(r"https?://[^\s\"'<>]+")


@dataclass
class Journey:
    """Each email as it was sent, with what its links answered right then (before a later
    step used up a single-use link). The outbox's copy of a sent email keeps no working link
    (test_emails.py): its bodies here are those the recipient got."""

    client: object
    language: str
    emails: list[OutboundEmail] = field(default_factory=list)
    answers: dict[str, object] = field(default_factory=dict)
    last_pk: int = 0
    last_sent: int = 0  # how many of mail.outbox have been matched to an outbox row
    names: set[str] = field(default_factory=set)  # what people typed, read at the end

    def collect(self) -> None:
        for email in OutboundEmail.objects.filter(pk__gt=self.last_pk).select_related("booking").order_by("pk"):
            self.last_pk = email.pk
            for i, message in enumerate(mail.outbox[self.last_sent :], start=self.last_sent):
                if message.to == [email.to] and message.subject == email.subject:
                    email.body_text = message.body
                    email.body_html = message.alternatives[0][0] if message.alternatives else ""
                    self.last_sent = i + 1
                    break
            self.emails.append(email)
            for url in links(email):
                if url.startswith("http://testserver/"):
                    self.answers[url] = self.client.get(url.removeprefix("http://testserver").split("#")[0])

    def of(self, kind: str) -> list[OutboundEmail]:
        return [e for e in self.emails if e.kind == kind]


def links(email: OutboundEmail) -> set[str]:
    hrefs = {html.unescape(h) for h in re.findall(r'href="([^"]+)"', email.body_html)}
    return set(URL.findall(email.body_text)) | hrefs


def last_link(journey: Journey, prefix: str) -> str:
    found = [u for u in URL.findall(journey.emails[-1].body_text) if urlsplit(u).path.startswith(prefix)]
    return urlsplit(found[0]).path.strip("/").split("/")[-1]


def send_every_email(client, oncommit, *, language: str, admin_user, counsellor, session_type) -> Journey:
    """A client's whole journey, and the staff emails it causes, through the services."""
    journey = Journey(client, language)
    counsellor.offers_in_person = True
    counsellor.daily_summary = True
    counsellor.save()
    start = next_weekday_at(10, days_ahead=4)
    first = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    later = Slot.objects.create(counsellor=counsellor, start=start + timedelta(hours=2), end=start + timedelta(hours=3))

    def step(action, *args, **kwargs):
        with oncommit():
            result = action(*args, **kwargs)
        journey.collect()
        return result

    def submit(key: str, email: str, slot: Slot | None = None) -> Booking:
        return step(
            services.booking_submit,
            submission_key=key,
            session_type=session_type,
            mode=Mode.ONLINE,
            counsellor=None,
            preferred_slot=slot,
            preferred_times=OWN_WORDS[1],
            client_name="Priya Sharma",
            email=email,
            phone="",
            age_confirmation="adult",
            concerns=OWN_WORDS[0],
            language=language,
        )[0]

    booking = submit("one", "priya@example.com", first)
    step(services.booking_verify, token=last_link(journey, "/verify/"))
    submit("two", "priya@example.com")
    with pytest.raises(services.ActiveBookingExists):
        step(services.booking_verify, token=last_link(journey, "/verify/"))
    journey.collect()  # the "already active" email, queued before the refusal
    step(services.booking_approve, booking_id=booking.pk, slot_id=first.pk, user=admin_user)
    payment = step(services.payment_start, booking_id=booking.pk)
    step(
        services.payment_confirm,
        payment_id=payment.pk,
        provider_payment_id="pay_ok",
        amount=booking.amount,
        currency=booking.currency,
        raw={},
        source="test",
    )
    step(services.booking_reschedule, booking_id=booking.pk, slot_id=later.pk, actor=Actor.STAFF, user=admin_user)
    booking.refresh_from_db()
    step(services.booking_reschedule_request, booking=booking, slot=first)
    step(services.booking_cancel_request, booking=booking)
    step(services.privacy_request, booking=booking, purpose=LinkToken.Purpose.ERASE)
    step(services.privacy_request, booking=booking, purpose=LinkToken.Purpose.EXPORT)
    step(services.reminders_send, now=later.start - timedelta(hours=2))
    step(services.daily_summaries_send, today=timezone.localdate(later.start))
    step(services.booking_links_send, email=booking.email)
    step(services.booking_cancel, booking_id=booking.pk, actor=Actor.CLIENT, reason=OWN_WORDS[2])

    other = submit("three", "ravi@example.com")
    step(services.booking_verify, token=last_link(journey, "/verify/"))
    step(services.booking_reject, booking_id=other.pk, user=admin_user, reason=OWN_WORDS[2])

    # The last sessions of Kiran and Lata have ended and are not yet recorded: a request each
    # makes is held until theirs is (request_held, record_to_rebook). Kiran's is recorded and
    # his request made; Lata's waits too long, and she is told (request_not_made).
    for hours_ago, key, address in ((3, "four", "kiran@example.com"), (5, "five", "lata@example.com")):
        past = timezone.now() - timedelta(hours=hours_ago)
        ended = Slot.objects.create(counsellor=counsellor, start=past, end=past + timedelta(hours=1))
        Booking.objects.create(
            ack_id=services.ack_id_new(),
            status=Status.CONFIRMED,
            client_name="Kiran Das",
            email=address,
            session_type=session_type,
            mode=Mode.ONLINE,
            amount=session_type.price,
            currency=session_type.currency,
            counsellor=counsellor,
            slot=ended,
            language=language,
        )
        submit(key, address)
        with pytest.raises(services.RequestHeld):
            step(services.booking_verify, token=last_link(journey, "/verify/"))
        journey.collect()
    step(
        services.booking_complete,
        booking_id=Booking.objects.get(email="kiran@example.com", slot__isnull=False).pk,
        user=admin_user,
    )
    step(services.held_requests_release, now=timezone.now() + timedelta(days=settings.HELD_REQUEST_DAYS, hours=1))

    def paid_short(slot: Slot, mode: str, name: str, email: str) -> tuple[Booking, Payment]:
        """A booking made by staff, paid ₹1 short: held for staff."""
        booking = step(
            services.booking_create_by_staff,
            user=admin_user,
            status=Status.APPROVED,
            session_type=session_type,
            mode=mode,
            client_name=name,
            email=email,
            phone="",
            slot=slot,
            consent=ConsentGiven.PHONE,
            policy_version=settings.POLICY_VERSION,
            language=language,
        )
        payment = step(services.payment_start, booking_id=booking.pk)
        step(
            services.payment_confirm,
            payment_id=payment.pk,
            provider_payment_id=f"pay_short_{booking.pk}",
            amount=booking.amount - 100,
            currency=booking.currency,
            raw={},
            source="test",
        )
        return booking, payment

    # Paid the wrong amount, then the time to pay ran out: held for staff, refunded, expired.
    walk_in, _ = paid_short(first, Mode.IN_PERSON, "Dev Rao", "dev@example.com")
    step(services.bookings_expire, now=walk_in.payment_due_at + timedelta(seconds=1))

    # Paid the wrong amount; an administrator has it refunded, and the client may pay again.
    third = Slot.objects.create(counsellor=counsellor, start=start + timedelta(hours=4), end=start + timedelta(hours=5))
    _, payment = paid_short(third, Mode.ONLINE, "Asha Rao", "asha.rao@example.com")
    step(services.payment_settle, payment_id=payment.pk, user=admin_user, how="refund", note="Asked again.")

    # A payment that arrives after the client cancelled.
    late = step(
        services.booking_create_by_staff,
        user=admin_user,
        status=Status.APPROVED,
        session_type=session_type,
        mode=Mode.ONLINE,
        client_name="Meera Iyer",
        email="meera@example.com",
        phone="",
        slot=later,
        consent=ConsentGiven.PHONE,
        policy_version=settings.POLICY_VERSION,
        language=language,
    )
    payment = step(services.payment_start, booking_id=late.pk)
    step(services.booking_cancel, booking_id=late.pk, actor=Actor.CLIENT, reason=OWN_WORDS[2])
    step(
        services.payment_confirm,
        payment_id=payment.pk,
        provider_payment_id="pay_late",
        amount=late.amount,
        currency=late.currency,
        raw={},
        source="test",
    )

    today = timezone.localdate()
    step(
        services.waitlist_join,
        client_name="Anil",
        email="anil@example.com",
        session_type=session_type,
        mode=Mode.ONLINE,
        counsellor=None,
        date_from=today,
        date_to=today + timedelta(days=10),
        language=language,
    )
    step(services.waitlist_verify, token=last_link(journey, "/waitlist/verify/"))
    # The first time is freed again once he waits (an offer goes to those waiting when a time
    # was freed, and it was free already when he joined).
    Slot.objects.filter(pk=first.pk).update(freed_at=timezone.now())
    step(services.waitlist_offer_slot, slot_id=first.pk)
    # The clinic stops offering what Anil waits for: he is told his place has ended.
    session_type.is_active = False
    session_type.save(update_fields=["is_active"])
    step(services.waitlist_end_unserved)
    step(staff_invite, email="new@example.com", role="counsellor", name="Nisha Rao", invited_by=admin_user)
    step(setup_link_send, user=counsellor.user)
    # The chatbot's API token is about to expire: the administrators are told.
    api_client_create(name="support-bot", days=10)
    step(api_token_warnings_send)
    journey.names = names_in_the_database()
    return journey


@pytest.fixture(params=["en", "hi"])
def fresh_journey(request, client, oncommit, admin_user, counsellor, session_type) -> Journey:
    """The journey, with its rows in the test's database (for a test that opens them)."""
    return send_every_email(
        client,
        oncommit,
        language=request.param,
        admin_user=admin_user,
        counsellor=counsellor,
        session_type=session_type,
    )


_SENT: dict[str, Journey] = {}


@pytest.fixture(params=["en", "hi"])
def journey(request) -> Journey:
    """The journey's emails and what their links answered, sent once a language in each test
    process (two seconds a time, for some forty tests): read, never changed, by the tests
    below. Its rows are gone after the test that sent it; what the tests read of them (each
    email and its booking, each answer) is held in memory."""
    if request.param not in _SENT:
        _SENT[request.param] = send_every_email(
            request.getfixturevalue("client"),
            request.getfixturevalue("oncommit"),
            language=request.param,
            admin_user=request.getfixturevalue("admin_user"),
            counsellor=request.getfixturevalue("counsellor"),
            session_type=request.getfixturevalue("session_type"),
        )
    return _SENT[request.param]


def test_the_journey_sends_every_kind_of_email(journey, settings):
    folder = Path(settings.BASE_DIR) / "templates" / "emails"
    kinds = {p.name.removesuffix("-subject.txt") for p in folder.glob("*-subject.txt")}
    assert {e.kind for e in journey.emails} == kinds


# --- Subjects --------------------------------------------------------------------------------

# Emails about no booking yet (a draft's ID is never shown to the client, nor a held one's
# until it is made) or about several, or none.
WITHOUT_ONE_BOOKING = {
    "verify",
    "request_held",
    "request_not_made",
    "booking_links",
    "daily_summary",
    "staff_invite",
    "staff_setup_link",
    "waitlist_verify",
    "waitlist_joined",
    "waitlist_offer",
    "waitlist_ended",
    "api_token_expiring",
}


def test_every_subject_about_a_booking_names_its_acknowledgement_id(journey):
    for email in journey.emails:
        if email.kind not in WITHOUT_ONE_BOOKING:
            assert email.booking.ack_id in email.subject, (email.kind, email.subject)


@pytest.mark.parametrize(
    "kind, english, hindi",
    [
        ("already_active", "You already have an active booking: {ack}", "आपकी एक बुकिंग पहले से सक्रिय है: {ack}"),
        ("rejected", "We cannot take your booking request {ack}", "हम आपका बुकिंग अनुरोध {ack} स्वीकार नहीं कर सकते"),
    ],
)
def test_the_subject_says_what_happened(journey, kind, english, hindi):
    email = journey.of(kind)[0]
    expected = english if journey.language == "en" else hindi
    assert email.subject == expected.format(ack=email.booking.ack_id)


def test_each_payment_alert_says_in_its_subject_what_happened(journey):
    """An administrator's inbox: a wrong amount, then the same money refunded as the booking
    expired, then a payment after cancellation are different news."""
    alerts = journey.of("payment_attention")
    expected = {
        "wrong amount paid",
        "held payment refunded as the booking ended",
        "payment arrived too late",
    }
    assert {email.subject.split(", ", 1)[-1] for email in alerts} == expected
    for email in alerts:
        assert email.subject.startswith(f"Payment needs attention: {email.booking.ack_id}, ")


# --- The two parts ---------------------------------------------------------------------------


def test_every_email_has_both_parts_in_its_language_with_nothing_fetched_from_elsewhere(journey):
    for email in journey.emails:
        # Staff read English; the links email follows the page it was asked from (English here).
        language = "en" if email.kind in STAFF_EMAILS or email.kind == "booking_links" else journey.language
        assert email.body_text.strip() and email.body_html.strip(), email.kind
        assert f'<html lang="{language}">' in email.body_html, email.kind
        assert not re.search(r"<img|<link|@import|url\(|<script|\bsrc=", email.body_html), email.kind


def test_every_link_in_the_html_part_is_also_in_the_text_part(journey):
    for email in journey.emails:
        hrefs = {html.unescape(h) for h in re.findall(r'href="([^"]+)"', email.body_html)}
        assert hrefs <= set(URL.findall(email.body_text)), email.kind


def test_link_text_says_where_the_link_goes(journey):
    """Screen readers list a message's links by their text: never a bare address or 'here'."""
    for email in journey.emails:
        for text in re.findall(r"<a\b[^>]*>(.*?)</a>", email.body_html, flags=re.S):
            text = " ".join(re.sub(r"<[^>]+>", "", text).split())
            assert text and not URL.search(text) and text.lower() not in {"here", "click here", "link"}, (
                email.kind,
                text,
            )


def test_every_address_in_the_text_part_is_introduced(journey):
    """In plain text an address on its own says nothing: the line before (or its own line)
    says what it opens."""
    for email in journey.emails:
        lines = email.body_text.splitlines()
        for i, line in enumerate(lines):
            if not URL.fullmatch(line.strip()):
                continue  # no address, or one after its label on the same line
            before = [b for b in lines[:i] if b.strip()]
            assert before and before[-1].rstrip().endswith(":"), (email.kind, before[-1:], line)


# --- Links -----------------------------------------------------------------------------------

LANDINGS = {
    "/bookings/": "bookings/booking_page.html",
    "/verify/": "bookings/verify.html",
    "/cancel/": "bookings/cancel_confirm.html",
    "/reschedule/": "bookings/reschedule_confirm.html",
    "/privacy/": "bookings/privacy.html",  # the notice a client who phoned agreed to
    "/privacy/erase/": "bookings/privacy/erase_confirm.html",
    "/privacy/export/": "bookings/privacy/export.html",
    "/waitlist/verify/": "bookings/waitlist_link.html",
    "/waitlist/leave/": "bookings/waitlist_link.html",
}


def test_every_link_is_absolute_and_opens_the_right_page(journey):
    for email in journey.emails:
        for url in links(email):
            if email.kind == "reminder" and url == "https://meet.example/asha":
                continue  # the counsellor's meeting room
            assert url.startswith("http://testserver/"), (email.kind, url)
            response = journey.answers[url]
            path = url.removeprefix("http://testserver").split("#")[0]  # a browser never sends the fragment
            if path.startswith("/staff/"):
                assert response.status_code == 302, (email.kind, path)
                assert response["Location"] == f"/accounts/login/?next={quote(path)}", (email.kind, path)
            elif path == "/book/" or path.startswith("/book/?"):
                assert response.status_code == 302 and response["Location"].startswith("/book/?run="), email.kind
            elif path.startswith("/accounts/password/reset/key/"):
                assert response.status_code == 302 and "/accounts/password/reset/key/" in response["Location"]
            elif path.startswith("/accounts/2fa/totp/activate/link/"):
                # An authenticator setup link works only signed in as its member: this
                # browser is asked to sign in first, and then comes back to it.
                assert response.status_code == 403, (email.kind, path)
                assert f"?next={path}" in response.content.decode(), (email.kind, path)
            else:
                prefix = max((p for p in LANDINGS if path.startswith(p)), key=len)
                assert response.status_code == 200, (email.kind, path, response.status_code)
                assert LANDINGS[prefix] in [t.name for t in response.templates], (email.kind, path)
                if prefix == "/bookings/":
                    # The links email lists one booking here: the ID it names is the page's.
                    ack_id = email.booking.ack_id if email.booking else re.search(r"MS-\w+", email.body_text)[0]
                    assert ack_id in response.content.decode(), email.kind


def test_the_payment_alert_opens_that_bookings_page_in_the_staff_portal(fresh_journey, client, admin_user):
    alerts = fresh_journey.of("payment_attention")
    assert alerts
    for alert in alerts:
        # At the form where an administrator says what was done about the payment.
        url = f"http://testserver/staff/bookings/{alert.booking.pk}/#settle-"
        assert url in alert.body_text and f'href="{url}' in alert.body_html
    sign_in_with_second_factor(client, admin_user)  # every staff account has a second factor
    page = client.get(f"/staff/bookings/{alerts[0].booking.pk}/")
    assert page.status_code == 200 and alerts[0].booking.ack_id in page.content.decode()


# --- What emails never carry -----------------------------------------------------------------


def test_no_email_or_calendar_file_carries_the_clients_own_words(journey):
    for email in journey.emails:
        everything = email.subject + email.body_text + email.body_html + email.ics
        for words in OWN_WORDS:
            assert words not in everything, (email.kind, words)


def test_staff_alerts_name_the_booking_not_the_client(journey):
    assert journey.of("new_request"), "the journey sends staff a new request"
    assert journey.of("session_changed"), "the journey tells a counsellor of a change to a session"
    staff_kinds = ("payment_attention", "daily_summary", "new_request", "session_changed")
    for email in [e for kind in staff_kinds for e in journey.of(kind)]:
        everything = email.subject + email.body_text + email.body_html
        for booking in Booking.objects.all():
            assert booking.client_name not in everything and booking.email not in everything, email.kind


# --- Times -----------------------------------------------------------------------------------


def test_times_are_in_the_clinics_zone_and_name_it(journey):
    email = journey.of("confirmed")[0]  # for 10:00 in Kolkata (04:30 UTC)
    # In HTML the zone is kept with its time (a no-break space), in text a space.
    assert "10:00 IST" in email.body_text and "10:00\N{NO-BREAK SPACE}IST" in email.body_html
    for kind in ("approved", "rescheduled", "reminder", "cancelled", "reschedule_confirm", "expired"):
        for email in journey.of(kind):
            assert re.search(r"\b\d\d:\d\d IST\b", email.body_text), kind


# --- Calendar files --------------------------------------------------------------------------


def test_the_calendar_file_updates_one_event_in_place_and_cancels_it(journey):
    files = [(e.kind, Calendar.from_ical(e.ics)) for e in journey.emails if e.ics]
    assert [kind for kind, _ in files] == ["confirmed", "rescheduled", "cancelled"]
    events = [cal.walk("VEVENT")[0] for _, cal in files]
    assert [str(cal["METHOD"]) for _, cal in files] == ["PUBLISH", "PUBLISH", "CANCEL"]
    assert len({str(event["UID"]) for event in events}) == 1
    sequences = [int(event["SEQUENCE"]) for event in events]
    assert sequences[0] < sequences[1] < sequences[2]
    assert str(events[-1]["STATUS"]) == "CANCELLED"
    assert not any("Priya" in e.ics or "priya@" in e.ics for e in journey.emails)
    for event in events:
        for name in ("DTSTART", "DTEND"):
            moment = event[name].dt
            assert moment.utcoffset() == timedelta(0), name
    start = next_weekday_at(10, days_ahead=4)
    assert events[0]["DTSTART"].dt == start and events[1]["DTSTART"].dt == start + timedelta(hours=2)


# --- Hindi -----------------------------------------------------------------------------------


def test_hindi_emails_have_no_english_sentences_and_no_broken_placeholders(journey):
    for email in journey.emails:
        for part in (email.subject, email.body_text, email.body_html):
            assert not re.search(r"%\(\w+\)|\{\{|\{%|%s\b", part), email.kind
        if email.kind in STAFF_EMAILS or email.kind == "booking_links":
            continue  # staff read English; the links email follows the page it was asked from
        if journey.language == "hi":
            for part in (email.subject, email.body_text, email.body_html):
                assert_hindi(email.kind, part, names=journey.names)


def test_hindi_says_which_time_is_which_and_reminds_in_whole_sentences(journey):
    """The move is not made until the client confirms: its email names the current time and
    the new one ("पहले"/"अब", before/now, read as if it had already moved). A reminder's
    subject and opening are sentences, not "याद दिलाना" (the verb "to remind")."""
    [move] = journey.of("reschedule_confirm")
    if journey.language != "hi":
        # In English too, one pair: "Current time" before the move, "Old time" after it.
        for part in (move.body_text, move.body_html):
            assert "Current time:" in part and "New time:" in part and "From:" not in part, part
        return
    for part in (move.body_text, move.body_html):
        assert "अभी का समय:" in part and "नया समय:" in part, part
    [reminder] = journey.of("reminder")
    assert reminder.subject.startswith("याद रहे: ")
    assert "यह आपके सेशन की याद दिलाने के लिए है।" in reminder.body_text


def test_every_email_to_a_client_ends_with_where_to_turn_in_a_crisis_in_both_parts(journey):
    """Not the staff's: the help line is for clients, and a counsellor's alert is no place for it."""
    for email in journey.emails:
        if email.kind in STAFF_EMAILS:
            for part in (email.body_text, email.body_html):
                assert "14416" not in part and "emergencies" not in part, email.kind
            continue
        for part in (email.body_text, email.body_html):
            assert "112" in part and "14416" in part, email.kind
        ending = email.body_text.rstrip().rsplit("\n", 1)[-1]
        assert "14416" in ending, (email.kind, ending)  # the last words of the text part


# --- The text and the HTML say the same ------------------------------------------------------

_URL_LINE = re.compile(r"https?://\S+")


def _sentences_of_text(body: str) -> tuple[set[str], set[str]]:
    """The text part's sentences without its links, and those of them that introduce a link
    (end in a colon), which the HTML part may show as a button instead."""
    return _split(_URL_LINE.sub("", body.replace("\n-- \n", "\n")))


def _sentences_of_html(body: str) -> set[str]:
    """The HTML part's sentences, without its buttons (their labels, the fallback line and the
    link it gives), the labels of its links, and the clinic's name heading the message."""
    body = re.sub(r"<head>.*?</head>", " ", body, flags=re.S)
    body = re.sub(r'<p style="margin:24px 0"><a [^>]*>.*?</a></p>', " ", body, flags=re.S)
    body = re.sub(r'<p style="font-size:13px;color:#55605e">[^<]*<br><span[^>]*>[^<]*</span></p>', " ", body)
    body = re.sub(r'<p style="margin:0 0 20px[^"]*">[^<]*</p>', " ", body)
    labels = {html.unescape(" ".join(t.split())) for t in re.findall(r"<a\b[^>]*>(.*?)</a>", body, flags=re.S)}
    body = re.sub(r"</?(strong|em|span|a)\b[^>]*>", "", body)
    body = html.unescape(re.sub(r"<[^>]+>", "\n", body))
    return _split(_URL_LINE.sub("", body))[0] - labels


def _split(text: str) -> tuple[set[str], set[str]]:
    parts = [p for line in text.split("\n") for p in re.split(r"(?<=[.!?।:])\s+", " ".join(line.split()))]
    parts = [p for p in parts if p.strip(" .:।")]
    return {p.strip(" .:।") for p in parts}, {p.strip(" .:।") for p in parts if p.endswith(":")}


def test_the_text_and_html_parts_say_the_same(journey, settings):
    """Some mail apps show only one part: neither may leave out what the other says. (The
    text part introduces each link in words, "...here:", where the HTML may show a button.)"""
    differ = []
    for email in journey.emails:
        if email.kind in STAFF_EMAILS:
            continue
        text, introductions = _sentences_of_text(email.body_text)
        shown = _sentences_of_html(email.body_html)
        only_text, only_html = text - shown - introductions - {settings.CLINIC_NAME}, shown - text
        if only_text or only_html:
            differ.append((email.kind, sorted(only_text), sorted(only_html)))
    assert not differ, "\n".join(map(str, differ))
    if journey.language != "en":
        return
    # Three that differed: each part now says all of it.
    said = {
        "request_received": "You can see your booking, and cancel it, here:",
        "reminder": "Acknowledgement ID: ",
        "confirmed": f"You can cancel online until {settings.CANCELLATION_CUTOFF_HOURS} hours before the session, "
        "with a full refund.",
    }
    for kind, words in said.items():
        email = journey.of(kind)[0]
        assert words in email.body_text and words in html.unescape(re.sub(r"<[^>]+>", "", email.body_html)), kind
