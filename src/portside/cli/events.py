"""``portside events SERVICE``: a service's events (DescribeServices), oldest first, newest last;
``--follow`` keeps printing new ones until interrupted."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click

from portside.cli.calls import call, cluster_option, endpoint_option, fail
from portside.cli.client import make_client

#: Seconds between polls with --follow.
FOLLOW_POLL_S = 2.0


def service_events(client: Any, cluster: str, service: str) -> list[dict[str, Any]]:
    """The service's events oldest first (DescribeServices lists them newest first); fails when there is no such service."""
    answer = call(client, "describe_services", cluster=cluster, services=[service])
    if not answer["services"]:
        reasons = ", ".join(f"{f.get('arn', service)}: {f.get('reason', '')}" for f in answer.get("failures", []))
        fail(f"no service {service} in cluster {cluster} ({reasons or 'MISSING'})")
    return list(reversed(answer["services"][0].get("events") or []))


def render(event: dict[str, Any]) -> str:
    when = event["createdAt"]
    stamp = when.astimezone().isoformat(timespec="seconds") if isinstance(when, datetime) else str(when)
    return f"{stamp}  {event['message']}"


@click.command()
@click.argument("service")
@cluster_option
@endpoint_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until interrupted (Ctrl-C).")
def events(service: str, cluster: str, endpoint: str, follow: bool) -> None:
    """Print SERVICE's events, newest last."""
    client = make_client("ecs", endpoint)
    seen: set[str] = set()
    try:
        while True:
            for event in service_events(client, cluster, service):
                if event["id"] not in seen:
                    seen.add(event["id"])
                    click.echo(render(event))
            if not follow:
                return
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return
