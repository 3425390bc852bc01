"""A task's ``secrets``, read for its agent when it takes the task (docs/secrets.md).

The control plane resolves every ``containerDefinitions[].secrets[].valueFrom`` of a task that
is about to start (desired RUNNING, not yet RUNNING) while answering its agent's
PollAssignments, and hands the values over in that answer only: they are never written to the
store, the task, the task definition, DescribeTasks or a log. The agent keeps them in memory
until the task's containers are created, and sets them in the containers' environment.

A reference that cannot be read makes the answer carry the reason instead (ECS's wording,
``core/secret_refs.py``); the agent then stops the task with stopCode TaskFailedToStart.
"""

from __future__ import annotations

from typing import Any

from portside.control import secretsmanager, ssm
from portside.control.plane import ControlPlane
from portside.control.store.database import StoreUnavailable
from portside.core import secret_refs
from portside.core.secret_refs import ParameterSource, SecretSource, uses_secrets
from portside.core.task import Task, TaskStatus
from portside.errors import PortsideError


class UnreadableSecret(Exception):
    """A secret of the task cannot be read; ``reason`` is the task's stoppedReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def needs_secrets(task: Task, content: dict[str, Any]) -> bool:
    """Whether the agent needs the task's secrets now: it is about to start and its definition has some."""
    return task.desired_status == "RUNNING" and task.last_status < TaskStatus.RUNNING and uses_secrets(content)


def for_agent(plane: ControlPlane, task: Task, content: dict[str, Any]) -> dict[str, Any]:
    """``{"environment": {container: {NAME: value}}}``, or ``{"failure": reason}`` when one cannot be read."""
    try:
        with plane.store.transaction():  # finding a secret may remove one past its recovery window
            return {"environment": resolve(plane, task.region, content)}
    except UnreadableSecret as exc:
        return {"failure": exc.reason}
    except StoreUnavailable:
        raise  # the poll fails and the agent asks again: a database blip fails no task
    except PortsideError as exc:  # a value that does not open (SecretsKeyError): this task fails, not the whole poll
        return {"failure": f"ResourceInitializationError: unable to read the task's secrets: {exc.message}"}


def resolve(plane: ControlPlane, region: str, content: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Container name -> {variable: value} for every secret of the definition; UnreadableSecret otherwise."""
    environment: dict[str, dict[str, str]] = {}
    missing: dict[str, list[str]] = {}  # SSM names not found, by region (the agent reports them together)
    for container in content.get("containerDefinitions") or []:
        values = environment.setdefault(container["name"], {})
        for secret in container.get("secrets") or []:
            value_from = secret["valueFrom"]
            try:
                source = secret_refs.parse_value_from(value_from, region)
            except ValueError as exc:
                raise UnreadableSecret(str(exc)) from None
            if isinstance(source, ParameterSource):
                try:
                    found = ssm.resolve(plane, source.region, source.name)
                except ssm.SsmError:
                    missing.setdefault(source.region, []).append(source.name)
                    continue
                values[secret["name"]] = ssm.plaintext(plane, source.region, found)
            else:
                values[secret["name"]] = _secret_value(plane, source, value_from)
    for where, names in missing.items():
        raise UnreadableSecret(secret_refs.parameters_reason(where, names))
    return environment


def _secret_value(plane: ControlPlane, source: SecretSource, value_from: str) -> str:
    body = secretsmanager.find_secret(plane, source.region, source.secret_id)
    if body is None:
        raise UnreadableSecret(
            secret_refs.secret_reason(source, value_from, f"ResourceNotFoundException: {secretsmanager.NOT_FOUND}")
        )
    if body.get("DeletedDate") is not None:
        raise UnreadableSecret(
            secret_refs.secret_reason(source, value_from, f"InvalidRequestException: {secretsmanager.MARKED_FOR_DELETION}")
        )
    try:
        version = secretsmanager.pick_version(plane, body, source.version_id, source.version_stage)
    except PortsideError as exc:
        raise UnreadableSecret(secret_refs.secret_reason(source, value_from, f"{exc.code}: {exc.message}")) from None
    value = secretsmanager.plaintext(plane, body, version)
    if "SecretString" not in value:
        raise UnreadableSecret(
            secret_refs.secret_reason(source, value_from, "the secret's value is binary (SecretBinary); "
                                      "only a SecretString can be set in an environment variable")
        )
    if source.json_key is None:
        return str(value["SecretString"])
    try:
        return secret_refs.json_value(value["SecretString"], source.json_key)
    except ValueError as exc:
        raise UnreadableSecret(secret_refs.secret_reason(source, value_from, str(exc))) from None
