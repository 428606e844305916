"""kopf glue, and the only module that imports kopf: settings, the claim index, handlers.

Handlers stay thin: they run the Reconciler in the worker pool and turn its Result into a
status patch, Events, metrics and a retry. They return None, because a handler's return value
would land in status.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.metadata
import logging
import os
import signal
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import kopf
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.structs import bodies, references
from kopf._core.reactor import observation

from ecsrole import crdgate, logs, metrics, report
from ecsrole import health as health_module
from ecsrole.aws.events import EventConsumer
from ecsrole.context import OperatorContext
from ecsrole.core import claims
from ecsrole.core.constants import GROUP, PLURAL, PREFIX, VERSION
from ecsrole.kube import KubeClient, KubeError, RequestGate, session_for
from ecsrole.leader import LeaderElector, LeaseSettings
from ecsrole.reconciler import SWITCH_ANNOTATIONS, Reconciler, Resource, Result
from ecsrole.sweeper import Seeder, Sweeper, account_key, post_events, uid_key

FINALIZER = f"{PREFIX}/finalizer"


registry = kopf.OperatorRegistry()
log = logs.get_logger(__name__)

#: The kopf release whose readiness bookkeeping `_wake_only_on_change` was checked against.
KOPF_CHECKED = "1.45.2"


async def _make_toggle(
    self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None
) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


def _wake_only_on_change() -> bool:
    """Make kopf's readiness bookkeeping linear in the number of objects (kopf 1.45.2 only).

    At start kopf gives every listed object a toggle in one set, and each object's worker then
    drops its own and waits until the whole set is on (every index complete). Each add and each
    drop woke every waiting worker, to find the set still off: with objects arriving one by one
    from the listing that is N^2 wake-ups on the event loop, 10 s before the first handler at
    1,000 objects and 29 s at 2,000 (a takeover, loaded machine), minutes at 5,000. Waiters wait
    only for the set's state (`ToggleSet.wait_for`) or a toggle's own (`Toggle.wait_for`), and
    neither changes unless the set's state does, so waking them only then changes nothing else.
    Another kopf release is left as it is (a unit test says so).
    """
    if importlib.metadata.version("kopf") != KOPF_CHECKED:
        return False
    aiotoggles.ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    return True


_wake_only_on_change()


#: kopf's own handling of one event of its namespace watch (kopf 1.45.2).
_kopf_namespace_event = observation.process_discovered_namespace_event


async def _namespace_event(
    *,
    raw_event: bodies.RawEvent,
    namespaces: Collection[references.NamespacePattern],
    insights: references.Insights,
    **kwargs: Any,
) -> None:
    """kopf's namespace observation, which also takes in the namespaces a listing brings.

    kopf serves a namespace that matches `--namespace` once it is in its insights, and puts it
    there from the namespace's ADDED or MODIFIED watch event. The objects of a listing come as
    events of type None, and kopf skips them, taking the observer's own first listing to have
    covered them. But the watch lists again each time it restarts (410 Gone once the API
    server's watch cache has lost its resource version, as after an API server restart; a
    connection lost while listing; a 429), and also lists once more right after that first
    listing, at start. A namespace created in such a gap is known only from the listing, and
    kopf served nothing in it until the namespace itself changed, which may be never (measured:
    not served in 40 s, then served 0.5 s after the namespace was deleted; bench/nspickup.py).
    So a listed namespace that matches and is not known yet is handed to kopf as ADDED, which
    kopf then handles as it always does. Known and non-matching ones are still skipped, so a
    relisting wakes nothing up.
    """
    if raw_event["type"] is None:
        name = references.NamespaceName(raw_event["object"]["metadata"]["name"])
        if name not in insights.namespaces and any(
            references.match_namespace(name, pattern) for pattern in namespaces
        ):
            raw_event = bodies.RawEvent(type="ADDED", object=raw_event["object"])
    await _kopf_namespace_event(
        raw_event=raw_event, namespaces=namespaces, insights=insights, **kwargs
    )


def _serve_listed_namespaces() -> bool:
    """Let kopf's namespace observer take in listed namespaces (`_namespace_event`), for the
    kopf release it was checked against only; another release is left as it is, with a warning
    at start (`configure`) and a failing unit test."""
    if importlib.metadata.version("kopf") != KOPF_CHECKED:
        return False
    # namespace_observer looks the processor up by this name each time it starts its watch.
    observation.process_discovered_namespace_event = _namespace_event
    return True


SERVES_LISTED_NAMESPACES = _serve_listed_namespaces()


def _user_annotations(essence: Mapping[str, Any]) -> dict[str, Any]:
    """The user's switches, which live under kopf's storage prefix but are not its bookkeeping."""
    annotations = essence.get("metadata", {}).get("annotations", {})
    return {key: annotations[key] for key in SWITCH_ANNOTATIONS if key in annotations}


class _DiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff-base storage, keeping our user-facing annotations in the compared essence.

    kopf leaves every annotation under its own storage prefix out of the essence it compares
    (the whole prefix is taken as its bookkeeping, here and in the progress storage's `clear`).
    With the prefix ecsrole.dev, setting or removing ecsrole.dev/paused or ecsrole.dev/abandon
    would then be no change at all, and unpausing would never create the role.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        user_fields = [("metadata", "annotations", key) for key in SWITCH_ANNOTATIONS]
        return super().build(body=body, extra_fields=[*(extra_fields or ()), *user_fields])


class _ProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's progress storage; its `clear` keeps the user-facing annotations (see above)."""

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        kept = _user_annotations(essence)
        cleared = super().clear(essence=essence)
        if kept:
            cleared.setdefault("metadata", {}).setdefault("annotations", {}).update(kept)
        return cleared


@kopf.on.startup(registry=registry)
def configure(*, settings: kopf.OperatorSettings, memo: OperatorContext, **kwargs: Any) -> None:
    """kopf's bookkeeping under our own prefix, in annotations, from the first release on.

    Changing where progress and diff bases are stored later would make kopf re-handle every
    object, so this is fixed now. Status stays free of kopf's fields.
    """
    if not SERVES_LISTED_NAMESPACES:
        log.warning(
            f"kopf {importlib.metadata.version('kopf')} is not the release ecsrole was checked "
            f"against ({KOPF_CHECKED}): a namespace created while kopf's namespace watch "
            "restarts may not be served until the namespace changes"
        )
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = _ProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = _DiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # Our own Events say what happened; kopf posts only its warnings and errors.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # No total timeout on kopf's API requests: aiohttp's would count the wait at the request
    # gate, and in a burst a finalizer patch the API server applied then timed out, which kopf
    # never recovers from (kube.RequestGate). The gate bounds each request once it is let in.
    settings.networking.request_timeout = None
    settings.queueing.error_delays = (1, 2, 5, 10, 30, 60)
    # Events are posted by a few workers, not one per object. A worker lingers idle for its
    # object before its slot frees; kopf's 1 s made 8 workers post 8 Events a second, so the
    # Events of 1,000 creations trickled out for minutes.
    settings.posting.worker_limit = 8
    settings.posting.idle_timeout = 0.1
    # claims_changed runs on every watch event of every object; its failures still log.
    logs.quiet_kopf_success("claims_changed")
    # A shard watches only its own objects: the selector goes to the API server with the list
    # and watch requests (kopf's labels= filter on a handler would be client-side, after every
    # object had been received, decoded and indexed).
    if memo.selector:
        settings.watching.label_selectors[GROUP, PLURAL] = memo.selector
    # The sweeps read the same in-memory indices kopf keeps for handlers.
    memo.resources = kwargs["resource_index"]
    memo.claims = kwargs["role_claims"]


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _in_cluster_info(
    settings: kopf.OperatorSettings,
    environ: Mapping[str, str],
    account_dir: str = SERVICE_ACCOUNT_DIR,
) -> kopf.ConnectionInfo | None:
    """The pod's service account, addressed as client-go's in-cluster config does.

    The API server is https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (kopf's own
    helper hard-codes https://kubernetes.default.svc, which needs cluster DNS and fails in
    hostNetwork pods and on clusters with another domain). The token is read afresh on every
    login: kubelet rotates the projected token in place, and kopf (like ecsrole.kube) logs in
    again after a 401, so a rotated token is picked up. None outside a pod.
    """
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token_path = os.path.join(account_dir, "token")
    if not host or not port or not os.path.exists(token_path):
        return None
    with open(token_path, encoding="utf-8") as file:
        token = file.read().strip()
    namespace = None
    namespace_path = os.path.join(account_dir, "namespace")
    if os.path.exists(namespace_path):
        with open(namespace_path, encoding="utf-8") as file:
            namespace = file.read().strip() or None
    ca_path = os.path.join(account_dir, "ca.crt")
    address = f"[{host}]" if ":" in host else host  # an IPv6 service address
    return kopf.ConnectionInfo(
        server=f"https://{address}:{port}",
        ca_path=ca_path if os.path.exists(ca_path) else None,
        token=token or None,
        default_namespace=namespace,
        trust_env=settings.networking.trust_env,
        priority=20,  # kopf's own service-account priority, ahead of a kubeconfig
    )


def _connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """In-cluster service account first (also IRSA/Pod Identity pods), else KUBECONFIG."""
    return _in_cluster_info(settings, os.environ) or kopf.login_with_kubeconfig(settings=settings)


@kopf.on.login(registry=registry)
async def login(
    *, settings: kopf.OperatorSettings, memo: OperatorContext | None = None, **_: Any
) -> kopf.AiohttpSession | None:
    """kopf's own credentials, in a session whose idle connections close quickly and whose
    requests pass a gate (see kube.py); the sweeps look at that gate (`kopf_requests`)."""
    info = _connection_info(settings)
    if info is None:
        return None
    gate = RequestGate()
    if memo is not None:
        memo.kopf_requests = gate
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
        aiohttp_session=session_for(info, gate),
    )


@kopf.index(GROUP, VERSION, PLURAL, registry=registry)
async def role_claims(
    *,
    uid: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    memo: OperatorContext,
    **_: Any,
) -> dict[tuple[str, str], claims.Claim]:
    """Who validly claims which account+role (the rules: `core.claims`); refused: no entry."""
    claim = claims.claim_of(
        memo.config,
        namespace=str(namespace or ""),
        uid=uid,
        created=str(meta.get("creationTimestamp", "")),
        spec=spec,
        status=status,
    )
    return {} if claim is None else {claims.key_of(spec): claim}


@kopf.index(GROUP, VERSION, PLURAL, registry=registry)
async def resource_index(
    *, body: kopf.Body, spec: kopf.Spec, memo: OperatorContext | None = None, **_: Any
) -> dict[str, Resource]:
    """Every resource as the sweeps see them (spec, status, annotations only), one copy under
    two keys: its account (what a sweep reads) and its uid (the latest copy, in O(1)). Listed
    after a start, it begins its account's seed read (`Seeder.expect`).

    Both index functions are coroutines, though nothing in them waits: kopf runs a plain
    function in its thread pool, one hand-off per object and index, which at a takeover of
    5,000 objects kept the event loop busy for seconds before the first resume."""
    resource = Resource.from_body(body).for_index()
    if memo is not None:
        memo.kopf_saw(resource.uid)  # kopf indexes every event it processes, first of all
    seeds = memo.seeds if memo is not None else None
    if isinstance(seeds, Seeder) and seeds.seeding():
        seeds.expect(resource)
    return {
        account_key(str(spec.get("accountId", ""))): resource,
        uid_key(resource.uid): resource,
    }


def _apply(result: Result, resource: Resource, body: kopf.Body, patch: kopf.Patch) -> None:
    """Status patch (only when something changed), Events and metrics, from one Result."""
    for key, value in report.status_patch(result, resource).items():
        patch.status[key] = value
    _post_events(result, body)
    report.record_metrics(result, resource)


def _post_events(result: Result, body: kopf.Body) -> None:
    for event in result.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


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
    conflicting = claims.is_conflicting(
        kwargs["role_claims"].get(claims.key_of(resource.spec), ()), resource.uid
    )
    started = time.monotonic()
    with logs.bound(**_log_fields(resource)):
        async with memo.lock_for(resource.uid):
            observation = None
            if reason == "resume" and retry == 0 and memo.seeds is not None:
                observation = await memo.seeds.observation(resource)
            result = await memo.in_worker(
                lambda: Reconciler(memo).reconcile(
                    resource, conflicting=conflicting, retry=retry, observation=observation
                ),
                account_id=str(resource.spec.get("accountId", "")),
            )
        memo.kopf_saw(resource.uid)  # kopf's status patch follows; the quiet counts from here
        metrics.reconcile_duration.labels(str(reason)).observe(time.monotonic() - started)
        _apply(result, resource, body, patch)
        log.info(
            "reconciled",
            ready=result.outcome.ready_label,
            synced=result.outcome.sync_error or "ReconcileSuccess",
            drift=[d.aspect.value for d in result.outcome.drifts],
            events=[e.reason for e in result.events],
        )
    if not result.done:
        raise kopf.TemporaryError(
            result.outcome.sync_message or "retrying", delay=result.retry_after or 30
        )


@kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
async def claims_changed(
    *, type: str | None, spec: kopf.Spec, memo: OperatorContext, **_: Any
) -> None:
    """A claim on this role appeared, changed or went: let the sweeper wake the next claimant.

    kopf updates its indices before event handlers run, so a DELETED event already sees the
    ranking without the departed object. The initial listing (type None) is left to the
    resume handlers, which reconcile every object anyway.
    """
    if type is not None and memo.sweeper is not None:
        memo.sweeper.claims_changed(claims.key_of(spec))


@kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
async def delete(
    *, body: kopf.Body, patch: kopf.Patch, memo: OperatorContext, retry: int, **_: Any
) -> None:
    """Runs before kopf removes the finalizer; raising keeps the finalizer and retries."""
    resource = Resource.from_body(body)
    with logs.bound(**_log_fields(resource)):
        result = await _run_deletion(memo, resource, retry)
        _post_events(result, body)
    if not result.done:
        for key, value in report.status_patch(result, resource).items():
            patch.status[key] = value
        report.record_metrics(result, resource)  # ready 0 while DeletionBlocked
        raise kopf.TemporaryError(result.outcome.ready_message, delay=result.retry_after or 30)
    _forget(memo, resource, result)


async def _run_deletion(memo: OperatorContext, resource: Resource, retry: int) -> Result:
    """The deletion, in the worker pool, one at a time per object: kopf's and the drain's."""
    started = time.monotonic()
    async with memo.lock_for(resource.uid):
        result = await memo.in_worker(
            lambda: Reconciler(memo).delete(resource, retry=retry),
            account_id=str(resource.spec.get("accountId", "")),
        )
    metrics.reconcile_duration.labels("delete").observe(time.monotonic() - started)
    log.info("deletion", done=result.done, events=[e.reason for e in result.events])
    return result


def _forget(memo: OperatorContext, resource: Resource, result: Result) -> None:
    memo.forget(resource.uid)
    if result.target is not None:
        metrics.forget_object(
            namespace=resource.namespace,
            name=resource.name,
            account_id=result.target.account_id,
            role_name=result.target.role_name,
        )


class TerminatingCrdFinalizer:
    """Finishes the deletions kopf cannot while the CRD itself is being deleted.

    kopf serves only resources that discovery lists with the patch verb, and discovery drops it
    for a terminating CRD; the API server still accepts the patches, and removes the CRD only
    once every object's finalizer is gone. So each object being deleted goes through the same
    deletion as the handler's (Delete or Retain, paused, abandon), then loses its finalizer.
    A blocked deletion is retried with the handler's backoff, never in a hot loop.
    """

    def __init__(self, context: OperatorContext, kube: KubeClient, namespaces: tuple[str, ...]):
        self.context = context
        self.kube = kube
        self.namespaces = namespaces
        self._retries: dict[str, tuple[int, float]] = {}  # uid -> (retry, not before)

    async def __call__(self) -> None:
        path = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
        if self.context.selector:
            # A shard finishes only its own objects' deletions, like kopf's watch (the selector).
            path += "?" + urllib.parse.urlencode({"labelSelector": self.context.selector})
        status, body = await self.kube.request("GET", path)
        if status != 200 or not isinstance(body, dict):
            log.warning("cannot list EcsExecutionRoles to finish their deletion", status=status)
            return
        for item in body.get("items") or []:
            meta = item.get("metadata") or {}
            if not meta.get("deletionTimestamp") or FINALIZER not in (meta.get("finalizers") or []):
                continue
            if self.namespaces and not any(
                fnmatch.fnmatchcase(str(meta.get("namespace", "")), pattern)
                for pattern in self.namespaces
            ):
                continue
            retry, not_before = self._retries.get(str(meta.get("uid")), (0, 0.0))
            if time.monotonic() >= not_before:
                await self._finish(item, retry)

    async def _finish(self, item: Mapping[str, Any], retry: int) -> None:
        resource = Resource.from_body(item)
        with logs.bound(**_log_fields(resource)):
            result = await _run_deletion(self.context, resource, retry)
            try:
                await post_events(self.kube, resource, result.events)
                if not result.done:
                    delay = result.retry_after or 30
                    self._retries[resource.uid] = (retry + 1, time.monotonic() + delay)
                    patch = report.status_patch(result, resource)
                    if patch:
                        await self.kube.patch_status(resource.namespace, resource.name, patch)
                    report.record_metrics(result, resource)
                    return
                finalizers = [f for f in item["metadata"]["finalizers"] if f != FINALIZER]
                await self.kube.patch_object(
                    resource.namespace,
                    resource.name,
                    {
                        "metadata": {
                            "finalizers": finalizers,
                            "resourceVersion": item["metadata"]["resourceVersion"],
                        }
                    },
                )
            except KubeError as error:
                log.warning(
                    "could not finish a deletion while the CRD is deleted", error=str(error)
                )
                return
        self._retries.pop(resource.uid, None)
        _forget(self.context, resource, result)


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, callback)


async def run_operator(
    context: OperatorContext,
    *,
    namespaces: tuple[str, ...],
    health_address: tuple[str, int],
    lease: LeaseSettings | None,
) -> int:
    """Serve /healthz, wait for the leader lease, then run kopf and the sweeps while it is held.

    Returns the process exit code: 1 when the lease was lost (the replica restarts as a standby),
    0 on a normal stop.
    """
    kube = KubeClient(lambda: _connection_info(kopf.OperatorSettings()))
    elector = LeaderElector(kube, lease) if lease is not None else None
    stop = asyncio.Event()  # a signal while standing by
    _on_signals(stop.set)
    health = await health_module.serve(
        *health_address, lambda: elector.is_leader if elector is not None else True
    )
    warming = asyncio.ensure_future(asyncio.to_thread(context.warm_clients))
    try:
        if elector is not None and not await elector.acquire(stop):
            return 0
        if elector is None:
            metrics.leader.set(1)
        return await _lead(context, kube, elector, namespaces, signalled=stop)
    finally:
        metrics.leader.set(0)
        await asyncio.gather(warming, return_exceptions=True)
        await health.cleanup()
        await kube.close()


async def _lead(
    context: OperatorContext,
    kube: KubeClient,
    elector: LeaderElector | None,
    namespaces: tuple[str, ...],
    signalled: asyncio.Event | None = None,
) -> int:
    """Lead until a signal, kopf's own stop or a lost lease. `signalled` is set by a signal that
    came while the lease was being acquired: the lease was won all the same, and without it the
    signal would be lost (the process then ran until SIGKILL and kept its lease to the end)."""
    working = asyncio.Event()  # set to stop kopf, the sweeps and the lease renewal
    lost = False

    async def hold_lease() -> None:
        nonlocal lost
        if elector is None:
            return
        await elector.keep(working)
        if not elector.is_leader:
            lost = True
            working.set()

    sweeper = Sweeper(context, kube)
    context.sweeper = sweeper
    context.seeds = Seeder(context)
    tasks = [
        asyncio.create_task(hold_lease(), name="lease"),
        *sweeper.start(working),
    ]
    consumer = None
    if context.config.events_sqs_queue_url:
        consumer = EventConsumer(
            context.clients.base_sqs(),
            context.config.events_sqs_queue_url,
            sweeper.on_role_change,
            asyncio.get_running_loop(),
        )
        consumer.start()
    # A signal while no kopf runs (waiting for the CRD) stops everything; kopf, while it runs,
    # installs handlers of its own and stops by itself, which ends the gate.
    _on_signals(working.set)
    if signalled is not None and signalled.is_set():
        working.set()

    async def serve(until: asyncio.Event) -> None:
        try:
            await kopf.operator(
                registry=registry,
                memo=context,
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                stop_flag=until,
            )
        finally:
            context.resources = None  # that run's index is no longer kept up to date
            _on_signals(working.set)

    try:
        await crdgate.CrdGate(crdgate.KubeCrdProbe(kube)).run(
            serve, working, TerminatingCrdFinalizer(context, kube, namespaces)
        )
    finally:
        if consumer is not None:
            consumer.stop()
        working.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if elector is not None and not lost:
            await elector.release()
    return 1 if lost else 0
