"""Pages a client reads by GET or HEAD write nothing to the database, even on a new clinic
whose details no administrator has saved yet: a mail scanner opening every link in an email
must leave no trace, and state changes happen only on POST."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.models import Clinic, LinkToken, Mode, Slot, Status
from bookings.tokens import token_create

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def link(booking, purpose, **kwargs) -> str:
    return token_create(booking=booking, purpose=purpose, lifetime=timedelta(days=1), **kwargs)


def test_a_clients_pages_and_links_write_nothing_when_read(client, make_booking, counsellor):
    soon = timezone.now().replace(microsecond=0) + timedelta(hours=5)  # cancelling online has closed
    later = soon + timedelta(days=4)
    near = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=soon, end=soon + timedelta(hours=1)),
        mode=Mode.IN_PERSON,
    )
    far = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(hours=1)),
        mode=Mode.IN_PERSON,
    )
    free = Slot.objects.create(
        counsellor=counsellor, start=later + timedelta(days=1), end=later + timedelta(days=1, hours=1)
    )
    draft = make_booking(Status.DRAFT)
    Purpose = LinkToken.Purpose
    pages = {
        "booking page, cancelling closed": f"/bookings/{link(near, Purpose.MANAGE)}/",
        "booking page": f"/bookings/{(far_page := link(far, Purpose.MANAGE))}/",
        "calendar file": f"/bookings/{far_page}/session.ics",
        "choosing another time": f"/bookings/{far_page}/reschedule/",
        "cancellation link": f"/cancel/{link(far, Purpose.CANCEL)}/",
        "move link": f"/reschedule/{link(far, Purpose.RESCHEDULE, slot=free)}/",
        "erasure link": f"/privacy/erase/{link(far, Purpose.ERASE)}/",
        "export link": f"/privacy/export/{link(far, Purpose.EXPORT)}/",
        "verification link": f"/verify/{link(draft, Purpose.VERIFY)}/",
        "status lookup": "/status/",
        "an unknown link": "/bookings/not-a-link/",
    }
    assert not Clinic.objects.exists()
    for name, url in pages.items():
        for method in (client.get, client.head):
            with CaptureQueriesContext(connection) as queries:
                response = method(url)
            assert response.status_code in (200, 404), (name, method.__name__, response.status_code)
            writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]
            assert writes == [], (name, method.__name__, writes)
    assert not Clinic.objects.exists()
