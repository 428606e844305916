"""kopf glue, and the only module that imports kopf: settings, the conflict index, handlers.

Handlers stay thin: they run the Reconciler in the worker pool and turn its Result into a
status patch, Events, metrics and a retry. They return None, because a handler's return value
would land in status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from ecsrole import logs, metrics
from ecsrole import status as status_module
from ecsrole.context import OperatorContext
from ecsrole.reconciler import Reconciler, Resource, Result

GROUP, VERSION, PLURAL = "iam.ecsrole.dev", "v1alpha1", "ecsexecutionroles"
PREFIX = "ecsrole.dev"
FINALIZER = f"{PREFIX}/finalizer"

registry = kopf.OperatorRegistry()
log = logs.get_logger(__name__)


@kopf.on.startup(registry=registry)
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf's bookkeeping under our own prefix, in annotations, from the first release on.

    Changing where progress and diff bases are stored later would make kopf re-handle every
    object, so this is fixed now. Status stays free of kopf's fields.
    """
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # Our own Events say what happened; kopf posts only its warnings and errors.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.batching.error_delays = (1, 2, 5, 10, 30, 60)


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first (also IRSA/Pod Identity pods), else KUBECONFIG."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.index(GROUP, VERSION, PLURAL, registry=registry)
def role_claims(
    *, uid: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], tuple[str, str]]:
    """Who claims which account+role: role names are unique per account regardless of case."""
    key = (str(spec.get("accountId", "")), str(spec.get("roleName", "")).lower())
    return {key: (str(meta.get("creationTimestamp", "")), uid)}


def _is_conflicting(index: kopf.Index[Any, Any], spec: Mapping[str, Any], uid: str) -> bool:
    """True when an older resource (or an equally old one with a smaller uid) claims the role."""
    key = (str(spec.get("accountId", "")), str(spec.get("roleName", "")).lower())
    claims = list(index.get(key, []))
    return bool(claims) and min(claims)[1] != uid


def _apply(result: Result, resource: Resource, body: kopf.Body, patch: kopf.Patch) -> None:
    """Status patch (only when something changed), Events and metrics, from one Result."""
    for key, value in status_module.patch_for(
        result.outcome, generation=resource.generation, status=resource.status
    ).items():
        patch.status[key] = value
    _post_events(result, body)
    outcome = result.outcome
    if outcome.sync_error:
        metrics.reconcile_errors.labels(outcome.sync_error).inc()
    elif outcome.stalled and outcome.ready_reason:
        metrics.reconcile_errors.labels(outcome.ready_reason).inc()
    if result.target is None:
        return
    for aspect in result.remediated:
        metrics.drift_remediations.labels(result.target.account_id, aspect.value, "success").inc()
    metrics.set_object_state(
        namespace=resource.namespace,
        name=resource.name,
        account_id=result.target.account_id,
        role_name=result.target.role_name,
        is_ready=_ready_after(result, resource),
        is_drifted=bool(outcome.drifts),
    )


def _post_events(result: Result, body: kopf.Body) -> None:
    for event in result.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def _ready_after(result: Result, resource: Resource) -> bool:
    if result.outcome.ready_reason == status_module.KEEP_READY:
        previous = {c.get("type"): c for c in resource.status.get("conditions") or []}
        return bool(previous.get("Ready", {}).get("status") == "True")
    return result.outcome.is_ready


def _log_fields(resource: Resource) -> dict[str, Any]:
    return {
        "namespace": resource.namespace,
        "name": resource.name,
        "account_id": resource.spec.get("accountId"),
        "role_name": resource.spec.get("roleName"),
    }


@kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
@kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
@kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
async def reconcile(
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: OperatorContext,
    retry: int,
    reason: str,
    **kwargs: Any,
) -> None:
    """Create, resume and update all converge the same way: observe, then act on the diff."""
    resource = Resource.from_body(body)
    conflicting = _is_conflicting(kwargs["role_claims"], resource.spec, resource.uid)
    started = time.monotonic()
    with logs.bound(**_log_fields(resource)):
        result = await memo.in_worker(
            lambda: Reconciler(memo).reconcile(resource, conflicting=conflicting, retry=retry)
        )
        metrics.reconcile_duration.labels(str(reason)).observe(time.monotonic() - started)
        _apply(result, resource, body, patch)
        log.info(
            "reconciled",
            ready=result.outcome.ready_reason or "Reconciled",
            synced=result.outcome.sync_error or "ReconcileSuccess",
            drift=[d.aspect.value for d in result.outcome.drifts],
            events=[e.reason for e in result.events],
        )
    if not result.done:
        raise kopf.TemporaryError(
            result.outcome.sync_message or "retrying", delay=result.retry_after or 30
        )


@kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
async def delete(
    *, body: kopf.Body, patch: kopf.Patch, memo: OperatorContext, retry: int, **_: Any
) -> None:
    """Runs before kopf removes the finalizer; raising keeps the finalizer and retries."""
    resource = Resource.from_body(body)
    started = time.monotonic()
    with logs.bound(**_log_fields(resource)):
        result = await memo.in_worker(lambda: Reconciler(memo).delete(resource, retry=retry))
        metrics.reconcile_duration.labels("delete").observe(time.monotonic() - started)
        _post_events(result, body)
        log.info("deletion", done=result.done, events=[e.reason for e in result.events])
    if not result.done:
        for key, value in status_module.patch_for(
            result.outcome, generation=resource.generation, status=resource.status
        ).items():
            patch.status[key] = value
        raise kopf.TemporaryError(result.outcome.ready_message, delay=result.retry_after or 30)
    if result.target is not None:
        metrics.forget_object(
            namespace=resource.namespace,
            name=resource.name,
            account_id=result.target.account_id,
            role_name=result.target.role_name,
        )
