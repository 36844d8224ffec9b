"""Real concurrency on PostgreSQL: calls released at the same moment, or made certain: one call
holds its transaction open while another, in a second thread with its own connection, must
wait for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from django.db import connection, connections, transaction

from bookings.errors import BookingError


def at_once(calls: Sequence[Callable[[], object]], *, ordered: bool = False) -> list[object]:
    """Run `calls` at the same moment, one thread (and database connection) each; what each
    returned, in the order they finished (`ordered`: in the order of `calls`). An exception
    is a bug, returned as "unexpected <type>: <message>" for the test to show."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = []
    finished: dict[int, object] = {}
    lock = threading.Lock()

    def run(call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            result = call()
        except Exception as exc:  # a bug: the test shows it
            result = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            connections.close_all()
        with lock:
            results.append(result)
            finished[id(call)] = result

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return [finished.get(id(call)) for call in calls] if ordered else results


def backend_pid() -> int:
    """The PostgreSQL server process of this thread's connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def waits_on_a_lock(pid: int) -> bool:
    """Whether the server process `pid` is waiting for a lock another transaction holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", [pid])
        return cursor.fetchone()[0]


def held_open(first: Callable[[], object], second: Callable[[], object]) -> tuple[str, str]:
    """Run `first` in a transaction kept open until `second`, started meanwhile in another
    thread, is seen waiting for a lock (PostgreSQL's pg_locks); `second` must wait for it.
    Returns both outcomes."""
    started, release = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}
    pids: dict[str, int] = {}

    def run(name: str, call: Callable[[], object], hold: bool) -> None:
        try:
            with transaction.atomic():
                pids[name] = backend_pid()
                call()
                if hold:
                    started.set()
                    release.wait(timeout=10)
            outcomes[name] = "ok"
        except BookingError as error:
            outcomes[name] = error.field or error.code
        finally:
            connections.close_all()

    one = threading.Thread(target=run, args=("first", first, True))
    one.start()
    assert started.wait(timeout=10)
    two = threading.Thread(target=run, args=("second", second, False))
    two.start()
    waited = False
    deadline = time.monotonic() + 10
    while two.is_alive() and not waited and time.monotonic() < deadline:
        waited = "second" in pids and waits_on_a_lock(pids["second"])
        time.sleep(0.005)
    release.set()
    one.join(timeout=10)
    two.join(timeout=10)
    assert waited, "the second did not wait for the first"
    return outcomes["first"], outcomes["second"]
