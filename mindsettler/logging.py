"""Log plumbing: a request ID on every line, and no tokens from emailed links, calendar
subscriptions or staff searches, nor the values a database error quotes in a traceback."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


@contextmanager
def one_of_a_batch(what: str, key: object) -> Iterator[None]:
    """Around one item of a periodic sweep (a reminder, a day's summary, an email, a lapsed
    booking): an error in it is logged, with `what` and `key` (an id, never a client's
    details), and the sweep goes on to the next. Otherwise one item that always fails would
    stop, at every run, all those after it."""
    try:
        yield
    except Exception:
        logging.getLogger("bookings.sweeps").exception("%s %s failed; the others went on", what, key)


# The segment after these is a secret from an emailed link, in every URL that takes one
# (mindsettler/tests/test_logs.py checks each token route of the site): the clients' links,
# allauth's password links (a staff invitation is one) and email confirmations, the staff's
# authenticator setup links, and a counsellor's calendar subscription (`/staff/calendar/<token>.ics`,
# read by their calendar app every hour or so: in every access log).
# Also percent-encoded, as a sign-in page's `next` carries the page a timed-out session asked
# for, and as a client may send any character of a token (Django decodes the path it serves,
# gunicorn's request line keeps it as sent).
# docs/deployment.md's nginx log format redacts after the same words (mindsettler/tests/test_docs.py).
TOKEN_WORDS = (
    "verify",
    "bookings",
    "b",
    "pay",
    "cancel",
    "erase",
    "export",
    "reschedule",
    "leave",
    "key",
    "confirm-email",
    "link",
    "calendar",
)
_TOKEN_PATH = re.compile(
    r"((?:/|%2[Ff])(?:" + "|".join(TOKEN_WORDS) + r")(?:/|%2[Ff]))"
    # A token's own characters, also percent-encoded (%41 for A...): never "/", "?" or "&".
    r"(?:[A-Za-z0-9_:\-]|%(?:3[0-9Aa]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|2[Dd])){16,}"
)


# The staff list's search (`?q=`, also in its CSV export's link and in the Referer of the
# pages it leads to) is a client's name, address or phone number.
# Also as a `next=` address carries it to the sign-in page: %3Fq%3D...
_SEARCH = re.compile(r"((?:[?&]|%3F|%26)q(?:=|%3D))(?:(?!%26)[^&\s\"'])*", re.IGNORECASE)


REDACTED = "[redacted]"


def redact_links(text: str) -> str:
    """`text` with the secret of every emailed link replaced by REDACTED."""
    return _TOKEN_PATH.sub(rf"\1{REDACTED}", text)


def redact(text: str) -> str:
    return _SEARCH.sub(rf"\1{REDACTED}", redact_links(text))


# Where one exception's message ends in a formatted traceback: at the next of a chain's
# exceptions, or at the end.
_MESSAGE_END = r"(?=\n\s*\n(?:The above exception|During handling of the above exception)|\Z)"

# What PostgreSQL's errors quote from the rows they refuse: a violated check constraint's whole
# row (a client's name, email, their own words), a unique or exclusion constraint's key values
# (an email address), a value it could not read. The constraint's and the columns' names stay.
_DATABASE_VALUES = (
    (re.compile(r"(Failing row contains ).*?" + _MESSAGE_END, re.DOTALL), rf"\1{REDACTED}"),
    (re.compile(r"(Key \(.*?\)=)\(.*?" + _MESSAGE_END, re.DOTALL), rf"\1{REDACTED}"),
    (re.compile(r"(invalid input (?:syntax|value) for [^:\n]*: ).*"), rf"\1{REDACTED}"),
)


def redact_traceback(text: str) -> str:
    """A formatted traceback without link tokens, searches, or the values of refused rows."""
    for pattern, replacement in _DATABASE_VALUES:
        text = pattern.sub(replacement, text)
    return redact(text)


class RequestIDFilter(logging.Filter):
    """Adds `request_id` and strips link tokens from the message, and from its traceback what
    `redact_traceback` strips. The traceback is formatted here once, as every handler's
    formatter would (they reuse `exc_text` when it is set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = None
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = _formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_traceback(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_formatter = logging.Formatter()


class UTCFormatter(logging.Formatter):
    """Each line's time in UTC, in ISO 8601 with its zone: 2026-11-29T09:12:02.105Z. Django
    sets the process's zone to the clinic's, whose local time a line would otherwise carry
    with nothing to say so; UTC is what the database stores, on every server alike."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"
