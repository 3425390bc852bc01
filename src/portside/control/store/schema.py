"""The store's tables, one schema for SQLite and PostgreSQL, and the versioned steps that built them.

``SCHEMA`` is version 1, as the first state directories had it; each entry of ``MIGRATIONS``
brings a store from one version to the next. ``meta.schema_version`` records where a store is.
A store written by a newer portside (a version above ``SCHEMA_VERSION``) is refused, never
opened: an older binary would write rows the newer one does not expect.

The text is SQLite's dialect; ``postgres.ddl`` turns it into PostgreSQL's mechanically (types,
a ``seq`` column standing for SQLite's rowid). Keep to what both understand.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_definitions (
  region TEXT NOT NULL, family TEXT NOT NULL, revision INTEGER NOT NULL,
  arn TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (region, family, revision));
CREATE TABLE IF NOT EXISTS clusters (
  region TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (region, name));
CREATE TABLE IF NOT EXISTS container_instances (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, cluster TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, cluster TEXT NOT NULL, family TEXT NOT NULL,
  started_by TEXT, container_instance TEXT, desired_status TEXT NOT NULL,
  last_status INTEGER NOT NULL, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_cluster ON tasks (region, cluster, created_at);
CREATE INDEX IF NOT EXISTS tasks_live ON tasks (last_status);
CREATE TABLE IF NOT EXISTS services (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, cluster TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
  created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS services_by_cluster ON services (region, cluster, created_at);
CREATE TABLE IF NOT EXISTS client_tokens (
  region TEXT NOT NULL, scope TEXT NOT NULL, token TEXT NOT NULL, request TEXT NOT NULL,
  result TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (region, scope, token));
-- ELBv2 (control/elbv2): AWS-shaped records as JSON; rows are updated in place, so rowid order is
-- creation order (what Describe* pages through).
CREATE TABLE IF NOT EXISTS elb_load_balancers (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS elb_load_balancers_by_name ON elb_load_balancers (region, name);
CREATE TABLE IF NOT EXISTS elb_target_groups (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS elb_target_groups_by_name ON elb_target_groups (region, name);
CREATE TABLE IF NOT EXISTS elb_listeners (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, load_balancer_arn TEXT NOT NULL, port INTEGER NOT NULL,
  body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS elb_listeners_by_lb ON elb_listeners (load_balancer_arn);
CREATE TABLE IF NOT EXISTS elb_rules (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, listener_arn TEXT NOT NULL, priority INTEGER NOT NULL,
  is_default INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS elb_rules_by_listener ON elb_rules (listener_arn, priority);
CREATE TABLE IF NOT EXISTS elb_targets (
  target_group_arn TEXT NOT NULL, target_id TEXT NOT NULL, port INTEGER NOT NULL, region TEXT NOT NULL,
  availability_zone TEXT, draining INTEGER NOT NULL, drain_deadline REAL, registered_at REAL NOT NULL,
  PRIMARY KEY (target_group_arn, target_id, port));
CREATE INDEX IF NOT EXISTS elb_targets_draining ON elb_targets (draining, drain_deadline);
CREATE TABLE IF NOT EXISTS elb_tags (
  arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, region TEXT NOT NULL,
  PRIMARY KEY (arn, key));
CREATE TABLE IF NOT EXISTS elb_certificates (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS elb_certificates_by_name ON elb_certificates (region, name);
-- Application Auto Scaling (control/autoscaling.py): AWS-shaped records as JSON, rowid order is
-- creation order; activities are kept six weeks.
CREATE TABLE IF NOT EXISTS aas_scalable_targets (
  region TEXT NOT NULL, namespace TEXT NOT NULL, resource_id TEXT NOT NULL, dimension TEXT NOT NULL,
  body TEXT NOT NULL, PRIMARY KEY (region, namespace, resource_id, dimension));
CREATE TABLE IF NOT EXISTS aas_scaling_policies (
  region TEXT NOT NULL, namespace TEXT NOT NULL, resource_id TEXT NOT NULL, dimension TEXT NOT NULL,
  name TEXT NOT NULL, arn TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (region, namespace, resource_id, dimension, name));
CREATE TABLE IF NOT EXISTS aas_scaling_activities (
  activity_id TEXT PRIMARY KEY, region TEXT NOT NULL, namespace TEXT NOT NULL, resource_id TEXT NOT NULL,
  dimension TEXT NOT NULL, start_time REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS aas_activities_by_target
  ON aas_scaling_activities (region, namespace, resource_id, dimension, start_time);
-- Health states of the load balancer's targets (store/health.py).
CREATE TABLE IF NOT EXISTS lb_target_health (group_arn TEXT NOT NULL, target_id TEXT NOT NULL,
  port INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (group_arn, target_id, port));
"""

#: Each step, in order: the statements that bring a store from version N (its index + 1) to N + 1.
MIGRATIONS: list[str] = [
    # 2: tasks.rev, the revision at which a task row last changed, so an agent watches the tasks
    #    of its container instance from a revision (docs/agent-protocol.md).
    """
    ALTER TABLE tasks ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX IF NOT EXISTS tasks_by_instance ON tasks (container_instance, rev);
    """,
    # 3: replicas (docs/replicas.md). One revision counter that every write transaction moves
    #    (commit order is revision order); the log of what changed at which revision, which
    #    other replicas follow; leases with fencing epochs; a version per service row for
    #    conditional updates; when agents and load-balancer nodes last called any replica.
    """
    CREATE TABLE IF NOT EXISTS revision (id INTEGER PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO revision (id, value) SELECT 1, COALESCE(MAX(rev), 0) FROM tasks;
    CREATE INDEX IF NOT EXISTS tasks_by_rev ON tasks (rev);
    CREATE TABLE IF NOT EXISTS changes (
      rev INTEGER NOT NULL, writer TEXT NOT NULL, topic TEXT NOT NULL, key TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS changes_by_rev ON changes (rev);
    CREATE TABLE IF NOT EXISTS leases (
      name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch INTEGER NOT NULL, expires_at REAL NOT NULL);
    ALTER TABLE services ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS presence (
      kind TEXT NOT NULL, key TEXT NOT NULL, seen_at REAL NOT NULL, PRIMARY KEY (kind, key));
    """,
    # 4: CloudWatch metric datapoints (store/metrics.py): one statistic set per metric and bucket.
    """
    CREATE TABLE IF NOT EXISTS cw_datapoints (
      region TEXT NOT NULL, namespace TEXT NOT NULL, metric_name TEXT NOT NULL, dimensions TEXT NOT NULL,
      resolution INTEGER NOT NULL, ts INTEGER NOT NULL, unit TEXT NOT NULL,
      sample_count REAL NOT NULL, total REAL NOT NULL, minimum REAL NOT NULL, maximum REAL NOT NULL,
      PRIMARY KEY (region, namespace, metric_name, dimensions, resolution, ts));
    CREATE INDEX IF NOT EXISTS cw_datapoints_by_ts ON cw_datapoints (ts);
    """,
    # 5: ECS account settings (store/account_settings.py): what PutAccountSetting(Default) put, per
    #    principal (the root user's are the account's defaults).
    """
    CREATE TABLE IF NOT EXISTS ecs_account_settings (
      region TEXT NOT NULL, principal TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
      PRIMARY KEY (region, principal, name));
    """,
    # 6: SSM parameters (one row per version) and Secrets Manager secrets and their versions
    #    (store/secrets.py). Values are sealed with the key outside the database (control/secrets_key.py).
    """
    CREATE TABLE IF NOT EXISTS ssm_parameters (
      region TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, value TEXT NOT NULL,
      PRIMARY KEY (region, name, version));
    CREATE TABLE IF NOT EXISTS sm_secrets (
      region TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
      PRIMARY KEY (region, name));
    CREATE TABLE IF NOT EXISTS sm_secret_versions (
      arn TEXT NOT NULL, version_id TEXT NOT NULL, created REAL NOT NULL, stages TEXT NOT NULL, value TEXT NOT NULL,
      PRIMARY KEY (arn, version_id));
    """,
    # 7: Application Auto Scaling scheduled actions (store/scheduled_actions.py), keyed by target and name.
    """
    CREATE TABLE IF NOT EXISTS aas_scheduled_actions (
      region TEXT NOT NULL, namespace TEXT NOT NULL, resource_id TEXT NOT NULL, dimension TEXT NOT NULL,
      name TEXT NOT NULL, body TEXT NOT NULL,
      PRIMARY KEY (region, namespace, resource_id, dimension, name));
    """,
    # 8: CloudWatch metric distributions (store/metric_distributions.py): counts per value bucket, for percentiles.
    """
    CREATE TABLE IF NOT EXISTS cw_distributions (
      region TEXT NOT NULL, namespace TEXT NOT NULL, metric_name TEXT NOT NULL, dimensions TEXT NOT NULL,
      resolution INTEGER NOT NULL, ts INTEGER NOT NULL, bucket INTEGER NOT NULL, samples REAL NOT NULL,
      PRIMARY KEY (region, namespace, metric_name, dimensions, resolution, ts, bucket));
    CREATE INDEX IF NOT EXISTS cw_distributions_by_ts ON cw_distributions (ts);
    """,
    # 9: CloudWatch metric alarms and their history (store/alarms.py).
    """
    CREATE TABLE IF NOT EXISTS cw_alarms (
      region TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (region, name));
    CREATE TABLE IF NOT EXISTS cw_alarm_history (
      region TEXT NOT NULL, name TEXT NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS cw_alarm_history_by_alarm ON cw_alarm_history (region, name, ts);
    """,
    # 10: CloudWatch Logs (store/logs.py): groups, streams, and their events (one key per event per stream).
    """
    CREATE TABLE IF NOT EXISTS log_groups (
      region TEXT NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL, retention_days INTEGER,
      PRIMARY KEY (region, name));
    CREATE TABLE IF NOT EXISTS log_streams (
      region TEXT NOT NULL, group_name TEXT NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL,
      first_event INTEGER, last_event INTEGER, last_ingestion INTEGER, stored_bytes INTEGER NOT NULL,
      PRIMARY KEY (region, group_name, name));
    CREATE TABLE IF NOT EXISTS log_events (
      region TEXT NOT NULL, group_name TEXT NOT NULL, stream_name TEXT NOT NULL, event_key TEXT NOT NULL,
      ts INTEGER NOT NULL, ingested INTEGER NOT NULL, message TEXT NOT NULL,
      PRIMARY KEY (region, group_name, stream_name, event_key));
    CREATE INDEX IF NOT EXISTS log_events_by_ts ON log_events (region, group_name, ts);
    """,
]

#: The version this code writes: a store above it is refused.
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """The statements of a script (no statement of ours holds a ';' inside a string)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
