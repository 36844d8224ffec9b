"""The month's report for administrators: sessions and money by counsellor, by the session's
month in the clinic's zone; the page, its month chooser and its CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings.models import Actor, BookingEvent, Counsellor, Payment, Slot, Status
from staff.models import User
from staff.selectors import month_report
from staff.views import REPORT_COLUMNS

pytestmark = pytest.mark.django_db

MARCH = date(2025, 3, 1)
PRICE = 150000  # the session type's, in paise


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """`day` at hour:minute in the clinic's zone."""
    return timezone.make_aware(datetime.combine(day, time(hour, minute)), timezone.get_current_timezone())


def session(make_booking, counsellor: Counsellor, status: str, start: datetime, **fields):
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))
    return make_booking(status, slot=slot, client_name="Kiran Secretname", concerns="Words of my own", **fields)


def paid(booking, amount: int = PRICE, *, refunded: int = 0, captured: int | None = -1, **fields) -> Payment:
    """A payment the provider captured (`captured` None: a row from before captured_amount),
    of which `refunded` went back."""
    if refunded >= amount:
        status = Payment.State.REFUNDED
    elif refunded:
        status = Payment.State.PARTIALLY_REFUNDED
    else:
        status = Payment.State.CONFIRMED
    return Payment.objects.create(
        booking=booking,
        provider="razorpay",
        provider_order_id=f"order_{booking.pk}_{Payment.objects.count()}",
        provider_payment_id=f"pay_{booking.pk}_{Payment.objects.count()}",
        amount=amount,
        captured_amount=amount if captured == -1 else captured,
        currency="INR",
        status=status,
        refunded_amount=refunded,
        refund_status=Payment.RefundState.PROCESSED if refunded else "",
        confirmed_at=timezone.now(),
        **fields,
    )


def cancelled_by(booking, actor: str, *, late: bool = False) -> None:
    BookingEvent.objects.create(
        booking=booking, from_status=Status.CONFIRMED, to_status=Status.CANCELLED, actor=actor, reason="Cancelled"
    )
    if late:
        BookingEvent.objects.create(booking=booking, action="late_cancellation", actor=Actor.STAFF)


@pytest.fixture
def march(make_booking, counsellor, other_counsellor):
    """March 2025 at the clinic: Asha Menon (`counsellor`) and Rohan Kapoor (`other_counsellor`)
    busy, Meera Nair (no staff account) with nothing that month, and a counsellor who has left
    with nothing either (not listed)."""
    idle = Counsellor.objects.create(display_name="Meera Nair", slug="meera")
    gone = User.objects.create_user(email="gone@example.com", password="x" * 20, role=User.Role.COUNSELLOR)
    gone.is_active = False
    gone.save()
    Counsellor.objects.create(user=gone, display_name="Left Long Ago", slug="left")
    d = lambda n: date(2025, 3, n)  # noqa: E731

    # Asha: three held (one on the last evening of March, in the clinic's zone), one no-show,
    # two cancelled by people (one late), one lapsed unpaid.
    first = session(make_booking, counsellor, Status.COMPLETED, at(d(3), 10))
    paid(first, refunded=50000)  # a part refunded
    paid(session(make_booking, counsellor, Status.COMPLETED, at(d(4), 10)))
    # 23:30 on 31 March in Kolkata is 18:00 UTC: March's.
    paid(session(make_booking, counsellor, Status.COMPLETED, at(d(31), 23, 30)))
    paid(session(make_booking, counsellor, Status.NO_SHOW, at(d(5), 10)))
    by_client = session(make_booking, counsellor, Status.CANCELLED, at(d(6), 10))
    paid(by_client, refunded=PRICE)  # refunded in full
    cancelled_by(by_client, Actor.CLIENT)
    late = session(make_booking, counsellor, Status.CANCELLED, at(d(7), 10))
    cancelled_by(late, Actor.STAFF, late=True)
    lapsed = session(make_booking, counsellor, Status.CANCELLED, at(d(8), 10))
    Payment.objects.create(booking=lapsed, provider="razorpay", amount=PRICE, currency="INR", status="failed")
    cancelled_by(lapsed, Actor.SYSTEM)
    # 00:30 on 1 April in Kolkata is still 31 March in UTC: April's, not March's.
    paid(session(make_booking, counsellor, Status.COMPLETED, at(date(2025, 4, 1), 0, 30)))
    # And the last evening of February.
    paid(session(make_booking, counsellor, Status.COMPLETED, at(date(2025, 2, 28), 23, 30)))

    # Rohan: one held (its payment from before captured_amount was kept), one ahead, two not
    # paid yet, one cancelled by staff with its refund under way.
    paid(session(make_booking, other_counsellor, Status.COMPLETED, at(d(10), 11)), captured=None)
    paid(session(make_booking, other_counsellor, Status.CONFIRMED, at(d(11), 11)), 200000)
    approved = session(make_booking, other_counsellor, Status.APPROVED, at(d(12), 11))
    Payment.objects.create(booking=approved, provider="razorpay", amount=PRICE, currency="INR", status="failed")
    waiting = session(make_booking, other_counsellor, Status.PAYMENT_PENDING, at(d(13), 11))
    Payment.objects.create(booking=waiting, provider="razorpay", amount=PRICE, currency="INR", status="pending")
    by_staff = session(make_booking, other_counsellor, Status.CANCELLED, at(d(14), 11))
    refunding = paid(by_staff, 200000, refunded=200000)
    refunding.refund_status = Payment.RefundState.PENDING
    refunding.save()
    cancelled_by(by_staff, Actor.STAFF)
    return {"asha": counsellor, "rohan": other_counsellor, "meera": idle}


ASHA = dict(
    completed=3,
    no_shows=1,
    cancelled=2,
    late=1,
    lapsed=1,
    confirmed=0,
    awaiting_payment=0,
    received=5 * PRICE,
    refunded=50000 + PRICE,
    net=5 * PRICE - 50000 - PRICE,
)
ROHAN = dict(
    completed=1,
    no_shows=0,
    cancelled=1,
    late=0,
    lapsed=0,
    confirmed=1,
    awaiting_payment=2,
    received=PRICE + 200000 + 200000,
    refunded=200000,
    net=PRICE + 200000,
)
NOTHING = dict.fromkeys(ASHA, 0)


def numbers(row: dict) -> dict:
    return {key: row[key] for key in ASHA}


# --- The numbers ----------------------------------------------------------------------------


def test_each_counsellors_month_in_numbers(march, admin_user):
    report = month_report(user=admin_user, month=MARCH)
    assert [row["name"] for row in report["rows"]] == ["Asha Menon", "Meera Nair", "Rohan Kapoor"]
    asha, meera, rohan = report["rows"]
    assert numbers(asha) == ASHA
    assert numbers(rohan) == ROHAN
    assert numbers(meera) == NOTHING
    assert report["totals"] == {key: ASHA[key] + ROHAN[key] for key in ASHA}
    assert report["totals"]["received"] == 1_300_000 and report["totals"]["net"] == 900_000


def test_months_are_the_clinics_calendar_months(march, admin_user, settings):
    assert settings.TIME_ZONE == "Asia/Kolkata"
    report = month_report(user=admin_user, month=MARCH)
    assert report["start"] == at(MARCH, 0) and report["end"] == at(date(2025, 4, 1), 0)
    # The sessions just after March's end and just before its start, in the clinic's zone.
    april = month_report(user=admin_user, month=date(2025, 4, 1))
    february = month_report(user=admin_user, month=date(2025, 2, 1))
    for other in (april, february):
        asha = other["rows"][0]
        assert (asha["name"], asha["completed"], asha["received"]) == ("Asha Menon", 1, PRICE)
        assert other["totals"]["completed"] == 1


def test_a_counsellor_who_left_is_listed_for_a_month_they_worked(march, admin_user):
    user = march["rohan"].user
    user.is_active = False
    user.save()
    assert [row["name"] for row in month_report(user=admin_user, month=MARCH)["rows"]] == [
        "Asha Menon",
        "Meera Nair",
        "Rohan Kapoor",
    ]
    assert "Rohan Kapoor" not in [r["name"] for r in month_report(user=admin_user, month=date(2025, 5, 1))["rows"]]


# --- The page -------------------------------------------------------------------------------


def test_an_administrator_reads_the_month_with_no_clients_details(march, admin_client):
    response = admin_client.get(reverse("staff:report"), {"month": "2025-03"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Report for March 2025" in html
    assert "<caption" in html and 'scope="row"' in html and 'scope="col"' in html
    assert 'href="?month=2025-02"' in html and 'href="?month=2025-04"' in html
    # Asha's row: counts, then ₹7,500 received, ₹2,000 refunded, ₹5,500 net.
    asha = html.split(">Asha Menon</th>")[1].split("</tr>")[0]
    cells = [cell.split(">", 1)[1] for cell in asha.split("</td>")[:-1]]
    assert cells == ["3", "1", "2", "1", "1", "0", "0", "₹7,500", "₹2,000", "₹5,500"]
    totals = html.split(">All counsellors</th>")[1].split("</tr>")[0]
    assert "₹13,000" in totals and "₹9,000" in totals
    for meaning in (m for _, _, m in REPORT_COLUMNS):
        assert meaning.replace("'", "&#x27;") in html
    assert "Asia/Kolkata" in html or "India" in html
    for private in ("Kiran", "Secretname", "Words of my own", "@example.com"):
        assert private not in html
    assert f'href="{reverse("staff:report_export")}?month=2025-03"' in html


@pytest.mark.parametrize("query", [{}, {"month": ""}, {"month": " "}])
def test_the_page_opens_on_this_month_in_the_clinics_zone(admin_client, counsellor, query):
    response = admin_client.get(reverse("staff:report"), query)
    assert response.status_code == 200
    this_month = timezone.localdate()
    html = response.content.decode()
    assert f"Report for {this_month:%B %Y}" in html and f'value="{this_month:%Y-%m}"' in html
    assert "This month is not over" in html
    assert "Asha Menon" in html  # with nothing yet: a row of zeros


def test_the_menu_offers_reports_to_administrators_only(admin_client, counsellor_client):
    link = f'href="{reverse("staff:report")}"'
    assert link in admin_client.get(reverse("staff:dashboard")).content.decode()
    assert link not in counsellor_client.get(reverse("staff:dashboard")).content.decode()
    page = admin_client.get(reverse("staff:report")).content.decode()
    assert 'aria-current="page">Reports</a>' in page


def test_a_counsellor_is_refused(counsellor_client):
    assert counsellor_client.get(reverse("staff:report")).status_code == 403
    assert counsellor_client.get(reverse("staff:report_export")).status_code == 403


@pytest.mark.parametrize(
    ("month", "error"),
    [
        ("2025-13", "Enter a month as year and month, for example 2026-10."),
        ("March", "Enter a month as year and month, for example 2026-10."),
        ("2025-03-01", "Ensure this value has at most 7 characters"),
        ("1999-12", "Choose a month between January 2000 and December 2099."),
        ("2100-01", "Choose a month between January 2000 and December 2099."),
        ("0000-01", "Enter a month as year and month, for example 2026-10."),
    ],
)
def test_a_month_that_is_not_one_is_refused_next_to_the_field(admin_client, month, error):
    for name in ("staff:report", "staff:report_export"):
        response = admin_client.get(reverse(name), {"month": month})
        assert response.status_code == 400
        html = response.content.decode()
        assert 'id="id_month-error"' in html and error in html.split('id="id_month-error"')[1]
        assert 'class="error-summary"' in html
        assert "<table" not in html  # no other month's numbers in its place
        assert response["Content-Type"].startswith("text/html")


def test_the_last_months_have_no_link_beyond_the_range(admin_client):
    html = admin_client.get(reverse("staff:report"), {"month": "2000-01"}).content.decode()
    assert 'href="?month=1999-12"' not in html and 'href="?month=2000-02"' in html
    html = admin_client.get(reverse("staff:report"), {"month": "2099-12"}).content.decode()
    assert 'href="?month=2100-01"' not in html and 'href="?month=2099-11"' in html


# --- The CSV --------------------------------------------------------------------------------


def test_the_csv_is_the_pages_table(march, admin_client):
    response = admin_client.get(reverse("staff:report_export"), {"month": "2025-03"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="mindsettler-report-2025-03.csv"'
    assert "no-store" in response["Cache-Control"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "Month",
        "Counsellor",
        "Completed",
        "No-shows",
        "Cancelled",
        "Of which late",
        "Lapsed unpaid",
        "Confirmed",
        "Awaiting payment",
        "Received",
        "Refunded",
        "Net",
        "Currency",
    ]
    assert rows[1:] == [
        ["2025-03", "Asha Menon", "3", "1", "2", "1", "1", "0", "0", "7500.00", "2000.00", "5500.00", "INR"],
        ["2025-03", "Meera Nair", "0", "0", "0", "0", "0", "0", "0", "0.00", "0.00", "0.00", "INR"],
        ["2025-03", "Rohan Kapoor", "1", "0", "1", "0", "0", "1", "2", "5500.00", "2000.00", "3500.00", "INR"],
        ["2025-03", "All counsellors", "4", "1", "3", "1", "1", "1", "2", "13000.00", "4000.00", "9000.00", "INR"],
    ]
    assert "Kiran" not in response.content.decode() and "@example.com" not in response.content.decode()


def test_the_csv_keeps_a_name_from_being_run_as_a_formula(admin_client, counsellor):
    counsellor.display_name = "=HYPERLINK(1)"
    counsellor.save()
    rows = list(csv.reader(io.StringIO(admin_client.get(reverse("staff:report_export")).content.decode())))
    assert rows[1][1] == "'=HYPERLINK(1)"


def test_a_refund_decided_and_not_yet_taken_on_counts_as_refunded(admin_user, counsellor, make_booking):
    """Its task has not run yet, or the provider is down: the column is "started or done", and
    the month's net must not count money on its way back to the client."""
    from bookings.services import booking_cancel, payment_confirm, payment_start

    start = timezone.now() + timedelta(days=3)
    booking = make_booking(
        Status.APPROVED, slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    )
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_1", amount=booking.amount, currency="INR", raw={}, source="t"
    )
    booking_cancel(booking_id=booking.pk, actor=Actor.STAFF, user=admin_user, reason="Clinic closed")  # no commit
    payment.refresh_from_db()
    assert (payment.refund_status, payment.provider_refund_id, payment.refunded_amount) == ("pending", "", 0)
    [row] = [r for r in month_report(user=admin_user, month=timezone.localdate(start))["rows"] if r["received"]]
    assert (row["received"], row["refunded"], row["net"]) == (booking.amount, booking.amount, 0)
