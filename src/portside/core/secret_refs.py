"""What a task definition's ``secrets[].valueFrom`` names, and ECS's reasons when it cannot be read (pure).

ECS accepts, for ``containerDefinitions[].secrets[].valueFrom``:

- an SSM parameter by name (``/app/db/password``, in the task's region) or by ARN
  (``arn:aws:ssm:REGION:ACCOUNT:parameter/app/db/password``, in the ARN's region);
- a Secrets Manager secret by ARN, full or partial (without the six-character suffix), in
  the ARN's region, optionally followed by ``:json-key:version-stage:version-id`` (each
  part may be empty: ``arn:...:secret:db:password::`` is the ``password`` key of AWSCURRENT).

The reasons a task stops with when a reference cannot be read are the EC2 container agent's
(``stopCode`` TaskFailedToStart): ``Fetching secret data from SSM Parameter Store in REGION:
invalid parameters: NAME`` and ``Fetching secret data from AWS Secrets Manager in region REGION:
secret VALUEFROM: ResourceNotFoundException: Secrets Manager can't find the specified secret.``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParameterSource:
    region: str
    name: str  # a name or an ARN, as GetParameters takes it


@dataclass(frozen=True)
class SecretSource:
    region: str
    secret_id: str  # the ARN without the json-key:version-stage:version-id tail
    json_key: str | None
    version_stage: str | None
    version_id: str | None


Source = ParameterSource | SecretSource


def uses_secrets(content: dict[str, Any]) -> bool:
    """Whether a task definition sets any container's ``secrets``."""
    return any(c.get("secrets") for c in content.get("containerDefinitions") or [])


def parse_value_from(value_from: str, task_region: str) -> Source:
    """Where ``value_from`` points; ValueError naming the rule for a Secrets Manager ARN of the wrong shape."""
    if value_from.startswith("arn:"):
        parts = value_from.split(":")
        service = parts[2] if len(parts) > 2 else ""
        region = parts[3] if len(parts) > 3 and parts[3] else task_region
        if service == "secretsmanager":
            if len(parts) < 7 or parts[5] != "secret" or not parts[6] or len(parts) > 10:
                raise ValueError(
                    f"{value_from} is not a Secrets Manager secret ARN "
                    "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key:version-stage:version-id])"
                )
            tail = [*parts[7:], "", "", ""][:3]
            return SecretSource(region, ":".join(parts[:7]), tail[0] or None, tail[1] or None, tail[2] or None)
        return ParameterSource(region, value_from)
    return ParameterSource(task_region, value_from)


def json_value(secret_string: str, key: str) -> str:
    """The value of ``key`` in a secret whose string is a JSON object (strings as they are, others as JSON).

    ValueError with the agent's wording when the secret is not a JSON object or lacks the key.
    """
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise ValueError(f"retrieved secret from Secrets Manager did not contain json key {key}") from None
    if not isinstance(document, dict) or key not in document:
        raise ValueError(f"retrieved secret from Secrets Manager did not contain json key {key}")
    value = document[key]
    return value if isinstance(value, str) else json.dumps(value)


def parameters_reason(region: str, names: list[str]) -> str:
    return f"Fetching secret data from SSM Parameter Store in {region}: invalid parameters: {', '.join(names)}"


def secret_reason(source: SecretSource, value_from: str, problem: str) -> str:
    return f"Fetching secret data from AWS Secrets Manager in region {source.region}: secret {value_from}: {problem}"
