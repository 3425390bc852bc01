"""Tags of SSM parameters: AddTagsToResource, RemoveTagsFromResource, ListTagsForResource.

Tags belong to the parameter, not to a version: they live in the newest version's metadata
and PutParameter carries them to the next version. Only ``ResourceType: Parameter`` exists here
(documents, maintenance windows and the rest are not served), and the resource is given by name.
"""

from __future__ import annotations

from typing import Any

from portside.control.plane import ControlPlane
from portside.control.ssm import SsmError
from portside.control.store.secrets import StoredParameter

MAX_TAGS = 50


def add_tags_to_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        parameter = _parameter(plane, region, params)
        tags = {t["Key"]: t["Value"] for t in parameter.body.get("Tags") or []}
        tags.update({t["Key"]: t["Value"] for t in params["Tags"]})
        if len(tags) > MAX_TAGS:
            raise SsmError("TooManyTagsError", f"The parameter would have {len(tags)} tags; at most {MAX_TAGS} are allowed.")
        _save(plane, region, parameter, tags)
    return {}


def remove_tags_from_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        parameter = _parameter(plane, region, params)
        gone = set(params["TagKeys"])
        _save(plane, region, parameter, {t["Key"]: t["Value"] for t in parameter.body.get("Tags") or [] if t["Key"] not in gone})
    return {}


def list_tags_for_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"TagList": list(_parameter(plane, region, params).body.get("Tags") or [])}


def _parameter(plane: ControlPlane, region: str, params: dict[str, Any]) -> StoredParameter:
    if params["ResourceType"] != "Parameter":
        raise SsmError("InvalidResourceType", f"ResourceType {params['ResourceType']}: only Parameter is served by portside.")
    found = plane.store.ssm_parameter(region, params["ResourceId"])
    if found is None:
        raise SsmError("InvalidResourceId", "The resource ID is not valid. Verify that you entered the correct ID and try again.")
    return found


def _save(plane: ControlPlane, region: str, parameter: StoredParameter, tags: dict[str, str]) -> None:
    body = {**parameter.body, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    plane.store.replace_ssm_body(region, parameter.name, parameter.version, body)
