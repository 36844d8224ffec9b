"""The README tour: `make screenshots` drives the real app, with the demo data of
`manage.py seed_demo` and a few clients' bookings made through the services, and writes PNGs
to docs/screenshots/.

It runs as a pytest test (pytest-django's live server and test database, so it never touches
your own database). This file does not match `test_*.py`, so the normal suite skips it; every
page it shows is also checked like the journeys' pages (console, CSP, weight, axe-core).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone
from playwright.sync_api import expect

from bookings import payments, services
from bookings.models import Booking, Counsellor, Mode, SessionType, Slot, Status
from e2e.browsing import PHONE, Tab, link_in, sign_in, wait_for_email
from e2e.journeys import book_through_wizard, confirm_email, find_on_calendar, heading, look_up_status
from staff.models import User
from staff.tests.conftest import totp_enable

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESKTOP = {"width": 1200, "height": 800}
TOUR_CLIENT = {"name": "Priya Sharma", "email": "priya.sharma@example.com", "phone": "98765 43210"}
STAFF_PASSWORD = "tour-only-password-1234"

# Other clients, so the staff screens show a working clinic: (name, status, days ahead).
CLIENTS = [
    ("Arjun Mehta", Status.PENDING, 2),
    ("Kavya Nair", Status.PENDING, 4),
    ("Farah Khan", Status.PENDING, 6),
    ("Vikram Singh", Status.APPROVED, 2),
    ("Ananya Rao", Status.APPROVED, 3),
    ("Rahul Verma", Status.CONFIRMED, 1),
    ("Sneha Iyer", Status.CONFIRMED, 2),
    ("Dev Malhotra", Status.CONFIRMED, 4),
    ("Neha Gupta", Status.CONFIRMED, 5),
    # Booked and paid for as the others, then held yesterday (see yesterdays_sessions).
    ("Meera Pillai", Status.CONFIRMED, 7),
    ("Arnav Das", Status.CONFIRMED, 8),
]
HELD_YESTERDAY = {"Meera Pillai": time(10), "Arnav Das": time(15)}

pytestmark = [pytest.mark.screenshots, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class Camera:
    """Writes docs/screenshots/<name>.png; names stay stable so the README's links do."""

    def __init__(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)

    def __call__(self, tab: Tab, name: str, *, full_page: bool = True) -> None:
        tab.page.wait_for_load_state("networkidle")
        # No leftover focus ring from the last click in the picture.
        tab.page.evaluate("() => document.activeElement && document.activeElement.blur()")
        # caret="initial": hiding the caret leaves style="" on inputs, and an htmx swap that
        # copies that attribute is then (rightly) refused by the CSP.
        tab.page.screenshot(path=OUT / f"{name}.png", full_page=full_page, caret="initial")


def _free_slot(counsellor: Counsellor, days_ahead: int) -> Slot:
    """The counsellor's first free slot from `days_ahead` days on (demo slots fit any session)."""
    day = timezone.localdate() + timedelta(days=days_ahead)
    earliest = max(timezone.now() + timedelta(hours=25), timezone.make_aware(datetime.combine(day, time.min)))
    held = Booking.objects.exclude(slot=None).values("slot_id")
    asked = Booking.objects.exclude(preferred_slot=None).values("preferred_slot_id")
    taken = Q(pk__in=held) | Q(pk__in=asked)
    return Slot.objects.filter(counsellor=counsellor, start__gte=earliest).exclude(taken).order_by("start")[0]


def demo_bookings(admin: User) -> None:
    """Bookings in several states, made the way the app makes them."""
    individual = SessionType.objects.get(slug="individual")
    counsellors = list(Counsellor.objects.order_by("sort_order"))
    sandbox = payments.provider_for("sandbox")
    for index, (name, status, days_ahead) in enumerate(CLIENTS):
        counsellor = counsellors[index % len(counsellors)]
        slot = _free_slot(counsellor, days_ahead)
        email = name.lower().replace(" ", ".") + "@example.com"
        booking, _ = services.booking_submit(
            submission_key=f"tour-{index}",
            session_type=individual,
            mode=Mode.ONLINE if index % 3 else Mode.IN_PERSON,
            counsellor=None,
            preferred_slot=slot,
            preferred_times="",
            client_name=name,
            email=email,
            phone="",
            age_confirmation=Booking.AgeConfirmation.ADULT,
            concerns="Work stress and trouble sleeping." if index % 2 else "",
        )
        token = link_in(wait_for_email(email, "Confirm your email"), "/verify/").rstrip("/").rsplit("/", 1)[1]
        services.booking_verify(token=token)
        if status == Status.PENDING:
            continue
        services.booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin)
        if status == Status.CONFIRMED:
            payment = services.payment_start(booking_id=booking.pk)
            fields = sandbox.checkout_context(payment=payment)["pay_fields"]
            services.payment_return(payment_id=payment.pk, data=fields)


def yesterdays_sessions() -> None:
    """The clinic a day on: two confirmed sessions took place yesterday, and nobody has said
    yet how they went (the dashboard's "Sessions to record"). Their slots are moved back a
    day's work, as no service would (none books the past)."""
    yesterday = timezone.localdate() - timedelta(days=1)
    for name, at in HELD_YESTERDAY.items():
        slot = Booking.objects.get(client_name=name).slot
        start = timezone.make_aware(datetime.combine(yesterday, at))
        Slot.objects.filter(pk=slot.pk).update(start=start, end=start + (slot.end - slot.start))


def test_tour(tabs, live_server):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115 - quiet
    admin = User.objects.get(email="admin@mindsettler.example")
    admin.set_password(STAFF_PASSWORD)
    admin.save()
    secret = totp_enable(admin)
    demo_bookings(admin)
    yesterdays_sessions()
    for old in OUT.glob("*.png"):
        old.unlink()
    shoot = Camera()

    # The client: home, each wizard step, an error summary, the email confirmed, the status.
    client = tabs(viewport=DESKTOP)
    book_through_wizard(client, client=TOUR_CLIENT, time=None, show_errors=True, snap=lambda name: shoot(client, name))
    ack_id = confirm_email(client, email=TOUR_CLIENT["email"], snap=lambda name: shoot(client, name))
    look_up_status(client, ack_id, expected="Request received", snap=lambda name: shoot(client, name))

    # A counsellor reserves the time the client asked for; the client opens the emailed link.
    booking = Booking.objects.get(ack_id=ack_id)
    services.booking_approve(booking_id=booking.pk, slot_id=booking.preferred_slot_id, user=admin)
    client.goto(link_in(wait_for_email(TOUR_CLIENT["email"], "Your session time is reserved"), "/bookings/"))
    booking_url = client.page.url
    shoot(client, "booking-page")
    client.page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(heading(client.page, re.compile("Pay for booking"))).to_be_visible()
    client.check()
    shoot(client, "sandbox-payment")
    client.page.get_by_role("button", name=re.compile(r"\(test\)$")).click()
    expect(client.page.get_by_role("heading", name=re.compile("Status"))).to_contain_text("Confirmed")
    client.check()
    shoot(client, "booking-confirmed")

    phone = tabs(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    phone.goto(booking_url)
    shoot(phone, "phone-booking-page", full_page=False)

    # The staff portal.
    staff = tabs(viewport={"width": 1366, "height": 900})
    page = staff.page
    sign_in(staff, email=admin.email, password=STAFF_PASSWORD, secret=secret)
    shoot(staff, "staff-dashboard")
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Calendar").click()
    expect(heading(page, "Calendar")).to_be_visible()
    find_on_calendar(staff, ack_id)
    # Show whichever of this week and the next has more sessions.
    sessions = page.get_by_role("link", name=re.compile(r"MS-"))
    here = sessions.count()
    page.get_by_role("button", name=re.compile(r"^Next")).click()
    page.wait_for_load_state("networkidle")
    if sessions.count() < here:
        page.get_by_role("button", name=re.compile(r"^Previous")).click()
    staff.check()
    shoot(staff, "staff-calendar-week")
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Bookings").click()
    expect(heading(page, "Bookings")).to_be_visible()
    staff.check()
    shoot(staff, "staff-booking-list")
    pending = Booking.objects.filter(status=Status.PENDING).order_by("created_at").first()
    page.get_by_role("link", name=pending.ack_id).click()
    expect(heading(page, pending.ack_id)).to_be_visible()
    staff.check()
    shoot(staff, "staff-booking-detail")
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Availability").click()
    staff.check()
    page.get_by_role("link", name=re.compile("Asha Menon")).first.click()
    staff.check()
    shoot(staff, "staff-availability")

    # The month's numbers: one of yesterday's sessions recorded as held, the other not yet.
    services.booking_complete(booking_id=Booking.objects.get(client_name="Meera Pillai").pk, user=admin)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Reports").click()
    expect(heading(page, re.compile("Report for"))).to_be_visible()
    staff.check()
    shoot(staff, "staff-report")
