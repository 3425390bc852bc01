"""Secrets Manager operations (``secretsmanager.*``): secrets, their versions and staging labels.

A secret is named ``NAME`` and has the ARN ``arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX``
(six random characters, as AWS adds, so a secret deleted and created again under its name is
another ARN). It is found by name, by full ARN, or by partial ARN (without the suffix).

Each value is one version (``VersionId``: the request's ClientRequestToken, else a UUID),
sealed with the server's secrets key, bound to the secret's ARN and version. Staging labels
move as on AWS: a new value takes ``AWSCURRENT`` unless other labels are given; the version it
left becomes ``AWSPREVIOUS``. A label is on one version at a time. Versions without a label
beyond the newest 100 are dropped.

DeleteSecret schedules deletion after ``RecoveryWindowInDays`` (7 to 30, default 30), or deletes
at once with ``ForceDeleteWithoutRecovery``; until then the secret is described with its
``DeletedDate``, refuses reads and writes, and RestoreSecret brings it back. A secret past its
window is removed the next time anything touches it (it is never read again either way).

UpdateSecret changes the description and/or adds a value as PutSecretValue does.

Refused by name: a ``KmsKeyId`` other than ``alias/aws/secretsmanager`` (no KMS here), replica
regions, and the ``Type`` of managed external secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets as random_text
import string
import uuid
from typing import Any

from portside.control.plane import ControlPlane
from portside.control.secrets_key import record_aad
from portside.control.ssm import key_of
from portside.control.store.secrets import StoredSecretVersion
from portside.errors import PortsideError

CURRENT, PREVIOUS = "AWSCURRENT", "AWSPREVIOUS"
DEFAULT_KEY_ID = "alias/aws/secretsmanager"
DAY_S = 86400.0
DEFAULT_RECOVERY_DAYS = 30
KEPT_UNLABELLED_VERSIONS = 100
_NAME = re.compile(r"^[A-Za-z0-9/_+=.@\-]+$")
_SUFFIX_CHARS = string.ascii_letters + string.digits
LIST_FILTER_KEYS = ("name", "description", "all")


class SecretsManagerError(PortsideError):
    """A Secrets Manager error: ``code`` is the model's error shape name (ResourceNotFoundException, ...)."""

    status_hint = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid_parameter(message: str) -> SecretsManagerError:
    return SecretsManagerError("InvalidParameterException", message)


def _invalid_request(message: str) -> SecretsManagerError:
    return SecretsManagerError("InvalidRequestException", message)


NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion."


def secret_arn(region: str, account: str, name: str) -> str:
    suffix = "".join(random_text.choice(_SUFFIX_CHARS) for _ in range(6))
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}"


# -- writing


def create_secret(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = params["Name"]
    if not _NAME.match(name):
        raise _invalid_parameter(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
        )
    _refuse_unsupported(params)
    value = _value_of(params, required=False)
    token = params.get("ClientRequestToken") or str(uuid.uuid4())
    now = plane.clock()
    with plane.store.transaction():
        existing = _live(plane, plane.store.sm_secret(region, name))
        if existing is not None:
            if existing.get("DeletedDate") is not None:
                raise _invalid_request(
                    "You can't create this secret because a secret with this name is already scheduled for deletion."
                )
            retried = _retried_version(plane, existing, params.get("ClientRequestToken"), value)
            if retried is not None:  # the same request again (an SDK retry): the same answer
                return {"ARN": existing["ARN"], "Name": name, "VersionId": retried}
            raise SecretsManagerError("ResourceExistsException", f"The operation failed because the secret {name} already exists.")
        body: dict[str, Any] = {
            "ARN": secret_arn(region, plane.account, name),
            "Name": name,
            "CreatedDate": now,
            "LastChangedDate": now,
            "Tags": list(params.get("Tags") or []),
        }
        if params.get("Description") is not None:
            body["Description"] = params["Description"]
        plane.store.put_sm_secret(region, body)
        out = {"ARN": body["ARN"], "Name": name}
        if value is not None:
            _add_version(plane, body, token, value, [CURRENT], now)
            out["VersionId"] = token
    return out


def put_secret_value(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    value = _value_of(params, required=True)
    assert value is not None
    token = params.get("ClientRequestToken") or str(uuid.uuid4())
    stages = list(dict.fromkeys(params.get("VersionStages") or [CURRENT]))
    now = plane.clock()
    with plane.store.transaction():
        body = _writable(plane, region, params["SecretId"])
        for version in plane.store.sm_versions(body["ARN"]):
            if version.version_id == token:
                if _open(plane, body, version) != value:
                    raise SecretsManagerError(
                        "ResourceExistsException", "You can't modify an existing version, you can only create a new version."
                    )
                return {"ARN": body["ARN"], "Name": body["Name"], "VersionId": token, "VersionStages": version.stages}
        _add_version(plane, body, token, value, stages, now)
        body["LastChangedDate"] = now
        plane.store.put_sm_secret(region, body)
    return {"ARN": body["ARN"], "Name": body["Name"], "VersionId": token, "VersionStages": stages}


def update_secret(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """A new Description, and/or a new value that becomes AWSCURRENT (as PutSecretValue)."""
    _refuse_unsupported(params)
    value = _value_of(params, required=False)
    token = params.get("ClientRequestToken") or str(uuid.uuid4())
    now = plane.clock()
    with plane.store.transaction():
        body = _writable(plane, region, params["SecretId"])
        out = {"ARN": body["ARN"], "Name": body["Name"]}
        if params.get("Description") is not None:
            body["Description"] = params["Description"]
        if value is not None:
            retried = _retried_version(plane, body, token, value)
            if retried is None:
                if any(v.version_id == token for v in plane.store.sm_versions(body["ARN"])):
                    raise SecretsManagerError(
                        "ResourceExistsException", "You can't modify an existing version, you can only create a new version."
                    )
                _add_version(plane, body, token, value, [CURRENT], now)
            out["VersionId"] = token
        body["LastChangedDate"] = now
        plane.store.put_sm_secret(region, body)
    return out


def delete_secret(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    force = bool(params.get("ForceDeleteWithoutRecovery"))
    days = params.get("RecoveryWindowInDays")
    if force and days is not None:
        raise _invalid_parameter("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
    if days is not None and not 7 <= days <= 30:
        raise _invalid_parameter("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
    now = plane.clock()
    with plane.store.transaction():
        body = _found(plane, region, params["SecretId"])
        if force:
            plane.store.delete_sm_secret(body["ARN"])
            return {"ARN": body["ARN"], "Name": body["Name"], "DeletionDate": now}
        if body.get("DeletedDate") is not None:
            raise _invalid_request(MARKED_FOR_DELETION)
        body["DeletedDate"] = now
        body["_PurgeAt"] = now + (days or DEFAULT_RECOVERY_DAYS) * DAY_S
        plane.store.put_sm_secret(region, body)
    return {"ARN": body["ARN"], "Name": body["Name"], "DeletionDate": body["_PurgeAt"]}


def restore_secret(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        body = _found(plane, region, params["SecretId"])
        body.pop("DeletedDate", None)
        body.pop("_PurgeAt", None)
        plane.store.put_sm_secret(region, body)
    return {"ARN": body["ARN"], "Name": body["Name"]}


# -- reading


def get_secret_value(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    version_id, stage = params.get("VersionId"), params.get("VersionStage")
    with plane.store.transaction():
        body = _found(plane, region, params["SecretId"])
        if body.get("DeletedDate") is not None:
            raise _invalid_request(MARKED_FOR_DELETION)
        version = pick_version(plane, body, version_id, stage)
        accessed = plane.clock() // DAY_S * DAY_S  # AWS keeps the day only
        if body.get("LastAccessedDate") != accessed:
            body["LastAccessedDate"] = accessed
            plane.store.put_sm_secret(region, body)
    out: dict[str, Any] = {
        "ARN": body["ARN"], "Name": body["Name"], "VersionId": version.version_id,
        "VersionStages": version.stages, "CreatedDate": version.created,
    }
    out.update(json.loads(_open(plane, body, version)))
    return out


def describe_secret(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        body = _found(plane, region, params["SecretId"])
    return _described(plane, body, "VersionIdsToStages")


def list_secrets(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    tests = [_filter_test(f) for f in params.get("Filters") or []]
    with plane.store.transaction():
        bodies = [b for b in (_live(plane, b) for b in plane.store.sm_secrets(region)) if b is not None]
    if not params.get("IncludePlannedDeletion"):
        bodies = [b for b in bodies if b.get("DeletedDate") is None]
    bodies = [b for b in bodies if all(test(b) for test in tests)]
    bodies.sort(key=lambda b: b["CreatedDate"], reverse=params.get("SortOrder") == "desc")
    size = params.get("MaxResults") or 100
    start = _token_offset(params.get("NextToken"))
    page = bodies[start : start + size]
    out: dict[str, Any] = {"SecretList": [_described(plane, b, "SecretVersionsToStages") for b in page]}
    if start + size < len(bodies):
        out["NextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return out


def pick_version(
    plane: ControlPlane, body: dict[str, Any], version_id: str | None, stage: str | None
) -> StoredSecretVersion:
    """The version a VersionId and/or VersionStage name (AWSCURRENT when neither does)."""
    versions = plane.store.sm_versions(body["ARN"])
    if version_id is not None:
        found = next((v for v in versions if v.version_id == version_id), None)
        if found is None:
            raise SecretsManagerError(
                "ResourceNotFoundException", f"Secrets Manager can't find the specified secret value for VersionId: {version_id}"
            )
        if stage is not None and stage not in found.stages:
            raise _invalid_request("You provided a VersionStage that is not associated to the provided VersionId.")
        return found
    wanted = stage or CURRENT
    found = next((v for v in versions if wanted in v.stages), None)
    if found is None:
        raise SecretsManagerError(
            "ResourceNotFoundException", f"Secrets Manager can't find the specified secret value for staging label: {wanted}"
        )
    return found


def find_secret(plane: ControlPlane, region: str, secret_id: str) -> dict[str, Any] | None:
    """The secret a name, full ARN or partial ARN names (None when none does, or it is past its window)."""
    if secret_id.startswith("arn:"):
        parts = secret_id.split(":", 6)
        if len(parts) < 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
            return None
        exact = plane.store.sm_secret_by_arn(secret_id)
        if exact is not None:
            return _live(plane, exact)
        region, name = parts[3], parts[6]
        body = plane.store.sm_secret(region, name)  # a partial ARN: the name without the suffix
        return _live(plane, body) if body is not None and body["ARN"].startswith(secret_id + "-") else None
    return _live(plane, plane.store.sm_secret(region, secret_id))


def plaintext(plane: ControlPlane, body: dict[str, Any], version: StoredSecretVersion) -> dict[str, Any]:
    """``{"SecretString": ...}`` or ``{"SecretBinary": base64}`` of one version."""
    return dict(json.loads(_open(plane, body, version)))


# -- internals


def _refuse_unsupported(params: dict[str, Any]) -> None:
    key_id = params.get("KmsKeyId")
    if key_id is not None and key_id not in (DEFAULT_KEY_ID, "aws/secretsmanager"):
        raise _invalid_parameter(
            f"KmsKeyId {key_id!r}: portside has no KMS keys; secret values are sealed with the server's own secrets "
            f"key. Leave KmsKeyId out (or give {DEFAULT_KEY_ID})."
        )
    if params.get("AddReplicaRegions"):
        raise _invalid_parameter("AddReplicaRegions: portside does not replicate secrets to other regions.")
    if params.get("Type"):
        raise _invalid_parameter("Type: managed external secrets are not supported by portside.")


def _value_of(params: dict[str, Any], required: bool) -> str | None:
    """The request's value as the JSON text sealed into a version; None when it gives none."""
    text, binary = params.get("SecretString"), params.get("SecretBinary")
    if text is not None and binary is not None:
        raise _invalid_parameter("You can't specify both a binary secret value and a string secret value in the same secret.")
    if text is not None:
        return json.dumps({"SecretString": text})
    if binary is not None:
        if isinstance(binary, bytes):
            binary = base64.b64encode(binary).decode()
        return json.dumps({"SecretBinary": binary})
    if required:
        raise _invalid_parameter("You must provide either SecretString or SecretBinary.")
    return None


def _add_version(plane: ControlPlane, body: dict[str, Any], version_id: str, value: str, stages: list[str], now: float) -> None:
    arn = body["ARN"]
    versions = plane.store.sm_versions(arn)
    for version in versions:
        kept = [s for s in version.stages if s not in stages and not (s == PREVIOUS and CURRENT in stages)]
        if CURRENT in stages and CURRENT in version.stages:
            kept.append(PREVIOUS)
        if kept != version.stages:
            plane.store.set_sm_version_stages(arn, version.version_id, kept)
            version.stages[:] = kept
    sealed = key_of(plane).seal(record_aad("sm-secret", arn, "", version_id), value)
    plane.store.put_sm_version(arn, StoredSecretVersion(version_id, now, stages, sealed))
    unlabelled = [v for v in versions if not v.stages]
    for version in unlabelled[: max(len(versions) + 1 - KEPT_UNLABELLED_VERSIONS, 0)]:
        plane.store.delete_sm_version(arn, version.version_id)


def _retried_version(plane: ControlPlane, body: dict[str, Any], token: str | None, value: str | None) -> str | None:
    """The version ``token`` made with this very ``value``, if the secret has one (None otherwise)."""
    if token is None or value is None:
        return None
    version = next((v for v in plane.store.sm_versions(body["ARN"]) if v.version_id == token), None)
    return token if version is not None and _open(plane, body, version) == value else None


def _open(plane: ControlPlane, body: dict[str, Any], version: StoredSecretVersion) -> str:
    return key_of(plane).open(record_aad("sm-secret", body["ARN"], "", version.version_id), version.value)


def _live(plane: ControlPlane, body: dict[str, Any] | None) -> dict[str, Any] | None:
    """``body``, or None (and the secret removed) once its recovery window has passed."""
    if body is not None and body.get("_PurgeAt") is not None and body["_PurgeAt"] <= plane.clock():
        plane.store.delete_sm_secret(body["ARN"])
        return None
    return body


def _found(plane: ControlPlane, region: str, secret_id: str) -> dict[str, Any]:
    body = find_secret(plane, region, secret_id)
    if body is None:
        raise SecretsManagerError("ResourceNotFoundException", NOT_FOUND)
    return body


def _writable(plane: ControlPlane, region: str, secret_id: str) -> dict[str, Any]:
    body = _found(plane, region, secret_id)
    if body.get("DeletedDate") is not None:
        raise _invalid_request(MARKED_FOR_DELETION)
    return body


def _described(plane: ControlPlane, body: dict[str, Any], stages_member: str) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if not k.startswith("_")}
    if not out.get("Tags"):
        out.pop("Tags", None)
    out[stages_member] = {v.version_id: v.stages for v in plane.store.sm_versions(body["ARN"]) if v.stages}
    return out


def _filter_test(spec: dict[str, Any]) -> Any:
    key, values = spec.get("Key"), list(spec.get("Values") or [])
    if key not in LIST_FILTER_KEYS:
        raise _invalid_parameter(f"Filters: the key {key!r} is not supported by portside (supported: {', '.join(LIST_FILTER_KEYS)}).")

    def matches(text: str, value: str) -> bool:
        negated = value.startswith("!")
        hit = text.lower().startswith(value.lstrip("!").lower())
        return hit != negated

    def fields(body: dict[str, Any]) -> list[str]:
        if key == "name":
            return [body["Name"]]
        if key == "description":
            return [body.get("Description", "")]
        return [body["Name"], body.get("Description", "")]

    return lambda body: any(matches(text, value) for value in values for text in fields(body))


def _token_offset(token: Any) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(token).encode()).decode())
    except (binascii.Error, ValueError):
        raise _invalid_parameter("Invalid NextToken.") from None
