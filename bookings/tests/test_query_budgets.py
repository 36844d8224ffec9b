"""Query budgets of the public pages, the wizard's slot step and the chatbot API (issue 7).

Each endpoint is measured on the benchmark's own data set (seed_bench) at two sizes, the
second ten times the first: the count must stay within its budget and must not grow with the
data. The staff portal's budgets and the PostgreSQL plan checks are in
staff/tests/test_query_budgets.py.
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

SMALL = dict(counsellors=3, days=6, slots_per_day=4, bookings=60)
# Ten times the rows: slots (counsellors x days x slots a day) and bookings.
LARGE = dict(counsellors=10, days=12, slots_per_day=6, bookings=600)

BUDGETS = {
    "home": 5,
    "status lookup": 5,
    "booking page": 5,
    "wizard slot step": 4,
    "wizard day button": 7,
    "api status": 3,
    "api availability": 3,
    "api session types": 3,
}


class _Rollback(Exception):
    pass


def seed(tmp_path: Path, size: dict[str, int]) -> dict[str, Any]:
    path = tmp_path / f"seed-{size['bookings']}.json"
    call_command("seed_bench", json_path=str(path), stdout=io.StringIO(), **size)
    return json.loads(path.read_text())


def count(call) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as queries:
        response = call()
    return len(queries), response


def public_counts(seeded: dict[str, Any]) -> dict[str, int]:
    """Queries per request of each public endpoint, each answering what it is for."""
    counts: dict[str, int] = {}
    browser = Client()
    ack = seeded["ack_id"]

    counts["home"], response = count(lambda: browser.get("/"))
    assert response.status_code == 200

    data = {"lookup": "ack", "ack_id": ack}
    counts["status lookup"], response = count(lambda: browser.post("/status/", data))
    assert response.status_code == 200 and "Confirmed" in response.content.decode()

    page = f"/bookings/{seeded['booking_token']}/"
    browser.get(page)  # the first visit may write its session; measure a return visit
    counts["booking page"], response = count(lambda: browser.get(page))
    assert response.status_code == 200 and ack in response.content.decode()

    # The wizard, walked as a browser does: a run, the session type and the busy day chosen.
    step = browser.get("/book/")["Location"]
    choice = {"session_type": seeded["session_type_id"], "mode": "online", "day": seeded["busy_day"], "_refresh": "1"}
    assert browser.post(step, choice).status_code == 303  # saved, then shown by a GET
    counts["wizard slot step"], response = count(lambda: browser.get(step, headers={"HX-Request": "true"}))
    html = response.content.decode()
    assert response.status_code == 200 and 'name="slot"' in html and "<html" not in html
    # A day button with htmx: the picker alone, and the choices kept in the session (a write).
    day = {k: v for k, v in choice.items() if k != "_refresh"}
    counts["wizard day button"], response = count(lambda: browser.post(step, day, headers={"HX-Request": "true"}))
    assert response.status_code == 200 and response["HX-Retarget"] == "#slot-picker"
    assert 'name="slot"' in response.content.decode()

    api = Client(headers={"Authorization": f"Bearer {seeded['api_token']}"})
    counts["api status"], response = count(lambda: api.get(f"/api/v1/bookings/{ack}"))
    assert response.status_code == 200
    busy = date.fromisoformat(seeded["busy_day"])
    week = {"from": busy.isoformat(), "to": (busy + timedelta(days=6)).isoformat()}
    counts["api availability"], response = count(lambda: api.get("/api/v1/availability", week))
    assert response.status_code == 200 and response.json()["slots"]
    counts["api session types"], response = count(lambda: api.get("/api/v1/session-types"))
    assert response.status_code == 200
    return counts


def counts_at(tmp_path: Path, size: dict[str, int]) -> dict[str, int]:
    """Seed, measure, and roll the data back, so that the next size starts from empty."""
    result: dict[str, int] = {}
    try:
        with transaction.atomic():
            result = public_counts(seed(tmp_path, size))
            raise _Rollback
    except _Rollback:
        pass
    return result


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATELIMIT_ENABLED = False


def test_public_pages_and_api_stay_within_budget_whatever_the_data_size(db, tmp_path):
    small = counts_at(tmp_path, SMALL)
    large = counts_at(tmp_path, LARGE)
    for name, budget in BUDGETS.items():
        assert large[name] <= budget, f"{name}: {large[name]} queries, budget {budget}"
    # Constant, not merely under budget: ten times the rows, the same number of queries.
    assert large == small
