"""A cluster's settings, configuration, capacity providers and Service Connect defaults:
UpdateCluster, UpdateClusterSettings, PutClusterCapacityProviders, and the same fields of CreateCluster.

portside stores and echoes them as ECS does; none of them changes how tasks are placed or run
(docs/ecs-api.md says so): every task runs on the cluster's own container instances.
"""

from __future__ import annotations

from typing import Any

from portside.control.plane import ControlPlane
from portside.errors import InvalidParameterException

#: The capacity providers every ECS account has. portside has no CreateCapacityProvider, so these
#: are the only names a cluster can be given.
BUILT_IN_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
CONTAINER_INSIGHTS = ("enabled", "disabled", "enhanced")


def cluster_options(params: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of a CreateCluster or UpdateCluster request, checked, as the cluster stores them
    (only those the request gives); InvalidParameterException naming the field otherwise."""
    out: dict[str, Any] = {}
    if params.get("settings") is not None:
        out["settings"] = merged_settings((current or {}).get("settings") or [], params["settings"])
    if params.get("configuration") is not None:
        out["configuration"] = _configuration(params["configuration"])
    if params.get("serviceConnectDefaults") is not None:
        namespace = (params["serviceConnectDefaults"] or {}).get("namespace")
        if not isinstance(namespace, str) or not namespace:
            raise InvalidParameterException("serviceConnectDefaults.namespace can not be blank.")
        out["serviceConnectDefaults"] = {"namespace": namespace}
    if (
        params.get("capacityProviders") is not None
        or params.get("defaultCapacityProviderStrategy") is not None
    ):
        providers = params.get("capacityProviders")
        if providers is None:
            providers = (current or {}).get("capacityProviders") or []
        out["capacityProviders"] = check_providers(providers)
        out["defaultCapacityProviderStrategy"] = check_strategy(
            params.get("defaultCapacityProviderStrategy") or [], out["capacityProviders"]
        )
    return out


def merged_settings(current: list[dict[str, Any]], given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {s["name"]: s["value"] for s in current}
    for i, setting in enumerate(given):
        name, value = setting.get("name"), setting.get("value")
        if name != "containerInsights":
            raise InvalidParameterException(
                f"settings[{i}].name '{name}' is invalid: the only setting is containerInsights."
            )
        if value not in CONTAINER_INSIGHTS:
            raise InvalidParameterException(
                f"settings[{i}].value '{value}' is invalid: containerInsights is one of {', '.join(CONTAINER_INSIGHTS)}."
            )
        by_name[name] = value
    return [{"name": k, "value": v} for k, v in by_name.items()]


def check_providers(providers: list[Any]) -> list[str]:
    for i, name in enumerate(providers):
        if name not in BUILT_IN_PROVIDERS:
            raise InvalidParameterException(
                f"capacityProviders[{i}]: the specified capacity provider '{name}' does not exist "
                f"(portside has {' and '.join(BUILT_IN_PROVIDERS)} only)."
            )
    if len(set(providers)) != len(providers):
        raise InvalidParameterException("capacityProviders: a capacity provider is given more than once.")
    return list(providers)


def check_strategy(strategy: list[dict[str, Any]], providers: list[str]) -> list[dict[str, Any]]:
    out = []
    seen: set[str] = set()
    for i, item in enumerate(strategy):
        name = item.get("capacityProvider")
        if name not in providers:
            raise InvalidParameterException(
                f"defaultCapacityProviderStrategy[{i}]: the capacity provider '{name}' is not associated with the "
                "cluster. Associate it with capacityProviders or specify a valid capacity provider."
            )
        if name in seen:
            raise InvalidParameterException(
                f"defaultCapacityProviderStrategy[{i}]: '{name}' is given more than once."
            )
        seen.add(name)
        out.append({"capacityProvider": name, "weight": item.get("weight", 0), "base": item.get("base", 0)})
    if sum(1 for item in out if item["base"] > 0) > 1:
        raise InvalidParameterException(
            "defaultCapacityProviderStrategy: only one capacity provider can have a base."
        )
    if out and not any(item["weight"] > 0 for item in out):
        raise InvalidParameterException(
            "defaultCapacityProviderStrategy: at least one capacity provider must have a weight above 0."
        )
    return out


def _configuration(given: dict[str, Any]) -> dict[str, Any]:
    out = {}
    execute = given.get("executeCommandConfiguration")
    if execute is not None:
        logging, log_configuration = execute.get("logging", "DEFAULT"), execute.get("logConfiguration")
        if logging == "OVERRIDE" and not log_configuration:
            raise InvalidParameterException(
                "configuration.executeCommandConfiguration.logConfiguration is required when logging is OVERRIDE."
            )
        if logging != "OVERRIDE" and log_configuration:
            raise InvalidParameterException(
                "configuration.executeCommandConfiguration.logConfiguration can be given only when logging is OVERRIDE."
            )
        out["executeCommandConfiguration"] = {
            "logging": logging,
            **{k: v for k, v in execute.items() if k != "logging"},
        }
    if given.get("managedStorageConfiguration") is not None:
        out["managedStorageConfiguration"] = dict(given["managedStorageConfiguration"])
    return out


# -- API operations


def update_cluster(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return _update(plane, region, params, ("settings", "configuration", "serviceConnectDefaults"))


def update_cluster_settings(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("settings"):
        raise InvalidParameterException("settings can not be empty.")
    return _update(plane, region, params, ("settings",))


def put_cluster_capacity_providers(
    plane: ControlPlane, region: str, params: dict[str, Any]
) -> dict[str, Any]:
    # Both are required: the call replaces the cluster's providers and default strategy as a whole.
    given = {
        "capacityProviders": params.get("capacityProviders") or [],
        "defaultCapacityProviderStrategy": params.get("defaultCapacityProviderStrategy") or [],
    }
    return _update(plane, region, given | {"cluster": params.get("cluster")}, tuple(given))


def _update(
    plane: ControlPlane, region: str, params: dict[str, Any], fields: tuple[str, ...]
) -> dict[str, Any]:
    from portside.control.clusters import render_cluster

    with plane.store.transaction():
        body = plane.require_cluster(region, params.get("cluster"))
        body.update(cluster_options({k: params.get(k) for k in fields}, body))
        plane.store.put_cluster(region, body)
    return {"cluster": render_cluster(plane, region, body, include=("TAGS", "SETTINGS", "CONFIGURATIONS"))}
