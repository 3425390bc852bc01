"""``portside scale SERVICE N``: set the service's desired count (ECS UpdateService).

When Application Auto Scaling has a scalable target on the service, a count outside its
[MinCapacity, MaxCapacity] would be moved back by the next scaling activity; the command sets the
nearest count inside the range instead and says so, naming the range and how to change it.
"""

from __future__ import annotations

import click

from portside.cli.calls import call, cluster_option, endpoint_option
from portside.cli.client import make_client

DIMENSION = "ecs:service:DesiredCount"


def clamp(count: int, low: int, high: int) -> int:
    return low if count < low else high if count > high else count


@click.command()
@click.argument("service")
@click.argument("count", type=click.IntRange(min=0))
@cluster_option
@endpoint_option
def scale(service: str, count: int, cluster: str, endpoint: str) -> None:
    """Set SERVICE's desired count to COUNT (within its scalable target's range, if it has one)."""
    ecs = make_client("ecs", endpoint)
    autoscaling = make_client("application-autoscaling", endpoint)
    resource_id = f"service/{cluster}/{service}"
    targets = call(
        autoscaling, "describe_scalable_targets", ServiceNamespace="ecs", ResourceIds=[resource_id],
        ScalableDimension=DIMENSION,
    )["ScalableTargets"]
    wanted = count
    if targets:
        low, high = targets[0]["MinCapacity"], targets[0]["MaxCapacity"]
        count = clamp(count, low, high)
        if count != wanted:
            click.echo(
                f"portside: {resource_id} has a scalable target allowing {low}-{high} tasks: desired count set to "
                f"{count}, not {wanted} (change the range with aws application-autoscaling register-scalable-target)",
                err=True,
            )
    updated = call(ecs, "update_service", cluster=cluster, service=service, desiredCount=count)["service"]
    click.echo(f"{updated['serviceName']}: desired count {updated['desiredCount']} (running {updated['runningCount']})")
