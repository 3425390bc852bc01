"""The dashboard in headless Chromium against a real server running a real service behind its load balancer.

Loads /ui, checks the DOM against what the API says (services, tasks with their host ports, target
health), scales the service from the page and watches the new copy appear and turn healthy
without a reload, and checks the layout at a phone's width. Screenshots land under the test
artefacts (tests/support/browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.test_services import SERVER_ARGS, Stack, elb_client, task_definition, wait_converged
from tests.integration.conftest import remove_server_containers
from tests.support.browser import BrowserSession
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

SERVICE = "web"
HELLO = "hello from a dashboard test copy"
#: How long the page may take to show a change (the SSE stream carries it within about a second;
#: this bounds the wait for the copy to start and pass two health checks, not the page's latency).
CONVERGE_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path_factory.mktemp("dashboard-browser"), *SERVER_ARGS)
    process.start()
    try:
        yield process
    finally:
        try:
            process.client().delete_service(service=SERVICE, force=True)
        except Exception:  # noqa: BLE001 - gone already, or the server is; the containers are removed below
            pass
        process.stop()
        remove_server_containers(docker_client, process)


@pytest.fixture(scope="module")
def running(server: PortsideProcess, busybox_image: str) -> dict[str, Any]:
    """One busybox copy of ``web`` behind a load balancer, converged and healthy."""
    ecs = server.client()
    stack = Stack(elb_client(server), "dash")
    # Each copy says hello on stdout before it serves, which awslogs ships to the task's stream.
    logs = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/dash", "awslogs-region": "us-east-1",
                                                 "awslogs-stream-prefix": "dash", "awslogs-create-group": "true"}}
    command = ["/bin/sh", "-c", f"echo {HELLO}; exec busybox httpd -f -v -p 80 -h /www"]
    td = task_definition(ecs, busybox_image, "dash-web", logConfiguration=logs, command=command)
    ecs.create_service(serviceName=SERVICE, taskDefinition=td, desiredCount=1, loadBalancers=stack.load_balancers())
    [task] = wait_converged(ecs, stack, SERVICE, 1)
    return {"ecs": ecs, "stack": stack, "task": task}


def host_ports(ecs: Any) -> set[int]:
    arns = ecs.list_tasks(serviceName=SERVICE, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(tasks=arns)["tasks"] if arns else []
    return {b["hostPort"] for t in tasks for c in t["containers"] for b in c.get("networkBindings", [])}


def open_dashboard(page: Any, server: PortsideProcess) -> None:
    page.goto(server.endpoint + "/ui")
    page.wait_for_selector("body[data-ready='1']")


def test_the_page_shows_the_service_its_tasks_and_their_health(
    browser: BrowserSession, server: PortsideProcess, running: dict[str, Any]
) -> None:
    page = browser.page
    open_dashboard(page, server)
    card = page.locator(f"#services article[data-service='{SERVICE}']")
    assert card.locator("dd.desired").inner_text() == "1"
    expect(card.locator("dd.running")).to_have_text("1", timeout=CONVERGE_MS)
    [port] = host_ports(running["ecs"])
    row = page.locator(f"#tasks tr[data-service='{SERVICE}']")
    assert row.count() == 1
    assert row.locator(f".port[data-host-port='{port}']").inner_text() == f"{port} → 80/tcp"
    expect(page.locator(f"#tasks tr[data-service='{SERVICE}'] .health [data-state='healthy']")).to_have_count(1, timeout=CONVERGE_MS)
    target = page.locator(f"#target-groups article[data-target-group='dash'] tr[data-state='healthy']")
    assert target.count() == 1 and str(port) in target.inner_text()
    instance = page.locator("#clusters tr[data-instance]").first
    assert "connected" in instance.inner_text()
    assert page.locator("#load-balancers article[data-load-balancer='dash']").count() == 1
    assert "No alarms." in page.locator("#alarms").inner_text()
    # The task's log tail: its awslogs stream, with the health checks' request lines as they arrive.
    row.get_by_role("button", name="Logs").click()
    task_id = running["task"]["taskArn"].rsplit("/", 1)[-1]
    expect(page.locator("#logs h3")).to_contain_text(f"dash/web/{task_id}")
    expect(page.locator("#logs pre.log")).to_contain_text(HELLO, timeout=CONVERGE_MS)


def test_scaling_from_the_page_shows_the_new_copy_turn_healthy_without_a_reload(
    browser: BrowserSession, server: PortsideProcess, running: dict[str, Any]
) -> None:
    page = browser.page
    open_dashboard(page, server)
    page.evaluate("window.portsideTestMarker = 'same page'")  # gone if the page reloads
    card = page.locator(f"#services article[data-service='{SERVICE}']")
    card.get_by_role("button", name="Scale…").click()
    dialog = page.get_by_role("dialog")
    count = dialog.get_by_label("Desired count")
    assert count.input_value() == "1"
    count.fill("2")
    dialog.get_by_role("button", name="Confirm").click()
    # The page's CSP allows no eval, so waits go through Playwright's locators, not wait_for_function.
    expect(card.locator("dd.desired")).to_have_text("2", timeout=CONVERGE_MS)
    expect(page.locator("#tasks tr[data-service='web'] .health [data-state='healthy']")).to_have_count(2, timeout=CONVERGE_MS)
    assert page.evaluate("window.portsideTestMarker") == "same page"
    assert running["ecs"].describe_services(services=[SERVICE])["services"][0]["desiredCount"] == 2
    shown = {int(p) for p in page.locator("#tasks tr[data-service='web'] .port").evaluate_all(
        "nodes => nodes.map(n => n.dataset.hostPort)")}
    assert shown == host_ports(running["ecs"]) and len(shown) == 2
    expect(page.locator("#live")).to_contain_text("2 tasks running")


def test_a_refused_action_shows_the_api_error_and_changes_nothing(
    browser: BrowserSession, server: PortsideProcess, running: dict[str, Any]
) -> None:
    page = browser.page
    open_dashboard(page, server)
    before = running["ecs"].describe_services(services=[SERVICE])["services"][0]["desiredCount"]
    page.locator(f"#services article[data-service='{SERVICE}']").get_by_role("button", name="Scale…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Desired count").fill("")
    dialog.get_by_role("button", name="Confirm").click()
    assert "whole number" in dialog.locator("#confirm-error").inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert running["ecs"].describe_services(services=[SERVICE])["services"][0]["desiredCount"] == before


def test_keyboard_focus_stays_on_its_button_across_a_live_update(
    browser: BrowserSession, server: PortsideProcess, running: dict[str, Any]
) -> None:
    page = browser.page
    open_dashboard(page, server)
    stop = page.locator(f"#tasks tr[data-service='{SERVICE}'] button[data-key^='stop ']").last
    stop.focus()
    key = stop.get_attribute("data-key")
    running["ecs"].create_cluster(clusterName="focus-kept")  # a change the stream carries: the page re-renders
    expect(page.locator("#clusters article[data-cluster='focus-kept']")).to_be_visible()
    assert page.evaluate("document.activeElement.dataset.key") == key
    page.keyboard.press("Enter")  # the focused Stop… opens its confirmation; Escape backs out
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert page.locator(f"#tasks tr[data-service='{SERVICE}']").count() >= 1


#: Each button's box against the page's width and the visible part of its scrolling region: a
#: list of the buttons that are cut off (text and how far), empty when every one shows whole.
CLIPPED = """nodes => nodes.flatMap(b => {
  const r = b.getBoundingClientRect(), region = b.closest('.scroll');
  const box = region ? region.getBoundingClientRect() : { left: 0, right: window.innerWidth };
  const right = Math.min(box.right, window.innerWidth), left = Math.max(box.left, 0);
  return r.right <= right + 0.5 && r.left >= left - 0.5 ? [] : [`${b.textContent} ${r.left}-${r.right} in ${left}-${right}`];
})"""


def clipped_buttons(page: Any) -> list[str]:
    return list(page.locator("#clusters button, #tasks button").evaluate_all(CLIPPED))


def test_the_page_fits_a_phone(browser: BrowserSession, server: PortsideProcess, running: dict[str, Any]) -> None:
    page = browser.phone_page()
    open_dashboard(page, server)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways: {width} px"
    assert page.locator(f"#services article[data-service='{SERVICE}']").is_visible()
    assert page.locator("#clusters button", has_text="Drain…").count() >= 1
    assert clipped_buttons(page) == []
    # Every table's rows stack into cards there: no table region scrolls sideways either.
    wide = page.locator(".scroll").evaluate_all(
        "nodes => nodes.filter(n => n.scrollWidth > n.clientWidth + 1).map(n => n.getAttribute('aria-label'))")
    assert wide == []


def test_no_button_is_cut_off_at_a_laptops_width(browser: BrowserSession, server: PortsideProcess, running: dict[str, Any]) -> None:
    page = browser.page  # 1280x800
    open_dashboard(page, server)
    assert page.locator("#clusters button", has_text="Drain…").count() >= 1
    assert page.locator(f"#tasks tr[data-service='{SERVICE}'] button", has_text="Logs").count() >= 1
    assert clipped_buttons(page) == []


def test_the_task_table_pages_and_filters_and_keeps_its_view_across_live_updates(
    browser: BrowserSession, server: PortsideProcess, running: dict[str, Any], busybox_image: str
) -> None:
    ecs = running["ecs"]
    td = task_definition(ecs, busybox_image, "dash-pages", portMappings=[], command=["sleep", "600"], stopTimeout=2)
    arns: list[str] = []
    try:
        for count in (10, 1):  # RunTask starts at most 10 at once: 11 is one more than a page of 10
            arns += [t["taskArn"] for t in ecs.run_task(taskDefinition=td, count=count, startedBy="dash-pages")["tasks"]]
        eventually(lambda: all(t["lastStatus"] == "RUNNING" for t in ecs.describe_tasks(tasks=arns)["tasks"]),
                   timeout=CONVERGE_MS / 1000, what="11 standalone tasks RUNNING")
        page = browser.page
        open_dashboard(page, server)
        page.get_by_label("Per page", exact=True).select_option("10")
        page.get_by_label("Service", exact=True).select_option("(no service)")
        page.get_by_label("Status", exact=True).select_option("RUNNING")
        rows = page.locator("#tasks tbody tr")
        expect(page.locator("#task-shown")).to_contain_text("Showing 1–10 of 11 tasks (of ")
        expect(rows).to_have_count(10)
        pager = page.get_by_role("navigation", name="Task pages")
        expect(pager).to_contain_text("Page 1 of 2")
        assert pager.get_by_role("button", name="Previous page").is_disabled()
        seen = set(rows.evaluate_all("nodes => nodes.map(n => n.dataset.task)"))
        pager.get_by_role("button", name="Next page").click()
        expect(page.locator("#task-shown")).to_contain_text("Showing 11–11 of 11 tasks")
        expect(rows).to_have_count(1)
        assert pager.get_by_role("button", name="Next page").is_disabled()
        seen |= set(rows.evaluate_all("nodes => nodes.map(n => n.dataset.task)"))
        assert seen == set(arns)  # every task, each on one page
        # A live update keeps the chosen page and filters, and the row of a task that did not
        # change (the same element: it is not rebuilt).
        rows.first.evaluate("row => { row.portsideTestMarker = 'same row'; }")
        ecs.create_cluster(clusterName="pages-kept")
        expect(page.locator("#clusters article[data-cluster='pages-kept']")).to_be_visible()
        expect(page.locator("#task-shown")).to_contain_text("Showing 11–11 of 11 tasks")
        assert rows.first.evaluate("row => row.portsideTestMarker") == "same row"
        assert page.get_by_label("Service", exact=True).input_value() == "(no service)"
        # The service's filter shows its tasks only, on one page.
        page.get_by_label("Service", exact=True).select_option(SERVICE)
        expect(rows.first).to_have_attribute("data-service", SERVICE)
        services = rows.evaluate_all("nodes => nodes.map(n => n.dataset.service)")
        assert services and set(services) == {SERVICE}
        assert pager.is_hidden()
        # A filter whose tasks are all gone stays chosen and says nothing matches (not silently "All").
        page.get_by_label("Service", exact=True).select_option("(no service)")
        for arn in arns:
            ecs.stop_task(task=arn, reason="dashboard paging test done")
        expect(page.get_by_text("No task matches these filters.")).to_be_visible(timeout=CONVERGE_MS)
        assert page.get_by_label("Service", exact=True).input_value() == "(no service)"
    finally:
        for arn in arns:
            ecs.stop_task(task=arn, reason="dashboard paging test done")
        if arns:
            eventually(lambda: all(t["lastStatus"] == "STOPPED" for t in ecs.describe_tasks(tasks=arns)["tasks"]),
                       timeout=CONVERGE_MS / 1000, what="the standalone tasks STOPPED")
