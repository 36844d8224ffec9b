"""Dependency audit: every distribution installed in this environment, checked against the
vulnerability data PyPI publishes for it (the OSV advisories pip-audit's default service
reads). Exit 1 if any installed release has a known, not withdrawn, vulnerability.

For each distribution it asks PyPI's JSON API for the installed release
(/pypi/NAME/VERSION/json). Where that is not reachable (some mirrors serve only the project
document), the project document (/pypi/NAME/json) still answers for the latest release, so
an installed release that is the latest is checked from it. An older release that cannot be
checked either way is listed as unchecked: a warning, or a failure with --strict.

    python scripts/audit_deps.py [--strict] [--index-url https://pypi.org/pypi] [--ignore ID ...]

Exit status: 0 no known vulnerabilities; 1 vulnerabilities found (or unchecked with
--strict); 2 PyPI could not be reached for any distribution.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

DEFAULT_INDEX = "https://pypi.org/pypi"


@dataclass
class Result:
    name: str
    version: str
    source: str = ""  # "release", "latest", or "" when unchecked
    latest: str = ""
    vulns: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> list[tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            seen.setdefault(normalise(name), (normalise(name), dist.version))
    return sorted(seen.values())


def fetch(url: str, timeout: float) -> dict[str, Any] | None:
    """The JSON document at `url`, or None if it does not exist (404)."""
    headers = {"Accept": "application/json", "User-Agent": "mindsettler-audit"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - main() allows only http(s)
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - an https/http index URL
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if attempt == 2 or exc.code < 500:
                raise
        except (urllib.error.URLError, TimeoutError):
            if attempt == 2:
                raise
    return None


def live(vulns: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [v for v in vulns or [] if not v.get("withdrawn")]


def check(name: str, version: str, index: str, timeout: float) -> Result:
    result = Result(name, version)
    try:
        release = fetch(f"{index}/{name}/{version}/json", timeout)
        if release is not None:
            result.source, result.vulns = "release", live(release.get("vulnerabilities"))
            return result
        project = fetch(f"{index}/{name}/json", timeout)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        result.error = str(getattr(exc, "reason", exc))
        return result
    if project is None:
        result.error = "not on the index (a local or private package?)"
        return result
    result.latest = project.get("info", {}).get("version", "")
    if result.latest == version:
        result.source, result.vulns = "latest", live(project.get("vulnerabilities"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-url", default=DEFAULT_INDEX, help="PyPI's JSON API root (default %(default)s)")
    parser.add_argument("--strict", action="store_true", help="fail when a release cannot be checked")
    parser.add_argument("--ignore", action="append", default=[], metavar="ID", help="an advisory ID to accept")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    index = args.index_url.rstrip("/")
    if not index.startswith(("https://", "http://")):
        parser.error("--index-url must be an http(s) URL")
    ignored = {i.upper() for i in args.ignore}

    dists = installed()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda d: check(d[0], d[1], index, args.timeout), dists))

    unreachable = [r for r in results if r.error]
    if unreachable and len(unreachable) == len(results):
        print(f"error: could not read {index} ({unreachable[0].error}); nothing was checked.", file=sys.stderr)
        return 2
    found = []
    for r in results:
        for v in r.vulns:
            ids = {v.get("id", "").upper(), *(a.upper() for a in v.get("aliases") or [])}
            if not ids & ignored:
                found.append((r, v))
    unchecked = [r for r in results if not r.source and not r.error]
    by_release = sum(r.source == "release" for r in results)
    by_latest = sum(r.source == "latest" for r in results)

    print(f"Dependency audit of {len(results)} installed distributions against PyPI's advisories ({index}):")
    print(f"  {by_release} checked by their installed release, {by_latest} as the latest release")
    for r in unreachable:
        print(f"  not checked: {r.name} {r.version}: {r.error}")
    for r in unchecked:
        print(f"  not checked: {r.name} {r.version} (latest {r.latest}): the index gives no data for older releases")
    for r, v in found:
        fixed = ", ".join(v.get("fixed_in") or []) or "no fixed release yet"
        aliases = ", ".join(v.get("aliases") or [])
        print(
            f"  VULNERABLE: {r.name} {r.version}: {v.get('id')}{f' ({aliases})' if aliases else ''}; fixed in {fixed}"
        )
        if v.get("link"):
            print(f"    {v['link']}")
    if found:
        print(
            f"{len(found)} known vulnerabilities. Upgrade the pins in requirements*.txt, or --ignore an accepted one."
        )
        return 1
    if args.strict and (unchecked or unreachable):
        print(f"{len(unchecked) + len(unreachable)} distributions could not be checked (--strict).")
        return 1
    print("No known vulnerabilities" + (" in what could be checked." if unchecked or unreachable else "."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
