"""SSM Parameter Store operations (``AmazonSSM.*``): parameters of type String, StringList and SecureString.

Every value is sealed with the server's secrets key before it is stored (control/secrets_key.py),
bound to its region, name and version. ``WithDecryption`` matters only for SecureString: without
it the answer holds the sealed value (base64 ciphertext, as AWS shows a KMS ciphertext), never
the plaintext. Versions count up from 1 on every PutParameter; the last 100 are kept.

What portside refuses by name rather than ignore: a ``KeyId`` other than the default key
``alias/aws/ssm`` (there is no KMS here), ``Policies``, ``DataType`` other than ``text``,
label selectors (``NAME:label``) and the legacy ``Filters`` of DescribeParameters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from portside.control.plane import ControlPlane
from portside.control.secrets_key import SecretsKey, record_aad
from portside.control.store.secrets import StoredParameter
from portside.core import ssm_names
from portside.errors import PortsideError

TYPES = ("String", "StringList", "SecureString")
DEFAULT_KEY_ID = "alias/aws/ssm"
MAX_VALUE = {"Standard": 4096, "Advanced": 8192}
KEPT_VERSIONS = 100
DESCRIBE_FILTER_KEYS = ("Name", "Path", "Type")
_TOKEN_MARK = "after:"  # a NextToken is base64 of this and the last name given


class SsmError(PortsideError):
    """An SSM error: ``code`` is the model's error shape name (ParameterNotFound, ValidationException, ...)."""

    status_hint = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def validation(message: str) -> SsmError:
    return SsmError("ValidationException", message)


def key_of(plane: ControlPlane) -> SecretsKey:
    if plane.secrets_key is None:
        raise PortsideError("This server has no secrets key (control/secrets_key.py); secrets cannot be stored or read")
    return plane.secrets_key


def _aad(region: str, name: str, version: int) -> str:
    return record_aad("ssm-parameter", region, name, str(version))


# -- writing


def put_parameter(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name, value = params["Name"], params["Value"]
    _check_name(name)
    kind = params.get("Type")
    key_id = params.get("KeyId")
    if key_id is not None and kind not in (None, "SecureString"):
        raise validation(f"KeyId: a key is for SecureString parameters only, and this one is of type {kind}.")
    if key_id is not None and key_id not in (DEFAULT_KEY_ID, "aws/ssm"):
        raise validation(
            f"KeyId {key_id!r}: portside has no KMS keys; SecureString values are sealed with the server's own "
            f"secrets key. Leave KeyId out (or give {DEFAULT_KEY_ID})."
        )
    if params.get("Policies"):
        raise validation("Policies: parameter policies (Expiration, notifications) are not supported by portside.")
    data_type = params.get("DataType") or "text"
    if data_type != "text":
        raise validation(f"DataType {data_type!r}: portside validates no AWS data types; only 'text' is supported.")
    tier = _tier(params.get("Tier") or "Standard", value)
    pattern = params.get("AllowedPattern")
    if pattern is not None:
        _check_pattern(pattern, value)
    key = key_of(plane)
    with plane.store.transaction():
        existing = plane.store.ssm_parameter(region, name)
        if existing is not None:
            if not params.get("Overwrite"):
                raise SsmError(
                    "ParameterAlreadyExists",
                    "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
                )
            if params.get("Tags"):
                raise validation(
                    "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, "
                    "please remove overwrite flag."
                )
        elif kind is None:
            raise validation("A parameter type is required when you create a parameter.")
        before = existing.body if existing else {}
        if pattern is None and before.get("AllowedPattern"):
            _check_pattern(before["AllowedPattern"], value)
        version = existing.version + 1 if existing else 1
        body = {
            "Type": kind or before["Type"],
            "Tier": tier,
            "DataType": data_type,
            "LastModifiedDate": plane.clock(),
            **{k: v for k in ("Description", "AllowedPattern") if (v := params.get(k, before.get(k))) is not None},
            "Tags": before.get("Tags") or list(params.get("Tags") or []),
        }
        sealed = key.seal(_aad(region, name, version), value)
        plane.store.put_ssm_parameter(region, StoredParameter(name, version, body, sealed), KEPT_VERSIONS)
    return {"Version": version, "Tier": tier}


def _check_name(name: str) -> None:
    try:
        ssm_names.check_name(name)
    except ssm_names.HierarchyTooDeep as exc:
        raise SsmError("HierarchyLevelLimitExceededException", str(exc)) from None
    except ValueError as exc:
        raise validation(str(exc)) from None


def _tier(asked: str, value: str) -> str:
    tier = "Standard" if asked == "Intelligent-Tiering" and len(value) <= MAX_VALUE["Standard"] else asked
    tier = "Advanced" if tier == "Intelligent-Tiering" else tier
    if len(value) > MAX_VALUE[tier]:
        if tier == "Standard":
            raise validation(
                "Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger "
                "parameter value, upgrade the parameter to use the advanced-parameter tier."
            )
        raise validation("Advanced tier parameters support a maximum parameter value of 8192 characters.")
    return tier


def _check_pattern(pattern: str, value: str) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise SsmError("InvalidAllowedPatternException", f"AllowedPattern {pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.fullmatch(value) is None:
        raise SsmError("ParameterPatternMismatchException", f"Parameter value, cannot be validated against allowedPattern: {pattern}")


def delete_parameter(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        if not plane.store.delete_ssm_parameter(region, params["Name"]):
            raise _not_found(params["Name"])
    return {}


def delete_parameters(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    deleted: list[str] = []
    invalid: list[str] = []
    with plane.store.transaction():
        for name in dict.fromkeys(params["Names"]):
            (deleted if plane.store.delete_ssm_parameter(region, name) else invalid).append(name)
    return {"DeletedParameters": deleted, "InvalidParameters": invalid}


# -- reading


def get_parameter(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    text = params["Name"]
    found = resolve(plane, region, text)
    return {"Parameter": _render(plane, region, found, text, bool(params.get("WithDecryption")))}


def get_parameters(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    decrypt = bool(params.get("WithDecryption"))
    found: list[dict[str, Any]] = []
    invalid: list[str] = []
    for text in dict.fromkeys(params["Names"]):
        try:
            stored = resolve(plane, region, text)
        except SsmError:
            invalid.append(text)
            continue
        found.append(_render(plane, region, stored, text, decrypt))
    return {"Parameters": found, "InvalidParameters": invalid}


def get_parameters_by_path(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    path = params["Path"]
    try:
        ssm_names.check_path(path)
    except ssm_names.HierarchyTooDeep as exc:
        raise SsmError("HierarchyLevelLimitExceededException", str(exc)) from None
    except ValueError as exc:
        raise validation(str(exc)) from None
    if params.get("ParameterFilters"):
        raise validation("ParameterFilters: filtering GetParametersByPath is not supported by portside; filter the answer.")
    recursive = bool(params.get("Recursive"))
    prefix = path if path.endswith("/") else path + "/"
    page, token = _page(
        plane, region, prefix, params, 10, lambda p: ssm_names.in_path(p.name, path, recursive)
    )
    decrypt = bool(params.get("WithDecryption"))
    out: dict[str, Any] = {"Parameters": [_render(plane, region, p, p.name, decrypt) for p in page]}
    if token:
        out["NextToken"] = token
    return out


def describe_parameters(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("Filters"):
        raise validation("Filters: the legacy filters are not supported by portside; use ParameterFilters.")
    if params.get("Shared"):
        return {"Parameters": []}  # nothing is shared with this account here
    tests = [_filter_test(f) for f in params.get("ParameterFilters") or []]
    page, token = _page(plane, region, "", params, 50, lambda p: all(test(p) for test in tests))
    out: dict[str, Any] = {"Parameters": [_metadata(plane, region, p) for p in page]}
    if token:
        out["NextToken"] = token
    return out


def get_parameter_history(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """Every kept version (the last 100), oldest first, with its value as GetParameter shows it."""
    name = params["Name"]
    versions = plane.store.ssm_versions(region, name)
    if not versions:
        raise _not_found(name)
    after = _token_name(params.get("NextToken"))
    if after:
        versions = [v for v in versions if v.version > int(after)] if after.isdigit() else []
    size = params.get("MaxResults") or 50
    decrypt = bool(params.get("WithDecryption"))
    page = versions[:size]
    out: dict[str, Any] = {"Parameters": [
        {**_metadata(plane, region, v), "Value": _render(plane, region, v, name, decrypt)["Value"], "Labels": []}
        for v in page
    ]}
    for entry in out["Parameters"]:
        entry.pop("ARN", None)  # ParameterHistory has no ARN
    if len(versions) > size:
        out["NextToken"] = base64.b64encode(f"{_TOKEN_MARK}{page[-1].version}".encode(), altchars=b"-_").decode()
    return out


def resolve(plane: ControlPlane, region: str, text: str) -> StoredParameter:
    """The stored parameter ``text`` names (name, ``name:version`` or ARN); ParameterNotFound otherwise."""
    try:
        ref = ssm_names.parse_reference(text)
    except ValueError as exc:
        raise validation(str(exc)) from None
    where = ref.region or region
    found = plane.store.ssm_parameter(where, ref.name)
    if found is None and ref.region is not None and not ref.name.startswith("/"):
        found = plane.store.ssm_parameter(where, "/" + ref.name)  # arn ...:parameter/NAME of a top-level "/NAME"
    if found is None:
        raise _not_found(text)
    if ref.version is not None and ref.version != found.version:
        older = plane.store.ssm_parameter(where, found.name, ref.version)
        if older is None:
            raise SsmError(
                "ParameterVersionNotFound",
                f"Systems Manager could not find version {ref.version} of {found.name}. Verify the version and try again.",
            )
        found = older
    return found


def plaintext(plane: ControlPlane, region: str, parameter: StoredParameter) -> str:
    return key_of(plane).open(_aad(region, parameter.name, parameter.version), parameter.value)


def _not_found(name: str) -> SsmError:
    return SsmError("ParameterNotFound", f"Parameter {name} not found.")


def _render(plane: ControlPlane, region: str, parameter: StoredParameter, asked: str, decrypt: bool) -> dict[str, Any]:
    body = parameter.body
    if body["Type"] == "SecureString" and not decrypt:
        value = parameter.value.split(":", 1)[1]  # the sealed value's ciphertext, never the plaintext
    else:
        value = plaintext(plane, region, parameter)
    out = {
        "Name": parameter.name,
        "Type": body["Type"],
        "Value": value,
        "Version": parameter.version,
        "LastModifiedDate": body["LastModifiedDate"],
        "ARN": ssm_names.parameter_arn(region, plane.account, parameter.name),
        "DataType": body.get("DataType", "text"),
    }
    if ":" in asked and not asked.startswith("arn:") or asked.count(":") > 5:
        out["Selector"] = ":" + asked.rpartition(":")[2]  # NAME:3 or ARN:3: a version was asked for
    return out


def _metadata(plane: ControlPlane, region: str, parameter: StoredParameter) -> dict[str, Any]:
    body = parameter.body
    out: dict[str, Any] = {
        "Name": parameter.name,
        "ARN": ssm_names.parameter_arn(region, plane.account, parameter.name),
        "Type": body["Type"],
        "LastModifiedDate": body["LastModifiedDate"],
        "LastModifiedUser": f"arn:aws:iam::{plane.account}:root",
        "Version": parameter.version,
        "Tier": body["Tier"],
        "Policies": [],
        "DataType": body.get("DataType", "text"),
    }
    if body["Type"] == "SecureString":
        out["KeyId"] = DEFAULT_KEY_ID
    for member in ("Description", "AllowedPattern"):
        if body.get(member) is not None:
            out[member] = body[member]
    return out


def _page(
    plane: ControlPlane, region: str, prefix: str, params: dict[str, Any], largest: int,
    keep: Callable[[StoredParameter], bool],
) -> tuple[list[StoredParameter], str | None]:
    """One page of the parameters under ``prefix`` that ``keep``; the token names the last one given."""
    size = params.get("MaxResults") or largest
    after = _token_name(params.get("NextToken"))
    page: list[StoredParameter] = []
    while len(page) <= size:
        batch = plane.store.ssm_parameters(region, prefix, after, limit=200)
        if not batch:
            break
        after = batch[-1].name
        page.extend(p for p in batch if keep(p))
    if len(page) > size:
        return page[:size], base64.b64encode(f"{_TOKEN_MARK}{page[size - 1].name}".encode(), altchars=b"-_").decode()
    return page, None


def _token_name(token: Any) -> str:
    if not token:
        return ""
    try:
        text = base64.b64decode(str(token).encode(), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        text = ""
    if not text.startswith(_TOKEN_MARK):
        raise SsmError("InvalidNextToken", "The specified token isn't valid.")
    return text[len(_TOKEN_MARK):]


def _filter_test(spec: dict[str, Any]) -> Callable[[StoredParameter], bool]:
    """A ParameterFilters entry as a test on a stored parameter (Name, Path and Type keys)."""
    key, option, values = spec["Key"], spec.get("Option"), list(spec.get("Values") or [])
    if key not in DESCRIBE_FILTER_KEYS:
        raise SsmError("InvalidFilterKey", f"ParameterFilters: the key {key!r} is not supported by portside "
                       f"(supported: {', '.join(DESCRIBE_FILTER_KEYS)}).")
    if key == "Path":
        if option not in (None, "OneLevel", "Recursive"):
            raise SsmError("InvalidFilterOption", f"The option {option!r} is not valid for the key Path (OneLevel, Recursive).")
        return lambda p: any(ssm_names.in_path(p.name, v, option == "Recursive") for v in values)
    if option not in (None, "Equals", "BeginsWith") or (key == "Type" and option == "BeginsWith"):
        raise SsmError("InvalidFilterOption", f"The option {option!r} is not valid for the key {key}.")
    if key == "Type":
        return lambda p: p.body["Type"] in values
    if option == "BeginsWith":
        return lambda p: any(p.name.startswith(v) for v in values)
    return lambda p: p.name in values
