"""A Result told to Kubernetes and Prometheus: the status patch and the metrics, in one place.

Handlers and sweeps both report through here, so a reconcile and a drift sweep that reach the
same outcome write the same status and count the same way.
"""

from __future__ import annotations

from typing import Any

from ecsrole import metrics
from ecsrole import status as status_module
from ecsrole.reconciler import Resource, Result


def status_patch(result: Result, resource: Resource) -> dict[str, Any]:
    """The status fields to write, or {} when the status already says all of it."""
    return status_module.patch_for(
        result.outcome, generation=resource.generation, status=resource.status
    )


def _ready_after(result: Result, resource: Resource) -> bool:
    if result.outcome.keeps_ready:
        previous = {c.get("type"): c for c in resource.status.get("conditions") or []}
        return bool(previous.get("Ready", {}).get("status") == "True")
    return result.outcome.is_ready


def record_metrics(result: Result, resource: Resource) -> None:
    outcome = result.outcome
    if outcome.sync_error:
        metrics.reconcile_errors.labels(outcome.sync_error).inc()
    elif outcome.stalled and outcome.ready_reason:
        metrics.reconcile_errors.labels(outcome.ready_reason).inc()
    if result.target is None:
        return
    account_id = result.target.account_id
    for drift in result.detected:
        metrics.drift_events.labels(account_id, drift.aspect.value).inc()
    if result.detected and result.detection_latency is not None:
        metrics.drift_detection_latency.labels(result.detection_source).observe(
            result.detection_latency
        )
    for aspect in result.remediated:
        metrics.drift_remediations.labels(account_id, aspect.value, "success").inc()
    for aspect in result.remediation_failed:
        metrics.drift_remediations.labels(account_id, aspect.value, "error").inc()
    metrics.set_object_state(
        namespace=resource.namespace,
        name=resource.name,
        account_id=account_id,
        role_name=result.target.role_name,
        is_ready=_ready_after(result, resource),
        is_drifted=bool(outcome.drifts),
    )
