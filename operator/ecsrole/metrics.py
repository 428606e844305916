"""The Prometheus metrics of DESIGN section 5: the names and labels are a public contract.

Alerts and dashboards are written against these exact names, so they live in one module and
nowhere else. Per-object series (ready, drifted) use kube-state-metrics labels and are removed
when their object goes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ecsrole.core.model import Aspect

# One series per counter, not a second *_created series: half the scrape size, same meaning.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

OBJECT_LABELS = ("namespace", "name", "account_id", "role_name")


class ObjectStates(Collector):
    """ecsrole_ready and ecsrole_drifted: two gauges with one series per object.

    Kept as one small tuple per object and rendered at scrape time: a labelled Gauge child
    costs about 800 bytes, so the two gauges cost 8 MB at 5,000 objects.
    """

    labelnames = OBJECT_LABELS

    def __init__(self) -> None:
        self._states: dict[tuple[str, str, str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def set(self, labels: tuple[str, str, str, str], *, ready: bool, drifted: bool) -> None:
        with self._lock:
            self._states[labels] = (int(ready), int(drifted))

    def forget(self, labels: tuple[str, str, str, str]) -> None:
        with self._lock:
            self._states.pop(labels, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            states = list(self._states.items())
        ready = GaugeMetricFamily(
            "ecsrole_ready",
            "1 when the EcsExecutionRole's Ready condition is True, else 0.",
            labels=OBJECT_LABELS,
        )
        drifted = GaugeMetricFamily(
            "ecsrole_drifted",
            "1 when the role in AWS differs from its EcsExecutionRole, else 0.",
            labels=OBJECT_LABELS,
        )
        for labels, (is_ready, is_drifted) in states:
            ready.add_metric(labels, is_ready)
            drifted.add_metric(labels, is_drifted)
        yield drifted
        yield ready


object_states = ObjectStates()
REGISTRY.register(object_states)
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
event_loop_lag = Histogram(
    "ecsrole_event_loop_lag_seconds",
    "How much later than asked the event loop ran a periodic timer: how long every handler, "
    "sweep and lease renewal had to wait for the loop.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
unjudged_nudges = Counter(
    "ecsrole_unjudged_nudges",
    "Objects whose generation no attempt had judged, left unhandled by kopf for a while, that "
    "the operator touched so kopf handles them (a lost answer from the API server; see "
    "docs/performance-analysis.md).",
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
    object_states.set((namespace, name, account_id, role_name), ready=is_ready, drifted=is_drifted)


def forget_object(*, namespace: str, name: str, account_id: str, role_name: str) -> None:
    """Remove an object's series so a deleted resource does not linger as 'not ready'."""
    object_states.forget((namespace, name, account_id, role_name))
