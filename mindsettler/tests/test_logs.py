"""The logs of a whole client journey, at DEBUG level, through the handler production uses:
one line per event, each with a request ID, and no personal data or link tokens in any."""

from __future__ import annotations

import copy
import io
import logging
import logging.config
import re

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from bookings.models import Booking, Payment, Status
from bookings.payments import SandboxProvider
from bookings.tests.journey import link_in_last_email, submit, walk_to_review
from mindsettler.logging import RequestIDFilter

pytestmark = pytest.mark.django_db

NAME = "Zephyrine Quillfeather"
EMAIL = "zephyrine.q@example.org"
PHONE_TYPED, PHONE_STORED = "98765 43210", "+919876543210"
WORDS = "Nightmares about the flood keep me awake"
TIMES = "Thursday evenings near Marine Drive"


@pytest.fixture
def captured_logs(settings):
    """The app's own logging configuration as production runs it with LOG_LEVEL=DEBUG, its
    console handler writing to a buffer."""
    config = copy.deepcopy(settings.LOGGING)
    config["root"]["level"] = "DEBUG"
    logging.config.dictConfig(config)
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RequestIDFilter) for f in h.filters))
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


def paths_in_emails() -> list[str]:
    return [p for m in mail.outbox for p in re.findall(r"http://testserver(/[^\s\"<]+)", m.body)]


def test_a_whole_journey_logs_no_personal_data_or_tokens(
    captured_logs, client, session_type, slot, admin_user, settings
):
    settings.RATELIMIT_ENABLED = True
    # The client books, verifies, looks up their booking, is approved, pays and cancels.
    run = walk_to_review(
        client,
        session_type=session_type,
        slot=slot,
        about={"client_name": NAME, "email": EMAIL.upper(), "phone": PHONE_TYPED, "age": "on"},
        concerns=WORDS,
    )
    assert submit(client, run).status_code == 303
    verify = link_in_last_email("/verify/")
    client.get(verify)
    assert client.post(verify).status_code == 200
    client.post("/status/", {"lookup": "email", "email": EMAIL})
    client.post(verify)  # a used link: logged as refused, without the token
    client.get("/bookings/not-a-real-token-0123456789/")
    booking = Booking.objects.get()

    from staff.tests.conftest import sign_in_with_second_factor

    staff = Client()
    sign_in_with_second_factor(staff, admin_user)
    staff.get(f"/staff/bookings/{booking.pk}/")
    approved = staff.post(
        f"/staff/bookings/{booking.pk}/approve/", {"approve-slot": slot.pk, "approve-version": booking.version}
    )
    assert approved.status_code == 302
    staff.get("/staff/bookings/export.csv")

    page = link_in_last_email("/bookings/")
    paying = client.post(page + "pay/")
    assert paying.status_code == 302
    payment = Payment.objects.get()
    fields = {
        "order": payment.provider_order_id,
        "payment": f"sandbox_pay_{payment.pk}_paid",
        "outcome": "paid",
        "amount": str(payment.amount),
        "currency": payment.currency,
    }
    client.post(paying["Location"] + "return/", {**fields, "signature": SandboxProvider.sign(fields)})
    assert Booking.objects.get().status == Status.CONFIRMED

    client.post(page + "cancel/")
    cancel = link_in_last_email("/cancel/")
    assert client.post(cancel).status_code == 200
    client.post(page + "privacy/export/")
    client.get(link_in_last_email("/privacy/export/"))
    assert Booking.objects.get().status == Status.CANCELLED

    logs = captured_logs.getvalue()
    lines = logs.splitlines()
    assert len(lines) >= 10, logs  # the journey did log: transitions, emails, payments
    assert "booking" in logs and "-> pending" in logs and "-> confirmed" in logs

    tokens = {p.rstrip("/").split("/")[-1] for p in paths_in_emails()} | {
        p.rstrip("/").split("/")[-2] for p in paths_in_emails() if p.endswith("/")
    }
    tokens = {t for t in tokens if len(t) >= 20}
    assert len(tokens) >= 4, tokens  # verify, booking page(s), cancel, export
    secrets = {NAME, *NAME.split(), EMAIL, EMAIL.upper(), "zephyrine", PHONE_STORED, "98765", WORDS, "Nightmares"}
    secrets |= tokens | {"not-a-real-token-0123456789", payment.provider_order_id}
    secrets.discard("")
    for secret in secrets:
        assert secret.lower() not in logs.lower(), f"{secret!r} in the logs:\n{logs}"
    # One line per event, each with a request ID; lines from requests carry a real one.
    assert all(re.search(r" request_id=(-|[0-9a-f]{16}|\w+) ", line) for line in lines), logs
    assert any(re.search(r" request_id=[0-9a-f]{16} ", line) for line in lines)


def test_the_log_check_can_fail(captured_logs):
    logging.getLogger("bookings.services").info("sent to %s", EMAIL)
    assert EMAIL in captured_logs.getvalue()
    logging.getLogger("bookings.services").info("opened /verify/%s/", "A" * 32)
    assert "A" * 32 not in captured_logs.getvalue()  # link tokens are redacted by the filter


def test_every_link_token_in_a_path_is_redacted():
    """A CSRF refusal or an error logs the path: whatever route takes an emailed token, the
    token is gone from the line. Every `<token>` route of the site is tried, so a new one
    the pattern misses fails here."""
    from mindsettler.logging import redact
    from mindsettler.tests.routes import token_paths

    token = "Zq8vT3xY_kL0-mN5pQ7rS9uW1aB2cD4e"
    paths = token_paths(token)
    assert len(paths) >= 15, paths
    for path in paths:
        assert token not in redact(f"Forbidden (CSRF cookie not set.): {path}"), path


def test_allauths_password_and_confirmation_links_are_redacted():
    """A staff invitation is a password link: whoever reads it in a log could set the password."""
    from django.urls import reverse

    from mindsettler.logging import redact

    key = "1-cb2c5t-9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c"
    reset = reverse("account_reset_password_from_key", kwargs={"uidb36": "1", "key": key[2:]})
    confirm = reverse("account_confirm_email", kwargs={"key": "Mg:1vQx3T:abcdefghijklmnopqrstuvwxyz0123"})
    assert key[2:] not in redact(f"Forbidden (CSRF token missing.): {reset}")
    assert "abcdefghijklmnop" not in redact(f"Forbidden: {confirm}")
    # What allauth redirects to once it has the key in the session is no secret.
    assert redact("/accounts/password/reset/key/1-set-password/") == "/accounts/password/reset/key/1-set-password/"


def gunicorn_access_logger(line_format: str):
    """gunicorn's access logger as the app configures it (RedactingLogger), writing lines of
    `line_format` into the buffer returned with it."""
    from gunicorn.config import Config

    from mindsettler.access_log import RedactingLogger

    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", line_format)
    logger = RedactingLogger(config)
    buffer = io.StringIO()
    logger.access_log.handlers[0].setStream(buffer)
    return logger, buffer


def test_gunicorns_logs_hide_link_tokens():
    from datetime import timedelta
    from types import SimpleNamespace

    logger, buffer = gunicorn_access_logger('"%(r)s" %(U)s %(s)s %(f)s %({referer}i)s')
    token = "Zq8vT3xY_kL0-mN5pQ7rS9uW1aB2cD4e"
    page = f"/bookings/{token}/"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/pay/{token}/checkout/7/?lang=hi",
        "PATH_INFO": f"/pay/{token}/checkout/7/",
        "QUERY_STRING": "lang=hi",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://book.example.org{page}",
    }
    request = SimpleNamespace(headers=[("REFERER", f"https://book.example.org{page}")])
    response = SimpleNamespace(status="200 OK", headers=[], sent=512)

    logger.access(response, request, environ, timedelta(milliseconds=12))

    line = buffer.getvalue()
    assert token not in line
    assert '"GET /pay/[redacted]/checkout/7/?lang=hi HTTP/1.1" /pay/[redacted]/checkout/7/ 200' in line
    assert line.count("https://book.example.org/bookings/[redacted]/") == 2

    # Its error log names the request whose handling failed (gunicorn's own words).
    errors = io.StringIO()
    logger.error_log.handlers[0].setStream(errors)
    logger.exception("Error handling request %s", environ["RAW_URI"])
    assert token not in errors.getvalue() and "Error handling request /pay/[redacted]/checkout/7/" in errors.getvalue()


def test_staff_searches_are_redacted_in_request_lines_and_referrers():
    """A search of the staff list is a client's name, address or phone number: htmx puts it
    in the address bar, so it is in the request line, the CSV export's link and the Referer of
    the booking opened from the results."""
    from mindsettler.logging import redact

    line = redact(
        '"GET /staff/bookings/?status=pending&q=zephyrine.q%40example.org&page=2 HTTP/1.1" 200 '
        '"https://book.example.org/staff/bookings/export.csv?q=Zephyrine+Quillfeather"'
    )
    assert "zephyrine" not in line.lower() and "quillfeather" not in line.lower()
    assert "/staff/bookings/?status=pending&q=[redacted]&page=2 " in line
    assert "/staff/bookings/export.csv?q=[redacted]" in line
    # A search whose session had ended: the sign-in page's `next` carries it, encoded.
    signin = redact("GET /accounts/login/?next=/staff/bookings/%3Fstatus%3Dpending%26q%3DKavya%2BIyer%26page%3D2 200")
    assert "kavya" not in signin.lower() and "%26q%3D[redacted]%26page%3D2" in signin
    # Other parameters are kept: they are the filters' values, not a person's.
    assert redact("/staff/bookings/?status=pending&counsellor=3") == "/staff/bookings/?status=pending&counsellor=3"


def _log_refused(captured_logs, write) -> str:
    from django.db import IntegrityError, transaction

    try:
        with transaction.atomic():
            write()
    except IntegrityError:
        logging.getLogger("bookings.services").exception("could not save the booking")
    else:
        raise AssertionError("the database accepted the row")
    return captured_logs.getvalue()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL quotes the rows it refuses")
def test_a_refused_rows_values_stay_out_of_the_traceback(captured_logs, make_booking):
    # A check constraint: PostgreSQL quotes the whole row, the client's words with it.
    logs = _log_refused(
        captured_logs, lambda: make_booking(client_name=NAME, email=EMAIL.upper(), concerns=f"{WORDS}\n\n{TIMES}")
    )
    assert "booking_email_normalised" in logs and "Failing row contains [redacted]" in logs
    # A unique constraint: the key's values (an address), after the columns' names.
    make_booking(email=EMAIL)
    logs = _log_refused(captured_logs, lambda: make_booking(email=EMAIL))
    assert re.search(r"Key \(.*email.*\)=\[redacted\]", logs), logs
    assert "Traceback" in logs and "test_logs.py" in logs  # the traceback itself is kept
    for secret in (NAME, EMAIL, "Nightmares", "Marine Drive"):
        assert secret.lower() not in logs.lower(), f"{secret!r} in the logs:\n{logs}"


def test_tracebacks_lose_quoted_values_and_link_tokens(captured_logs):
    # The messages as PostgreSQL words them, chained as Django raises them.
    token = "Q" * 32
    messages = [
        'new row violates check constraint "c"\nDETAIL:  Failing row contains (7, Ann, a@b.in, Lost my job.\n\nI cry).',
        'duplicate key value violates unique constraint "u"\nDETAIL:  Key (lower(email::text))=(a@b.in) already exists.',
        'invalid input syntax for type integer: "Ann Rao"',
        f"no booking for /bookings/{token}/",
    ]
    for message in messages:
        try:
            try:
                raise ValueError(message)
            except ValueError as inner:
                raise RuntimeError(message) from inner
        except RuntimeError:
            logging.getLogger("bookings.services").exception("failed")
    logs = captured_logs.getvalue()
    for secret in ("Ann", "a@b.in", "Lost my job", "I cry", token):
        assert secret not in logs, f"{secret!r} in the logs:\n{logs}"
    assert logs.count("The above exception was the direct cause") == 4  # nothing else went
    assert logs.count("Key (lower(email::text))=[redacted]") == 2
    assert logs.count("Failing row contains [redacted]") == 2
    assert logs.count("invalid input syntax for type integer: [redacted]") == 2


def test_link_tokens_are_redacted_where_the_sign_in_page_carries_them_encoded(client, counsellor_user):
    """A staff session that ended while idle is sent to sign in with the page it asked for as
    `next`, slashes and all percent-encoded (staff.middleware): an emailed link's token with it,
    in the sign-in page's request line and in the Referer of everything that page loads."""
    from django.urls import reverse

    from mindsettler.logging import redact

    token = "Zq8vT3xY_kL0-mN5pQ7rS9uW1aB2cD4e"
    links = [
        reverse("staff_setup_link", kwargs={"token": token}),
        reverse("account_reset_password_from_key", kwargs={"uidb36": "1", "key": token}),
        reverse("account_confirm_email", kwargs={"key": f"Mg:1vQx3T:{token}"}),
    ]
    for link in links:
        client.force_login(counsellor_user)
        session = client.session
        session["staff_last_seen"] = 0  # idle for long
        session.save()
        location = client.get(link)["Location"]
        assert token in location, location  # the link's own path, encoded as `next`
        assert token not in redact(f'"GET {location} HTTP/1.1" 200'), location


def test_a_calendar_subscriptions_secret_is_redacted_in_the_access_log():
    """A counsellor's calendar app reads its feed every hour or so from an address whose secret
    is the only credential: every poll is a line of the access log."""
    import secrets
    from datetime import timedelta
    from types import SimpleNamespace

    from django.urls import reverse

    from mindsettler.logging import redact

    token = secrets.token_urlsafe(32)
    path = reverse("staff:calendar_app_feed", kwargs={"token": token})
    logger, buffer = gunicorn_access_logger('"%(r)s" %(U)s %(s)s')
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
    logger.access(
        SimpleNamespace(status="200 OK", headers=[], sent=2048), SimpleNamespace(headers=[]), environ, timedelta(0)
    )
    line = buffer.getvalue()
    assert token not in line
    assert '"GET /staff/calendar/[redacted].ics HTTP/1.1" /staff/calendar/[redacted].ics 200' in line, line
    # The portal's other calendar addresses carry no secret, and are kept as they are.
    for kept in ("/staff/calendar/feed/?start=2026-11-01", "/staff/calendar/subscription/new/"):
        assert redact(kept) == kept


def test_a_lines_time_is_utc_and_says_so(captured_logs, settings):
    """The process runs in the clinic's zone (Django sets it from TIME_ZONE); a line's time is
    UTC, named, as the database stores times: the same on every server."""
    from datetime import UTC, datetime

    assert settings.TIME_ZONE != "UTC"
    before = datetime.now(UTC).replace(microsecond=0)
    logging.getLogger("bookings").warning("a line")
    stamp = captured_logs.getvalue().split(" ", 1)[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)
