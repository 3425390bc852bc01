"""What portside does with ECS's capacity provider strategies on tasks and services: refuses them by name.

portside places every task on the cluster's registered container instances, as ECS's EC2 launch
type does; a strategy naming capacity providers (FARGATE, FARGATE_SPOT, an Auto Scaling group's)
would be silently ignored if accepted, so it is refused. A cluster's own
``defaultCapacityProviderStrategy`` is stored and echoed (control/cluster_settings.py) but not applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portside.errors import InvalidParameterException


def refuse_capacity_provider_strategy(params: Mapping[str, Any]) -> None:
    """InvalidParameterException when ``capacityProviderStrategy`` names any provider."""
    if params.get("capacityProviderStrategy"):
        raise InvalidParameterException(
            "capacityProviderStrategy is not supported by portside: tasks are placed on the cluster's "
            "registered container instances. Leave it out (launchType EC2 is the default)."
        )
