"""The state store: SQLite in the state directory; the one place that speaks SQL.

``Store`` is one connection with typed methods named after the domain, one module per concept:

- ``database.py``: the connection, ``transaction()`` and meta values;
- ``schema.py``: the tables, and ``migrate`` for what later versions added;
- ``ecs.py``: task definitions, clusters, container instances, tasks, services, client tokens;
- ``elbv2.py``: load balancers, listeners, rules, target groups, certificates, tags;
- ``elb_targets.py``: targets registered in target groups, and their draining;
- ``scaling.py``: Application Auto Scaling targets, policies and activities;
- ``health.py``: the load balancer's target health (the proxy's ``HealthStore``);
- ``metrics.py``: CloudWatch metric datapoints (statistic sets per bucket);
- ``logs.py``: CloudWatch Logs groups, streams and events;
- ``transfer.py``: a single host's state copied into an empty PostgreSQL store (``portside store migrate``).

Callers group writes that must commit together in ``with store.transaction():``; no method
opens a transaction of its own.
"""

from __future__ import annotations

from portside.control.store.database import DB_FILE_MODE, Database
from portside.control.store.ecs import EcsRecords
from portside.control.store.elb_targets import ElbTargetRecords
from portside.control.store.elbv2 import ElbRecords
from portside.control.store.health import TargetHealthRecords
from portside.control.store.logs import LogRecords
from portside.control.store.metrics import MetricRecords
from portside.control.store.scaling import ScalingRecords
from portside.control.store.schema import SCHEMA

__all__ = ["DB_FILE_MODE", "SCHEMA", "Store"]


class Store(Database, EcsRecords, ElbRecords, ElbTargetRecords, ScalingRecords, TargetHealthRecords, MetricRecords,
            LogRecords):
    """The server's state store (see the module's docstring)."""
