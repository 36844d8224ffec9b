"""Queries written with the ORM, compiled to SQL once per database connection.

For the small indexed reads of the busiest pages, Django spends more time building and
compiling a query (0.15 to 0.4 ms) than PostgreSQL takes to answer it over loopback (about
0.1 ms, planning included once the statement is prepared). A `CompiledQuery` keeps the ORM
queryset as the one definition of the query and skips that work after the first call:

    by_ack_id = CompiledQuery(
        lambda ack_id: Booking.objects.filter(ack_id=ack_id).order_by().values("pk", "status")[:1],
        ack_id="MS-000000",
    )
    rows = by_ack_id(ack_id="MS-ABC123")   # [{"pk": 7, "status": "confirmed"}] or []

The queryset is built once with the placeholder values given as keywords; each call puts
its own values where those placeholders appear among the SQL's parameters. Rows come back
as `.values()` dicts (or plain rows: `rows()`), through Django's own converters for the
database; `instance()` makes a model instance of one, as the ORM would.

Only for queries whose SQL does not depend on the values: a fixed set of filters (no
`None`, which Django turns into IS NULL; no lists of varying length), on the values as
given (no lookups that rewrite them, such as `__contains`, and nothing computed from them).
Compiling checks both and refuses such a query. The SQL may depend on the active time zone
(a `__date` lookup puts its name into the SQL), so each time zone has its own compiled
form; a change of settings (in tests) drops them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import CharField, Model, QuerySet, Value
from django.db.models.query import ValuesIterable
from django.utils import timezone

# How many compiled forms a connection keeps (each a few KB: SQL, parameters, compiler).
KEPT_MAX = 256

# A placeholder for a moment, for queries to be built with (any aware datetime will do).
PLACEHOLDER_TIME = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...]  # position, name, adapter
    names: tuple[str, ...]
    compiler: Any
    converters: dict[int, Any]


class CompiledQuery:
    def __init__(self, build: Callable[..., QuerySet], *, using: str = DEFAULT_DB_ALIAS, **placeholders: object):
        for value in placeholders.values():
            _another(value)  # refuses the types it cannot take
        self.build = build
        self.using = using
        self.placeholders = placeholders

    def __call__(self, **values: object) -> list[dict[str, Any]]:
        """The rows, as .values() dicts."""
        names = self.names()
        return [dict(zip(names, row, strict=True)) for row in self.rows(**values)]

    def rows(self, **values: object) -> list[Sequence[Any]]:
        """The rows as sequences of values, in the order of names(): for many rows, where a
        dict each costs more than the query."""
        sql, params, compiled = self._prepare(values)
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            return list(compiled.compiler.apply_converters(rows, compiled.converters))
        return rows

    def names(self) -> tuple[str, ...]:
        """The names of the columns, as .values() names them."""
        return self._prepare_compiled().names

    def sql(self, **values: object) -> tuple[str, list[Any], Any]:
        """What a call would run, for hand-written SQL that uses the query as a subquery: the
        SQL, its parameters, and the compiler that made them (its get_converters() and
        apply_converters() turn the subquery's columns into Python values)."""
        sql, params, compiled = self._prepare(values)
        return sql, params, compiled.compiler

    def _prepare(self, values: dict[str, object]) -> tuple[str, list[Any], _Compiled]:
        if values.keys() != self.placeholders.keys():
            raise TypeError(f"CompiledQuery takes exactly these values: {', '.join(sorted(self.placeholders))}.")
        compiled = self._prepare_compiled()
        params = list(compiled.params)
        for position, name, adapt in compiled.slots:
            value = values[name]
            if isinstance(value, str):
                value = str.__str__(value)  # a plain str: a SafeString is one too
            if value is None or type(value) is not type(self.placeholders[name]):
                raise TypeError(f"{name} must be a {type(self.placeholders[name]).__name__}, not {value!r}.")
            if isinstance(value, datetime) and timezone.is_naive(value):
                raise TypeError(f"{name} must be an aware datetime, not {value!r}.")
            params[position] = adapt(value) if adapt else value
        return compiled.sql, params, compiled

    def _prepare_compiled(self) -> _Compiled:
        # Kept on the connection (each thread has its own), so they go with it; by query,
        # time zone and settings; the most recently used KEPT_MAX of them (queries made per
        # shape of filters, in lru_caches of their own, come and go).
        connection = connections[self.using]
        kept = connection.__dict__.setdefault("compiled_queries", {})
        key = (self, timezone.get_current_timezone_name(), _settings_generation)
        compiled = kept.pop(key, None)
        if compiled is None:
            compiled = self._compile(connection)
            if len(kept) >= KEPT_MAX:
                del kept[next(iter(kept))]  # the least recently used
        kept[key] = compiled  # last: the most recently used
        return compiled

    def _compile(self, connection: Any) -> _Compiled:
        queryset = self.build(**self.placeholders)
        if queryset._iterable_class is not ValuesIterable:
            raise TypeError("CompiledQuery needs a .values() queryset.")
        query = queryset.query
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        slots = []
        for name, placeholder in self.placeholders.items():
            adapter = _adapter(connection, placeholder)
            stored = adapter(placeholder) if adapter else placeholder
            found = [i for i, param in enumerate(params) if type(param) is type(stored) and param == stored]
            if not found:
                raise ValueError(f"The placeholder for {name} ({placeholder!r}) is not among the query's parameters.")
            slots.extend((i, name, adapter) for i in found)
        if len({position for position, _, _ in slots}) != len(slots):
            raise ValueError("Two placeholders have the same value; give each a value of its own.")
        # Built again with other values, the query must change exactly where the values go: a
        # parameter that does not is a constant equal to a placeholder (and would be replaced),
        # one that changes elsewhere is computed from a value (a date from a datetime...).
        other = {name: _another(value) for name, value in self.placeholders.items()}
        other_sql, other_params = self.build(**other).query.get_compiler(connection=connection).as_sql()
        positions = {position for position, _, _ in slots}
        changed = {i for i, (a, b) in enumerate(zip(params, other_params, strict=True)) if a != b}
        if other_sql != sql or changed != positions:
            raise ValueError(
                "The query's SQL or parameters depend on the values in ways a call cannot replace,"
                " or a constant of the query equals a placeholder."
            )
        if query.selected:
            names = tuple(query.selected)
        else:
            names = (*query.extra_select, *query.values_select, *query.annotation_select)
        fields = [selected[0] for selected in compiler.select[: compiler.col_count]]
        if compiler.has_composite_fields(fields):
            raise TypeError("CompiledQuery does not read composite primary keys.")
        return _Compiled(
            sql=sql,
            params=tuple(params),
            slots=tuple(slots),
            names=names,
            compiler=compiler,
            converters=compiler.get_converters(fields),
        )


_settings_generation = 0


def _forget_all(**kwargs: object) -> None:
    """Settings change only in tests; a query may have been built from any of them."""
    global _settings_generation
    _settings_generation += 1
    for connection in connections.all(initialized_only=True):
        connection.__dict__.pop("compiled_queries", None)


setting_changed.connect(_forget_all)


def _another(value: object) -> object:
    """A different value of the same type, to build the query a second time with."""
    if isinstance(value, datetime):
        return value + timedelta(days=1, microseconds=1)
    if isinstance(value, date):
        return value + timedelta(days=1)
    if isinstance(value, bool):
        raise TypeError("CompiledQuery takes str, int, date and datetime values; a bool changes the SQL.")
    if isinstance(value, int | str):
        return value + type(value)(1 if isinstance(value, int) else "1")
    raise TypeError(f"CompiledQuery takes str, int, date and datetime values, not {type(value).__name__}.")


def _adapter(connection: Any, placeholder: object) -> Callable[[Any], Any] | None:
    """How the backend turns a value of this type into a parameter, where it does."""
    if isinstance(placeholder, datetime):
        return connection.ops.adapt_datetimefield_value
    if isinstance(placeholder, date):
        return connection.ops.adapt_datefield_value
    return None


class SqlLiteral(Value):
    """A constant of the query written into its SQL ('pending'), not passed as a parameter.

    PostgreSQL plans a prepared statement once for all its calls (a generic plan) only if
    that plan is about as cheap as one made for each call's values; a partial index whose
    condition names constants (booking_one_per_slot: the statuses that hold a slot) is only
    usable by a plan that sees those constants in the SQL. Passed as parameters, they make
    the free-slot queries replan on every call. Only for our own constants: a word of ASCII
    letters, digits and underscores, which needs no escaping."""

    def __init__(self, value: str) -> None:
        if not (isinstance(value, str) and value.isascii() and value.replace("_", "").isalnum()):
            raise ValueError(f"A SqlLiteral is a word of ASCII letters, digits and underscores, not {value!r}.")
        super().__init__(str(value), output_field=CharField())

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[()]]:
        return f"'{self.value}'", ()


def sql_literals(values: Sequence[str]) -> list[SqlLiteral]:
    """`field__in=sql_literals(CONSTANTS)`: an IN list of SqlLiteral constants."""
    return [SqlLiteral(value) for value in values]


def columns(model: type[Model], prefix: str = "") -> list[str]:
    """The names to pass to .values() for all of `model`'s columns, reached through `prefix`
    (e.g. "booking__slot__"), for `instance()` to build it from the row."""
    return [prefix + field.attname for field in model._meta.concrete_fields]


def instance[M: Model](model: type[M], row: dict[str, Any], prefix: str = "") -> M | None:
    """The `model` instance whose columns `row` holds under `prefix`, built as the ORM builds
    one (Model.from_db; columns the row lacks are deferred, as with .only()); None where a
    LEFT JOIN found no row."""
    names = [field.attname for field in model._meta.concrete_fields if prefix + field.attname in row]
    if row[prefix + model._meta.pk.attname] is None:
        return None
    return model.from_db(DEFAULT_DB_ALIAS, names, [row[prefix + name] for name in names])
