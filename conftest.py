"""Shared fixtures: the people who use MindSettler, and a little published availability.

Personas: an administrator, a counsellor, and a second counsellor who must never see the
first one's clients.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta

import pytest
from django.core import mail
from django.utils import timezone, translation

from bookings.models import Booking, Counsellor, SessionType, Slot, WaitlistEntry
from staff.models import User


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="Only the tests that use the database (pytest-django's django_db mark or db fixtures): "
        "for a second run on another database, where the others would run the same again.",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Schemathesis names each API operation's test "test[GET /availability]", but since
    pytest 9.2 builds a test's node ID from its parameters, not its name, they all had the
    function's ID. pytest-xdist schedules tests by ID, so with `-n 2` only one operation was
    fuzzed; each now has its own ID, as pytest's own parameters do."""
    for item in items:
        if (
            type(item).__name__ == "SchemathesisFunction"
            and item.nodeid == f"{item.parent.nodeid}::{item.originalname}"
        ):
            params = item.name.removeprefix(f"{item.originalname}[").removesuffix("]")
            item._id = item.parent.id.child(item.originalname).with_params(params)  # pytest 9.2's NodeId
    # Any other test sharing an ID would be run once for all of them under xdist: say so.
    shared = [nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1]
    if shared:
        raise pytest.UsageError("Tests share a node ID (pytest-xdist would run only one): " + ", ".join(shared))
    if config.getoption("--database-tests-only"):
        # pytest-django lets no other test reach a database: on another one they are the same.
        others = [item for item in items if not _uses_database(item)]
        config.hook.pytest_deselected(items=others)
        items[:] = [item for item in items if _uses_database(item)]


def _uses_database(item: pytest.Item) -> bool:
    return item.get_closest_marker("django_db") is not None or "_django_db_helper" in getattr(item, "fixturenames", ())


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    settings.SITE_URL = "http://testserver"
    # Password hashing is deliberately slow; tests log in many times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    mail.outbox = []
    yield
    # The locale middleware leaves the last request's language active in this thread (a real
    # server activates one per request); the next test starts in the default language.
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def client(client, django_capture_on_commit_callbacks):
    """The test client, with each request's on-commit work (emails) run as in production.

    Tests run inside a transaction that never commits, so without this no email would ever
    leave the outbox.
    """
    original = client.request

    def request(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return original(**kwargs)

    client.request = request
    return client


@pytest.fixture
def oncommit(django_capture_on_commit_callbacks):
    """`with oncommit(): service(...)` runs the service's after-commit work on exit."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def next_weekday_at(hour: int, *, days_ahead: int = 3) -> datetime:
    """An aware datetime `days_ahead` days from now at `hour`:00 in the clinic's zone."""
    day = timezone.localdate() + timedelta(days=days_ahead)
    return timezone.make_aware(datetime.combine(day, time(hour)), timezone.get_current_timezone())


def request_held_for(last: Booking) -> Booking:
    """A request for the next session by `last`'s client, confirmed and held until `last` (a
    session that has ended) is recorded, as services.booking_verify leaves it."""
    from bookings.models import Status
    from bookings.services import ack_id_new

    return Booking.objects.create(
        ack_id=ack_id_new(),
        status=Status.DRAFT,
        client_name="Next Session",
        email=last.email,
        session_type=last.session_type,
        mode=last.mode,
        amount=last.amount,
        verified_at=timezone.now(),
    )


def waiting_on(slot: Slot, session_type: SessionType, email: str = "waiting@example.com") -> WaitlistEntry:
    """A confirmed waitlist place, online, for `slot`'s day only."""
    day = timezone.localtime(slot.start).date()
    return WaitlistEntry.objects.create(
        client_name="Waiting Client",
        email=email,
        session_type=session_type,
        mode="online",
        date_from=day,
        date_to=day,
        verified_at=timezone.now(),
    )


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_user(
        email="admin@example.com", password="a-long-admin-password", first_name="Ada", role=User.Role.ADMINISTRATOR
    )


@pytest.fixture
def counsellor_user(db) -> User:
    return User.objects.create_user(
        email="asha@example.com", password="a-long-counsellor-password", first_name="Asha", role=User.Role.COUNSELLOR
    )


@pytest.fixture
def other_counsellor_user(db) -> User:
    return User.objects.create_user(
        email="rohan@example.com", password="another-long-password", first_name="Rohan", role=User.Role.COUNSELLOR
    )


@pytest.fixture
def counsellor(counsellor_user) -> Counsellor:
    return Counsellor.objects.create(
        user=counsellor_user, display_name="Asha Menon", slug="asha", meeting_url="https://meet.example/asha"
    )


@pytest.fixture
def other_counsellor(other_counsellor_user) -> Counsellor:
    return Counsellor.objects.create(user=other_counsellor_user, display_name="Rohan Kapoor", slug="rohan")


@pytest.fixture
def session_type(db) -> SessionType:
    return SessionType.objects.create(name="Individual session", slug="individual", duration_minutes=50, price=150000)


@pytest.fixture
def slot(counsellor) -> Slot:
    start = next_weekday_at(10)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


@pytest.fixture
def other_slot(other_counsellor) -> Slot:
    start = next_weekday_at(11)
    return Slot.objects.create(counsellor=other_counsellor, start=start, end=start + timedelta(minutes=60))


_emails = iter(range(1, 10**6))


@pytest.fixture
def make_booking(db, session_type):
    """Insert a booking directly in any status (test set-up only; real code uses services).

    Bookings in a slotted status get `slot` (or a fresh free slot of `counsellor`).
    """
    from bookings.models import SLOTTED_STATUSES, Booking, Mode, Status
    from bookings.services import ack_id_new

    def make(
        status: str = Status.PENDING,
        *,
        slot: Slot | None = None,
        counsellor: Counsellor | None = None,
        email: str | None = None,
        **fields,
    ) -> Booking:
        if slot is None and status in SLOTTED_STATUSES:
            counsellor = counsellor or Counsellor.objects.first()
            start = next_weekday_at(9, days_ahead=5) + timedelta(hours=next(_emails) * 2)
            slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
        if slot is not None:
            counsellor = slot.counsellor
        defaults = dict(
            ack_id=ack_id_new(),
            client_name="Test Client",
            email=email or f"client{next(_emails)}@example.com",
            session_type=session_type,
            mode=Mode.ONLINE,
            amount=session_type.price,
            currency=session_type.currency,
            counsellor=counsellor,
        )
        if status in (Status.APPROVED, Status.PAYMENT_PENDING):
            defaults["approved_at"] = timezone.now()
            defaults["payment_due_at"] = timezone.now() + timedelta(hours=48)
        defaults.update(fields)
        return Booking.objects.create(status=status, slot=slot, **defaults)

    return make


@pytest.fixture
def manage_token(db):
    """`manage_token(booking)`: a raw booking-page token, as the emailed link carries."""
    from bookings.models import LinkToken
    from bookings.tokens import token_create

    return lambda booking: token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=30))


@pytest.fixture
def presses_apart(db):
    """`presses_apart()`: every emailed link made so far was made a while ago, as when a
    client presses a button that emails one again after a minute rather than at once (a
    repeated press within `bookings.tokens.REPEAT_PRESS` sends nothing more)."""
    from django.db.models import F

    from bookings.models import LinkToken
    from bookings.tokens import REPEAT_PRESS

    return lambda: LinkToken.objects.update(created_at=F("created_at") - REPEAT_PRESS)


@pytest.fixture
def api_token(db) -> str:
    """A live token of a chatbot API client named 'chatbot'."""
    from bookings.api.auth import api_client_create

    return api_client_create(name="chatbot")[1]
