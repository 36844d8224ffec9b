"""scripts/audit_deps.py against a PyPI-shaped JSON index served on loopback.

The installed distributions are this environment's own; the index answers for all of them
and gives Django (installed, so always present) whatever advisory a test needs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any

import pytest

from scripts import audit_deps

DJANGO = metadata.version("django")
INSTALLED = dict(audit_deps.installed())
ADVISORY = {
    "id": "PYSEC-2099-1",
    "aliases": ["CVE-2099-0001"],
    "fixed_in": ["99.0"],
    "link": "https://osv.dev/vulnerability/PYSEC-2099-1",
    "withdrawn": None,
}


class Index:
    """What the fake index answers: per-release documents or not, and Django's advisories."""

    def __init__(self) -> None:
        self.per_release = True
        self.django_vulns: list[dict[str, Any]] = []
        self.django_latest = DJANGO

    def document(self, path: str) -> dict[str, Any] | None:
        parts = path.strip("/").split("/")  # pypi/NAME/json or pypi/NAME/VERSION/json
        if len(parts) == 4:
            if not self.per_release:
                return None
            name, version = parts[1], parts[2]
            vulns = self.django_vulns if name == "django" and version == DJANGO else []
            return {"info": {"version": version}, "vulnerabilities": vulns}
        name = parts[1]
        if name == "django":
            vulns = self.django_vulns if self.django_latest == DJANGO else []
            return {"info": {"version": self.django_latest}, "vulnerabilities": vulns}
        return {"info": {"version": INSTALLED[name]}, "vulnerabilities": []}


@pytest.fixture
def index() -> Iterator[tuple[Index, str]]:
    state = Index()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc = state.document(self.path)
            body = json.dumps(doc).encode() if doc is not None else b"{}"
            self.send_response(200 if doc is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # The audit asks with 8 threads at once; socketserver's default backlog of 5 refused
        # connections on a busy machine (the test suite's other worker), failing the audit.
        request_queue_size = 64

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/pypi"
    finally:
        server.shutdown()
        server.server_close()


def audit(url: str, *extra: str) -> int:
    return audit_deps.main(["--index-url", url, "--timeout", "5", *extra])


def test_clean_environment_passes(index: tuple[Index, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, url = index
    assert audit(url) == 0
    out = capsys.readouterr().out
    assert f"{len(INSTALLED)} checked by their installed release" in out
    assert "No known vulnerabilities." in out


def test_a_vulnerable_installed_release_fails_naming_the_advisory(
    index: tuple[Index, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = index
    state.django_vulns = [ADVISORY]
    assert audit(url) == 1
    out = capsys.readouterr().out
    assert f"VULNERABLE: django {DJANGO}: PYSEC-2099-1 (CVE-2099-0001); fixed in 99.0" in out


def test_withdrawn_advisories_and_ignored_ids_do_not_fail(index: tuple[Index, str]) -> None:
    state, url = index
    state.django_vulns = [{**ADVISORY, "withdrawn": "2099-02-01T00:00:00Z"}]
    assert audit(url) == 0
    state.django_vulns = [ADVISORY]
    assert audit(url, "--ignore", "cve-2099-0001") == 0


def test_without_per_release_data_the_latest_release_is_checked_from_the_project(
    index: tuple[Index, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = index
    state.per_release = False
    state.django_vulns = [ADVISORY]
    assert audit(url) == 1
    out = capsys.readouterr().out
    assert f"{len(INSTALLED)} as the latest release" in out
    assert "PYSEC-2099-1" in out


def test_an_older_release_without_per_release_data_is_reported_unchecked(
    index: tuple[Index, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = index
    state.per_release = False
    state.django_latest = "99.0"
    assert audit(url) == 0
    assert f"not checked: django {DJANGO} (latest 99.0)" in capsys.readouterr().out
    assert audit(url, "--strict") == 1


def test_an_unreachable_index_is_an_error_not_a_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert audit("http://127.0.0.1:9/pypi") == 2
    assert "nothing was checked" in capsys.readouterr().err
