"""Helpers that walk the client journey through the test client, as a browser without
JavaScript would: real GETs and POSTs, following the redirects the pages send."""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core import mail

WIZARD = "/book/"


def start(client: Any, query: str = "") -> str:
    """Open /book/ and return the run key it redirects to."""
    response = client.get(WIZARD + query)
    assert response.status_code == 302, response.status_code
    return run_of(response["Location"])


def run_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["run"][0]


def step_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["step"][0]


def url(run: str, step: str, **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"run": run, "step": step, **extra}.items())
    return f"{WIZARD}?{query}"


def session_data(*, session_type: Any, slot: Any = None, mode: str = "online", **extra: Any) -> dict[str, Any]:
    data = {
        "session_type": session_type.pk,
        "mode": mode,
        "counsellor": "",
        "slot": slot.pk if slot is not None else "",
        "preferred_times": "",
    }
    data.update(extra)
    return data


ABOUT = {"client_name": "Priya Sharma", "email": "Priya@Example.com", "phone": "98765 43210", "age": "on"}


def walk_to_review(
    client: Any,
    *,
    session_type: Any,
    slot: Any = None,
    about: dict[str, Any] | None = None,
    concerns: str = "Trouble sleeping since the move.",
    query: str = "",
    **session_extra: Any,
) -> str:
    """Fill in steps 1-3 (no JavaScript) and return the run key, ready for the review."""
    run = start(client, query)
    for step, data in (
        ("session", session_data(session_type=session_type, slot=slot, **session_extra)),
        ("about", about or ABOUT),
        ("concerns", {"concerns": concerns}),
    ):
        response = client.post(url(run, step), data)
        assert response.status_code == 303, (step, response.status_code, errors_in(response))
    return run


CONSENT = {"agree_privacy": "on", "agree_cancellation": "on"}


def consent(client: Any, run: str) -> dict[str, str]:
    """The review step's form as a browser sends it: both agreements ticked, and the price,
    length and policy version the page showed (the server refuses a request for a price or a
    length the client was not shown, or a consent to a policy they were not shown)."""
    page = client.get(url(run, "review")).content.decode()
    shown = {
        name: (found[1] if (found := re.search(rf'name="{name}" value="([^"]*)"', page)) else "")
        for name in ("price_shown", "length_shown", "policy_shown")
    }
    return {**CONSENT, **shown}


def submit(client: Any, run: str) -> Any:
    return client.post(url(run, "review"), consent(client, run))


def errors_in(response: Any) -> list[str]:
    html = response.content.decode()
    found = re.findall(r'class="field-error">(.*?)</p>', html, re.S)
    return [re.sub(r"<[^>]+>", "", e).replace("Error: ", "").strip() for e in found]


def link_in_last_email(path_prefix: str, *, to: str | None = None) -> str:
    """The path of the first link starting with `path_prefix` in the newest matching email."""
    for message in reversed(mail.outbox):
        if to is not None and message.to != [to]:
            continue
        match = re.search(rf"http://testserver({re.escape(path_prefix)}[^\s\"<]+)", message.body)
        if match:
            return match.group(1)
    raise AssertionError(f"no email with a {path_prefix} link")


def main_part(html: str) -> str:
    """The page's <main>: what a test counts buttons or forms in, leaving out the header and
    footer (whose language switcher is a form of its own)."""
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def heading_levels(html: str) -> list[int]:
    """The levels of the headings a screen reader lists, in order (aria-hidden ones left out)."""
    return [
        int(level) for level, attrs in re.findall(r"<h([1-6])\b([^>]*)>", html) if 'aria-hidden="true"' not in attrs
    ]


def skipped_heading_levels(html: str) -> list[tuple[int, int]]:
    """Where a heading is more than one level below the one before it (h1 then h3)."""
    levels = heading_levels(html)
    return [(a, b) for a, b in itertools.pairwise(levels) if b > a + 1]
