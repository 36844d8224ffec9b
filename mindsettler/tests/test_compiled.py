"""CompiledQuery (mindsettler/compiled.py) answers exactly as its queryset does, on SQLite and
on PostgreSQL, for each set of values; and refuses the queries it cannot run faithfully."""

from __future__ import annotations

import threading
import zoneinfo
from datetime import date, datetime, timedelta

import pytest
from django.db import connection, connections
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.safestring import mark_safe

from bookings.models import Booking, Slot, Status
from mindsettler.compiled import KEPT_MAX, PLACEHOLDER_TIME, CompiledQuery, SqlLiteral, sql_literals

pytestmark = pytest.mark.django_db


def _by_ack_id(ack_id: str):
    return Booking.objects.filter(ack_id=ack_id).order_by().values("pk", "status", "amount", "created_at")[:1]


def test_each_call_answers_like_the_queryset(counsellor, make_booking):
    first, second = make_booking(Status.PENDING), make_booking(Status.CONFIRMED)
    query = CompiledQuery(_by_ack_id, ack_id="MS-000000")
    for booking in (first, second):
        assert query(ack_id=booking.ack_id) == list(_by_ack_id(booking.ack_id))
    assert query(ack_id="MS-ZZZZZZ") == []
    # Converted as .values() converts: an aware datetime, an int.
    row = query(ack_id=first.ack_id)[0]
    assert row["created_at"] == first.created_at and timezone.is_aware(row["created_at"])
    assert row["amount"] == first.amount


def test_one_query_a_call_and_the_same_sql_each_time(make_booking):
    booking = make_booking()
    query = CompiledQuery(_by_ack_id, ack_id="MS-000000")
    with CaptureQueriesContext(connection) as queries:
        query(ack_id=booking.ack_id)
        query(ack_id="MS-ZZZZZZ")
    assert len(queries) == 2


def test_datetime_values_and_joins(slot, other_slot, make_booking):
    booking = make_booking(Status.APPROVED, slot=slot)

    def starting_between(after: datetime, before: datetime):
        return (
            Slot.objects.filter(start__gte=after, start__lt=before)
            .order_by("start")
            .values("pk", "start", "counsellor__display_name", "bookings__status")
        )

    query = CompiledQuery(starting_between, after=PLACEHOLDER_TIME, before=PLACEHOLDER_TIME + timedelta(days=1))
    windows = [
        (slot.start - timedelta(minutes=1), slot.start + timedelta(minutes=1)),
        (slot.start - timedelta(days=1), other_slot.start + timedelta(days=1)),
        (other_slot.start + timedelta(days=1), other_slot.start + timedelta(days=2)),
    ]
    for after, before in windows:
        assert query(after=after, before=before) == list(starting_between(after, before))
    assert query(after=windows[0][0], before=windows[0][1])[0]["bookings__status"] == booking.status


def test_a_value_used_twice_goes_everywhere_it_appears(make_booking):
    booking = make_booking()

    def either(ack_id: str):
        return Booking.objects.filter(ack_id=ack_id).exclude(ack_id__gt=ack_id).values("pk")

    assert CompiledQuery(either, ack_id="MS-000000")(ack_id=booking.ack_id) == [{"pk": booking.pk}]


def test_each_time_zone_has_its_own_compiled_form(slot):
    def on_day(day: date):
        # __date puts the active time zone's name into the SQL.
        return Slot.objects.filter(start__date=day).values("pk")

    query = CompiledQuery(on_day, day=date(2000, 1, 1))
    for zone in ("UTC", "Pacific/Kiritimati", "America/Adak"):
        with timezone.override(zoneinfo.ZoneInfo(zone)):
            day = timezone.localdate(slot.start)
            assert query(day=day) == list(on_day(day)) == [{"pk": slot.pk}], zone
            assert query(day=day - timedelta(days=1)) == [], zone


def test_annotations_come_back_named():
    def busy(after: datetime):
        return Slot.objects.filter(start__gte=after).values("counsellor_id").annotate(n=Count("pk")).order_by()

    now = timezone.now()
    assert CompiledQuery(busy, after=PLACEHOLDER_TIME)(after=now) == list(busy(now))


def test_threads_each_compile_for_their_own_connection():
    # Nothing written here: on SQLite the other thread could not read a table this test's
    # transaction has written to.
    query = CompiledQuery(_by_ack_id, ack_id="MS-000000")
    assert query(ack_id="MS-AAAAAA") == []
    seen = []

    def other_thread():
        try:
            # Another thread has its own connection: it compiles again, and must not fail.
            seen.append(query(ack_id="MS-ZZZZZZ"))
        finally:
            connection.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == [[]]


def test_a_connection_keeps_the_most_recently_used_compiled_forms_only():
    # Queries made per shape of filters come and go (lru_caches of their own): each new one
    # compiles again, and the connection must not keep every one it ever saw.
    hot = CompiledQuery(_by_ack_id, ack_id="MS-000000")
    hot(ack_id="MS-AAAAAA")
    for _ in range(KEPT_MAX * 2):
        CompiledQuery(_by_ack_id, ack_id="MS-000000")(ack_id="MS-AAAAAA")
        hot(ack_id="MS-AAAAAA")  # used all along: kept all along
    kept = connections["default"].__dict__["compiled_queries"]
    assert len(kept) == KEPT_MAX
    assert any(key[0] is hot for key in kept)
    with CaptureQueriesContext(connection) as queries:
        hot(ack_id="MS-AAAAAA")
    assert len(queries) == 1


def test_wrong_values_are_refused(make_booking):
    query = CompiledQuery(_by_ack_id, ack_id="MS-000000")
    with pytest.raises(TypeError, match="exactly these values: ack_id"):
        query(ack="MS-000000")
    with pytest.raises(TypeError, match="ack_id must be a str"):
        query(ack_id=None)  # would need IS NULL: another query
    with pytest.raises(TypeError, match="ack_id must be a str"):
        query(ack_id=7)
    assert query(ack_id=mark_safe("MS-ZZZZZZ")) == []  # a str, if a marked one
    after = CompiledQuery(lambda after: Slot.objects.filter(start__gte=after).values("pk"), after=PLACEHOLDER_TIME)
    with pytest.raises(TypeError, match="aware datetime"):
        after(after=datetime(2026, 11, 26, 10, 0))  # the ORM would take it as local time, with a warning


def test_queries_it_cannot_run_faithfully_are_refused():
    with pytest.raises(TypeError, match=r"\.values\(\)"):
        CompiledQuery(lambda ack_id: Booking.objects.filter(ack_id=ack_id), ack_id="MS-000000")(ack_id="MS-1")
    # __contains rewrites the value ("%MS-000000%"): it is not among the parameters as given.
    contains = CompiledQuery(lambda ack_id: Booking.objects.filter(ack_id__contains=ack_id).values("pk"), ack_id="MS")
    with pytest.raises(ValueError, match="not among the query's parameters"):
        contains(ack_id="MS-1")
    same = CompiledQuery(
        lambda a, b: Booking.objects.filter(ack_id=a, email=b).values("pk"), a="MS-000000", b="MS-000000"
    )
    with pytest.raises(ValueError, match="same value"):
        same(a="x", b="y")
    # A constant equal to a placeholder would be replaced by each call's value.
    collides = CompiledQuery(
        lambda counsellor_id: Slot.objects.filter(counsellor_id=counsellor_id).exclude(pk=-1).values("pk"),
        counsellor_id=-1,
    )
    with pytest.raises(ValueError, match="equals a placeholder"):
        collides(counsellor_id=1)
    # A parameter computed from a value would keep the placeholder's.
    derived = CompiledQuery(
        lambda after: Slot.objects.filter(start__gte=after, end__lte=after + timedelta(hours=1)).values("pk"),
        after=PLACEHOLDER_TIME,
    )
    with pytest.raises(ValueError, match="depend on the values"):
        derived(after=timezone.now())
    with pytest.raises(TypeError, match="not float"):
        CompiledQuery(lambda amount: Booking.objects.filter(amount=amount).values("pk"), amount=1.5)


def test_a_query_without_values(make_booking):
    booking = make_booking(Status.PENDING)
    pending = CompiledQuery(lambda: Booking.objects.filter(status=Status.PENDING).values("ack_id"))
    assert pending() == [{"ack_id": booking.ack_id}]


def test_rows_and_names(make_booking):
    first, second = make_booking(Status.PENDING), make_booking(Status.PENDING)
    query = CompiledQuery(
        lambda: Booking.objects.filter(status=Status.PENDING).order_by("pk").values("pk", "created_at")
    )
    assert query.names() == ("pk", "created_at")
    assert [tuple(row) for row in query.rows()] == [(first.pk, first.created_at), (second.pk, second.created_at)]


def test_a_change_of_settings_compiles_again(settings, make_booking):
    built = []

    def pending():
        built.append(settings.BOOKING_MIN_NOTICE_HOURS)
        return Booking.objects.filter(status=Status.PENDING).values("pk")

    query = CompiledQuery(pending)
    query()
    query()
    settings.BOOKING_MIN_NOTICE_HOURS = 1
    query()
    assert built == [24, 24, 1, 1]  # built twice each time it compiles (the check)


def test_literals_are_written_into_the_sql(make_booking):
    held, cancelled = make_booking(Status.PENDING), make_booking(Status.CANCELLED)
    query = Booking.objects.filter(status__in=sql_literals([Status.PENDING, Status.APPROVED]))
    sql, params = query.values("pk").query.sql_with_params()
    assert "'pending'" in sql and "pending" not in params
    assert list(query.values_list("pk", flat=True)) == [held.pk]
    assert cancelled.pk not in Booking.objects.filter(status=SqlLiteral("pending")).values_list("pk", flat=True)


@pytest.mark.parametrize("value", ["it's", "", "a b", "ünï", "1;--", 7])
def test_a_literal_is_a_plain_word_only(value):
    with pytest.raises(ValueError, match="ASCII letters"):
        SqlLiteral(value)
