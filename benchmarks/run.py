# ruff: noqa: S603, S607 - a harness: it runs the commands it builds itself (wrk, gunicorn, git, manage.py).
"""`make bench`: seed a large data set, serve it with gunicorn in production settings, load it
with wrk, and compare every endpoint with a ceiling measured in the same run.

See benchmarks/README.md for the method and how to read the table. Configuration (environment):

  BENCH_SECONDS=10      measured seconds per endpoint      BENCH_WARMUP=2  warm-up seconds
  BENCH_CONNECTIONS=16  wrk connections (-c)               BENCH_THREADS=2 wrk threads (-t)
  BENCH_WORKERS=2       gunicorn workers                   BENCH_PORT=8140 first port to try
  BENCH_DB=auto|postgres|sqlite   auto: DATABASE_URL if set, else a throwaway PostgreSQL
                        cluster when its server binaries are installed, else SQLite
  BENCH_PG_PORT=54340   first port for the throwaway cluster
  BENCH_SEED_ARGS       extra seed_bench options, e.g. "--bookings 2000" (for quick checks)
  BENCH_ONLY=a,b        run only these endpoint keys (the ceilings always run)
  BENCH_URL_<KEY>       override an endpoint's path (and query), e.g. BENCH_URL_STAFF_LIST
  BENCH_STRICT=1        exit 1 if any endpoint is skipped, invalid or misses its target
  BENCH_KEEP=1          keep the temporary directory (database, logs) for inspection
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PY = sys.executable
GUNICORN = str(Path(PY).with_name("gunicorn"))
PG_SCRIPT = ROOT / "scripts" / "pg-throwaway.sh"

# The targets: (minimum ratio to the one-query ceiling, maximum p99 in ms).
TARGETS: dict[str, tuple[float, float]] = {
    "fast": (0.8, 40.0),  # status lookup, chatbot status, booking page
    "page": (0.6, 60.0),  # home, wizard slot step (busy day)
    "heavy": (0.4, 100.0),  # availability (week), staff calendar feed (month), staff list
}
WORKER_RSS_TARGET_MB = 120.0
CEILING = "ceiling_query"
CEILING_END = "ceiling_query_end"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"error: {name} must be a positive whole number, not {raw!r}")
    return int(raw)


SECONDS = env_int("BENCH_SECONDS", 10)
WARMUP = env_int("BENCH_WARMUP", 2)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 16)
THREADS = env_int("BENCH_THREADS", 2)
WORKERS = env_int("BENCH_WORKERS", 2)
# A share of CPU time taken by the host above which the run is called noisy (cpu_times).
STEAL_NOISY = 0.03


@dataclass
class Endpoint:
    key: str
    label: str
    target: str | None  # a TARGETS key; None for the ceilings and informational rows
    path: str = ""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    expect_all: list[str] = field(default_factory=list)  # the probe's body must hold all of these
    expect_any: list[str] = field(default_factory=list)  # ... and at least one of these
    note: str = ""
    skipped: str = ""
    probe_status: int | None = None
    probe_bytes: int | None = None
    probe_ms: float | None = None  # one request on a cold worker, before the load
    queries: int | None = None  # SQL queries for one request (see count_queries)
    wrk: dict[str, Any] | None = None
    verdict: str = ""


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", flush=True)


def free_port(first: int) -> int:
    for port in range(first, first + 50):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    sys.exit(f"error: no free port in {first}-{first + 49}")


def run(cmd: list[str], env: dict[str, str], what: str) -> str:
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}): {shlex.join(cmd)}")
    log(f"{what}: {time.monotonic() - started:.1f} s")
    return proc.stdout


# --- Database ------------------------------------------------------------------------------


class Database:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg_dir: Path | None = None
        self.url = ""
        self.kind = ""

    def start(self) -> None:
        choice = os.environ.get("BENCH_DB", "auto").strip().lower() or "auto"
        if choice not in ("auto", "postgres", "sqlite"):
            sys.exit("error: BENCH_DB must be auto, postgres or sqlite")
        given = os.environ.get("DATABASE_URL", "").strip()
        if given and choice != "sqlite":
            self.url, self.kind = given, "given DATABASE_URL"
            log(f"database: DATABASE_URL from the environment ({urlsplit(given).scheme}); it must be empty")
            return
        has_pg = bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))
        if choice == "postgres" and not has_pg:
            sys.exit("error: BENCH_DB=postgres but no PostgreSQL server binaries (apt-get install postgresql)")
        if choice == "sqlite" or not has_pg:
            self.url = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
            self.kind = "sqlite (temporary file)"
            log("database: SQLite in a temporary file (PostgreSQL server binaries not used or not found)")
            return
        # The PostgreSQL server refuses to run as root; the script runs it as 'postgres', which
        # needs a directory of its own (the workdir is private to us).
        self.pg_dir = Path(tempfile.mkdtemp(prefix="mindsettler-bench-pg-"))
        port = free_port(env_int("BENCH_PG_PORT", 54340))
        out = subprocess.run(
            [str(PG_SCRIPT), "start", str(self.pg_dir), str(port)], capture_output=True, text=True, check=False
        )
        match = re.search(r"DATABASE_URL=(\S+)", out.stdout)
        if out.returncode != 0 or not match:
            sys.exit(f"error: could not start the throwaway PostgreSQL cluster:\n{out.stdout}{out.stderr}")
        self.url = match.group(1)
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mindsettler"],
            check=True,
        )
        self.kind = f"postgresql (throwaway cluster on port {port})"
        log(f"database: {self.kind}")

    def stop(self) -> None:
        if self.pg_dir is not None:
            subprocess.run([str(PG_SCRIPT), "stop", str(self.pg_dir)], check=False, capture_output=True)
            shutil.rmtree(self.pg_dir, ignore_errors=True)


# --- Preparing the targets (in this process, with Django set up) ----------------------------


def prepare(seed: dict[str, Any], csrf: str) -> tuple[list[Endpoint], dict[str, Any]]:
    """The endpoints to measure, with what their responses must contain, and a staff session."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.db.models import Q
    from django.utils import timezone

    from bookings.lifecycle import NEXT_STEPS
    from bookings.models import SLOT_HOLDING_STATUSES, Booking, Counsellor, Slot, Status

    staff_cookie = _staff_session(seed["admin_email"])
    tz = timezone.get_current_timezone()
    busy_day = date.fromisoformat(seed["busy_day"])
    today = date.fromisoformat(seed["today"])
    cookie_name, csrf_cookie = settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME
    ack = seed["ack_id"]

    def aware(day: date) -> datetime:
        return timezone.make_aware(datetime.combine(day, datetime.min.time()), tz)

    held = Q(bookings__status__in=SLOT_HOLDING_STATUSES)
    busy_free = Slot.objects.filter(start__gte=aware(busy_day), start__lt=aware(busy_day + timedelta(days=1)))
    busy_free_ids = [str(pk) for pk in busy_free.exclude(held).values_list("pk", flat=True)]
    names = list(Counsellor.objects.values_list("display_name", flat=True))
    month_start, month_end = today - timedelta(days=14), today + timedelta(days=16)
    in_month = Booking.objects.filter(
        status__in=SLOT_HOLDING_STATUSES, slot__start__gte=aware(month_start), slot__start__lt=aware(month_end)
    )
    counsellor = Counsellor.objects.order_by("sort_order").first()
    assert counsellor is not None
    one_counsellor_acks = list(in_month.filter(counsellor=counsellor).values_list("ack_id", flat=True))
    pending_acks = list(Booking.objects.filter(status=Status.PENDING).values_list("ack_id", flat=True))
    feed_range = {"start": f"{month_start}T00:00:00", "end": f"{month_end}T00:00:00"}
    # A signed-in browser holds the CSRF cookie too (signing in posted a form). Without it,
    # every page that shows a form would mint a new CSRF secret, as on a first visit.
    staff = {"Cookie": f"{cookie_name}={staff_cookie}; {csrf_cookie}={csrf}"}
    booking_page = _reverse("bookings:booking_page", [seed["booking_token"]], f"/bookings/{seed['booking_token']}/")

    endpoints = [
        Endpoint("ceiling_trivial", "ceiling: trivial view", None, "/__bench__/ceiling/trivial", expect_all=["ok"]),
        Endpoint(CEILING, "ceiling: 1 query + template", None, f"/__bench__/ceiling/query/{ack}", expect_all=[ack]),
        # For reading the table: the same query in the site's layout with a form, a first visit.
        Endpoint(
            "ceiling_page",
            "ceiling: 1 query in the site's layout",
            None,
            f"/__bench__/ceiling/page/{ack}",
            expect_all=[ack],
        ),
        Endpoint("home", "home", "page", _reverse("bookings:home", [], "/"), expect_all=[settings.CLINIC_NAME]),
        Endpoint(
            "wizard_slots",
            "wizard slot step (busy day, htmx)",
            "page",
            note=f"{busy_day}: {len(busy_free_ids)} free slots of {busy_free.count()}",
            expect_any=[f'value="{pk}"' for pk in busy_free_ids],
        ),
        Endpoint(
            "status_lookup",
            "status lookup by ack ID",
            "fast",
            _reverse("bookings:status", [], "/status/"),
            method="POST",
            headers={"Cookie": f"{csrf_cookie}={csrf}"},
            body=urlencode({"csrfmiddlewaretoken": csrf, "lookup": "ack", "ack_id": ack}),
            expect_all=[escape(NEXT_STEPS[Status.CONFIRMED])],
        ),
        Endpoint("booking_page", "private booking page", "fast", booking_page, expect_all=[ack]),
        Endpoint(
            "api_status",
            "chatbot status (API)",
            "fast",
            _reverse("api:booking_status", [ack], f"/api/v1/bookings/{ack}"),
            headers={"Authorization": f"Bearer {seed['api_token']}"},
            expect_all=[ack],
        ),
        Endpoint(
            "api_availability",
            "availability, one week (API)",
            "heavy",
            _reverse("api:availability", [], "/api/v1/availability")
            + "?"
            + urlencode({"from": busy_day, "to": busy_day + timedelta(days=6)}),
            headers={"Authorization": f"Bearer {seed['api_token']}"},
            expect_any=names,
        ),
        Endpoint(
            "calendar_feed",
            "staff calendar feed, month, 1 counsellor",
            "heavy",
            _reverse("staff:calendar_feed", [], "/staff/calendar/feed/")
            + "?"
            + urlencode({**feed_range, "counsellor": counsellor.pk}),
            headers=staff,
            expect_any=one_counsellor_acks,
            note=f"{len(one_counsellor_acks)} bookings in range",
        ),
        Endpoint(
            "calendar_feed_all",
            "staff calendar feed, month, all counsellors",
            None,
            # What the Month view of every counsellor asks for: each day's totals.
            _reverse("staff:calendar_feed", [], "/staff/calendar/feed/")
            + "?"
            + urlencode({**feed_range, "summary": "month"}),
            headers=staff,
            expect_all=[' sessions"', " free slot"],
            note=f"{in_month.count()} bookings in range, as each day's totals; informational, no target",
        ),
        Endpoint(
            "staff_list",
            "staff list, status=pending",
            "heavy",
            _reverse("staff:booking_list", [], "/staff/bookings/") + "?status=pending",
            headers=staff,
            expect_any=pending_acks,
        ),
        # The ceiling again, last: the machine may have changed under the run (see README).
        Endpoint(
            CEILING_END, "ceiling: 1 query + template, again", None, f"/__bench__/ceiling/query/{ack}", expect_all=[ack]
        ),
    ]
    for endpoint in endpoints:
        override = os.environ.get(f"BENCH_URL_{endpoint.key.upper()}", "").strip()
        if override:
            endpoint.path = override
            endpoint.note = (
                (endpoint.note + "; " if endpoint.note else "") + "path from BENCH_URL_" + endpoint.key.upper()
            )
    info = {"vendor": connection.vendor, "db_version": _db_version(connection), "staff_cookie": staff_cookie}
    info["wizard"] = {"session_type": seed["session_type_id"], "day": seed["busy_day"]}
    connection.close()
    return endpoints, info


def _reverse(name: str, args: list[Any], fallback: str) -> str:
    """The path by URL name; the contract's path if the URL is not there (yet): the probe then
    reports it, instead of the harness failing."""
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(name, args=args)
    except (NoReverseMatch, ImportError, AttributeError):
        return fallback
    except Exception as exc:  # a half-written URLconf elsewhere in the tree
        log(f"warning: could not reverse {name} ({type(exc).__name__}: {exc}); using {fallback}")
        return fallback


def _db_version(connection: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("select sqlite_version()" if connection.vendor == "sqlite" else "show server_version")
        return str(cursor.fetchone()[0])


def _staff_session(email: str) -> str:
    """A signed-in administrator's session, as allauth leaves it after password + TOTP."""
    from importlib import import_module

    from allauth.mfa.models import Authenticator
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    user = get_user_model().objects.get(email=email)
    totp = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    now = time.time()
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "staff.backends.AuthenticationBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store["account_authentication_methods"] = [
        {"method": "password", "at": now, "email": user.email},
        {"method": "mfa", "at": now, "id": totp.pk, "type": "totp"},
    ]
    store["account_authentication_methods_user"] = str(user.pk)
    store["staff_last_seen"] = int(now)  # staff.middleware: idle timeout
    store.create()
    return store.session_key


# --- HTTP helpers (stdlib; no redirects followed) -------------------------------------------


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: str = "") -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        hdrs = {"Host": "127.0.0.1", **(headers or {})}
        if body:
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body.encode() if body else None, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def set_cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    cookies = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            cookies[key.strip()] = rest.split(";", 1)[0]
    return cookies


def setup_wizard(endpoint: Endpoint, port: int, info: dict[str, Any], csrf: str) -> None:
    """Walk the wizard as a browser does: start a run, choose the session type and the busy day
    (a POST that only refreshes the picker), then measure the htmx GET of that step."""
    path = _wizard_path()
    status, headers, _ = request(port, "GET", path)
    location = {k.lower(): v for k, v in headers}.get("location", "")
    cookies = set_cookies(headers)
    session = cookies.get("sessionid", "")
    if status not in (301, 302, 303) or not location or not session:
        endpoint.skipped = f"GET {path} gave HTTP {status}, not a redirect into a wizard run with a session"
        return
    step = urlsplit(location)
    step_path = step.path + ("?" + step.query if step.query else "")
    cookie = f"sessionid={session}; csrftoken={csrf}"
    form = {
        "csrfmiddlewaretoken": csrf,
        "session_type": info["wizard"]["session_type"],
        "mode": "online",
        "counsellor": "",
        "day": info["wizard"]["day"],
        "_refresh": "1",
    }
    # Without JavaScript the choice is saved and answered with a redirect to the step (303);
    # with htmx, with the picker (200). Either way the run now holds the busy day.
    status, _, _ = request(port, "POST", step_path, {"Cookie": cookie}, urlencode(form))
    if status not in (200, 303):
        endpoint.skipped = f"choosing the busy day (POST {step.path}) gave HTTP {status}"
        return
    endpoint.path = endpoint.path or step_path
    # The browser keeps both cookies: the session, and the CSRF cookie it has just posted with.
    endpoint.headers = {"Cookie": cookie, "HX-Request": "true"}


def _wizard_path() -> str:
    return os.environ.get("BENCH_WIZARD_START", "/book/")


def probe(endpoint: Endpoint, port: int) -> None:
    """One request before the load: it must answer 200 with the content the endpoint is for,
    or the endpoint is skipped with the reason (a fast 404 or 500 is not a result)."""
    try:
        started = time.monotonic()
        status, _, body = request(port, endpoint.method, endpoint.path, endpoint.headers, endpoint.body)
        endpoint.probe_ms = round((time.monotonic() - started) * 1000, 1)
    except OSError as exc:
        endpoint.skipped = f"probe failed: {exc}"
        return
    endpoint.probe_status, endpoint.probe_bytes = status, len(body)
    text = body.decode("utf-8", "replace")
    if status != 200:
        endpoint.skipped = f"probe: HTTP {status}" + (" (not built yet?)" if status in (404, 500, 501) else "")
        return
    missing = [s for s in endpoint.expect_all if s not in text]
    if missing:
        endpoint.skipped = f"probe: HTTP 200 but without {missing[0][:60]!r}"
    elif endpoint.expect_any and not any(s in text for s in endpoint.expect_any):
        endpoint.skipped = f"probe: HTTP 200 but none of the {len(endpoint.expect_any)} expected items"


def count_queries(endpoints: list[Endpoint]) -> None:
    """SQL queries per request, with Django's test client in this process (same settings, same
    database, same cookies): a column in the table, not a test (query budgets are tests)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(SERVER_NAME="127.0.0.1")
    for e in endpoints:
        if e.skipped:
            continue
        headers = {k: v for k, v in e.headers.items() if k != "Cookie"}
        client.cookies.clear()
        for pair in e.headers.get("Cookie", "").split(";"):
            if "=" in pair:
                name, value = pair.strip().split("=", 1)
                client.cookies[name] = value
        call = client.post if e.method == "POST" else client.get
        kwargs: dict[str, Any] = {"headers": headers}
        if e.method == "POST":
            kwargs.update(data=e.body, content_type="application/x-www-form-urlencoded")
        try:
            with CaptureQueriesContext(connection) as queries:
                response = call(e.path, **kwargs)
        except Exception as exc:
            log(f"could not count queries for {e.key}: {type(exc).__name__}: {exc}")
            continue
        if response.status_code == 200:
            e.queries = len(queries)
    connection.close()


# --- Load ------------------------------------------------------------------------------------


def wrk(endpoint: Endpoint, port: int, seconds: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-c{CONNECTIONS}",
        f"-t{THREADS}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "report.lua"),
    ]
    for name, value in endpoint.headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(f"http://127.0.0.1:{port}{endpoint.path}")
    env = {**os.environ, "BENCH_METHOD": endpoint.method, "BENCH_BODY": endpoint.body}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), "")
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    result = json.loads(line.removeprefix("BENCH_JSON "))
    duration = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / duration if duration else 0.0
    result["socket_errors"] = sum(v for k, v in result["errors"].items() if k != "status")
    return result


def judge(endpoint: Endpoint, ceiling_rps: float | None) -> None:
    r = endpoint.wrk
    if endpoint.skipped or r is None:
        endpoint.verdict = "SKIPPED"
        return
    if r["non2xx"] or r["socket_errors"] or not r["requests"]:
        # Failures are fast and no answer is no result: these numbers mean nothing.
        endpoint.verdict = "INVALID" if r["requests"] else "INVALID: no response within the run"
        return
    r["ratio"] = r["rps"] / ceiling_rps if ceiling_rps else None
    if endpoint.target is None:
        endpoint.verdict = "-"
        return
    min_ratio, max_p99 = TARGETS[endpoint.target]
    misses = []
    if r["ratio"] is None or r["ratio"] < min_ratio:
        misses.append("ratio")
    if r["latency_us"]["p99"] / 1000 > max_p99:
        misses.append("p99")
    endpoint.verdict = "ok" if not misses else "MISS " + "+".join(misses)


# --- gunicorn -------------------------------------------------------------------------------


class Server:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.log_path = workdir / "gunicorn.log"
        self.port = free_port(env_int("BENCH_PORT", 8140))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            GUNICORN,
            "mindsettler.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
        ]
        # gunicorn's own log and the app's (Django logs to stderr) go to one file.
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"error: gunicorn exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if request(self.port, "GET", "/healthz")[0] == 200 and len(self.workers()) == WORKERS:
                    log(f"gunicorn: {WORKERS} sync workers on 127.0.0.1:{self.port} (pid {self.proc.pid})")
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"error: gunicorn did not answer /healthz within 60 s:\n{self.log_tail()}")

    def drain(self) -> None:
        """Wait until the requests wrk left in flight are served. Sync workers take them from
        the listen queue in turn, so a slow endpoint's leftovers would otherwise eat into the
        next endpoint's run."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = time.monotonic()
            with contextlib.suppress(OSError):
                request(self.port, "GET", "/__bench__/ceiling/trivial")
            if time.monotonic() - started < 0.05:
                return
        log("warning: the server stayed busy for 60 s after a run")

    def workers(self) -> list[int]:
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def memory(self) -> list[dict[str, Any]]:
        out = []
        for pid in self.workers():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", status, re.M))
            out.append({"pid": pid, "peak_rss_mb": int(fields["VmHWM"]) / 1024, "rss_mb": int(fields["VmRSS"]) / 1024})
        return out

    def errors(self) -> int:
        try:
            return sum(
                1 for line in self.log_path.read_text().splitlines() if "ERROR" in line or line.startswith("Traceback")
            )
        except OSError:
            return 0

    def log_tail(self) -> str:
        try:
            return "".join(self.log_path.read_text().splitlines(keepends=True)[-30:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- Reporting ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def first(path: str, prefix: str) -> str:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return ""
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), "")

    cpu = first("/proc/cpuinfo", "model name")
    mem_kb = int(first("/proc/meminfo", "MemTotal").split()[0] or 0) if first("/proc/meminfo", "MemTotal") else 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_times() -> tuple[int, int] | None:
    """(steal, total): the CPU time of all cores since boot, in clock ticks, from /proc/stat;
    None where there is none (not Linux). Steal is the time a virtual machine's host gave its
    CPUs to others: on a shared cloud machine, the run's requests per second fall with it."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user's)
    ticks = [int(value) for value in fields[1:9]]
    return ticks[7], sum(ticks)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


def git_revision() -> str:
    def out(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    rev = out("rev-parse", "--short", "HEAD")
    return rev + ("+dirty" if out("status", "--porcelain", "--untracked-files=no") else "") if rev else "unknown"


def table(endpoints: list[Endpoint]) -> str:
    head = (
        f"{'endpoint':<44} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x ceil':>7} {'target':>14} "
        f"{'non-2xx':>7} {'SQL':>4} {'KB':>6}  verdict"
    )
    lines = [head, "-" * len(head)]
    for e in endpoints:
        target = ""
        if e.target:
            ratio, p99 = TARGETS[e.target]
            target = f">={ratio:.1f}x <={p99:.0f}ms"
        r = e.wrk
        if r is None:
            lines.append(
                f"{e.label:<44} {'':>8} {'':>7} {'':>7} {'':>7} {target:>14} {'':>7}  {e.verdict}: {e.skipped}"
            )
            continue
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else ""
        bad = r["non2xx"] + r["socket_errors"]
        lines.append(
            f"{e.label:<44} {r['rps']:>8.1f} {r['latency_us']['p50'] / 1000:>7.1f} {r['latency_us']['p99'] / 1000:>7.1f} "
            f"{ratio:>7} {target:>14} {bad:>7} {'' if e.queries is None else e.queries:>4} "
            f"{(e.probe_bytes or 0) / 1024:>6.1f}  {e.verdict}"
        )
    return "\n".join(lines)


def memory_lines(memory: list[dict[str, Any]]) -> str:
    peak = max((m["peak_rss_mb"] for m in memory), default=0.0)
    verdict = "ok" if peak and peak <= WORKER_RSS_TARGET_MB else ("MISS" if peak else "unknown")
    per = ", ".join(f"pid {m['pid']}: peak {m['peak_rss_mb']:.1f} MB (now {m['rss_mb']:.1f})" for m in memory)
    return f"gunicorn workers after the run: {per}\nworker peak RSS {peak:.1f} MB, target <= {WORKER_RSS_TARGET_MB:.0f} MB: {verdict}"


# --- Main -----------------------------------------------------------------------------------


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # runs the clean-up in main()'s finally


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    if shutil.which("wrk") is None:
        print(
            "error: wrk is not installed. make bench installs nothing by itself; install it with\n"
            "  sudo apt-get install wrk        (Debian/Ubuntu; on macOS: brew install wrk)",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="mindsettler-bench-"))
    db = Database(workdir)
    server: Server | None = None
    load = machine()["load_average_at_start"]
    if load[0] > 0.5:
        log(f"warning: the machine is busy (load average {load[0]}); numbers will be noisy")
    try:
        db.start()
        csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "RATELIMIT_ENABLED": "false",
            "DB_CONN_MAX_AGE": "600",
            "DATABASE_URL": db.url,
            "SITE_URL": "http://127.0.0.1",
            "EMAIL_BACKEND": "locmem",
            "TASKS_BACKEND": "immediate",
            "LOG_LEVEL": "WARNING",
            "STATIC_ROOT": str(workdir / "static"),
        }
        manage = [PY, "manage.py"]
        run([*manage, "migrate", "--noinput", "--skip-checks", "-v0"], env, "migrate")
        run([*manage, "createcachetable"], env, "createcachetable")
        collect = [*manage, "collectstatic", "--noinput", "--skip-checks", "-v0"]
        run(collect, env, "collectstatic")
        seed_path = workdir / "seed.json"
        seed_args = shlex.split(os.environ.get("BENCH_SEED_ARGS", ""))
        log(
            run(
                [*manage, "seed_bench", "--skip-checks", "--json", str(seed_path), *seed_args], env, "seed_bench"
            ).splitlines()[0]
        )
        seed = json.loads(seed_path.read_text())

        os.environ.update(env)  # this process sets Django up with the same settings and database
        sys.path.insert(0, str(ROOT))
        endpoints, info = prepare(seed, csrf)
        only = {k.strip() for k in os.environ.get("BENCH_ONLY", "").split(",") if k.strip()}
        for e in endpoints:
            if only and e.key not in only and not e.key.startswith("ceiling"):
                e.skipped = "not in BENCH_ONLY"

        server = Server(env, workdir)
        server.start()
        for e in endpoints:
            if e.skipped:
                continue
            if e.key == "wizard_slots":
                setup_wizard(e, server.port, info, csrf)
            if not e.skipped:
                probe(e, server.port)
            if e.skipped:
                log(f"skip {e.key}: {e.skipped}")
            else:
                log(f"probe {e.key}: {e.probe_bytes} bytes in {e.probe_ms} ms")
        count_queries(endpoints)
        ceiling = next(e for e in endpoints if e.key == CEILING)
        if ceiling.skipped:
            raise SystemExit(f"error: the ceiling view does not work ({ceiling.skipped}):\n{server.log_tail()}")

        ticks_before = cpu_times()
        for e in endpoints:
            if e.skipped:
                continue
            server.drain()
            wrk(e, server.port, WARMUP)
            e.wrk = wrk(e, server.port, SECONDS)
            r = e.wrk
            log(
                f"{e.key}: {r['rps']:.1f} req/s, p50 {r['latency_us']['p50'] / 1000:.1f} ms, "
                f"p99 {r['latency_us']['p99'] / 1000:.1f} ms, non-2xx {r['non2xx']}, socket errors {r['socket_errors']}"
            )
        steal = steal_share(ticks_before, cpu_times())
        memory = server.memory()
        server_errors = server.errors()
        # The endpoints are compared with the better of the two ceiling runs: the framework's
        # limit on this machine; a big gap between them says the machine was not quiet.
        ceilings = [e.wrk["rps"] for e in endpoints if e.key in (CEILING, CEILING_END) and e.wrk and e.wrk["requests"]]
        ceiling_rps = max(ceilings, default=0.0)
        drift = (max(ceilings) - min(ceilings)) / max(ceilings) if len(ceilings) == 2 else 0.0
        for e in endpoints:
            judge(e, ceiling_rps)

        result = {
            "timestamp": stamp,
            "machine": machine(),
            "revision": git_revision(),
            "database": {"kind": db.kind, "vendor": info["vendor"], "version": info["db_version"]},
            "seed": {k: seed[k] for k in ("counts", "rows", "counsellors", "busy_day")},
            "config": {
                "seconds": SECONDS,
                "warmup": WARMUP,
                "connections": CONNECTIONS,
                "threads": THREADS,
                "gunicorn_workers": WORKERS,
                "load_average_at_start": load,
            },
            "targets": {k: {"min_ratio": v[0], "max_p99_ms": v[1]} for k, v in TARGETS.items()},
            "ceiling_rps": ceiling_rps,
            "ceiling_drift": round(drift, 3),
            "cpu_steal_during_load": steal,
            "endpoints": [
                {k: v for k, v in asdict(e).items() if k not in ("headers", "body", "expect_all", "expect_any")}
                for e in endpoints
            ],
            "server_log_errors": server_errors,
            "workers": memory,
            "worker_peak_rss_mb": max((m["peak_rss_mb"] for m in memory), default=None),
            "elapsed_seconds": round(time.monotonic() - started, 1),
        }
        out_dir = HERE / "results"
        out_dir.mkdir(exist_ok=True)
        out_path = out_dir / f"{stamp}.json"
        out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")

        m = result["machine"]
        print()
        print(
            f"MindSettler benchmark {stamp} - {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
            f"{db.kind} {info['db_version']}, revision {result['revision']}"
        )
        print(
            f"gunicorn {WORKERS} sync workers; wrk -c{CONNECTIONS} -t{THREADS}, {WARMUP} s warm-up + {SECONDS} s each; "
            f"load average at start {load[0]}"
            + (f"; CPU steal during the load {steal:.1%}" if steal is not None else "")
        )
        print()
        print(table(endpoints))
        print()
        print(memory_lines(memory))
        print(
            f"ceiling (1 query) at the start and at the end: {', '.join(f'{c:.1f}' for c in ceilings)} req/s; "
            f"ratios use {ceiling_rps:.1f}"
            + (f" - WARNING: {drift:.0%} apart, the machine was busy; numbers are noisy" if drift > 0.15 else "")
        )
        if steal is not None and steal > STEAL_NOISY:
            print(
                f"warning: this machine's host gave {steal:.0%} of its CPU time to others during the load "
                "(steal); requests per second fell with it, and the ratios are noisy"
            )
        if server_errors:
            print(f"warning: {server_errors} ERROR lines in the server log; last lines:\n{server.log_tail()}")
        for e in endpoints:
            if e.note and not e.skipped:
                print(f"  note {e.key}: {e.note}")
        print(f"\nresults: {out_path.relative_to(ROOT)}   ({result['elapsed_seconds']} s in all)")
        bad = [e for e in endpoints if e.verdict not in ("ok", "-")]
        if os.environ.get("BENCH_STRICT") == "1" and bad:
            return 1
        return 0
    finally:
        if server is not None:
            server.stop()
        db.stop()
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
