"""The Secrets Manager action table: ``X-Amz-Target: secretsmanager.<Action>`` -> control-plane
operation (JSON 1.1, ``secretsmanager/2017-10-17``, signed for ``secretsmanager``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control import secretsmanager
from portside.control.plane import ControlPlane

TARGET_PREFIX = "secretsmanager."
SERVICE = "secretsmanager"

Operation = Callable[[ControlPlane, str, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "CreateSecret": secretsmanager.create_secret,
    "GetSecretValue": secretsmanager.get_secret_value,
    "PutSecretValue": secretsmanager.put_secret_value,
    "UpdateSecret": secretsmanager.update_secret,
    "DescribeSecret": secretsmanager.describe_secret,
    "ListSecrets": secretsmanager.list_secrets,
    "DeleteSecret": secretsmanager.delete_secret,
    "RestoreSecret": secretsmanager.restore_secret,
}
