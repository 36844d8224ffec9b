"""The chatbot API: authentication, each endpoint, errors, rate limit, query budgets, no personal data."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from urllib.parse import unquote

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from bookings.api.auth import api_call_authenticate, api_token_warnings_send, token_moment
from bookings.lifecycle import CLIENT_LABELS, CONFIRMED_SESSION_OVER, NEXT_STEPS
from bookings.models import (
    ApiClient,
    Booking,
    Counsellor,
    CounsellorPreviousSlug,
    OutboundEmail,
    SessionType,
    Slot,
    Status,
)
from bookings.tests.journey import link_in_last_email
from bookings.tokens import token_hash
from conftest import next_weekday_at

PROBLEM = "application/problem+json"


@pytest.fixture
def api(client, api_token):
    """The test client with the chatbot's token on every request."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token}"
    return client


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


# --- Authentication -------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(client, db):
    response = client.get("/api/v1/session-types")
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert "invalid_token" not in response["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer " + "x" * 500])
def test_bad_token_is_401(client, api_token, header):
    response = client.get("/api/v1/session-types", HTTP_AUTHORIZATION=header)
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_revoked_token_is_401(client, api_token):
    call_command("api_token", "revoke", "chatbot", stdout=StringIO())
    response = client.get("/api/v1/session-types", HTTP_AUTHORIZATION=f"Bearer {api_token}")
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


@pytest.mark.parametrize("with_header", [True, False])
def test_a_token_in_the_url_is_refused_even_with_a_good_header(client, api_token, with_header):
    """URLs end up in access logs, proxies and browser history: a token there is never accepted,
    so an integration that puts it there fails at once rather than leaking it for months."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token}"} if with_header else {}
    response = client.get(f"/api/v1/session-types?access_token={api_token}", **headers)
    body = assert_problem(response, 401)
    assert "URL" in body["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert ApiClient.objects.get().last_used_at is None


def test_a_call_stamps_last_used(api):
    assert ApiClient.objects.get().last_used_at is None
    api.get("/api/v1/session-types")
    assert timezone.now() - ApiClient.objects.get().last_used_at < timedelta(minutes=1)


def test_openapi_document_needs_no_token(client, db):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert document["paths"]["/openapi.json"]["get"]["security"] == []
    assert "bearerAuth" in document["components"]["securitySchemes"]


# --- Token expiry and rotation ---------------------------------------------------------------


def test_a_token_works_until_it_expires_then_is_refused_saying_when(client, api_token, settings):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token}"
    stored = ApiClient.objects.get()
    assert timezone.now() + timedelta(days=settings.API_TOKEN_DAYS) - stored.expires_at < timedelta(minutes=1)
    ApiClient.objects.update(expires_at=timezone.now() + timedelta(minutes=1))
    assert client.get("/api/v1/session-types").status_code == 200

    expired_at = timezone.now() - timedelta(seconds=1)
    ApiClient.objects.update(expires_at=expired_at, last_used_at=None)
    response = client.get("/api/v1/session-types")
    body = assert_problem(response, 401)
    assert body["detail"] == (f"This token expired on {token_moment(expired_at)}; ask an administrator for a new one.")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert ApiClient.objects.get().last_used_at is None  # a refused call is not a use

    # Revoked as well: revoked says nothing of when it would have expired.
    call_command("api_token", "revoke", "chatbot", stdout=StringIO())
    assert "expired" not in assert_problem(client.get("/api/v1/session-types"), 401)["detail"]


def test_a_good_token_is_still_authenticated_and_counted_in_one_query(api_token, django_assert_num_queries):
    with django_assert_num_queries(1):
        call = api_call_authenticate(raw_token=api_token)
    assert call is not None and call.retry_after is None
    new = rotate("chatbot")
    for token in (api_token, new):  # the replaced one too, during its overlap
        with django_assert_num_queries(1):
            assert api_call_authenticate(raw_token=token) is not None


def rotate(name: str, *args: str) -> str:
    out = StringIO()
    call_command("api_token", "rotate", name, *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_rotate_keeps_the_old_token_working_for_the_overlap_then_only_the_new_one(client, api_token, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (3, 60)}
    before = ApiClient.objects.get()
    new = rotate("chatbot", "--days", "30", "--overlap-days", "2")
    assert new.startswith("msapi_") and new != api_token
    stored = ApiClient.objects.get()
    assert stored.token_hash == token_hash(new) and stored.previous_token_hash == before.token_hash
    assert timedelta(days=30) - (stored.expires_at - timezone.now()) < timedelta(minutes=1)
    assert timedelta(days=2) - (stored.previous_expires_at - timezone.now()) < timedelta(minutes=1)
    assert new not in str(ApiClient.objects.values().get())

    def call(token):
        return client.get("/api/v1/session-types", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert call(api_token).status_code == 200
    assert call(new).status_code == 200
    # One client, one rate limit, whichever of its tokens calls.
    assert call(api_token).status_code == 200
    assert call(new).status_code == 429

    ApiClient.objects.update(previous_expires_at=timezone.now() - timedelta(seconds=1), rate_window=0)
    body = assert_problem(call(api_token), 401)
    assert body["detail"].startswith("This token was replaced by a new one and stopped working on ")
    assert call(new).status_code == 200


def test_rotating_again_or_without_overlap_stops_the_older_token_at_once(client, api_token):
    def status(token):
        return client.get("/api/v1/session-types", HTTP_AUTHORIZATION=f"Bearer {token}").status_code

    second = rotate("chatbot")
    third = rotate("chatbot")
    assert (status(api_token), status(second), status(third)) == (401, 200, 200)
    fourth = rotate("chatbot", "--overlap-days", "0")  # after a leak
    assert (status(second), status(third), status(fourth)) == (401, 401, 200)


def test_rotation_never_makes_an_expired_token_work_again(client, api_token):
    ApiClient.objects.update(expires_at=timezone.now() - timedelta(days=1))
    new = rotate("chatbot")
    assert client.get("/api/v1/session-types", HTTP_AUTHORIZATION=f"Bearer {api_token}").status_code == 401
    assert client.get("/api/v1/session-types", HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 200


def test_rotate_refuses_a_revoked_or_unknown_client_and_a_bad_number_of_days(api_token):
    call_command("api_token", "create", "other", stdout=StringIO(), stderr=StringIO())
    for args, error in (
        (["--days", "0"], "1 to 3650 days"),
        (["--days", "99999999"], "1 to 3650 days"),
        (["--overlap-days", "-1"], "0 to 3650 days"),
    ):
        with pytest.raises(CommandError, match=error):
            rotate("other", *args)
    with pytest.raises(CommandError, match="1 to 3650 days"):
        call_command("api_token", "create", "third", "--days", "0", stdout=StringIO())
    call_command("api_token", "revoke", "chatbot", stdout=StringIO())
    with pytest.raises(CommandError, match="is revoked"):
        rotate("chatbot")
    with pytest.raises(CommandError, match="no API client"):
        rotate("nobody")
    assert ApiClient.objects.filter(previous_token_hash__isnull=False).count() == 0


def test_api_token_list_shows_each_expiry_and_the_overlap(api_token):
    call_command("api_token", "create", "old-bot", "--days", "1", stdout=StringIO(), stderr=StringIO())
    ApiClient.objects.filter(name="old-bot").update(expires_at=timezone.now() - timedelta(hours=1))
    rotate("chatbot", "--days", "90")
    stored = ApiClient.objects.get(name="chatbot")
    out = StringIO()
    call_command("api_token", "list", stdout=out)
    lines = dict(line.split("\t", 1) for line in out.getvalue().splitlines())
    assert f"active, expires {token_moment(stored.expires_at)}" in lines["chatbot"]
    assert f"previous token works until {token_moment(stored.previous_expires_at)}" in lines["chatbot"]
    expired = ApiClient.objects.get(name="old-bot").expires_at
    assert lines["old-bot"].startswith(f"expired {token_moment(expired)}")
    assert "previous token" not in lines["old-bot"]


def test_administrators_are_emailed_once_when_a_token_has_two_weeks_left(api_token, admin_user, oncommit, settings):
    settings.API_TOKEN_WARNING_DAYS = 14
    other_admin = type(admin_user).objects.create_user(
        email="second-admin@example.com", password="x-long-password", role=admin_user.role
    )
    call_command("api_token", "create", "far-bot", stdout=StringIO(), stderr=StringIO())  # a year left
    call_command("api_token", "create", "gone-bot", "--days", "3", stdout=StringIO(), stderr=StringIO())
    call_command("api_token", "revoke", "gone-bot", stdout=StringIO())
    ApiClient.objects.filter(name="chatbot").update(expires_at=timezone.now() + timedelta(days=15))
    assert api_token_warnings_send() == 0  # 15 days left: not yet

    ApiClient.objects.filter(name="chatbot").update(expires_at=timezone.now() + timedelta(days=13, hours=1))
    with oncommit():
        out = StringIO()
        call_command("send_api_token_warnings", stdout=out)
    assert "1 API token warning(s) queued" in out.getvalue()
    assert sorted(m.to[0] for m in mail.outbox) == sorted([admin_user.email, other_admin.email])
    message = mail.outbox[0]
    stored = ApiClient.objects.get(name="chatbot")
    assert (
        message.subject
        == f"The chatbot API token of chatbot expires on {timezone.localtime(stored.expires_at):%-d %B %Y}"
    )
    html = message.alternatives[0][0]
    for part in (message.body, html):
        assert "in 13 days" in part and "manage.py api_token rotate chatbot" in part
        assert api_token not in part and stored.token_hash not in part  # no secret in it
    assert OutboundEmail.objects.filter(kind="api_token_expiring").count() == 2
    assert stored.expiry_warned_at is not None

    # Once per token, however often it runs; the new token of a rotation in its turn.
    assert api_token_warnings_send() == 0
    rotate("chatbot", "--days", "10")
    assert api_token_warnings_send() == 1
    assert OutboundEmail.objects.filter(kind="api_token_expiring").count() == 4


def test_an_expired_token_never_warned_about_is_told_as_expired(api_token, admin_user, oncommit):
    ApiClient.objects.update(expires_at=timezone.now() - timedelta(days=2))
    with oncommit():
        assert api_token_warnings_send() == 1
    [message] = mail.outbox
    assert "The chatbot API token of chatbot expired on " in message.subject
    assert "expired on" in message.body and "without a gap" not in message.body


def test_no_administrator_no_warning_and_no_mark(api_token):
    ApiClient.objects.update(expires_at=timezone.now() + timedelta(days=1))
    assert api_token_warnings_send() == 0
    assert ApiClient.objects.get().expiry_warned_at is None  # an administrator added later is told


# --- Booking status -------------------------------------------------------------------------


def test_booking_status_without_a_slot(api, make_booking):
    booking = make_booking(Status.PENDING)
    response = api.get(f"/api/v1/bookings/{booking.ack_id}")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body == {
        "acknowledgement_id": booking.ack_id,
        "status": "pending",
        "status_label": CLIENT_LABELS[Status.PENDING],
        "next_step": NEXT_STEPS[Status.PENDING],
        "updated_at": timezone.localtime(booking.updated_at).isoformat(timespec="seconds"),
        "details_erased": False,
    }


@pytest.mark.parametrize("status", [Status.CONFIRMED, Status.COMPLETED])
def test_booking_status_says_no_more_than_the_status_page(api, counsellor, make_booking, status):
    """An acknowledgement ID alone is all the chatbot's user gives, as on /status/: the answer is
    the status and next step, never when or how the session takes place (or took place)."""
    booking = make_booking(status, mode="in_person")
    body = api.get(f"/api/v1/bookings/{booking.ack_id}").json()
    assert body["status_label"] == CLIENT_LABELS[status]
    assert body["next_step"] == NEXT_STEPS[status]
    assert "session" not in body
    text = json.dumps(body)
    start = timezone.localtime(booking.slot.start)
    for leak in ("in_person", start.isoformat(timespec="seconds"), booking.slot.start.isoformat()):
        assert leak not in text


def test_booking_status_of_a_confirmed_session_whose_time_has_passed(api, counsellor, make_booking):
    """As /status/ says: the session is over and the clinic has still to record it."""
    start = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    booking = make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    )
    body = api.get(f"/api/v1/bookings/{booking.ack_id}").json()
    assert (body["status"], body["next_step"]) == ("confirmed", CONFIRMED_SESSION_OVER)
    assert start.isoformat() not in json.dumps(body)


@pytest.mark.parametrize("typed", ["{ack}", "{lower}", "%20{lower}%20", "{nohyphen}"])
def test_booking_id_is_matched_case_insensitively_after_trimming(api, make_booking, typed):
    booking = make_booking(Status.PENDING)
    ack = booking.ack_id
    path = typed.format(ack=ack, lower=ack.lower(), nohyphen=ack.replace("-", "").lower())
    response = api.get(f"/api/v1/bookings/{path}")
    assert response.status_code == 200
    assert response.json()["acknowledgement_id"] == ack


@pytest.mark.parametrize("typed", ["{body}", "MS%20{body}", "ms\u2013{lower}", "{ack}.", "ms {a} {b}", "{ms_}"])
def test_booking_id_is_read_as_leniently_as_the_status_page_reads_it(api, client, make_booking, typed):
    """What someone pastes into the chatbot is what they would type on /status/: the six
    characters alone, a space or an en dash for the hyphen, a full stop after it."""
    booking = make_booking(Status.PENDING)
    ack, body = booking.ack_id, booking.ack_id.removeprefix("MS-")
    path = typed.format(ack=ack, body=body, lower=body.lower(), a=body[:3], b=body[3:], ms_=ack.replace("-", "_"))
    response = api.get(f"/api/v1/bookings/{path}")
    assert response.status_code == 200, response.content
    assert response.json()["acknowledgement_id"] == ack
    page = client.post("/status/", {"lookup": "ack", "ack_id": unquote(path)}).content.decode()
    assert "There is a problem" not in page


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("/api/v1/session-types", "good", 200),
        ("/api/v1/availability?limit=0", "good", 400),
        ("/api/v1/bookings/MS-ABCDEF", "good", 404),
        ("/api/v1/session-types", "wrong", 401),
        ("/api/v1/session-types", None, 401),
    ],
)
def test_answers_that_depend_on_the_token_are_never_stored_and_vary_by_it(client, api_token, path, token, status):
    """A shared cache that ignored no-store must still not hand one caller's answer to another."""
    headers = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {api_token if token == 'good' else token}"}
    response = client.get(path, **headers)
    assert response.status_code == status
    assert response["Cache-Control"] == "no-store"
    assert "authorization" in [v.strip().lower() for v in response["Vary"].split(",")]


def test_a_booking_erased_at_the_clients_request_says_so(
    api, client, counsellor, make_booking, manage_token, django_assert_max_num_queries
):
    """Found, as on /status/ (a 404 would tell a client holding the right ID that they
    mistyped it), with its status and `details_erased`, and nothing of what was erased."""
    booking = make_booking(Status.CANCELLED, client_name=f"Kavya {MARKER}", concerns=f"Worries {MARKER}")
    other = make_booking(Status.COMPLETED)
    client.post(f"/bookings/{manage_token(booking)}/privacy/erase/")  # `api`, with its header unread there
    assert client.post(link_in_last_email("/privacy/erase/")).status_code == 200
    booking.refresh_from_db()
    assert booking.anonymised_at is not None

    with django_assert_max_num_queries(3):
        response = api.get(f"/api/v1/bookings/{booking.ack_id}")
    body = response.json()
    assert response.status_code == 200
    assert body["details_erased"] is True
    assert (body["status"], body["next_step"]) == ("cancelled", NEXT_STEPS[Status.CANCELLED])
    assert MARKER not in response.content.decode() and "anonymised" not in response.content.decode().lower()
    assert api.get(f"/api/v1/bookings/{other.ack_id}").json()["details_erased"] is False
    # What the public status page says for the same ID.
    page = client.post("/status/", {"lookup": "ack", "ack_id": booking.ack_id}).content.decode()
    assert "The details of this booking have been erased" in page


def test_unknown_booking_is_404(api, db):
    body = assert_problem(api.get("/api/v1/bookings/MS-ABCDEF"), 404)
    assert "MS-ABCDEF" in body["detail"]


@pytest.mark.parametrize(
    "bad", ["MS-12", "XX-ABCDEF", "MS-ABCDE0", "MS-ABCDEFG", "'; DROP TABLE x;--", "MS-" + "A" * 40, "ms%20xyzw"]
)
def test_malformed_booking_id_is_400_naming_the_parameter(api, db, bad):
    response = api.get(f"/api/v1/bookings/{bad}")
    body = assert_problem(response, 400)
    assert "acknowledgement_id" in body["detail"]
    assert body["invalid_params"][0]["name"] == "acknowledgement_id"
    assert response["Cache-Control"] == "no-store"


def test_unknown_api_path_is_a_problem_not_a_page(api):
    assert_problem(api.get("/api/v1/bookings/MS-ABCDEF/extra"), 404)
    assert_problem(api.get("/api/v1/nothing-here"), 404)


# --- Availability --------------------------------------------------------------------------


def test_availability_lists_free_slots_naming_counsellors_and_session_types_once(
    api, slot, other_slot, session_type, make_booking
):
    taken = Slot.objects.create(counsellor=slot.counsellor, start=slot.end, end=slot.end + timedelta(minutes=60))
    make_booking(Status.CONFIRMED, slot=taken)
    later = Slot.objects.create(counsellor=slot.counsellor, start=taken.end, end=taken.end + timedelta(minutes=60))

    body = api.get("/api/v1/availability").json()

    assert [s["slot_id"] for s in body["slots"]] == [slot.pk, other_slot.pk, later.pk]
    assert body["slots"][0] == {
        "slot_id": slot.pk,
        "start": timezone.localtime(slot.start).isoformat(),
        "end": timezone.localtime(slot.end).isoformat(),
        "counsellor": "asha",
        "session_types": ["individual"],
        "modes": ["online", "in_person"],
    }
    assert body["counsellors"] == [
        {"slug": "asha", "display_name": "Asha Menon"},
        {"slug": "rohan", "display_name": "Rohan Kapoor"},
    ]
    assert body["session_types"] == api.get("/api/v1/session-types").json()["session_types"]
    assert body["booking_url_template"] == "http://testserver/book/?slot={slot_id}"
    booking_url = body["booking_url_template"].replace("{slot_id}", str(slot.pk))
    assert api.get(booking_url.removeprefix("http://testserver")).status_code in (200, 302)
    assert body["next"] is None  # everything fitted in one page
    assert body["time_zone"] == "Asia/Kolkata"
    assert body["from"] == timezone.localdate().isoformat()


def test_availability_names_only_the_session_types_that_fit_its_slots(api, slot, session_type):
    SessionType.objects.create(name="Long", slug="long", duration_minutes=120, price=1)
    body = api.get("/api/v1/availability").json()
    assert [t["slug"] for t in body["session_types"]] == ["individual"]


def test_availability_is_paged_without_gaps_or_repeats(api, counsellor, other_counsellor, session_type):
    start = next_weekday_at(9)
    # Two counsellors at the same times: slots that start together are ordered by id.
    slots = [
        Slot.objects.create(counsellor=c, start=start + timedelta(hours=h), end=start + timedelta(hours=h, minutes=50))
        for h in range(3)
        for c in (counsellor, other_counsellor)
    ]
    day = timezone.localtime(start).date().isoformat()
    first = api.get("/api/v1/availability", {"from": day, "to": day, "limit": 4}).json()
    assert [s["slot_id"] for s in first["slots"]] == [s.pk for s in slots[:4]]
    assert first["next"].startswith(f"http://testserver/api/v1/availability?from={day}&to={day}&limit=4&cursor=")

    second = api.get(first["next"].removeprefix("http://testserver")).json()
    assert [s["slot_id"] for s in second["slots"]] == [s.pk for s in slots[4:]]
    assert second["next"] is None
    assert second["counsellors"] == [
        {"slug": "asha", "display_name": "Asha Menon"},
        {"slug": "rohan", "display_name": "Rohan Kapoor"},
    ]


def test_availability_next_link_keeps_the_filters(api, counsellor, other_counsellor, session_type):
    start = next_weekday_at(9)
    mine = [
        Slot.objects.create(
            counsellor=counsellor, start=start + timedelta(hours=h), end=start + timedelta(hours=h, minutes=50)
        )
        for h in range(3)
    ]
    Slot.objects.create(counsellor=other_counsellor, start=start, end=start + timedelta(minutes=50))
    query = {"counsellor": "asha", "session_type": "individual", "limit": 2}
    first = api.get("/api/v1/availability", query).json()
    assert "counsellor=asha" in first["next"] and "session_type=individual" in first["next"]
    second = api.get(first["next"].removeprefix("http://testserver")).json()
    assert [s["slot_id"] for s in first["slots"] + second["slots"]] == [s.pk for s in mine]
    assert second["next"] is None


def test_a_page_continues_after_the_last_slot_it_showed_even_if_that_slot_is_taken(
    api, counsellor, session_type, make_booking
):
    start = next_weekday_at(9)
    slots = [
        Slot.objects.create(
            counsellor=counsellor, start=start + timedelta(hours=h), end=start + timedelta(hours=h, minutes=50)
        )
        for h in range(4)
    ]
    first = api.get("/api/v1/availability", {"limit": 2}).json()
    make_booking(Status.PENDING, slot=slots[1])  # booked by someone else between the two calls
    second = api.get(first["next"].removeprefix("http://testserver")).json()
    assert [s["slot_id"] for s in second["slots"]] == [slots[2].pk, slots[3].pk]


def test_availability_filters_by_counsellor_and_session_type(api, slot, other_slot, session_type):
    long_session = SessionType.objects.create(
        name="Couples session", slug="couples", duration_minutes=90, price=250000, offers_in_person=False
    )
    long_slot = Slot.objects.create(
        counsellor=slot.counsellor, start=slot.start + timedelta(days=1), end=slot.start + timedelta(days=1, hours=2)
    )

    by_counsellor = api.get("/api/v1/availability", {"counsellor": "rohan"}).json()
    assert [s["slot_id"] for s in by_counsellor["slots"]] == [other_slot.pk]

    by_type = api.get("/api/v1/availability", {"session_type": "couples"}).json()
    assert [s["slot_id"] for s in by_type["slots"]] == [long_slot.pk]
    assert by_type["slots"][0]["session_types"] == ["couples"]
    assert by_type["slots"][0]["modes"] == ["online"]

    everything = api.get("/api/v1/availability").json()
    fits = {s["slot_id"]: s["session_types"] for s in everything["slots"]}
    assert fits[long_slot.pk] == ["couples", "individual"]  # in the session types' own order
    assert long_session.slug not in fits[slot.pk]


def test_availability_takes_a_counsellors_former_slug_and_names_them_by_the_current_one(
    api, slot, other_slot, session_type
):
    """A chatbot that kept a counsellor's slug from before an administrator changed it still
    finds their times, as a link to the old profile still leads there, and learns the new one."""
    counsellor = slot.counsellor
    counsellor.previous_slugs.create(slug="asha-rao")
    Slot.objects.create(counsellor=counsellor, start=slot.start + timedelta(days=1), end=slot.end + timedelta(days=1))

    page = api.get("/api/v1/availability", {"counsellor": "asha-rao", "limit": 1}).json()
    assert [s["slot_id"] for s in page["slots"]] == [slot.pk]
    assert page["counsellors"] == [{"slug": "asha", "display_name": counsellor.display_name}]
    assert page["slots"][0]["counsellor"] == "asha"
    assert "counsellor=asha&" in page["next"]  # the rest is asked for by the current slug
    rest = api.get(unquote(page["next"]).removeprefix("http://testserver")).json()
    assert [s["counsellor"] for s in rest["slots"]] == ["asha"] and rest["next"] is None

    # Hidden from clients, they are not found by either slug; a slug nobody had is refused too.
    Counsellor.objects.filter(pk=counsellor.pk).update(is_active=False)
    for gone in ("asha-rao", "asha", "nobody"):
        body = assert_problem(api.get("/api/v1/availability", {"counsellor": gone}), 400)
        assert body["invalid_params"][0]["name"] == "counsellor"


@pytest.mark.parametrize("asked_as", ["asha", "asha-rao"])
def test_availability_of_a_counsellor_with_no_free_time_still_names_them(api, slot, other_slot, session_type, asked_as):
    """ "Asha has no free time in those two weeks": the chatbot can say it by name, and by her
    current slug, though no slot names her."""
    counsellor = slot.counsellor
    counsellor.previous_slugs.create(slug="asha-rao")
    slot.delete()

    page = api.get("/api/v1/availability", {"counsellor": asked_as}).json()
    assert page["slots"] == [] and page["next"] is None
    assert page["counsellors"] == [{"slug": "asha", "display_name": counsellor.display_name}]
    assert page["session_types"] == []  # none is named by a slot
    # Unfiltered, only the counsellors the slots name, as before.
    everyone = api.get("/api/v1/availability").json()
    assert [c["slug"] for c in everyone["counsellors"]] == [other_slot.counsellor.slug]


def test_availability_keeps_to_the_date_range(api, counsellor, session_type):
    near = Slot.objects.create(counsellor=counsellor, start=next_weekday_at(10), end=next_weekday_at(11))
    later = next_weekday_at(10, days_ahead=20)
    far = Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(hours=1))
    day = timezone.localtime(near.start).date()

    one_day = api.get("/api/v1/availability", {"from": day.isoformat(), "to": day.isoformat()}).json()
    assert [s["slot_id"] for s in one_day["slots"]] == [near.pk]

    default = api.get("/api/v1/availability").json()  # the next two weeks
    assert far.pk not in [s["slot_id"] for s in default["slots"]]


@pytest.mark.parametrize(
    ("query", "bad"),
    [
        ({"from": "tomorrow"}, "from"),
        ({"from": "2026-02-30"}, "from"),
        ({"to": "20261201"}, "to"),
        ({"from": "2026-01-10", "to": "2026-01-09"}, "to"),
        ({"from": "2026-01-01", "to": "2026-02-01"}, "to"),
        ({"session_type": "no-such-type"}, "session_type"),
        ({"session_type": "<script>"}, "session_type"),
        ({"counsellor": "nobody"}, "counsellor"),
        ({"counsellor": "x" * 51}, "counsellor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1" * 4301}, "limit"),  # more digits than int() reads
        ({"limit": "0" * 5000 + "1"}, "limit"),
        ({"cursor": ""}, "cursor"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),  # base64 of "not-a-cursor"
        ({"cursor": "MjAyNi0xMi0wMVQxMDowMDowMHwx"}, "cursor"),  # a start without its offset
        ({"cursor": "MjAyNi0xMi0wMVQwNDozMDowMCswMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "cursor"),  # id too big
        ({"cursor": "MDAwMS0wMS0wMVQwMDowMDowMCswNTozMHwx"}, "cursor"),  # year 1, +05:30: before UTC's year 1
    ],
)
def test_bad_availability_parameters_are_400_naming_them(api, counsellor, session_type, query, bad):
    body = assert_problem(api.get("/api/v1/availability", query), 400)
    assert f"'{bad}'" in body["detail"]
    assert body["invalid_params"] == [{"name": bad, "reason": body["invalid_params"][0]["reason"]}]


@pytest.mark.parametrize(
    ("query", "bad"),
    [
        ("session-type=couples", "session-type"),  # a misspelt filter would silently filter nothing
        ("sessiontype=couples&counsellor=asha", "sessiontype"),
        ("limit=5&limit=200", "limit"),  # which one did the caller mean?
        ("counsellor=nobody&counsellor=asha", "counsellor"),
    ],
)
def test_availability_refuses_unknown_and_repeated_parameters(api, slot, session_type, query, bad):
    body = assert_problem(api.get(f"/api/v1/availability?{query}"), 400)
    assert body["invalid_params"][0]["name"] == bad


def test_availability_of_31_days_is_allowed_and_far_dates_are_empty(api, slot):
    assert api.get("/api/v1/availability", {"from": "2026-01-01", "to": "2026-01-31"}).status_code == 200
    body = api.get("/api/v1/availability", {"from": "9999-12-31"}).json()
    assert body["slots"] == []


# --- Session types --------------------------------------------------------------------------


def test_session_types_lists_the_active_ones(api, session_type):
    SessionType.objects.create(name="Retired", slug="retired", duration_minutes=30, price=1, is_active=False)
    body = api.get("/api/v1/session-types").json()
    assert body == {
        "session_types": [
            {
                "slug": "individual",
                "name": "Individual session",
                "description": "",
                "duration_minutes": 50,
                "price": {"amount_minor": 150000, "currency": "INR", "display": "₹1,500"},
                "modes": ["online", "in_person"],
            }
        ]
    }


# --- Read-only, rate limit ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_only_get_is_allowed(api, make_booking, method):
    booking = make_booking(Status.PENDING)
    response = getattr(api, method)(f"/api/v1/bookings/{booking.ack_id}", data={"status": "cancelled"})
    assert_problem(response, 405)
    assert response["Allow"] == "GET, HEAD"
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_head_answers_with_gets_headers_and_no_body(api, make_booking):
    booking = make_booking(Status.PENDING)
    got = api.get(f"/api/v1/bookings/{booking.ack_id}")
    head = api.head(f"/api/v1/bookings/{booking.ack_id}")
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == got["Content-Type"]
    assert head["Cache-Control"] == "no-store"
    # Still behind the token.
    unauthenticated = Client().head(f"/api/v1/bookings/{booking.ack_id}")
    assert unauthenticated.status_code == 401 and unauthenticated["WWW-Authenticate"].startswith("Bearer ")


def test_too_many_requests_is_429_with_retry_after(api, settings, api_token, client):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (3, 60)}
    for _ in range(3):
        assert api.get("/api/v1/session-types").status_code == 200
    response = api.get("/api/v1/session-types")
    body = assert_problem(response, 429)
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["Retry-After"] in body["detail"]

    # The limit is per client: another token is not held back.
    other = ApiClient.objects.create(name="other", token_hash=token_hash("other-token"))
    assert other.rate_count == 0
    assert client.get("/api/v1/session-types", HTTP_AUTHORIZATION="Bearer other-token").status_code == 200


def test_a_new_window_starts_the_count_again(api, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (1, 60)}
    assert api.get("/api/v1/session-types").status_code == 200
    assert api.get("/api/v1/session-types").status_code == 429
    ApiClient.objects.update(rate_window=1)  # as if the last call was in an old window
    assert api.get("/api/v1/session-types").status_code == 200


# --- Failures ------------------------------------------------------------------------------


def test_database_unavailable_is_a_503_problem_not_a_page(api, monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("bookings.api.views.api_call_authenticate", down)
    response = api.get("/api/v1/session-types")
    body = assert_problem(response, 503)
    assert body["type"] == "urn:mindsettler:problem:service-unavailable"
    assert int(response["Retry-After"]) >= 1
    assert response["Cache-Control"] == "no-store"
    document = api.get("/api/v1/openapi.json").json()
    assert "503" in document["paths"]["/session-types"]["get"]["responses"]


def test_an_unexpected_error_is_a_500_problem_not_a_page(api, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("bookings.api.views._session_types_bookable", broken)
    api.raise_request_exception = False
    response = api.get("/api/v1/session-types")
    body = assert_problem(response, 500)
    assert body["type"] == "urn:mindsettler:problem:server-error"
    assert "a bug" not in body["detail"]
    assert response["Cache-Control"] == "no-store"


# --- Query budgets, on data ten times larger than a clinic's busy month ----------------------


@pytest.fixture
def busy_clinic(db, session_type, make_booking):
    counsellors = [Counsellor.objects.create(display_name=f"Counsellor {i}", slug=f"c{i}") for i in range(10)]
    for i in range(9):
        SessionType.objects.create(name=f"Type {i}", slug=f"t{i}", duration_minutes=30 + i, price=1000)
    start = next_weekday_at(8)
    slots = [
        Slot(counsellor=c, start=start + timedelta(days=d, hours=h), end=start + timedelta(days=d, hours=h, minutes=55))
        for c in counsellors
        for d in range(12)
        for h in range(6)
    ]
    Slot.objects.bulk_create(slots)
    CounsellorPreviousSlug.objects.create(counsellor=counsellors[2], slug="c2-before")
    for slot in Slot.objects.all()[:200]:
        make_booking(Status.CONFIRMED, slot=slot)
    return make_booking(Status.CONFIRMED, slot=Slot.objects.filter(bookings__isnull=True).first())


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/availability",
        "/api/v1/availability?limit=200",
        "/api/v1/availability?limit=200&cursor={cursor}",
        "/api/v1/availability?session_type=t3&counsellor=c2",
        "/api/v1/availability?session_type=t3&counsellor=c2-before",
        "/api/v1/availability?counsellor=nobody",
        "/api/v1/session-types",
        "/api/v1/bookings/{ack}",
        "/api/v1/bookings/MS-ABCDEF",
        "/api/v1/openapi.json",
    ],
)
def test_every_endpoint_answers_in_at_most_three_queries(api, busy_clinic, django_assert_max_num_queries, path):
    first_page = api.get("/api/v1/availability", {"limit": 200}).json()
    cursor = first_page["next"].rpartition("cursor=")[2]
    with django_assert_max_num_queries(3):
        response = api.get(path.format(ack=busy_clinic.ack_id, cursor=cursor))
    assert response.status_code in (200, 400, 404)
    if path.startswith("/api/v1/availability?limit=200"):
        assert len(response.json()["slots"]) == 200  # the budget held on a full page


def test_refusals_cost_at_most_two_queries(api, client, settings, django_assert_max_num_queries):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (1, 60)}
    api.get("/api/v1/session-types")
    with django_assert_max_num_queries(1):
        assert api.get("/api/v1/session-types").status_code == 429
    # The update that refused it, and one read of why (an expired token is told when).
    with django_assert_max_num_queries(2):
        assert client.get("/api/v1/session-types", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ApiClient.objects.update(expires_at=timezone.now())
    with django_assert_max_num_queries(2):
        assert api.get("/api/v1/session-types").status_code == 401


# --- No personal data, ever ------------------------------------------------------------------

MARKER = "zqxleak"


def test_no_personal_data_in_any_response(api, counsellor, session_type, make_booking):
    """Every personal field of every booking holds a marker; no API answer may contain it."""
    personal = {
        "client_name": f"Name {MARKER}",
        "phone": f"+91{MARKER}",
        "concerns": f"My worries {MARKER}",
        "preferred_times": f"Mornings {MARKER}",
        "meeting_url": f"https://meet.example/{MARKER}",
        "consent_policy_version": MARKER,
        "language": MARKER[:10],
    }
    text_fields = {
        f.name for f in Booking._meta.get_fields() if f.get_internal_type() in ("CharField", "TextField", "EmailField")
    }
    not_personal = {"ack_id", "status", "mode", "currency", "age_confirmation"}
    assert text_fields - not_personal == set(personal) | {"email", "submission_key"}, "a new text field: mark it"
    bookings = [
        make_booking(status, email=f"{MARKER}{i}@example.com", submission_key=f"{MARKER}{i}", **personal)
        for i, status in enumerate([Status.DRAFT, Status.PENDING, Status.APPROVED, Status.CONFIRMED, Status.CANCELLED])
    ]
    Slot.objects.create(counsellor=counsellor, start=next_weekday_at(16), end=next_weekday_at(17))

    paths = [f"/api/v1/bookings/{b.ack_id}" for b in bookings] + [
        f"/api/v1/bookings/{bookings[0].ack_id.lower()}",
        "/api/v1/availability",
        "/api/v1/availability?counsellor=asha&session_type=individual",
        "/api/v1/session-types",
        "/api/v1/openapi.json",
        "/api/v1/bookings/MS-ABCDEF",
        "/api/v1/bookings/not-an-id",
    ]
    for path in paths:
        response = api.get(path)
        assert response.status_code in (200, 400, 404)
        assert MARKER not in response.content.decode(), path
        assert MARKER not in json.dumps(dict(response.headers)), path


# --- manage.py api_token ---------------------------------------------------------------------


def test_api_token_create_prints_a_working_token_once_and_stores_only_its_hash(client, db):
    out = StringIO()
    call_command("api_token", "create", "chatbot", stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    stored = ApiClient.objects.get(name="chatbot")
    assert stored.token_hash == token_hash(token)
    assert token not in str(ApiClient.objects.values().get())
    assert client.get("/api/v1/session-types", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    listing = StringIO()
    call_command("api_token", "list", stdout=listing)
    assert "chatbot" in listing.getvalue() and "active" in listing.getvalue()
    assert token not in listing.getvalue() and stored.token_hash not in listing.getvalue()


def test_api_token_create_refuses_a_name_in_use(api_token):
    with pytest.raises(CommandError, match="already exists"):
        call_command("api_token", "create", "chatbot", stdout=StringIO())


def test_api_token_revoke(api_token, client):
    out = StringIO()
    call_command("api_token", "revoke", "chatbot", stdout=out)
    assert "Revoked" in out.getvalue()
    assert ApiClient.objects.get().revoked_at is not None
    assert client.get("/api/v1/session-types", HTTP_AUTHORIZATION=f"Bearer {api_token}").status_code == 401

    again = StringIO()
    call_command("api_token", "revoke", "chatbot", stdout=again)
    assert "already revoked" in again.getvalue()
    with pytest.raises(CommandError, match="no API client"):
        call_command("api_token", "revoke", "nobody", stdout=StringIO())


def test_api_token_revoke_takes_the_name_as_create_kept_it(db):
    """`create " chat bot "` keeps "chat bot": revoking by the same words finds it."""
    call_command("api_token", "create", " chat bot ", stdout=StringIO())
    call_command("api_token", "revoke", " chat bot ", stdout=StringIO())
    assert ApiClient.objects.get(name="chat bot").revoked_at is not None
