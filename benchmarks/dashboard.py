"""How fast the dashboard (``GET /ui``) shows a cluster of 500 tasks in headless Chromium (issue 14).

Run: ``python benchmarks/dashboard.py [--tasks 500] [--agents 10] [--loads 30]``, from the
repository, after ``./scripts/setup`` (Debian's chromium, Playwright's Python package, a Docker
Engine for the server's own agent). About a minute on 2 busy cores; all traffic on 127.0.0.1.

Goal (issue 14): "the page loads in under 300 ms on loopback with 500 tasks", judged on the
median of cold loads. Exit status 1 when the goal is missed or the page reports an error.

What runs
---------
Server
    A real ``portside server`` child process (tests/support/server.py) on a free loopback port
    with a new state dir. Its own agent registers this host in a cluster of its own
    (``dashboard-bench-host``), so no task of the benchmark lands on it: no container starts.
State
    ``--agents`` simulated agents (benchmarks/_simulated_agents.py: the agent protocol's real
    calls over real HTTP, no Docker) register container instances in the cluster ``default`` at
    10.250.x.y and answer every assignment with PENDING then RUNNING reports, with a host port.
    boto3 creates the service ``web`` (one container, a dynamic host port) with desiredCount
    ``--tasks`` and waits until every copy is RUNNING: the dashboard then has 500 tasks, each
    with its host, host port -> container port, on ``--agents`` instances, and the service's
    events and deployment.
Measure
    Headless Debian Chromium (tests/support/browser.py's launcher) loads ``/ui`` ``--loads``
    times. **Cold**: every load in a new browser context (no cache, no cookie: a first visit).
    **Warm**: one context, after one untimed load (the static assets cached, the session's cookie
    set). The dashboard and its static peer take turns, load by load, so that a busy moment of the
    machine falls on both alike. The figure of one load is the page's own clock:
    ``performance.now()`` (milliseconds since the navigation started) once the first frame after
    the page set ``document.body.dataset.ready = "1"`` -- the dashboard's marker for "the first
    data is rendered" -- has been styled, laid out and painted (a task posted from that frame's
    animation callback), recorded by a script Chromium runs before the page's own.
Peer, in the same run
    The same document served as a static file by aiohttp (in this process, on 127.0.0.1): the
    dashboard's rendered DOM after a load (its ``outerHTML``) without its scripts, with its
    stylesheets, fonts and images, and one inline script setting the same marker. Loaded and
    measured the same way, it is what the browser alone needs to fetch, parse, style and lay out
    that much page; the ratio says what the dashboard's own work (scripts, the API calls for its
    state, rendering it) adds. A third page, empty but for the marker, shows the fixed cost of a
    navigation on this machine (a new renderer, a connection), which no page can go under.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _simulated_agents import CLUSTER, REGION, Fleet, SimulatedAgent  # noqa: E402
from aiohttp import web  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from portside.agent.http_link import HttpLink  # noqa: E402
from tests.integration.conftest import remove_server_containers  # noqa: E402
from tests.support.browser import DESKTOP, HeadlessChromium, wait_until_ready  # noqa: E402
from tests.support.server import PortsideProcess  # noqa: E402

GOAL_MS = 300.0
SERVICE = "web"
HOST_CLUSTER = "dashboard-bench-host"
READY_TIMEOUT_MS = 30_000
SETUP_TIMEOUT_S = 180.0
TASK_MEMORY_MIB = 16
STATIC_LABEL = "same HTML, static (aiohttp)"
EMPTY_LABEL = "an empty page (aiohttp)"
EMPTY_PATH = "/empty.html"
EMPTY_PAGE = b"""<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>
<body><script>document.body.dataset.ready = "1";</script></body></html>"""

#: Runs in every page before its own scripts: when the first frame after the ready marker is rendered.
MEASURE_SCRIPT = """
(() => {
  const seen = () => {
    if (window.__portsideReadyAt !== undefined) return;
    if (!document.body || document.body.dataset.ready !== "1") return;
    window.__portsideReadyAt = performance.now();
    // A frame's callbacks run before its style, layout and paint; a task posted from one runs
    // after them: the time the first frame showing the data was rendered.
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => { window.__portsideRenderedAt = performance.now(); };
      channel.port2.postMessage(null);
    });
  };
  new MutationObserver(seen).observe(
    document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
})();
"""


class Agents:
    """``n`` simulated agents on an event loop of their own in a thread (Playwright's sync API,
    on the main thread, must not share it)."""

    def __init__(self, endpoint: str, n: int) -> None:
        self.endpoint = endpoint
        self.n = n
        self.fleet: Fleet | None = None
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="simulated-agents", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(SETUP_TIMEOUT_S) or self._error:
            raise RuntimeError(f"simulated agents did not register: {self._error!r}")

    def running(self, group: str) -> int:
        return self.fleet.running_in.get(group, 0) if self.fleet else 0

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        import random

        self._stop = asyncio.Event()
        self.fleet = Fleet()
        rng = random.Random(1)
        key = Credentials("AKIDBENCH", "secret")  # any key is accepted on loopback
        agents = [SimulatedAgent(i, HttpLink([self.endpoint], key, REGION), self.fleet, rng)
                  for i in range(self.n)]
        try:
            for agent in agents:
                await agent.register()
                agent.start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)


class StaticPeer:
    """An aiohttp server on 127.0.0.1 (its own thread and loop) serving fixed bodies by path."""

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        self.files = files
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="static-peer", daemon=True)

    async def _serve(self, request: web.Request) -> web.Response:
        found = self.files.get(request.path)
        if found is None:
            return web.Response(status=404, text="not found")
        body, content_type = found
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


def check_dashboard(url: str) -> None:
    """Fail at once, saying so, when the server has no page at ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{url}: HTTP {exc.code}: this portside has no dashboard there (--path)") from None


def create_state(server: PortsideProcess, agents: Agents, tasks: int) -> None:
    ecs = server.client()
    ecs.create_cluster(clusterName=CLUSTER)
    container = {
        "name": "web", "image": "portside.invalid/dashboard-bench", "essential": True,
        "memoryReservation": TASK_MEMORY_MIB, "portMappings": [{"containerPort": 8080, "hostPort": 0}],
    }
    taskdef = ecs.register_task_definition(
        family="dashboard-bench", networkMode="bridge", containerDefinitions=[container])["taskDefinition"]
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=taskdef["taskDefinitionArn"],
                       desiredCount=tasks)
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while agents.running(f"service:{SERVICE}") < tasks:
        if time.monotonic() > deadline:
            errors = agents.fleet.errors if agents.fleet else {}
            raise RuntimeError(f"only {agents.running(f'service:{SERVICE}')} of {tasks} tasks RUNNING "
                               f"after {SETUP_TIMEOUT_S:g} s (agent errors: {errors or 'none'})")
        time.sleep(0.2)


def load(context: Any, url: str, errors: list[str]) -> tuple[float, Any]:
    """Load ``url`` in a new page of ``context``: (ms from navigation start to the first frame after
    the ready marker, the page). Page errors, console errors and responses of status 400 or more
    are added to ``errors``."""
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: errors.append(f"console error: {m.text} ({(m.location or {}).get('url')})")
            if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.request.method} {r.url}")
            if r.status >= 400 else None)
    page.goto(url, wait_until="commit")
    wait_until_ready(page, READY_TIMEOUT_MS)
    deadline = time.monotonic() + READY_TIMEOUT_MS / 1000
    while (rendered := page.evaluate("window.__portsideRenderedAt")) is None:  # the next frame, soon
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: no animation frame after the ready marker")
        time.sleep(0.005)
    return float(rendered), page


def new_context(browser: Any) -> Any:
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(MEASURE_SCRIPT)
    return context


def measure(
    browser: Any, urls: dict[str, str], loads: int, errors: dict[str, list[str]],
) -> dict[str, list[float]]:
    """``loads`` cold and ``loads`` warm loads of each of ``urls`` (name -> URL), taking turns so
    that a busy moment of the machine falls on each alike: times by ``"<name> <cold|warm>"``."""
    times: dict[str, list[float]] = {f"{name} {mode}": [] for name in urls for mode in ("cold", "warm")}
    for _ in range(loads):
        for name, url in urls.items():
            context = new_context(browser)
            try:
                times[f"{name} cold"].append(load(context, url, errors[name])[0])
            finally:
                context.close()
    contexts = {name: new_context(browser) for name in urls}
    try:
        for name, url in urls.items():
            load(contexts[name], url, errors[name])[1].close()  # untimed: fills the cache, sets the cookie
        for _ in range(loads):
            for name, url in urls.items():
                ms, page = load(contexts[name], url, errors[name])
                times[f"{name} warm"].append(ms)
                page.close()
    finally:
        for context in contexts.values():
            context.close()
    return times


def snapshot(
    browser: Any, url: str, errors: list[str],
) -> tuple[dict[str, tuple[bytes, str]], dict[str, int]]:
    """The dashboard as rendered, as static files for ``StaticPeer`` (path -> body, type), and its size."""
    context = new_context(browser)
    assets: dict[str, tuple[bytes, str]] = {}

    def keep(response: Any) -> None:
        if response.request.resource_type in ("stylesheet", "font", "image") and response.ok:
            path = re.sub(r"^https?://[^/]+", "", response.url).split("?")[0]
            assets[path] = (response.body(), response.headers.get("content-type", "application/octet-stream"))

    try:
        context.on("response", keep)
        _, page = load(context, url, errors)
        page.wait_for_load_state("load")
        html = str(page.evaluate("document.documentElement.outerHTML"))
        size = {"elements": int(page.evaluate("document.getElementsByTagName('*').length")),
                "html_bytes": len(html.encode())}
    finally:
        context.close()
    # The browser fetches a page's icon outside the page's own requests: copy it by its link.
    for link in re.findall(r"<link\b[^>]*>", html, flags=re.I):
        icon = re.search(r'href="(/[^"]*)"', link)
        if re.search(r'rel="[^"]*icon', link, flags=re.I) and icon and icon.group(1) not in assets:
            with urllib.request.urlopen(urllib.parse.urljoin(url, icon.group(1)), timeout=10) as answer:
                assets[icon.group(1)] = (answer.read(), answer.headers.get("Content-Type", "image/x-icon"))
    html = re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S | re.I)
    html = re.sub(r"(<body\b[^>]*?)\sdata-ready=\"1\"", r"\1", html, count=1)
    html = html.replace("</body>", '<script>document.body.dataset.ready = "1";</script></body>', 1)
    assets["/"] = (("<!DOCTYPE html>" + html).encode(), "text/html; charset=utf-8")
    assets[EMPTY_PATH] = (EMPTY_PAGE, "text/html; charset=utf-8")
    return assets, size


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, as benchmarks/hosts.py."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(len(ordered) * q / 100))) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--path", default="/ui", help="the dashboard's path on the API endpoint")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    import docker

    work = Path(tempfile.mkdtemp(prefix="portside-dashboard-bench-"))
    server = PortsideProcess(work / "server", "--cluster", HOST_CLUSTER)
    agents: Agents | None = None
    peer: StaticPeer | None = None
    errors: list[str] = []
    try:
        server.start()
        check_dashboard(server.endpoint + args.path)
        agents = Agents(server.endpoint, args.agents)
        agents.start()
        t0 = time.monotonic()
        create_state(server, agents, args.tasks)
        print(f"state: {args.tasks} tasks RUNNING on {args.agents} simulated instances "
              f"({time.monotonic() - t0:.1f} s)", flush=True)
        with sync_playwright() as driver:
            chromium = HeadlessChromium(driver)
            try:
                url = server.endpoint + args.path
                files, size = snapshot(chromium.browser, url, errors)
                peer = StaticPeer(files)
                peer.start()
                print(f"page: {size['elements']:,} elements, {size['html_bytes']:,} bytes of HTML once "
                      f"rendered; {len(files) - 2} static assets", flush=True)
                errors_by_page: dict[str, list[str]] = {"dashboard": errors, "static": []}
                base = f"http://127.0.0.1:{peer.port}"
                urls = {"dashboard": url, "static": base + "/", "empty": base + EMPTY_PATH}
                errors_by_page["empty"] = []
                times = measure(chromium.browser, urls, args.loads, errors_by_page)
                errors += [f"static copy: {e}" for e in errors_by_page["static"] + errors_by_page["empty"]]
            finally:
                chromium.close()
        return report(args, times, errors)
    finally:
        if peer is not None:
            peer.stop()
        if agents is not None:
            agents.stop()
        server.stop()
        remove_server_containers(docker.from_env(), server)
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, times: dict[str, list[float]], errors: list[str]) -> int:
    print(f"\nnavigation start -> first frame after the ready marker rendered, {args.loads} loads each, "
          f"{args.tasks} tasks (ms)")
    print(f"{'':6} {'page':<34} {'median':>8} {'p95':>8} {'ratio (median)':>15}")
    for mode in ("cold", "warm"):
        peer_median = statistics.median(times[f"static {mode}"])
        rows = (("dashboard", f"portside {args.path}"), ("static", STATIC_LABEL), ("empty", EMPTY_LABEL))
        for name, label in rows:
            values = times[f"{name} {mode}"]
            median = statistics.median(values)
            p95 = percentile(values, 95)
            print(f"{mode:6} {label:<34} {median:8.1f} {p95:8.1f} {median / peer_median:14.2f}x")
    cold = statistics.median(times["dashboard cold"])
    met = cold < GOAL_MS
    print(f"\ngoal: a cold load under {GOAL_MS:.0f} ms with {args.tasks} tasks (median): "
          f"{'met' if met else 'MISSED'} ({cold:.1f} ms)")
    if errors:
        print("the page reported errors:\n  " + "\n  ".join(sorted(set(errors))))
    return 0 if met and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
