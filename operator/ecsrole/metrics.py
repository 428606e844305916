"""The Prometheus metrics of DESIGN section 5: the names and labels are a public contract.

Alerts and dashboards are written against these exact names, so they live in one module and
nowhere else. Per-object series (ready, drifted) use kube-state-metrics labels and are removed
when their object goes.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ecsrole.core.model import Aspect

# One series per counter, not a second *_created series: half the scrape size, same meaning.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

OBJECT_LABELS = ("namespace", "name", "account_id", "role_name")

drifted = Gauge(
    "ecsrole_drifted",
    "1 when the role in AWS differs from its EcsExecutionRole, else 0.",
    OBJECT_LABELS,
    registry=REGISTRY,
)
ready = Gauge(
    "ecsrole_ready",
    "1 when the EcsExecutionRole's Ready condition is True, else 0.",
    OBJECT_LABELS,
    registry=REGISTRY,
)
drift_events = Counter(
    "ecsrole_drift_events",
    "Drift found on a role, by aspect (counted once per detection, also under Enforce).",
    ("account_id", "aspect"),
    registry=REGISTRY,
)
drift_remediations = Counter(
    "ecsrole_drift_remediations",
    "Drift put back under driftPolicy Enforce, by aspect and outcome (success, error).",
    ("account_id", "aspect", "outcome"),
    registry=REGISTRY,
)
reconcile_duration = Histogram(
    "ecsrole_reconcile_duration_seconds",
    "Time spent reconciling one EcsExecutionRole, by operation (create, update, delete, ...).",
    ("operation",),
    registry=REGISTRY,
)
reconcile_errors = Counter(
    "ecsrole_reconcile_errors",
    "Reconciles that did not succeed, by reason (a Ready or Synced condition reason).",
    ("reason",),
    registry=REGISTRY,
)
aws_api_calls = Counter(
    "ecsrole_aws_api_calls",
    "Every HTTP attempt to AWS, by service, operation and outcome (success, throttled, error).",
    ("service", "operation", "outcome"),
    registry=REGISTRY,
)
drift_sweep_duration = Histogram(
    "ecsrole_drift_sweep_duration_seconds",
    "Duration of one drift sweep of an account.",
    ("account_id",),
    registry=REGISTRY,
)
drift_sweep_last_success = Gauge(
    "ecsrole_drift_sweep_last_success_timestamp_seconds",
    "Unix time of the last drift sweep of an account that completed.",
    ("account_id",),
    registry=REGISTRY,
)
drift_detection_latency = Histogram(
    "ecsrole_drift_detection_latency_seconds",
    "Time from an out-of-band change to its detection, by source (sweep, event).",
    ("source",),
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400),
    registry=REGISTRY,
)
managed_roles = Gauge(
    "ecsrole_managed_roles",
    "EcsExecutionRoles the operator manages, by account.",
    ("account_id",),
    registry=REGISTRY,
)
leader = Gauge(
    "ecsrole_leader",
    "1 while this replica holds the leader Lease and runs reconciles and sweeps.",
    registry=REGISTRY,
)


def init_account(account_id: str) -> None:
    """Create an account's drift counters at 0 before anything happens.

    `increase()` and `rate()` cannot see a counter's first increment when its series first
    appears with the value 1: the first privilege drift in an account would never alert.
    """
    for aspect in Aspect:
        drift_events.labels(account_id, aspect.value)


def set_object_state(
    *, namespace: str, name: str, account_id: str, role_name: str, is_ready: bool, is_drifted: bool
) -> None:
    labels = (namespace, name, account_id, role_name)
    ready.labels(*labels).set(1 if is_ready else 0)
    drifted.labels(*labels).set(1 if is_drifted else 0)


def forget_object(*, namespace: str, name: str, account_id: str, role_name: str) -> None:
    """Remove an object's series so a deleted resource does not linger as 'not ready'."""
    labels = (namespace, name, account_id, role_name)
    for gauge in (ready, drifted):
        try:
            gauge.remove(*labels)
        except KeyError:
            continue
