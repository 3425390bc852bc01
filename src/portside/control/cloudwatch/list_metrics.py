"""ListMetrics: the metrics the store holds data for, filtered as CloudWatch filters them."""

from __future__ import annotations

from typing import Any

from portside.control.cloudwatch import params as p
from portside.control.cloudwatch.errors import invalid_value, unsupported
from portside.control.plane import ControlPlane

PAGE_SIZE = 500
#: ListMetrics' RecentlyActive: the only value CloudWatch accepts, and the window it stands for.
RECENTLY_ACTIVE = {"PT3H": 3 * 3600}


def list_metrics(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("IncludeLinkedAccounts"):
        raise unsupported("IncludeLinkedAccounts", "portside serves one account")
    if params.get("OwningAccount") is not None:
        raise unsupported("OwningAccount", "portside serves one account")
    since = 0.0
    recently = params.get("RecentlyActive")
    if recently is not None:
        if recently not in RECENTLY_ACTIVE:
            raise invalid_value(recently, "RecentlyActive", "must be PT3H")
        since = plane.clock() - RECENTLY_ACTIVE[recently]
    filters = params.get("Dimensions") or []
    names = [f["Name"] for f in filters]
    if len(set(names)) != len(names):
        raise invalid_value(names, "Dimensions", "a dimension name may appear only once")
    offset = p.decode_token(params.get("NextToken"))
    metrics = []
    for namespace, name, dims in plane.store.metric_keys(region, params.get("Namespace"), since):
        if params.get("MetricName") is not None and name != params["MetricName"]:
            continue
        if any(f["Name"] not in dims or (f.get("Value") is not None and dims[f["Name"]] != f["Value"]) for f in filters):
            continue
        metrics.append({"Namespace": namespace, "MetricName": name, "Dimensions": p.dimension_list(dims)})
    page = metrics[offset : offset + PAGE_SIZE]
    result: dict[str, Any] = {"Metrics": page}
    if offset + PAGE_SIZE < len(metrics):
        result["NextToken"] = p.encode_token(offset + PAGE_SIZE)
    return result
