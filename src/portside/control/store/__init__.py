"""The state store: SQLite in the state directory; the one place that speaks SQL.

``Store`` is one connection with typed methods named after the domain, one module per concept:

- ``database.py``: the connection, ``transaction()`` and meta values;
- ``schema.py``: the tables, and ``migrate`` for what later versions added;
- ``ecs.py``: task definitions, clusters, container instances, tasks, services, client tokens;
- ``elbv2.py``: load balancers, listeners, rules, target groups, certificates, tags;
- ``elb_targets.py``: targets registered in target groups, and their draining;
- ``scaling.py``: Application Auto Scaling targets, policies and activities;
- ``scheduled_actions.py``: Application Auto Scaling scheduled actions;
- ``health.py``: the load balancer's target health (the proxy's ``HealthStore``);
- ``metrics.py``: CloudWatch metric datapoints (statistic sets per bucket);
- ``account_settings.py``: ECS account settings, per principal;
- ``secrets.py``: SSM parameters and Secrets Manager secrets (values sealed outside the store);
- ``alarms.py``: CloudWatch metric alarms and their history;
- ``logs.py``: CloudWatch Logs groups, streams and events;
- ``transfer.py``: a single host's state copied into an empty PostgreSQL store (``portside store migrate``).

Callers group writes that must commit together in ``with store.transaction():``; no method
opens a transaction of its own.
"""

from __future__ import annotations

from portside.control.store.account_settings import AccountSettingRecords
from portside.control.store.alarms import AlarmRecords
from portside.control.store.database import DB_FILE_MODE, Database
from portside.control.store.ecs import EcsRecords
from portside.control.store.elb_targets import ElbTargetRecords
from portside.control.store.elbv2 import ElbRecords
from portside.control.store.health import TargetHealthRecords
from portside.control.store.metric_distributions import DistributionRecords
from portside.control.store.logs import LogRecords
from portside.control.store.metrics import MetricRecords
from portside.control.store.scaling import ScalingRecords
from portside.control.store.scheduled_actions import ScheduledActionRecords
from portside.control.store.secrets import SecretRecords
from portside.control.store.schema import SCHEMA

__all__ = ["DB_FILE_MODE", "SCHEMA", "Store"]


class Store(
    Database, EcsRecords, ElbRecords, ElbTargetRecords, ScalingRecords, ScheduledActionRecords, TargetHealthRecords,
    MetricRecords, DistributionRecords, AlarmRecords, AccountSettingRecords, SecretRecords, LogRecords,
):
    """The server's state store (see the module's docstring)."""
