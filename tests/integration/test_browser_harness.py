"""The headless Chromium harness (tests/support/browser.py): pages from a local server on 127.0.0.1,
clicks and the DOM, screenshots, problems that fail a test, and no browser process left behind."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.support.browser as browser_support

from tests.support.browser import (
    MARKER_VARIABLE,
    PHONE,
    BrowserSession,
    HeadlessChromium,
    artefacts_dir,
    chromium_path,
    processes_with_marker,
    sweep_dead_sessions,
    wait_until_ready,
)
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]

PAGES = {
    "/": b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>counter</title>
<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width, initial-scale=1">
</head><body><h1>Counter</h1><button id="add" type="button">Add one</button><ol id="items"></ol>
<script>
document.getElementById("add").addEventListener("click", () => {
  const li = document.createElement("li");
  li.textContent = "item " + (document.querySelectorAll("#items li").length + 1);
  document.getElementById("items").append(li);
});
document.body.dataset.ready = "1";
</script></body></html>""",
    "/throws": b"""<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<script>throw new Error("the dashboard broke");</script></body></html>""",
    "/console": b"""<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<script>console.error("could not render the tasks table");</script></body></html>""",
    "/csp": b"""<!doctype html><html><head><link rel="icon" href="data:,"></head><body><p>strict</p>
<script src="/csp.js"></script></body></html>""",
    "/csp.js": b"""setTimeout(() => { document.body.dataset.ready = "1"; }, 50);""",
    "/live": b"""<!doctype html><html><head><link rel="icon" href="data:,"></head><body><p id=last></p>
<script>
const events = new EventSource("/events");
events.onmessage = (e) => {
  document.getElementById("last").textContent = e.data;
  document.body.dataset.ready = "1";
};
</script></body></html>""",
    "/missing-asset": b"""<!doctype html><html><head><link rel="icon" href="data:,">
<link rel="stylesheet" href="/no-such.css"></head><body>hi</body></html>""",
}


class _Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/events":
            self._stream()
            return
        body = PAGES.get(self.path)
        self.send_response(200 if body is not None else 404)
        body = body if body is not None else b"not found"
        kind = "text/javascript" if self.path.endswith(".js") else "text/html; charset=utf-8"
        self.send_header("Content-Type", kind if self.path in PAGES else "text/plain")
        if self.path == "/csp":  # as the dashboard's: no inline script, no eval
            self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        """Server-sent events, as the dashboard's live updates: one event, then a comment every
        0.1 s until the browser goes away (or 30 s)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(b"data: 3 tasks running\n\n")
            self.wfile.flush()
            for _ in range(300):
                time.sleep(0.1)
                self.wfile.write(b": still here\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """``PAGES`` served on a free port of 127.0.0.1; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_click_changes_the_dom_and_the_screenshot_is_saved(browser: BrowserSession, site: str) -> None:
    page = browser.page
    page.goto(site + "/")
    wait_until_ready(page)
    assert page.evaluate("[innerWidth, innerHeight]") == [1280, 800]
    page.get_by_role("button", name="Add one").click()
    page.get_by_role("button", name="Add one").click()
    assert page.locator("#items li").all_inner_texts() == ["item 1", "item 2"]

    path = browser.screenshot()
    assert path == artefacts_dir() / "test_click_changes_the_dom_and_the_screenshot_is_saved.png"
    assert _png_size(path) == (1280, 800)


def test_wait_until_ready_works_under_a_strict_content_security_policy(
    browser: BrowserSession, site: str,
) -> None:
    page = browser.page
    page.goto(site + "/csp")
    wait_until_ready(page)
    assert page.locator("body").get_attribute("data-ready") == "1"
    assert page.inner_text("p") == "strict"


def test_a_live_stream_open_at_the_end_is_no_problem(browser: BrowserSession, site: str) -> None:
    """Closing the page aborts its server-sent events request; that is the browser's doing, not a
    failed request. Navigating away aborts it too."""
    page = browser.page
    page.goto(site + "/live")
    wait_until_ready(page)
    assert page.inner_text("#last") == "3 tasks running"
    other = browser.new_page()
    other.goto(site + "/live")
    wait_until_ready(other)
    other.goto(site + "/")
    wait_until_ready(other)


def test_phone_page_has_a_phone_width(browser: BrowserSession, site: str) -> None:
    phone = browser.phone_page()
    phone.goto(site + "/")
    assert phone.evaluate("innerWidth") == PHONE["width"]
    assert phone.evaluate("matchMedia('(pointer: coarse)').matches") is True
    phone.get_by_role("button", name="Add one").tap()
    assert phone.locator("#items li").all_inner_texts() == ["item 1"]


@pytest.mark.parametrize(
    ("path", "reported"),
    [
        ("/throws", "page error: Error: the dashboard broke"),
        ("/console", "console error: could not render the tasks table"),
        ("/missing-asset", "failed request: GET http://127.0.0.1:{port}/no-such.css: HTTP 404"),
    ],
)
def test_a_page_problem_fails_the_check(
    chromium: HeadlessChromium, site: str, path: str, reported: str,
) -> None:
    session = BrowserSession(chromium, f"problem{path.replace('/', '-')}")
    session.page.goto(site + path)
    port = site.rpartition(":")[2]
    expected = reported.format(port=port)
    eventually(lambda: any(line.startswith(expected) for line in session.problems.unexpected()),
               timeout=15, what=f"{expected!r} among the problems")
    with pytest.raises(AssertionError, match="the browser reported problems") as failure:
        session.finish()
    assert expected in str(failure.value)


def test_a_refused_connection_fails_the_check(chromium: HeadlessChromium) -> None:
    with socket.socket() as bound:  # bound, never listening: a connection to it is refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}/nothing-listens.png"
        session = BrowserSession(chromium, "problem-refused")
        session.page.set_content(f'<link rel="icon" href="data:,"><img src="{url}" alt="">')
        expected = f"failed request: GET {url}: net::ERR_CONNECTION_REFUSED"
        eventually(lambda: expected in session.problems.unexpected(), timeout=15, what=repr(expected))
        with pytest.raises(AssertionError, match="ERR_CONNECTION_REFUSED"):
            session.finish()


def test_an_allowed_problem_does_not_fail_the_check(chromium: HeadlessChromium, site: str) -> None:
    session = BrowserSession(chromium, "allowed-problem")
    session.allow(r"the dashboard broke")
    session.page.goto(site + "/throws")
    eventually(lambda: session.problems.page_errors, timeout=15, what="the page error")
    session.finish()  # no AssertionError


def test_a_fresh_context_per_page(browser: BrowserSession, site: str) -> None:
    first = browser.page
    first.goto(site + "/")
    first.evaluate("localStorage.setItem('seen', '1')")
    second = browser.new_page()
    second.goto(site + "/")
    assert second.evaluate("localStorage.getItem('seen')") is None


def test_closing_the_browser_leaves_no_process(playwright_driver: Any) -> None:
    chromium = HeadlessChromium(playwright_driver)
    try:
        page = chromium.browser.new_page()
        page.set_content("<p>hello</p>")
        pids = chromium.pids()
        assert len(pids) >= 2, pids  # the browser and at least a renderer or zygote
    finally:
        chromium.close()
    assert processes_with_marker(chromium.marker) == []
    for pid in pids:  # gone, or a zombie: exited, waiting for init to reap it
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rpartition(") ")[2][0] == "Z"


def test_a_missing_chromium_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser_support, "CHROMIUM_PATHS", ("/nonexistent/chromium",))
    with pytest.raises(pytest.fail.Exception, match=r"chromium is not installed .*run ./scripts/setup"):
        chromium_path()


def test_browsers_of_a_dead_test_session_are_swept_and_live_ones_kept() -> None:
    """A session killed outright (kill -9) cannot close its browser; the next session ends it."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    host = socket.gethostname()
    orphan = subprocess.Popen(sleeper, env={**os.environ, MARKER_VARIABLE: f"{host}:{gone.pid}:dead"})
    alive = subprocess.Popen(sleeper, env={**os.environ, MARKER_VARIABLE: f"{host}:{os.getpid()}:alive"})
    try:
        eventually(lambda: processes_with_marker(f"{host}:{gone.pid}:dead"), timeout=15, what="the orphan")
        sweep_dead_sessions()
        assert orphan.wait(timeout=15) < 0  # ended by a signal
        assert alive.poll() is None
    finally:
        for proc in (orphan, alive):
            proc.kill()
            proc.wait()


INNER_TEST = textwrap.dedent(
    """
    def test_page_throws(browser_page):
        browser_page.set_content("<script>throw new Error('thrown in the page')</script>")
        assert browser_page.evaluate("1 + 1") == 2

    def test_test_fails_outright(browser_page):
        browser_page.set_content("<p>fine</p>")
        assert False, "the test itself failed"

    def test_clean_page(browser_page):
        browser_page.set_content("<p id=p>fine</p>")
        assert browser_page.inner_text("#p") == "fine"
    """
)


#: Run after the browser tests, in the same session: Playwright's sync API must not leave its event
#: loop marked running, or asyncio.run and every async test fail ("cannot be called from a running
#: event loop").
LATER_ASYNCIO_TEST = textwrap.dedent(
    """
    import asyncio

    async def test_an_async_test_after_the_browser():
        await asyncio.sleep(0)

    def test_asyncio_run_after_the_browser():
        assert asyncio.run(asyncio.sleep(0, result=7)) == 7
    """
)


def test_the_fixture_fails_a_test_whose_page_throws_and_stops_its_browser(tmp_path: Path) -> None:
    """A real pytest run of tests using the fixtures (loaded as tests/conftest.py loads them): the
    page error fails its test, every test gets its screenshot (the failing ones too), asyncio
    tests after them still run, and the run leaves no browser process."""
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    (tmp_path / "conftest.py").write_text(
        "from tests.support.browser import (  # noqa: F401\n"
        "    browser, browser_page, chromium, playwright_driver,\n"
        "    pytest_runtest_call, pytest_runtest_protocol)\n")
    (tmp_path / "test_later_asyncio.py").write_text(LATER_ASYNCIO_TEST)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    artefacts = tmp_path / "artefacts"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PORTSIDE_TEST_ARTEFACTS": str(artefacts)}
    env.pop(MARKER_VARIABLE, None)
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_inner.py"),
         str(tmp_path / "test_later_asyncio.py")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 1, output
    assert "page error: Error: thrown in the page" in output, output
    assert "FAILED test_inner.py::test_page_throws - Failed: the browser reported problems" in output, output
    assert "FAILED test_inner.py::test_test_fails_outright - AssertionError" in output, output
    assert "During handling" not in output, output  # the problems alone, no chained traceback
    assert "2 failed, 3 passed in" in output, output
    assert sorted(p.name for p in artefacts.iterdir()) == [
        "test_clean_page.png", "test_page_throws.png", "test_test_fails_outright.png"]
    inner = f"{socket.gethostname()}:{run.pid}:"
    assert _processes_with_marker_prefix(inner) == []


def _processes_with_marker_prefix(prefix: str) -> list[int]:
    needle = f"{MARKER_VARIABLE}={prefix}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                environ = Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(v.startswith(needle) for v in environ):
                found.append(int(entry.name))
    return found
