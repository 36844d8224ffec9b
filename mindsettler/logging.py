"""Log plumbing: a request ID on every line, and no tokens from emailed links or staff searches."""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# The segment after these is a secret from an emailed link, in every URL that takes one
# (mindsettler/tests/test_logs.py checks each token route of the site): the clients' links,
# and allauth's password links (a staff invitation is one) and email confirmations.
_TOKEN_PATH = re.compile(
    r"(/(?:verify|bookings|b|pay|cancel|erase|export|reschedule|leave|key|confirm-email)/)[A-Za-z0-9_:\-]{16,}"
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


class RequestIDFilter(logging.Filter):
    """Adds `request_id` and strips link tokens from the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = None
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
