"""A browser tab that checks every page it lands on, and helpers the journeys share.

`Tab.check()` is called after each page a person would look at. It fails on:

- any console error or uncaught exception in the page, and any Content-Security-Policy
  violation (reported by a `securitypolicyviolation` listener injected before the page's own
  scripts, and by Chromium's console message);
- any request to another origin;
- a page heavier than its budget: the sum of the gzip-compressed bodies of everything it
  loaded (document, CSS, JS, images, htmx fragments). Django's live server does not compress,
  so each body is gzipped here (level 6, what a typical nginx or whitenoise-less proxy does)
  and the sizes summed: that is what a client would download over a compressing server;
- serious or critical accessibility violations found by axe-core (vendored in e2e/vendor/,
  evaluated through the DevTools protocol, so the page's CSP stays on and still applies to
  everything the page itself does).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core import mail
from playwright.sync_api import Browser, BrowserContext, Page, Request

VENDOR = Path(__file__).parent / "vendor"
AXE_SOURCE = (VENDOR / "axe.min.js").read_text(encoding="utf-8")

# No network here and none wanted: background networking, updates and sync stay off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

PUBLIC_BUDGET = 60 * 1024
STAFF_BUDGET = 200 * 1024  # the staff calendar (FullCalendar) is the heavy one
PHONE = {"width": 375, "height": 667}

# Reports CSP violations to the test as they happen, whichever page they occur on.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__msCspViolation && window.__msCspViolation(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} on ${location.pathname}` +
    (e.sourceFile ? ` (from ${e.sourceFile}:${e.lineNumber}:${e.columnNumber} ${e.sample || ""})` : "")
  );
});
"""

AXE_RUN = """
async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + (n.failureSummary || "")),
    }));
}
"""

# Is the focused element visibly marked? Our CSS draws a 3px outline on :focus-visible.
FOCUS_VISIBLE = """
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
  const ring = style.boxShadow && style.boxShadow !== "none";
  return { visible: el.matches(":focus-visible") && (outline || ring),
           what: el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + (el.textContent || "").trim().slice(0, 40) };
}
"""


# What axe-core judges of a page, without what changes from one booking to the next: every
# element with its attributes (digits made 0; values, links, nonces, data-* and htmx's left
# out) and whether it holds text of its own, not the text; and the width of the window. A
# page of the same shape as one that passed already (each sign-in page, each wizard step)
# passes again: axe runs once per shape in a run, not after every step that shows it again.
PAGE_SHAPE = """
() => {
  const skip = /^(value|href|action|src|content|nonce|datetime|data-.*|hx-.*)$/;
  const out = [window.innerWidth];
  for (const el of document.querySelectorAll("*")) {
    const attrs = [];
    for (const a of el.attributes) if (!skip.test(a.name)) attrs.push(a.name + "=" + a.value);
    const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    out.push(el.tagName + (text ? "+" : "") + "[" + attrs.sort().join(" ") + "]");
  }
  return out.join("\\n").replace(/[0-9]/g, "0");
}
"""

# Page shapes axe-core passed, and static files' compressed sizes, in this run (per process).
_axe_passed: set[bytes] = set()
_static_sizes: dict[str, int] = {}


def chromium_path() -> str:
    import os

    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Chromium not found: apt-get install -y chromium, or set CHROMIUM_PATH.")
    return path


def page_kind(url: str) -> str:
    """A URL's page, with secrets and ids replaced, for reports: /bookings/<token>/ ..."""
    path = urlsplit(url).path
    path = re.sub(r"/(verify|bookings|cancel|link)/[A-Za-z0-9_-]{20,}/", r"/\1/<token>/", path)
    path = re.sub(r"/\d+/", "/<id>/", path)
    query = urlsplit(url).query
    step = re.search(r"step=(\w+)", query)
    return path + (f"?step={step.group(1)}" if step else "")


def budget_for(url: str) -> int:
    path = urlsplit(url).path
    return STAFF_BUDGET if path.startswith(("/staff/", "/accounts/")) else PUBLIC_BUDGET


class Network:
    """The requests a page has in flight, so a test can wait for the network to fall quiet.

    Playwright's "networkidle" waits for 500 ms without a request every time it is asked,
    even of a page that went quiet long ago, and the checks ask after every page. This waits
    until nothing is in flight and nothing has started or ended for QUIET seconds: long
    enough for a page's answer to start the request that follows from it (htmx's "load"
    triggers, FullCalendar's events), and no longer."""

    QUIET = 0.1

    def __init__(self, page: Page) -> None:
        self.in_flight: set[Request] = set()
        self.last_change = time.monotonic()
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _started(self, request: Request) -> None:
        self.in_flight.add(request)
        self.last_change = time.monotonic()

    def _ended(self, request: Request) -> None:
        self.in_flight.discard(request)
        self.last_change = time.monotonic()

    def wait(self, page: Page, *, quiet: float = QUIET, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            # Playwright hands the page's events over only while it is called: this call
            # is what lets the request events above arrive.
            page.wait_for_timeout(25)
            if not self.in_flight and time.monotonic() - self.last_change >= quiet:
                return
            if time.monotonic() > deadline:
                waiting = ", ".join(sorted(page_kind(r.url) for r in self.in_flight)) or "none"
                raise AssertionError(f"The network was still busy after {timeout:.0f} s (in flight: {waiting})")


_networks: weakref.WeakKeyDictionary[Page, Network] = weakref.WeakKeyDictionary()


def network_quiet(page: Page, *, quiet: float = Network.QUIET) -> None:
    """Wait until the page has loaded and its network has fallen quiet (see `Network`). To
    check that something did *not* happen (no request was made), wait longer: half a second."""
    page.wait_for_load_state("load")
    _networks[page].wait(page, quiet=quiet)


@dataclass
class Visit:
    """One document and everything it loaded."""

    url: str
    requests: list[Request] = field(default_factory=list)


@dataclass
class Tab:
    """A page in its own browser context that records problems as they happen."""

    page: Page
    origin: str
    axe: bool = True
    problems: list[str] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)
    report_to: list[tuple[str, Any]] | None = None  # the test item's user_properties
    _allowed_statuses: set[int] = field(default_factory=set)
    _sizes: dict[Request, int] = field(default_factory=dict)  # each request is weighed once

    def __post_init__(self) -> None:
        page = self.page
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_finished)
        page.expose_function("__msCspViolation", lambda text: self.problems.append(f"CSP violation: {text}"))
        page.add_init_script(CSP_LISTENER)
        _networks[page] = Network(page)
        # Every page is weighed as a first visit: nothing from the browser cache.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})

    # --- Recording ------------------------------------------------------------------------

    def _on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        status = re.search(r"status of (\d{3})", text)
        if status and int(status.group(1)) in self._allowed_statuses:
            return  # a refusal page the test asked for (e.g. a form re-shown with 400)
        self.problems.append(f"console error on {page_kind(self.page.url)}: {text}")

    def _on_request(self, request: Request) -> None:
        if not request.url.startswith((self.origin + "/", "data:", "blob:")) and request.url != self.origin:
            self.problems.append(f"request to another origin: {request.url}")
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.visits.append(Visit(url=request.url))

    def _on_finished(self, request: Request) -> None:
        if self.visits:
            self.visits[-1].requests.append(request)

    @contextmanager
    def allowing_status(self, *statuses: int) -> Iterator[None]:
        """Pages answered with these HTTP statuses are expected (Chromium logs them as errors)."""
        self._allowed_statuses.update(statuses)
        try:
            yield
        finally:
            self._allowed_statuses.difference_update(statuses)

    # --- Navigation -----------------------------------------------------------------------

    def goto(self, path: str) -> Page:
        url = path if path.startswith("http") else self.origin + path
        self.page.goto(url)
        self.check()
        return self.page

    # --- Checks ---------------------------------------------------------------------------

    def check(self, *, axe: bool | None = None) -> None:
        """Everything about the page now shown: errors, CSP, origins, weight, accessibility."""
        network_quiet(self.page)
        self.raise_problems()
        self._weigh()
        if self.axe if axe is None else axe:
            self._axe()
        self.raise_problems()

    def raise_problems(self) -> None:
        if self.problems:
            problems, self.problems = self.problems, []
            raise AssertionError("Browser reported problems:\n  " + "\n  ".join(problems))

    def _body_size(self, request: Request) -> int:
        if request not in self._sizes:
            static = request.method == "GET" and urlsplit(request.url).path.startswith("/static/")
            if static and request.url in _static_sizes:
                self._sizes[request] = _static_sizes[request.url]
            else:
                self._sizes[request] = self._weigh_body(request)
                if static and self._sizes[request]:  # not a request that failed
                    _static_sizes[request.url] = self._sizes[request]
        return self._sizes[request]

    def _weigh_body(self, request: Request) -> int:
        response = request.response()
        if response is None or response.status in (301, 302, 303, 307, 308, 204, 304):
            return 0
        try:
            body = response.body()
        except Exception:
            if request.method != "GET":
                return 0
            body = self.page.request.get(request.url).body()
        return len(gzip.compress(body, compresslevel=6))

    def _weigh(self) -> None:
        if not self.visits:
            return
        visit = self.visits[-1]
        total = sum(self._body_size(r) for r in visit.requests)
        kind = page_kind(self.page.url)
        self.weights[kind] = max(total, self.weights.get(kind, 0))
        if self.report_to is not None:
            self.report_to.append(("page_weight", (kind, total)))
        limit = budget_for(self.page.url)
        assert total <= limit, f"{kind} weighs {total / 1024:.1f} KB compressed, over its {limit // 1024} KB budget"

    def _axe(self) -> None:
        page = self.page
        shape = hashlib.sha256(f"{page_kind(page.url)} {page.evaluate(PAGE_SHAPE)}".encode()).digest()
        if shape in _axe_passed:
            return
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(AXE_SOURCE + "\n;0")
        violations = page.evaluate(AXE_RUN)
        assert not violations, f"axe-core on {page_kind(page.url)}:\n" + "\n".join(
            f"  [{v['impact']}] {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in violations
        )
        _axe_passed.add(shape)

    def focus_is_visible(self) -> dict[str, Any] | None:
        return self.page.evaluate(FOCUS_VISIBLE)


def open_tab(
    browser: Browser,
    origin: str,
    *,
    javascript: bool = True,
    viewport: dict[str, int] | None = None,
    axe: bool = True,
    **context_args: Any,
) -> Tab:
    context: BrowserContext = browser.new_context(
        base_url=origin,
        java_script_enabled=javascript,
        viewport=viewport or {"width": 1280, "height": 900},
        accept_downloads=True,
        **context_args,
    )
    context.set_default_timeout(10_000)
    return Tab(page=context.new_page(), origin=origin, axe=axe and javascript)


# --- Emails -------------------------------------------------------------------------------


def wait_for_email(to: str, subject_contains: str, *, timeout: float = 5.0) -> mail.EmailMessage:
    """The newest email to `to` whose subject contains the words. Emails are sent after
    commit by the immediate task backend inside the live server's thread."""
    deadline = time.monotonic() + timeout
    while True:
        for message in reversed(mail.outbox):
            if to in message.to and subject_contains.lower() in message.subject.lower():
                return message
        if time.monotonic() > deadline:
            sent = [(m.to, m.subject) for m in mail.outbox]
            raise AssertionError(f"No email to {to} about {subject_contains!r}; sent: {sent}")
        time.sleep(0.05)


def link_in(message: mail.EmailMessage, path_prefix: str) -> str:
    """The first link in the plain-text body whose path starts with `path_prefix`."""
    for url in re.findall(r"https?://[^\s<>\"')]+", message.body):
        if urlsplit(url).path.startswith(path_prefix):
            return url
    raise AssertionError(f"No {path_prefix} link in the email {message.subject!r}:\n{message.body}")


# --- Staff sign-in --------------------------------------------------------------------------


def sign_in(tab: Tab, *, email: str, password: str, secret: str, next_path: str = "/staff/") -> None:
    """Password, then the authenticator code, as a person types them."""
    from staff.tests.conftest import totp_code

    page = tab.page
    tab.goto(f"/accounts/login/?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Enter your code").wait_for()
    tab.check()
    page.get_by_label(re.compile("code", re.I)).first.fill(totp_code(secret))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))
    tab.check()


def htmx_settled(page: Page) -> None:
    """Wait until htmx has swapped in its answer and settled. Wait for the response first
    (`page.expect_response`): the browser has the answer before htmx swaps it in, and
    `network_quiet` returns at once on a page that has been quiet before."""
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


def is_scrolling_sideways(page: Page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth > document.documentElement.clientWidth")


def cut_off_elements(page: Page) -> list[str]:
    """Visible elements that stick out past the right edge of the viewport."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const out = [];
          for (const el of document.querySelectorAll("body *")) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0) continue;
            const s = getComputedStyle(el);
            if (s.visibility === "hidden" || s.position === "fixed") continue;
            if (el.closest(".sr-only")) continue;
            if (r.right > width + 1 || r.left < -1) out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + (el.textContent || "").trim().slice(0, 30));
          }
          return out.slice(0, 10);
        }"""
    )


def small_tap_targets(page: Page, *, least: int = 44, within: str = "body") -> list[str]:
    """Visible controls a finger presses that are less than `least` CSS pixels tall: buttons,
    links drawn as buttons, the header's links, text inputs and selects, a details' summary,
    and a radio's row (its label); in the element `within` selects. Links inside running text
    are left out: they are words, not controls."""
    return page.evaluate(
        """([least, within]) => {
          const out = [];
          const controls = "button, a[class*='btn-'], header a, input:not([type=hidden]):not([type=radio]):not([type=checkbox]), select, summary, label:has(input[type=radio])";
          for (const el of document.querySelector(within).querySelectorAll(controls)) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0 || el.closest(".sr-only")) continue;
            if (getComputedStyle(el).visibility === "hidden") continue;
            if (r.height < least - 0.5) out.push(el.tagName.toLowerCase() + " " + (el.textContent || el.name || "").trim().slice(0, 30) + " " + Math.round(r.height) + "px");
          }
          return out.slice(0, 10);
        }""",
        [least, within],
    )
