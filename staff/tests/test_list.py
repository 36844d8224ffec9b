"""The booking list: filters, search, sorting, pagination, htmx, CSV export, query budget."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse

from bookings.models import Mode, SessionType, Status
from staff.tests.conftest import HX
from staff.views import csv_cell

URL = "/staff/bookings/"


def acks(response) -> set[str]:
    import re

    return set(re.findall(r"MS-[A-Z0-9]{6}", response.content.decode()))


@pytest.fixture
def spread(counsellor, other_counsellor, make_booking):
    couples = SessionType.objects.create(name="Couples", slug="couples", duration_minutes=80, price=250000)
    return {
        "pending": make_booking(
            Status.PENDING, counsellor=counsellor, client_name="Anita Pending", email="anita@example.com"
        ),
        "confirmed": make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="Bala Confirmed"),
        "other": make_booking(Status.APPROVED, counsellor=other_counsellor, client_name="Chitra Other"),
        "couples": make_booking(
            Status.CANCELLED, counsellor=counsellor, session_type=couples, mode=Mode.IN_PERSON, client_name="Dev Couple"
        ),
        "draft": make_booking(Status.DRAFT, counsellor=counsellor, client_name="Unverified Draft"),
    }


def test_filters_search_and_scoping(admin_client, spread):
    b = spread
    assert acks(admin_client.get(URL)) == {
        b["pending"].ack_id,
        b["confirmed"].ack_id,
        b["other"].ack_id,
        b["couples"].ack_id,
    }
    assert acks(admin_client.get(URL, {"status": "pending"})) == {b["pending"].ack_id}
    assert acks(admin_client.get(URL, {"status": "active"})) == {
        b["pending"].ack_id,
        b["confirmed"].ack_id,
        b["other"].ack_id,
    }
    assert acks(admin_client.get(URL, {"counsellor": b["other"].counsellor_id})) == {b["other"].ack_id}
    assert acks(admin_client.get(URL, {"session_type": b["couples"].session_type_id})) == {b["couples"].ack_id}
    assert acks(admin_client.get(URL, {"mode": Mode.IN_PERSON})) == {b["couples"].ack_id}
    assert acks(admin_client.get(URL, {"q": "anita@EXAMPLE"})) == {b["pending"].ack_id}
    assert acks(admin_client.get(URL, {"q": "bala"})) == {b["confirmed"].ack_id}
    assert acks(admin_client.get(URL, {"q": b["other"].ack_id.lower().replace("-", "")})) == {b["other"].ack_id}
    day = b["confirmed"].slot.start.date()
    assert b["confirmed"].ack_id in acks(admin_client.get(URL, {"date_from": day, "date_to": day}))
    assert b["confirmed"].ack_id not in acks(admin_client.get(URL, {"date_from": day + timedelta(days=1)}))


def test_counsellors_see_only_their_own(counsellor_client, spread):
    found = acks(counsellor_client.get(URL))
    assert spread["other"].ack_id not in found and spread["pending"].ack_id in found
    assert acks(counsellor_client.get(URL, {"q": "Chitra"})) == set()
    # No counsellor filter, no export link for counsellors.
    html = counsellor_client.get(URL).content.decode()
    assert 'name="counsellor"' not in html and "Export" not in html


def test_sorting(admin_client, spread):
    html = admin_client.get(URL, {"sort": "client"}).content.decode()
    assert html.index("Anita") < html.index("Bala") < html.index("Chitra") < html.index("Dev Couple")
    html = admin_client.get(URL, {"sort": "oldest"}).content.decode()
    assert html.index(spread["pending"].ack_id) < html.index(spread["couples"].ack_id)


def test_htmx_returns_the_results_fragment_and_bad_filters_do_not_break_the_page(admin_client, spread):
    response = admin_client.get(URL, {"status": "pending"}, **HX)
    html = response.content.decode()
    assert 'id="results"' in html and "<html" not in html and 'role="search"' not in html
    assert admin_client.get(URL, {"status": "nonsense", "date_from": "31/31/2026", "page": "x"}).status_code == 200


def test_pagination_keeps_the_filters(admin_client, counsellor, make_booking):
    for _ in range(30):
        make_booking(Status.PENDING, counsellor=counsellor)
    html = admin_client.get(URL, {"status": "pending", "per_page": 25}).content.decode()
    assert "page 1 of 2" in html
    assert "?status=pending&amp;per_page=25&amp;page=2" in html
    assert len(acks(admin_client.get(URL, {"status": "pending", "page": 2}))) == 5


@pytest.mark.parametrize("per_page", [25, 100])
def test_constant_queries_whatever_the_page_size(
    admin_client, counsellor, other_counsellor, make_booking, per_page, django_assert_max_num_queries
):
    for i in range(120):
        make_booking(
            Status.CONFIRMED if i % 2 else Status.PENDING, counsellor=counsellor if i % 3 else other_counsellor
        )
    admin_client.get(URL)
    with django_assert_max_num_queries(8):
        response = admin_client.get(URL, {"per_page": per_page, "sort": "session"})
    assert len(acks(response)) == per_page


def test_stored_markup_is_escaped_in_the_list_and_detail(admin_client, counsellor, make_booking):
    booking = make_booking(
        Status.PENDING,
        counsellor=counsellor,
        client_name='<script>alert("x")</script>',
        concerns="<img src=x onerror=alert(1)>",
        preferred_times="<b>mornings</b>",
    )
    for url in (URL, reverse("staff:booking_detail", args=[booking.pk]), reverse("staff:dashboard")):
        html = admin_client.get(url).content.decode()
        assert '<script>alert("x")' not in html and "<img src=x" not in html and "<b>mornings" not in html
    detail = admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert "&lt;script&gt;" in detail and "&lt;img src=x onerror=alert(1)&gt;" in detail


def test_csv_cell_neutralises_formulas():
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("+91 98765") == "'+91 98765"
    assert csv_cell("-1") == "'-1"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("Asha") == "Asha"
    assert csv_cell(None) == ""


def test_csv_export_for_administrators_without_the_clients_words(admin_client, counsellor, make_booking):
    booking = make_booking(
        Status.CONFIRMED,
        counsellor=counsellor,
        client_name="=cmd|' /C calc'!A0",
        phone="+919876543210",
        concerns="Very private words",
        preferred_times="Only evenings please",
    )
    make_booking(Status.PENDING, counsellor=counsellor, client_name="Someone Else")
    response = admin_client.get(reverse("staff:booking_export"), {"status": "confirmed"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert "Very private words" not in text and "Only evenings" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "Acknowledgement ID"
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Acknowledgement ID"] == booking.ack_id
    assert row["Client name"] == "'=cmd|' /C calc'!A0"
    assert row["Phone"] == "'+919876543210"
    assert row["Status"] == "Confirmed"
