"""``portside logs TASK|SERVICE [--follow]``: what a task's (or a service's tasks') awslogs containers wrote.

The command talks only to the API: ECS (which task, which definition) and CloudWatch Logs
(FilterLogEvents over the streams ECS names ``prefix/container/task-id``). A task none of whose
containers logs with ``awslogs`` gets a message saying where its output is instead. ``--follow``
asks again every second for what came since (by event id, so nothing prints twice), and for a
service picks up the tasks it starts meanwhile; Ctrl-C ends it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from portside.cli.calls import call, cluster_option, endpoint_option, fail
from portside.cli.client import make_client
from portside.core import awslogs

FOLLOW_INTERVAL_S = 1.0
#: FilterLogEvents takes at most this many stream names per call.
STREAMS_PER_CALL = 100


@dataclass(frozen=True)
class Source:
    """One container's stream: where its events are and how to label them."""

    region: str
    group: str
    stream: str
    label: str


@click.command("logs")
@click.argument("target")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@endpoint_option
@cluster_option
def logs(target: str, follow: bool, endpoint: str, cluster: str) -> None:
    """Print what the awslogs containers of TARGET (a task id or ARN, or a service name) wrote."""
    ecs = make_client("ecs", endpoint)
    is_service = _find_task(ecs, cluster, target) is None
    if is_service and not _find_service(ecs, cluster, target):
        fail(f"no task or service {target!r} in cluster {cluster!r}")
    sources = _sources(ecs, cluster, target, is_service)
    if not sources and not (follow and is_service):  # a service may start tasks that log: follow waits for them
        what = f"service {target!r} has no task" if is_service and not _tasks(ecs, cluster, target) else f"{target!r}"
        fail(f"{what}: no container logs with the awslogs driver (logConfiguration.logDriver), so portside keeps "
              "no logs of it; its output is in Docker's log driver on its host (docker logs)")
    clients: dict[str, Any] = {}
    seen: dict[str, int] = {}  # event id -> timestamp of what was printed at or after ``since``
    since: int | None = None
    try:
        while True:
            for source, event in _new_events(clients, endpoint, sources, since, seen):
                since = event["timestamp"] if since is None else max(since, event["timestamp"])
                prefix = f"{source.label} | " if len(sources) > 1 or is_service else ""
                click.echo(f"{prefix}{event['message']}")
            if not follow:
                return
            for old in [k for k, ts in seen.items() if since is not None and ts < since]:
                del seen[old]  # never asked for again (startTime is ``since``): keep the set small
            time.sleep(FOLLOW_INTERVAL_S)
            if is_service:
                sources = _sources(ecs, cluster, target, is_service)
    except KeyboardInterrupt:
        return


def _find_task(ecs: Any, cluster: str, target: str) -> dict[str, Any] | None:
    try:
        found = ecs.describe_tasks(cluster=cluster, tasks=[target])["tasks"]
    except ClientError:
        return None
    except BotoCoreError as exc:
        fail(f"cannot reach the portside API: {exc}")
    return found[0] if found else None


def _find_service(ecs: Any, cluster: str, name: str) -> bool:
    services = call(ecs, "describe_services", cluster=cluster, services=[name])["services"]
    return any(s.get("status") != "INACTIVE" for s in services)


def _tasks(ecs: Any, cluster: str, service: str) -> list[dict[str, Any]]:
    arns: list[str] = []
    for status in ("RUNNING", "STOPPED"):
        arns += call(ecs, "list_tasks", cluster=cluster, serviceName=service, desiredStatus=status)["taskArns"]
    tasks: list[dict[str, Any]] = []
    for i in range(0, len(arns), 100):
        tasks += call(ecs, "describe_tasks", cluster=cluster, tasks=arns[i : i + 100])["tasks"]
    return tasks


def _sources(ecs: Any, cluster: str, target: str, is_service: bool) -> list[Source]:
    tasks = _tasks(ecs, cluster, target) if is_service else [_find_task(ecs, cluster, target) or {}]
    region = ecs.meta.region_name
    definitions: dict[str, dict[str, Any]] = {}
    sources = []
    for task in sorted(tasks, key=lambda t: str(t.get("createdAt", ""))):
        arn = task["taskDefinitionArn"]
        if arn not in definitions:
            definitions[arn] = call(ecs, "describe_task_definition", taskDefinition=arn)["taskDefinition"]
        task_id = task["taskArn"].rsplit("/", 1)[-1]
        runtime = {c["name"]: c.get("runtimeId") for c in task.get("containers", [])}
        for definition in definitions[arn]["containerDefinitions"]:
            settings = awslogs.awslogs_of(definition, region)
            if settings is None:
                continue
            stream = awslogs.stream_name(settings, definition["name"], task_id, runtime.get(definition["name"]))
            if stream:
                sources.append(Source(settings.region, settings.group, stream, f"{task_id[:8]}/{definition['name']}"))
    return sources


def _new_events(
    clients: dict[str, Any], endpoint: str, sources: list[Source], since: int | None, seen: dict[str, int]
) -> Iterator[tuple[Source, dict[str, Any]]]:
    """Events of the sources at or after ``since`` not printed yet, per group in time order."""
    by_group: dict[tuple[str, str], list[Source]] = {}
    for source in sources:
        by_group.setdefault((source.region, source.group), []).append(source)
    for (region, group), members in by_group.items():
        client = clients.get(region) or clients.setdefault(region, make_client("logs", endpoint, region))
        by_stream = {s.stream: s for s in members}
        names = list(by_stream)
        for i in range(0, len(names), STREAMS_PER_CALL):
            params: dict[str, Any] = {"logGroupName": group, "logStreamNames": names[i : i + STREAMS_PER_CALL]}
            if since is not None:
                params["startTime"] = since
            while True:
                try:
                    page = client.filter_log_events(**params)
                except client.exceptions.ResourceNotFoundException:
                    break  # the group is not there (yet): nothing written
                except (ClientError, BotoCoreError) as exc:
                    fail(f"reading the logs of {group}: {exc}")
                for event in page["events"]:
                    if event["eventId"] not in seen:
                        seen[event["eventId"]] = event["timestamp"]
                        yield by_stream[event["logStreamName"]], event
                if not page.get("nextToken"):
                    break
                params["nextToken"] = page["nextToken"]
