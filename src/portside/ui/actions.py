"""The dashboard's buttons, each one the ECS API operation a CLI user would call for it.

The page posts ``{"action": NAME, ...fields}``; only the fields an action names are read (any
other field is refused by name, not ignored), the ECS request is built from them, validated
against botocore's model as the API validates it (``shapes.validate_input``) and handed to the
same operation function the API's table holds — so the checks and the errors are the CLI's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portside.api import ecs, shapes
from portside.control.plane import ControlPlane
from portside.errors import InvalidParameterException

#: The reason StopTask records for a task stopped from the page.
STOP_REASON = "Stopped from the portside dashboard"


@dataclass(frozen=True)
class Action:
    operation: str  # the ECS action it calls
    fields: tuple[str, ...]  # the fields the page sends (all required)
    request: Callable[[dict[str, Any]], dict[str, Any]]  # page fields -> the ECS request


ACTIONS: dict[str, Action] = {
    "scale": Action(
        "UpdateService", ("cluster", "service", "desiredCount"),
        lambda f: {"cluster": f["cluster"], "service": f["service"], "desiredCount": f["desiredCount"]},
    ),
    "redeploy": Action(
        "UpdateService", ("cluster", "service"),
        lambda f: {"cluster": f["cluster"], "service": f["service"], "forceNewDeployment": True},
    ),
    "drain": Action(
        "UpdateContainerInstancesState", ("cluster", "containerInstance"),
        lambda f: {"cluster": f["cluster"], "containerInstances": [f["containerInstance"]], "status": "DRAINING"},
    ),
    "stop": Action(
        "StopTask", ("cluster", "task"),
        lambda f: {"cluster": f["cluster"], "task": f["task"], "reason": STOP_REASON},
    ),
}


def run_action(plane: ControlPlane, region: str, body: Any) -> dict[str, Any]:
    """Run one page action; InvalidParameterException naming the field when the body is wrong."""
    if not isinstance(body, dict):
        raise InvalidParameterException("The action request must be a JSON object.")
    name = body.get("action")
    action = ACTIONS.get(name) if isinstance(name, str) else None
    if action is None:
        raise InvalidParameterException(f"action must be one of {', '.join(ACTIONS)}, got {name!r}.")
    fields = {k: v for k, v in body.items() if k != "action"}
    unknown = sorted(set(fields) - set(action.fields))
    if unknown:
        raise InvalidParameterException(f"The {name} action takes no field {', '.join(unknown)}.")
    missing = [f for f in action.fields if f not in fields]
    if missing:
        raise InvalidParameterException(f"The {name} action needs {', '.join(missing)}.")
    request = action.request(fields)
    model = shapes.operation_model(ecs.SERVICE, action.operation)
    assert model is not None
    shapes.validate_input(model, request)
    result = ecs.OPERATIONS[action.operation](plane, region, request)
    failures = result.get("failures") or []
    if failures:  # UpdateContainerInstancesState reports a bad instance as a failure, not an error
        failure = failures[0]
        raise InvalidParameterException(f"{failure.get('arn', '')}: {failure.get('reason', 'failed')}")
    return {"action": name, "operation": action.operation}
