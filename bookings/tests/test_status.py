"""/status/: look up by acknowledgement ID (status only) or by email (links by email only)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django import forms
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from django.utils.html import escape

from bookings import services
from bookings.forms import AckLookupForm, EmailLookupForm
from bookings.lifecycle import CLIENT_LABELS, CONFIRMED_SESSION_OVER, NEXT_STEPS
from bookings.models import LinksRequest, LinkToken, OutboundEmail, Slot, Status
from bookings.services import booking_links_request_handle
from bookings.templatetags.mindsettler import labelled_field
from bookings.tests.journey import link_in_last_email, main_part

pytestmark = pytest.mark.django_db


def _ack(client, value):
    return client.post("/status/", {"lookup": "ack", "ack_id": value})


def _email(client, value):
    """An email lookup, and the page it leads to (status_sent) if it was sent."""
    return client.post("/status/", {"lookup": "email", "email": value}, follow=True)


def _visible(response) -> str:
    """The page without its per-request secrets (CSRF token, CSP nonce)."""
    html = response.content.decode()
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'[nN]once(=|": )"[^"]+"', "", html)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)


def test_the_page_offers_both_lookups_and_does_nothing_on_get(client, make_booking):
    make_booking(Status.PENDING, email="a@example.com")
    response = client.get("/status/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="ack_id"' in html and 'name="email"' in html
    assert main_part(html).count('method="post"') == 2
    assert mail.outbox == []


def test_ack_lookup_of_a_confirmed_session_whose_time_has_passed(client, make_booking, counsellor):
    """Not "you are all set": until the clinic records it, the client cannot book the next one."""
    start = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    booking = make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    )
    html = _ack(client, booking.ack_id).content.decode()
    assert str(CLIENT_LABELS[Status.CONFIRMED]) in html
    assert escape(str(CONFIRMED_SESSION_OVER)) in html
    assert "You are all set" not in html and "from this page" not in html


@pytest.mark.parametrize("status", [Status.PENDING, Status.APPROVED, Status.CONFIRMED, Status.CANCELLED])
def test_ack_lookup_shows_status_and_next_step_only(client, make_booking, counsellor, status):
    booking = make_booking(status, counsellor=counsellor, concerns="private words", client_name="Meera Iyer")
    response = _ack(client, f"  {booking.ack_id.lower()} ")
    html = response.content.decode()
    assert response.status_code == 200
    assert str(CLIENT_LABELS[status]) in html
    assert str(NEXT_STEPS[status]) in html
    for secret in (
        "Meera",
        "private words",
        booking.email,
        counsellor.display_name,
        "10:00",
        booking.session_type.name,
    ):
        assert secret not in html, secret


def test_ack_lookup_without_the_dash_is_accepted(client, make_booking):
    booking = make_booking(Status.PENDING)
    response = _ack(client, booking.ack_id.replace("-", "").lower())
    assert str(CLIENT_LABELS[Status.PENDING]) in response.content.decode()


@pytest.mark.parametrize(
    "bad",
    ["", "MS-", "MS-ABC", "MS-ABCD", "ms xyzw", "MS-ABCDEF1", "MS-OOOOOO", "<script>alert(1)</script>", "x" * 300],
)
def test_ack_lookup_validates_the_format(client, bad):
    response = _ack(client, bad)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'href="#id_ack_id"' in html and "id_ack_id_error" in html
    assert "<script>alert" not in html


@pytest.mark.parametrize(
    "typed", ["{ms} {body}", "{ms}{body}", "{ms} {a} {b}", "{ms}\u2013{body}", "{body}", "{ms}.{a}-{b}"]
)
def test_ack_lookup_accepts_spaces_dashes_and_lower_case(client, make_booking, typed):
    booking = make_booking(Status.PENDING)
    body = booking.ack_id.removeprefix("MS-")
    value = typed.format(ms="ms", body=body.lower(), a=body[:3], b=body[3:])
    html = _ack(client, value).content.decode()
    assert str(CLIENT_LABELS[Status.PENDING]) in html and "There is a problem" not in html


@pytest.mark.parametrize("bad", ["MS-O0O0O0", "ms-abc1de", "MS-ABCDEI", "MS-L23456"])
def test_an_id_with_look_alikes_says_which_characters_ids_never_contain(client, bad):
    html = _ack(client, bad).content.decode()
    assert "Acknowledgement IDs never contain 0, 1, I, L, O" in html
    assert "followed by six letters and numbers" not in html


def test_ack_lookup_for_an_unknown_id_says_so(client):
    response = _ack(client, "MS-ABCDEF")
    assert "could not find a booking" in response.content.decode()


def test_email_lookup_answers_the_same_whether_or_not_bookings_exist(client, make_booking):
    make_booking(Status.PENDING, email="known@example.com")
    known = _email(client, "Known@Example.com ")
    unknown = _email(client, "known@example.org")
    assert known.status_code == unknown.status_code == 200
    assert _visible(known).replace("known@example.com", "X") == _visible(unknown).replace("known@example.org", "X")
    assert [m.to for m in mail.outbox] == [["known@example.com"]]


def _statements(address: str) -> list[str]:
    """The SQL of a links request from /status/, its literals and numbers blanked, without
    its after-commit work (the task): what the visitor waits for."""
    with CaptureQueriesContext(connection) as queries:
        assert Client().post("/status/", {"lookup": "email", "email": address}).status_code == 303
    blank = re.compile(r"'[^']*'|\b\d+\b|\bs\d+_x\d+\b")  # literals, numbers, savepoints' names
    return [blank.sub("?", query["sql"]) for query in queries.captured_queries]


def test_email_lookup_does_the_same_work_whether_or_not_bookings_exist(make_booking):
    """The answer is the same, and so is the time it takes: finding the bookings, minting
    their links and queuing the email are a worker's, after the page has answered."""
    make_booking(Status.PENDING, email="known@example.com")
    make_booking(Status.CANCELLED, email="known@example.com")
    assert _statements("known@example.com") == _statements("unknown@example.com")
    assert list(LinksRequest.objects.values_list("email", flat=True).order_by("pk")) == [
        "known@example.com",
        "unknown@example.com",
    ]
    assert mail.outbox == [] and not OutboundEmail.objects.exists() and not LinkToken.objects.exists()


def test_a_links_request_whose_task_was_lost_is_answered_by_send_emails(make_booking, oncommit):
    booking = make_booking(Status.PENDING, email="lost@example.com")
    hindi = {"Accept-Language": "hi"}
    Client(headers=hindi).post("/status/", {"lookup": "email", "email": "lost@example.com"})  # its task never runs
    Client().post("/status/", {"lookup": "email", "email": "other@example.com"})
    lost = LinksRequest.objects.get(email="lost@example.com")
    LinksRequest.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=2))

    with oncommit():
        call_command("send_emails", stdout=io.StringIO())

    # The one a minute old is answered, in the language of the page that asked (Hindi); the
    # other is still its own task's.
    assert [m.to for m in mail.outbox] == [["lost@example.com"]]
    assert booking.ack_id in mail.outbox[0].body and "बुकिंग" in mail.outbox[0].subject
    assert list(LinksRequest.objects.values_list("email", flat=True)) == ["other@example.com"]
    # Answered once: its task, arriving late, finds nothing to do.
    assert booking_links_request_handle(request_id=lost.pk) is None


def test_a_links_request_that_fails_holds_up_nothing_and_goes_a_day_on(make_booking, oncommit, monkeypatch, caplog):
    make_booking(Status.PENDING, email="stuck@example.com")
    Client().post("/status/", {"lookup": "email", "email": "stuck@example.com"})
    # A fault injected: answering this one address raises, as a bug or a lost database would.
    real = services.booking_links_send
    monkeypatch.setattr(
        "bookings.services.requests.booking_links_send",
        lambda *, email: 1 / 0 if email == "stuck@example.com" else real(email=email),
    )
    make_booking(Status.PENDING, email="fine@example.com")
    Client().post("/status/", {"lookup": "email", "email": "fine@example.com"})
    LinksRequest.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    with oncommit():
        call_command("send_emails", stdout=io.StringIO())
    # The other request is answered; the failing one is kept for the next try.
    assert [m.to for m in mail.outbox] == [["fine@example.com"]]
    assert list(LinksRequest.objects.values_list("email", flat=True)) == ["stuck@example.com"]
    assert "could not answer links request" in caplog.text

    LinksRequest.objects.update(created_at=timezone.now() - timedelta(days=1, minutes=1))
    call_command("send_emails", stdout=io.StringIO())
    assert not LinksRequest.objects.exists() and len(mail.outbox) == 1
    assert "failed for a day and were deleted unanswered" in caplog.text


def test_a_links_request_is_answered_by_its_task(client, make_booking):
    booking = make_booking(Status.PENDING, email="task@example.com")
    _email(client, "task@example.com")  # the test client runs the after-commit work: the task
    assert [m.to for m in mail.outbox] == [["task@example.com"]] and booking.ack_id in mail.outbox[0].body
    assert not LinksRequest.objects.exists()


def test_the_emailed_links_open_each_booking_page(client, make_booking, counsellor):
    pending = make_booking(Status.PENDING, email="two@example.com", concerns="private words")
    cancelled = make_booking(Status.CANCELLED, email="two@example.com")
    make_booking(Status.DRAFT, email="two@example.com")  # never verified: not listed
    _email(client, "two@example.com")
    message = mail.outbox[-1]
    body = message.body
    assert pending.ack_id in body and cancelled.ack_id in body
    assert body.count("/bookings/") == 2
    assert "private words" not in body + message.alternatives[0].content
    assert pending.session_type.name not in message.subject + body
    page = client.get(link_in_last_email("/bookings/"))
    assert page.status_code == 200
    assert LinkToken.objects.filter(purpose=LinkToken.Purpose.MANAGE).count() == 2


def test_the_links_email_leaves_out_bookings_whose_page_has_closed(client, make_booking, counsellor, settings):
    """A closed page opens by no link: sending one would lead to a page offering another."""
    from datetime import timedelta

    from django.utils import timezone

    from bookings.models import Slot

    settings.BOOKING_LINK_DAYS_AFTER_SESSION = 10
    start = timezone.now() - timedelta(days=10, hours=2)
    old = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    closed = make_booking(Status.COMPLETED, slot=old, email="old@example.com")
    recent_start = timezone.now() - timedelta(days=9)
    recent = Slot.objects.create(counsellor=counsellor, start=recent_start, end=recent_start + timedelta(hours=1))
    still_open = make_booking(Status.COMPLETED, slot=recent, email="old@example.com")
    _email(client, "old@example.com")
    body = mail.outbox[-1].body
    assert still_open.ack_id in body and closed.ack_id not in body
    assert body.count("/bookings/") == 1

    # An address whose every booking has closed gets no email, and the same answer as any.
    mail.outbox.clear()
    closed_only = make_booking(Status.COMPLETED, slot=None, email="gone@example.com")
    closed_only.slot = Slot.objects.create(counsellor=counsellor, start=start - timedelta(hours=3), end=start)
    closed_only.save(update_fields=["slot"])
    gone = _email(client, "gone@example.com")
    unknown = _email(client, "never@example.com")
    assert _visible(gone).replace("gone@example.com", "X") == _visible(unknown).replace("never@example.com", "X")
    assert mail.outbox == []


def test_the_links_email_says_once_that_it_can_be_ignored(client, make_booking, counsellor):
    make_booking(Status.PENDING, email="two@example.com")
    _email(client, "two@example.com")
    message = mail.outbox[-1]
    for part in (message.body, message.alternatives[0].content):
        assert part.count("ignore this email") == 1, part


@pytest.mark.parametrize("bad", ["", "not-an-email", "a@b", "<script>@x.com"])
def test_email_lookup_validates_the_address(client, bad):
    response = _email(client, bad)
    assert 'href="#id_email"' in response.content.decode()
    assert mail.outbox == []


def test_lookups_are_rate_limited_per_ip(client, settings, make_booking):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (2, 60)}
    booking = make_booking(Status.PENDING)
    assert _ack(client, booking.ack_id).status_code == 200
    assert _email(client, "x@example.com").status_code == 200
    limited = _ack(client, booking.ack_id)
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    html = limited.content.decode()
    assert "Please try again in" in html and str(CLIENT_LABELS[Status.PENDING]) not in html
    assert _email(client, booking.email).status_code == 429
    assert mail.outbox == []
    # Another address (another client behind no proxy) is not affected.
    other = client.post("/status/", {"lookup": "ack", "ack_id": booking.ack_id}, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 200


def test_a_new_ipv6_address_of_the_same_network_does_not_start_a_new_count(client, settings, make_booking):
    """One home, phone or server is given a whole /64 of IPv6 addresses: counted address by
    address, anyone could look up ack ID after ack ID from a new address each time."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (2, 60)}
    booking = make_booking(Status.PENDING)

    def lookup(address: str):
        return client.post("/status/", {"lookup": "ack", "ack_id": booking.ack_id}, REMOTE_ADDR=address)

    assert lookup("2001:db8:1:2::1").status_code == 200
    assert lookup("2001:db8:1:2::2").status_code == 200
    assert lookup("2001:db8:1:2:ffff:ffff:ffff:ffff").status_code == 429
    assert lookup("2001:db8:1:3::1").status_code == 200  # another network
    # An IPv4 address written as IPv6 (a dual-stack server's way) is that IPv4 address.
    assert lookup("10.0.0.7").status_code == 200
    assert lookup("::ffff:10.0.0.7").status_code == 200
    assert lookup("10.0.0.7").status_code == 429


def test_one_address_is_not_flooded_but_the_answer_stays_the_same(client, make_booking):
    """Three emails an hour to one address (the default, as for other emails sent on request),
    however many addresses the requests come from; each visitor sees the same answer."""
    make_booking(Status.PENDING, email="flood@example.com")
    answers = [
        _visible(client.post("/status/", {"lookup": "email", "email": "flood@example.com"}, REMOTE_ADDR=f"10.0.0.{n}"))
        for n in range(1, 7)
    ]
    assert len(set(answers)) == 1
    assert len(mail.outbox) == 3


# --- The lookup's fields: {% labelled_field %}, bookings/_field.html written in Python ---------


class _Fields(forms.Form):
    plain = forms.CharField(max_length=5, widget=forms.TextInput(attrs={"class": "input"}))
    hinted = forms.EmailField(label="Mail & <post>", help_text='Ours "only" & <yours>')
    optional = forms.CharField(required=False, help_text="Hint.", widget=forms.Textarea(attrs={"rows": 2}))
    choice = forms.ChoiceField(choices=[("", "Any"), ("a", "A & B")], help_text="Pick.")

    def clean_plain(self) -> str:
        raise forms.ValidationError(["Too <plain>.", "And again."])  # two errors, one line


@pytest.mark.parametrize("language", ["en", "hi"])
@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda: AckLookupForm(), id="ack-empty"),
        pytest.param(lambda: AckLookupForm({"ack_id": "<script>x"}), id="ack-invalid"),
        pytest.param(lambda: AckLookupForm({"ack_id": "ms-7k3qxp"}), id="ack-valid"),
        pytest.param(lambda: EmailLookupForm({"email": ""}), id="email-missing"),
        pytest.param(lambda: EmailLookupForm({"email": 'a"<b>@x'}), id="email-invalid"),
        pytest.param(lambda: _Fields(), id="others-empty"),
        pytest.param(lambda: _Fields({"plain": "abc", "hinted": "no", "choice": "z"}), id="others-invalid"),
        pytest.param(
            lambda: _Fields({"plain": "abcdefg", "hinted": "a@b.example", "optional": "<i>x</i>", "choice": "a"}),
            id="others-mixed",
        ),
    ],
)
def test_labelled_field_is_the_same_as_the_field_template(form, language):
    with translation.override(language):
        form = form()
        form.is_valid()
        for name in form.fields:
            template = render_to_string("bookings/_field.html", {"field": form[name]})
            assert labelled_field(form[name]) == template, name


def test_the_fields_link_their_hint_and_error_and_the_summary_links_the_field(client):
    html = _ack(client, "nope").content.decode()
    field = re.search(r'<input type="text" name="ack_id"[^>]*>', html).group(0)
    assert 'aria-describedby="id_ack_id_helptext id_ack_id_error"' in field and 'aria-invalid="true"' in field
    assert '<label for="id_ack_id" class="field-label">' in html
    assert '<p id="id_ack_id_helptext" class="field-hint">' in html
    assert '<p id="id_ack_id_error" class="field-error"><span class="sr-only">Error: </span>' in html
    assert '<a href="#id_ack_id"' in main_part(html).split('<div class="grid', 1)[0]  # the summary, first
    email = re.search(r'<input type="email" name="email"[^>]*>', html).group(0)
    assert 'aria-describedby="id_email_helptext"' in email and "aria-invalid" not in email


def test_an_expired_form_gets_a_page_that_says_what_to_do():
    """A form posted without a valid CSRF token (a page left open for days, cookies blocked):
    the site's own page, in its layout, not Django's technical one; nothing is looked up."""
    response = Client(enforce_csrf_checks=True).post("/status/", {"lookup": "ack", "ack_id": "MS-ABC234"})
    html = response.content.decode()
    assert response.status_code == 403
    assert "This form has expired" in html and "Nothing was sent or saved." in html
    assert "CSRF verification" not in html and '<html lang="en"' in html


SUMMARY_FOCUSED = re.compile(r'<div class="error-summary"[^>]*data-error-summary autofocus>')


def test_a_refused_lookup_starts_at_its_error_summary_without_javascript(client, settings, make_booking):
    """autofocus: a full page with errors puts focus on the summary, as wizard.js does."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "status_lookup": (3, 60)}
    booking = make_booking(Status.PENDING)
    assert "autofocus" not in client.get("/status/").content.decode()
    found = _ack(client, booking.ack_id)
    assert found.status_code == 200 and "autofocus" not in found.content.decode()
    assert SUMMARY_FOCUSED.search(_ack(client, "").content.decode())
    assert SUMMARY_FOCUSED.search(_email(client, "not-an-email").content.decode())
    limited = _ack(client, booking.ack_id).content.decode()
    assert "Please try again in" in limited and SUMMARY_FOCUSED.search(limited)


def test_a_queue_that_refuses_the_task_leaves_the_request_for_send_emails(client, make_booking, settings, caplog):
    """after_commit.enqueue_on_commit, as every change that starts a task uses it: a queue
    that refuses (here one that takes no tasks of the queue named) is logged, never an error."""
    import bookings.tasks  # noqa: F401 - defined under the real settings, as in a running app

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["elsewhere"]}}
    make_booking(Status.PENDING, email="refused@example.com")
    response = _email(client, "refused@example.com")
    assert response.status_code == 200 and "refused@example.com" in response.content.decode()
    assert list(LinksRequest.objects.values_list("email", flat=True)) == ["refused@example.com"]
    assert "could not enqueue send_booking_links" in caplog.text and "it stays for send_emails" in caplog.text
    assert mail.outbox == []


def test_the_page_saying_where_the_links_went_is_read_again_without_sending_again(client, make_booking):
    """A reload, or the page read in another language, sends no second email."""
    make_booking(Status.PENDING, email="again@example.com")
    assert client.get("/status/sent/")["Location"] == "/status/"  # nothing asked for yet
    response = client.post("/status/", {"lookup": "email", "email": "again@example.com"})
    assert response.status_code == 303 and response["Location"] == "/status/sent/"
    for language in ("en", "hi"):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        page = client.get("/status/sent/")
        assert page.status_code == 200 and "again@example.com" in page.content.decode()
        assert "no-store" in page["Cache-Control"]
    assert len(mail.outbox) == 1


def _language_form(html: str) -> dict[str, str]:
    """What the footer's language switcher posts, as a browser would send it."""
    form = re.search(r'<form action="/i18n/setlang/" method="post".*?</form>', html, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def test_changing_the_language_after_a_lookup_by_id_answers_it_again_in_that_language(client, make_booking, counsellor):
    """Without JavaScript, and with the ID never in a URL or the session: the switcher posts
    the lookup along, and a 307 has the browser post it to the page again."""
    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    html = _ack(client, booking.ack_id.lower()).content.decode()
    fields = _language_form(html)
    assert fields["lookup"] == "ack" and fields["ack_id"] == booking.ack_id.lower()

    switched = client.post("/i18n/setlang/", {**fields, "language": "hi"})

    assert switched.status_code == 307 and switched["Location"] == "/status/"
    answer = client.post(switched["Location"], {**fields, "language": "hi"})  # what the browser does on a 307
    page = answer.content.decode()
    assert answer.status_code == 200 and '<html lang="hi"' in page
    with translation.override("hi"):
        assert str(CLIENT_LABELS[Status.APPROVED]) in page and booking.ack_id in page
    assert booking.ack_id not in str(dict(client.session)) and booking.ack_id.lower() not in str(dict(client.session))
    # Django's test client follows a 307 the same way, posting the form again.
    back = client.post("/i18n/setlang/", {**_language_form(page), "language": "en"}, follow=True)
    assert [url for url, _ in back.redirect_chain] == ["/status/"] and back.request["REQUEST_METHOD"] == "POST"
    assert str(CLIENT_LABELS[Status.APPROVED]) in back.content.decode() and booking.ack_id in back.content.decode()


def test_an_id_refused_is_refused_again_in_the_new_language(client):
    page = _ack(client, "MS-ABC").content.decode()
    switched = client.post("/i18n/setlang/", {**_language_form(page), "language": "hi"}, follow=True)
    html = switched.content.decode()
    assert '<html lang="hi"' in html and 'aria-invalid="true"' in html and 'value="MS-ABC"' in html


def test_a_lookup_by_email_is_never_sent_again_by_a_change_of_language(client, make_booking):
    """It sends an email: a refused address, or a page that was rate limited, leaves the switcher
    as on any page (back to the empty form)."""
    make_booking(Status.PENDING, email="again@example.com")
    page = client.post("/status/", {"lookup": "email", "email": "again@example.com x"}).content.decode()
    fields = _language_form(page)
    assert set(fields) == {"csrfmiddlewaretoken", "next"}
    switched = client.post("/i18n/setlang/", {**fields, "language": "hi"})
    assert switched.status_code == 302 and switched["Location"] == "/status/"
    # Only the status page's own lookup is posted again, and only to that page.
    posted = client.post("/i18n/setlang/", {"next": "/", "lookup": "ack", "ack_id": "MS-ABCDEF", "language": "en"})
    assert posted.status_code == 302
    assert mail.outbox == []
