"""Headless Chromium for tests: Debian's ``chromium`` driven by Playwright's Python package.

Playwright's own browser download is never used (CI has no network for it): we launch the binary
Debian installs (``./scripts/setup`` apt-installs ``chromium``) through ``executable_path``.

Fixtures (registered in tests/conftest.py):

- ``playwright_driver`` (one per session): Playwright's driver, which launches browsers.
- ``chromium`` (one per test module): a launched headless browser, ``HeadlessChromium``. At the
  end of the module it is closed, and every process it started is gone or killed.
- ``browser`` (one per test): a ``BrowserSession`` with a fresh context per page. ``.page`` is a
  Playwright ``Page`` at 1280×800; ``.new_page(PHONE)`` opens another at a phone's width.
  Console errors, uncaught page errors (a thrown JavaScript exception), requests that failed
  (except those the browser aborted itself: net::ERR_ABORTED) and responses of status 400 and
  above are collected in ``.problems``; when the test ends they fail it (``.allow(pattern)`` lets
  a test expect one): the hook ``pytest_runtest_call`` (imported by tests/conftest.py) fails a
  test that passed; problems arriving at teardown fail it there. Each page's last state is saved
  as a screenshot under ``PORTSIDE_TEST_ARTEFACTS`` (default ``<repo>/artefacts/``) as
  ``<test name>.png`` (``<test name>-2.png``... for further pages), whether the test passed or
  failed.
- ``browser_page``: ``browser.page``, for tests that need only one page.

``wait_until_ready(page)`` waits for the page's "first data rendered" marker,
``document.body.dataset.ready == "1"``, also under a Content-Security-Policy that forbids eval.

Tests that use these are plain ``def`` tests: Playwright's sync API refuses to run inside an
asyncio event loop (an ``async def`` test's). ``playwright_turn`` keeps the sync API's own loop
out of the way of the other tests' ``asyncio`` (see there).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Where Debian puts Chromium: the ELF binary first, then the shell launcher that execs it
#: (the launcher adds Debian's flags from /etc/chromium.d, which a test browser does not need).
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-14's CSS pixels
#: Set in the browser's environment, which every process it forks inherits: finds them all in
#: /proc, even those re-parented to init, so none outlives its fixture: ``<host>:<pytest pid>:<hex>``.
MARKER_VARIABLE = "PORTSIDE_TEST_BROWSER"
REPO = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_MS = 60_000  # 2 cores shared with other test runs: a cold start can be slow
ACTION_TIMEOUT_MS = 15_000


def wait_until_ready(page: Any, timeout_ms: float = ACTION_TIMEOUT_MS) -> None:
    """Until the page has set ``document.body.dataset.ready = "1"`` (its "first data rendered"
    marker). A selector, not ``page.wait_for_function``: that evaluates a string in the page, which
    a Content-Security-Policy without 'unsafe-eval' (the dashboard's) refuses."""
    page.locator("body[data-ready='1']").wait_for(state="attached", timeout=timeout_ms)


def chromium_path() -> str:
    """The Debian Chromium binary; a clear failure (never a skip) when it is not installed."""
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    pytest.fail(
        f"Debian's chromium is not installed (looked for {', '.join(CHROMIUM_PATHS)}): run ./scripts/setup",
        pytrace=False,
    )


def artefacts_dir() -> Path:
    """``PORTSIDE_TEST_ARTEFACTS`` or ``<repo>/artefacts``, created."""
    path = Path(os.environ.get("PORTSIDE_TEST_ARTEFACTS") or REPO / "artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def artefact_name(test_name: str) -> str:
    """A file name for ``test_name`` (parametrized ids may hold ``/``, spaces, brackets)."""
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", test_name)[:200]


def processes_with_marker(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose environment holds ``MARKER_VARIABLE=marker``."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state != b"Z":  # a zombie has exited already; its parent or init reaps it
            found.append(int(entry.name))
    return found


def kill_all(marker: str, grace_s: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process carrying ``marker``; the pids that were still there."""
    pids = processes_with_marker(marker)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not processes_with_marker(marker):
            break
    return pids


def sweep_dead_sessions() -> None:
    """Kill browsers a killed test session left behind (their marker names a pid no longer alive)."""
    prefix = f"{MARKER_VARIABLE}=".encode()
    markers = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                variables = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        markers.update(v[len(prefix):].decode() for v in variables if v.startswith(prefix))
    for marker in markers:
        host, _, rest = marker.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            kill_all(marker)


class HeadlessChromium:
    """One headless Debian Chromium, launched by ``driver`` (a started Playwright: only one may run
    per thread); ``close()`` leaves no process of it behind."""

    def __init__(self, driver: Any) -> None:
        self.marker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        try:
            self.browser = driver.chromium.launch(
                executable_path=chromium_path(),
                headless=True,
                # Chromium's sandbox needs unprivileged user namespaces and refuses to start as
                # root with it on; the tests run as root (they drive Docker and network
                # namespaces), and the browser only ever loads pages the test itself serves.
                args=["--no-sandbox", "--disable-dev-shm-usage"],
                env={**os.environ, MARKER_VARIABLE: self.marker},
                timeout=LAUNCH_TIMEOUT_MS,
            )
        except BaseException:
            kill_all(self.marker)
            raise

    def pids(self) -> list[int]:
        """The browser's live processes (browser, zygotes, renderers, GPU and utility processes)."""
        return processes_with_marker(self.marker)

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            kill_all(self.marker)  # normally none: the browser's own close ends them all


@dataclass
class PageProblems:
    """What went wrong in a session's pages, as readable lines; ``allowed`` patterns are ignored."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)
    reported: int = 0  # how many of ``unexpected()`` a check has raised already

    def unexpected(self) -> list[str]:
        lines = (
            [f"console error: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
            + [f"failed request: {m}" for m in self.failed_requests]
        )
        return [line for line in lines if not any(p.search(line) for p in self.allowed)]

    def take_report(self) -> str | None:
        """The unexpected problems no earlier report listed, as a message; None when there are none."""
        lines = self.unexpected()[self.reported:]
        if not lines:
            return None
        self.reported += len(lines)
        return "the browser reported problems:\n  " + "\n  ".join(lines)

    def check(self) -> None:
        """AssertionError listing every unexpected problem no earlier report listed, if there is one."""
        report = self.take_report()
        if report:
            raise AssertionError(report)


class BrowserSession:
    """Pages for one test: each in a fresh context (no cookies or storage shared), watched for
    problems, screenshotted by ``finish()``."""

    def __init__(self, chromium: HeadlessChromium, test_name: str) -> None:
        self._chromium = chromium
        self.test_name = test_name
        self.problems = PageProblems()
        self._contexts: list[Any] = []
        self.pages: list[Any] = []
        self._page: Any = None

    @property
    def page(self) -> Any:
        """The test's first page (1280×800), opened on first use."""
        if self._page is None:
            self._page = self.new_page()
        return self._page

    def new_page(self, viewport: dict[str, int] | None = None, **context_options: Any) -> Any:
        """A Playwright ``Page`` in a new context; ``viewport`` defaults to ``DESKTOP``; ``PHONE``
        also makes the context a touch-screen, mobile one."""
        viewport = dict(viewport or DESKTOP)
        if viewport["width"] <= PHONE["width"]:
            phone = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
            context_options = {**phone, **context_options}
        context = self._chromium.browser.new_context(viewport=viewport, **context_options)
        self._contexts.append(context)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = context.new_page()
        self._watch(page)
        self.pages.append(page)
        return page

    def phone_page(self, **context_options: Any) -> Any:
        """``new_page(PHONE)``."""
        return self.new_page(PHONE, **context_options)

    def allow(self, pattern: str) -> None:
        """Expect problems matching the regular expression ``pattern`` (not failures, then)."""
        self.problems.allowed.append(re.compile(pattern))

    def screenshot(self, page: Any = None, suffix: str = "") -> Path:
        """Save ``page`` (default: the first) now, as ``<test name><suffix>.png``; its path."""
        page = page or self.page
        path = artefacts_dir() / f"{artefact_name(self.test_name)}{suffix}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def finish(self) -> None:
        """Screenshot every open page, close every context; then ``problems.check()``."""
        try:
            for index, page in enumerate(self.pages):
                if not page.is_closed():
                    try:
                        self.screenshot(page, "" if index == 0 else f"-{index + 1}")
                    except Exception as exc:  # a crashed page: say so, and close the rest anyway
                        self.problems.page_errors.append(f"no screenshot of page {index + 1}: {exc}")
        finally:
            for context in self._contexts:
                context.close()
        self.problems.check()

    def _watch(self, page: Any) -> None:
        problems = self.problems

        def on_console(message: Any) -> None:
            if message.type == "error":
                location = message.location or {}
                url = location.get("url")
                where = f" ({url}:{location.get('lineNumber')})" if url else ""
                problems.console_errors.append(f"{message.text}{where}")

        def on_page_error(error: Any) -> None:
            problems.page_errors.append(str(getattr(error, "stack", None) or error))

        def on_request_failed(request: Any) -> None:
            # net::ERR_ABORTED: the page or the browser cancelled it (a navigation away, a closed page
            # ending its server-sent events stream, an AbortController), not a failure of the server.
            if request.failure != "net::ERR_ABORTED":
                problems.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

        def on_response(response: Any) -> None:
            if response.status >= 400:
                problems.failed_requests.append(
                    f"{response.request.method} {response.url}: HTTP {response.status}"
                )

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("requestfailed", on_request_failed)
        page.on("response", on_response)


#: Playwright's event loop while it is parked (see ``playwright_turn``), else empty.
_parked_loop: list[asyncio.AbstractEventLoop] = []
_turns = [0]  # how many playwright_turn blocks are open (they nest: the outermost parks)


@contextmanager
def playwright_turn() -> Iterator[None]:
    """Let Playwright's sync API run inside, and only inside, this block.

    Between its calls the sync API leaves its own event loop marked as this thread's running
    loop; while it is, ``asyncio.run`` and every ``async def`` test (pytest-asyncio) refuse to
    start ("cannot be called from a running event loop"). So a test session that used the browser
    once would break every asyncio test after it. We park the mark when browser code ends and put
    it back before browser code runs again: the hook ``pytest_runtest_protocol`` does it for every
    test using the fixtures, and the fixtures that close things do it for their own teardown.
    """
    if _turns[0] == 0 and _parked_loop and asyncio._get_running_loop() is None:
        asyncio._set_running_loop(_parked_loop.pop())
    _turns[0] += 1
    try:
        yield
    finally:
        _turns[0] -= 1
        loop = asyncio._get_running_loop()
        if _turns[0] == 0 and loop is not None and getattr(loop, "_portside_playwright", False):
            asyncio._set_running_loop(None)
            _parked_loop[:] = [loop]


def _uses_browser(item: pytest.Item) -> bool:
    return "playwright_driver" in getattr(item, "fixturenames", ())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
    """Setup, body and teardown of a test using the browser run in a Playwright turn."""
    if not _uses_browser(item):
        return (yield)
    with playwright_turn():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that passed but whose pages reported problems fails (FAILED, not an error at
    teardown). Problems that arrive later, while its pages close, fail it at teardown."""
    result = yield
    session = getattr(item, "funcargs", {}).get("browser")
    if isinstance(session, BrowserSession):
        report = session.problems.take_report()
        if report:
            pytest.fail(report, pytrace=False)  # the list says it all; no traceback of this hook
    return result


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """Playwright's driver (a Node.js process of its package), started once for the session."""
    from playwright.sync_api import sync_playwright

    sweep_dead_sessions()
    with playwright_turn():
        driver = sync_playwright().start()
        loop = asyncio._get_running_loop()
        if loop is not None:  # the loop it marked running: playwright_turn parks this one only
            loop._portside_playwright = True  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        with playwright_turn():
            driver.stop()
        _parked_loop.clear()


@pytest.fixture(scope="module")
def chromium(playwright_driver: Any) -> Iterator[HeadlessChromium]:
    """One headless Debian Chromium for the test module; closed (no process left) at its end."""
    browser = HeadlessChromium(playwright_driver)
    try:
        yield browser
    finally:
        with playwright_turn():  # this may be the teardown of a later test that does not use it
            browser.close()


@pytest.fixture
def browser(chromium: HeadlessChromium, request: pytest.FixtureRequest) -> Iterator[BrowserSession]:
    """This test's pages (see ``BrowserSession``); screenshots saved and problems checked at its end."""
    session = BrowserSession(chromium, request.node.name)
    yield session
    session.finish()


@pytest.fixture
def browser_page(browser: BrowserSession) -> Any:
    """A Playwright ``Page`` at 1280×800 (``browser.page``)."""
    return browser.page
