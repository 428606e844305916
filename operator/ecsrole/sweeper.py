"""Drift detection: one sweep task per account, and targeted re-reads for CloudTrail events.

A sweep reads every role of an account at once (bulk: GetAccountAuthorizationDetails +
ListRoles, a few calls for hundreds of roles; perRole: ListRoles + per-role reads), then hands
each managed resource its role through the same Reconciler a kopf handler uses: Enforce
repairs through the same plan, Report only reports. Nothing is written to Kubernetes when the
outcome did not change, so a quiet account costs no API writes.

It also wakes the next claimant of a role (`claims_changed`): a resource that lost the ranking
of `core.claims` is refused once (ConflictingResource) and then left alone, with no retry, no
timer and no poll, so a conflict at rest costs no Kubernetes write and no AWS call. When the
claims on its role change (the winner's deletion finished, or it stops being a valid claim),
kopf's event handler calls `claims_changed`, and the new winner, if it is still waiting on the
old ranking, is reconciled at once through the same path a sweep uses. If the operator stops
meanwhile, the resume handlers reconcile every object on the next start.

And it notices objects kopf left unhandled after an answer from the API server got lost
(`nudge_unjudged`), and makes kopf handle them; a judged object is never written to.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import random
import time
from collections.abc import Coroutine, Iterable
from typing import Any

from ecsrole import logs, metrics, report
from ecsrole.aws.errors import AwsCallError
from ecsrole.context import OperatorContext
from ecsrole.core import claims, cloudtrail
from ecsrole.core.cloudtrail import RoleChange
from ecsrole.core.config import AccountConfig
from ecsrole.core.constants import PLURAL, PREFIX
from ecsrole.core.model import ObservedRole
from ecsrole.kube import KubeClient, KubeError
from ecsrole.reconciler import Event, Observation, Reconciler, Resource, Result

log = logs.get_logger(__name__)

# After a failed sweep, wait this much longer than the interval (AccessDenied, throttling).
FAILED_SWEEP_EXTRA_DELAY = 30.0
# How long after a start or takeover resumed objects are answered from the seed read.
SEED_SECONDS = 120.0
#: The annotation a nudge writes: kopf's own touch-dummy under our prefix (its progress storage
#: touches and clears the same key), which kopf leaves out of the essence it compares.
NUDGE_ANNOTATION = f"{PREFIX}/touch-dummy"
#: A nudge that did not get an object judged is repeated after twice the wait, up to this many
#: times the drift interval: an object kopf keeps failing on is not written every interval.
MAX_NUDGE_BACKOFF = 32
#: After a failed attempt of kopf's about an object, no nudge for this long: kopf pauses up to
#: 21 s between attempts (its networking.error_backoffs), then tries again.
RETRY_PAUSE_SECONDS = 30.0


def account_key(account_id: str) -> str:
    """Key of an account's resources in the resource index (handlers.resource_index)."""
    return account_id


def uid_key(uid: str) -> str:
    """Key of one resource in the same index: a uid never looks like a 12-digit account id."""
    return f"uid:{uid}"


def sweepable(resource: Resource) -> bool:
    """Resources whose role the operator recorded and whose current generation it has judged.

    A resource whose generation no attempt has judged yet (observedGeneration behind) is the
    kopf handler's job; one being deleted is the deletion handler's; one without a recorded
    role was never created or adopted (refused, conflicting, or not yet reconciled). A judged
    generation may still be pending in AWS (its attempt failed and kopf retries it): a sweep
    then repairs toward that generation too, never past what its read shows (the settle window
    only skips writes made for the generation being judged).
    """
    return (
        not resource.deleting
        and bool(resource.status.get("roleId"))
        and resource.status.get("observedGeneration") == resource.generation
    )


def unjudged(resource: Resource) -> bool:
    """No attempt has judged the object's current generation, and it is not being deleted.

    Every attempt of the handler, whatever its outcome (Ready, refused, failed, paused), writes
    observedGeneration; until one does, the object is kopf's to handle.
    """
    return (
        not resource.deleting and resource.status.get("observedGeneration") != resource.generation
    )


class Sweeper:
    """Runs the per-account sweep loops and re-reads roles named by CloudTrail events; notices
    objects kopf left unhandled (`nudge_unjudged`)."""

    def __init__(self, context: OperatorContext, kube: KubeClient) -> None:
        self.context = context
        self.kube = kube
        self._waking: dict[str, asyncio.Task[None]] = {}
        #: uid -> (generation, nudges so far) of objects nudged and not judged since.
        self._nudged: dict[str, tuple[int, int]] = {}

    def _resources(self, account_id: str) -> list[Resource]:
        index = self.context.resources
        if index is None:
            return []
        return list(index.get(account_key(account_id), []))

    def _seed_age(self, account_id: str) -> float | None:
        """Seconds since this term's seed read of the account began (None: none was made)."""
        seeds = self.context.seeds
        return seeds.read_age(account_id) if isinstance(seeds, Seeder) else None

    def _latest(self, uid: str) -> Resource | None:
        """The index's current copy of an object, None once it is gone (O(1), by uid)."""
        index = self.context.resources
        if index is None:
            return None
        return next(iter(index.get(uid_key(uid), ())), None)

    def _claims(self, key: tuple[str, str]) -> list[claims.Claim]:
        index = self.context.claims
        if index is None:
            return []
        return list(index.get(key, []))

    def _conflicting(self, resource: Resource) -> bool:
        return claims.is_conflicting(self._claims(claims.key_of(resource.spec)), resource.uid)

    def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """One task per configured account, running until `stop` is set.

        Created before kopf starts, so kopf's shutdown does not count them as its own hung
        tasks (it would wait 5 s for them before cancelling); the caller sets `stop`.
        """
        return [
            *(
                asyncio.create_task(self._account_loop(account, stop), name=f"sweep-{account_id}")
                for account_id, account in self.context.config.accounts.items()
            ),
            asyncio.create_task(self._unjudged_loop(stop), name="unjudged"),
        ]

    async def _unjudged_loop(self, stop: asyncio.Event) -> None:
        interval = self.context.config.drift_check_interval
        while not stop.is_set():
            await _sleep_or_stop(stop, interval / 2)
            if stop.is_set():
                return
            try:
                await self.nudge_unjudged()
            except Exception:
                log.exception("looking for unjudged objects crashed")

    async def nudge_unjudged(self) -> int:
        """Touch each object kopf left unhandled, so that kopf handles it; returns how many.

        kopf handles an object only when a watch event of it arrives. Some answers from the API
        server get lost: a finalizer patch the server applied but whose answer timed out is
        retried, the retry fails its resourceVersion test, and kopf then goes through the
        object's next event without running its handlers and writes nothing, so no event
        follows and the object is never handled (docs/performance-analysis.md, "Failover at scale").
        Such an object has no verdict for its generation while kopf does nothing with it. One
        that stays so for a drift interval, with no handler or sweep working on it
        (`lock_for`), no request of kopf's about it queued, in flight or failed lately (kopf
        may be pausing before its next attempt), and no burst queued at kopf's request gate
        (`kube.RequestGate`), gets kopf's touch-dummy
        annotation written: a watch event, which kopf handles as its own (it does the work,
        records its progress and removes the annotation). The sweeper never reconciles such an
        object itself: its status write would make kopf handle it a second time. A judged
        object is never touched, so nothing is written at rest.
        """
        index = self.context.resources
        if index is None:
            return 0
        gate = self.context.kopf_requests
        if gate is not None and gate.waiting:
            return 0  # a burst is draining: its objects are kopf's work in progress
        patience = self.context.config.drift_check_interval
        waiting = {r.uid: r for rs in list(index.values()) for r in rs if unjudged(r)}
        for uid in list(self._nudged):
            latest = waiting.get(uid)
            if latest is None or latest.generation != self._nudged[uid][0]:
                del self._nudged[uid]  # judged, gone, or a new generation: kopf's again
        nudged = 0
        for uid, resource in waiting.items():
            quiet = self.context.kopf_quiet_for(uid)
            count = self._nudged.get(uid, (resource.generation, 0))[1]
            if quiet < patience * min(2**count, MAX_NUDGE_BACKOFF):
                continue
            if self.context.working_on(uid) or (
                gate is not None
                and (
                    gate.outstanding(resource.namespace, PLURAL, resource.name)
                    or gate.failed_within(
                        resource.namespace,
                        PLURAL,
                        resource.name,
                        max(patience, RETRY_PAUSE_SECONDS),
                    )
                )
            ):
                continue  # a handler, a sweep or a request of kopf's (or its retry) is on it
            if await self._nudge(resource, quiet):
                self._nudged[uid] = (resource.generation, count + 1)
                self.context.kopf_saw(uid)  # the next wait counts from this nudge
                nudged += 1
        return nudged

    async def _nudge(self, resource: Resource, quiet: float) -> bool:
        with logs.bound(
            namespace=resource.namespace,
            name=resource.name,
            account_id=resource.spec.get("accountId"),
            role_name=resource.spec.get("roleName"),
        ):
            now = datetime.datetime.now(datetime.UTC).isoformat()
            try:
                await self.kube.patch_object(
                    resource.namespace,
                    resource.name,
                    {"metadata": {"annotations": {NUDGE_ANNOTATION: now}}},
                )
            except KubeError as error:
                log.warning("could not nudge an unhandled object", error=str(error))
                return False
            metrics.unjudged_nudges.inc()
            log.warning(
                "no attempt judged this generation and kopf left the object alone: nudged it",
                generation=resource.generation,
                quiet_seconds=round(quiet, 1),
            )
            return True

    async def _account_loop(self, account: AccountConfig, stop: asyncio.Event) -> None:
        interval = self.context.config.drift_check_interval
        metrics.init_account(account.account_id)
        # Spread the accounts over the interval so their reads do not come in one burst.
        await _sleep_or_stop(stop, random.uniform(0.2, 1.0) * interval)
        while not stop.is_set():
            seeded = self._seed_age(account.account_id)
            if seeded is not None and seeded < interval * 0.9:
                # The resumed objects are judged against the seed read (a takeover or a
                # start): the same bulk read a sweep would make, this recent. Sweeping now would
                # read the account a second time and compete with the resumes for its workers.
                await _sleep_or_stop(stop, interval * random.uniform(0.9, 1.1) - seeded)
                continue
            delay = interval * random.uniform(0.9, 1.1)
            try:
                await self.sweep_account(account)
            except AwsCallError as error:
                log.warning(
                    "drift sweep failed",
                    account_id=account.account_id,
                    error=str(error),
                    kind=error.kind.value,
                )
                delay += FAILED_SWEEP_EXTRA_DELAY
            except Exception:
                log.exception("drift sweep crashed", account_id=account.account_id)
                delay += FAILED_SWEEP_EXTRA_DELAY
            await _sleep_or_stop(stop, delay)

    async def sweep_account(self, account: AccountConfig) -> int:
        """Sweep one account now; returns how many resources were checked."""
        account_id = account.account_id
        resources = self._resources(account_id)
        metrics.managed_roles.labels(account_id).set(
            sum(1 for r in resources if not r.deleting and r.status.get("roleId"))
        )
        due = [r for r in resources if sweepable(r)]
        if not due:
            # Nothing to check, so no AWS call at all; the sweep still completed, so an account
            # without roles is not reported as stale.
            metrics.drift_sweep_last_success.labels(account_id).set(time.time())
            return 0
        started = time.monotonic()
        adapter = self.context.adapter(account)
        if account.sweep_mode == "bulk":
            observed = await self.context.in_worker(
                lambda: adapter.read_roles_bulk(account.role_path_prefix), account_id=account_id
            )
        else:
            names = [str(r.spec.get("roleName", "")) for r in due]
            observed = await self.context.in_worker(
                lambda: adapter.read_roles_each(account.role_path_prefix, names),
                account_id=account_id,
            )
        for resource in due:
            role_name = str(resource.spec.get("roleName", "")).lower()
            await self.check(resource, Observation(observed.get(role_name), "sweep"))
        metrics.drift_sweep_duration.labels(account_id).observe(time.monotonic() - started)
        metrics.drift_sweep_last_success.labels(account_id).set(time.time())
        return len(due)

    async def role_changed(self, account_id: str, role_name: str, changed_at: float | None) -> int:
        """A CloudTrail event named this role: re-read it now for every resource managing it."""
        account = self.context.config.account(account_id)
        if account is None:
            return 0
        targets = [
            r
            for r in self._resources(account_id)
            if sweepable(r) and str(r.spec.get("roleName", "")).lower() == role_name.lower()
        ]
        if not targets:
            return 0
        adapter = self.context.adapter(account)
        role: ObservedRole | None = await self.context.in_worker(
            lambda: adapter.read_role(str(targets[0].spec["roleName"])), account_id=account_id
        )
        for resource in targets:
            await self.check(resource, Observation(role, "event", changed_at))
        return len(targets)

    async def on_role_change(self, change: RoleChange) -> bool:
        """A CloudTrail event: re-read the role unless the operator itself made the change."""
        account = self.context.config.account(change.account_id)
        if account is None:
            return True
        identity = await self.context.in_worker(
            lambda: self.context.caller_identity(account), account_id=account.account_id
        )
        if cloudtrail.made_by(change, identity.arn):
            return True
        await self.role_changed(change.account_id, change.role_name, change.event_time)
        return True

    async def check(self, resource: Resource, observation: Observation) -> None:
        """Reconcile one resource against a detection read; write status only on change."""
        async with self.context.lock_for(resource.uid):
            account_id = str(resource.spec.get("accountId", ""))
            latest = self._latest(resource.uid)
            if latest is None or not sweepable(latest):
                # Gone from the index: deleted while the sweep read AWS. Reconciling the stale
                # copy would bring back its metric series (or its role).
                return
            with logs.bound(
                namespace=latest.namespace,
                name=latest.name,
                account_id=account_id,
                role_name=latest.spec.get("roleName"),
            ):
                reconciler = Reconciler(self.context)
                conflicting = self._conflicting(latest)
                result = await self.context.in_worker(
                    lambda: reconciler.reconcile(
                        latest, conflicting=conflicting, observation=observation
                    ),
                    account_id=account_id,
                )
                await self._report(result, latest)
                if result.record_dropped:
                    # The record of a vanished role was dropped: no longer sweepable, so the
                    # re-creation is followed up here (kopf retries it on the handler path).
                    self._follow_up(account_id, latest.uid, result.retry_after or 1.0)

    def claims_changed(self, key: tuple[str, str]) -> None:
        """The claims on `key` changed: wake their winner when it still waits (event loop side).

        Cheap when nobody waits (an index lookup), so it is called on every watch event.
        """
        successor = claims.to_wake(self._claims(key))
        if successor is not None and successor.uid not in self._waking:
            self._start(successor.uid, self._wake(successor))

    def _start(self, uid: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"follow-up-{uid}")
        self._waking[uid] = task
        task.add_done_callback(lambda _: self._waking.pop(uid, None))

    async def _wake(self, successor: claims.Claim) -> None:
        """Reconcile the new winner; retried with the reconcile's backoff until it is done."""
        try:
            result = await self.take_over(successor)
        except Exception:
            log.exception("taking over a claim crashed", account_id=successor.account_id)
            return
        if result is not None and not result.done:
            await self._retry(successor.account_id, successor.uid, result.retry_after or 30.0)

    def _follow_up(self, account_id: str, uid: str, delay: float) -> None:
        if uid not in self._waking:
            self._start(uid, self._retry(account_id, uid, delay))

    async def _retry(self, account_id: str, uid: str, delay: float) -> None:
        """Reconcile a resource no sweep covers (not recorded) until done, with its backoff."""
        while True:
            await asyncio.sleep(delay)
            async with self.context.lock_for(uid):
                latest = self._latest(uid)
                if latest is None or latest.deleting:
                    return
                conflicting = self._conflicting(latest)
                work = functools.partial(
                    Reconciler(self.context).reconcile, latest, conflicting=conflicting
                )
                try:
                    result = await self.context.in_worker(work, account_id=account_id)
                except Exception:
                    log.exception("a follow-up reconcile crashed", account_id=account_id)
                    return
                await self._report(result, latest)
            if result.done:
                return
            delay = result.retry_after or 30.0

    async def take_over(self, successor: claims.Claim) -> Result | None:
        """One attempt: reconcile `successor` if it still wins and waits; None when it does not."""
        async with self.context.lock_for(successor.uid):
            latest = self._latest(successor.uid)
            if latest is None or latest.deleting:
                return None
            if latest.status.get("observedGeneration") != latest.generation:
                return None  # a spec change is pending: kopf's own handler is about to run
            current = claims.to_wake(self._claims(successor.key))
            if current is None or current.uid != successor.uid:
                return None
            with logs.bound(
                namespace=latest.namespace,
                name=latest.name,
                account_id=successor.account_id,
                role_name=latest.spec.get("roleName"),
            ):
                log.info("taking over the role: the earlier claim went")
                reconciler = Reconciler(self.context)
                result = await self.context.in_worker(
                    lambda: reconciler.reconcile(latest, conflicting=False),
                    account_id=successor.account_id,
                )
                await self._report(result, latest)
                return result

    async def _report(self, result: Result, resource: Resource) -> None:
        patch = report.status_patch(result, resource)
        report.record_metrics(result, resource)
        try:
            if patch:
                await self.kube.patch_status(resource.namespace, resource.name, patch)
            if patch or result.detected or result.remediated:
                await post_events(self.kube, resource, result.events)
        except KubeError as error:
            log.warning("could not write the sweep's outcome", error=str(error))
        if result.detected:
            log.info(
                "drift detected",
                aspects=[d.aspect.value for d in result.detected],
                repaired=[a.value for a in result.remediated],
                source=result.detection_source,
                latency_seconds=result.detection_latency,
            )


async def post_events(kube: KubeClient, resource: Resource, events: Iterable[Event]) -> None:
    """Events for work done outside kopf's handlers (kopf.event needs a handler's context)."""
    for event in events:
        await kube.post_event(
            namespace=resource.namespace,
            name=resource.name,
            uid=resource.uid,
            type_=event.type,
            reason=event.reason,
            message=event.message,
        )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return


class Seeder:
    """After a start or a takeover kopf resumes every object; one bulk read per account answers
    them all, instead of three or more IAM calls per role.

    Only objects with a recorded role (created or adopted before) are seeded, and only for a
    while after the start: anything else (a new object, a retry) reads its role itself. A read
    begins as soon as kopf has listed an object of the account (`expect`), before the resumes.
    """

    def __init__(self, context: OperatorContext) -> None:
        self.context = context
        self.started = context.clock()
        self._reads: dict[str, asyncio.Future[dict[str, ObservedRole]]] = {}
        # When each account's seed read began; kept after the seed window (the sweeps ask).
        self._read_at: dict[str, float] = {}

    def read_age(self, account_id: str) -> float | None:
        """Seconds since the account's seed read began, in flight or done; None when there was
        none or it failed (then the sweep's own read is needed)."""
        began = self._read_at.get(account_id)
        return None if began is None else self.context.clock() - began

    def seeding(self) -> bool:
        """Still within the seed window after the start (any thread)."""
        return self.context.clock() - self.started <= SEED_SECONDS

    def expect(self, resource: Resource) -> None:
        """kopf has listed `resource`: begin its account's seed read now (event loop side).

        kopf lists and indexes every object before the first resume handler runs, which takes
        seconds with thousands of them; reading meanwhile takes the reads off the takeover's
        critical path. Only accounts with an object to seed are read (none costs a call).
        """
        if not self.seeding() or not sweepable(resource):
            return
        account = self.context.config.account(str(resource.spec.get("accountId", "")))
        if account is not None and account.sweep_mode == "bulk":
            self._read(account)

    def _read(self, account: AccountConfig) -> asyncio.Future[dict[str, ObservedRole]]:
        read = self._reads.get(account.account_id)
        if read is not None:
            return read
        adapter = self.context.adapter(account)
        read = asyncio.ensure_future(
            self.context.in_worker(
                lambda: adapter.read_roles_bulk(account.role_path_prefix),
                account_id=account.account_id,
            )
        )
        self._reads[account.account_id] = read
        self._read_at[account.account_id] = self.context.clock()
        read.add_done_callback(lambda done: self._failed(account.account_id, done))
        return read

    def _failed(self, account_id: str, read: asyncio.Future[dict[str, ObservedRole]]) -> None:
        """A failed read seeds nothing: its objects and the account's sweep read for themselves."""
        if read.cancelled() or read.exception() is not None:
            self._read_at.pop(account_id, None)

    async def observation(self, resource: Resource) -> Observation | None:
        if not self.seeding():
            self._reads.clear()  # every role of every account: not kept for the whole term
            return None
        if not sweepable(resource):
            return None
        account = self.context.config.account(str(resource.spec.get("accountId", "")))
        if account is None or account.sweep_mode != "bulk":
            return None
        try:
            roles = await asyncio.shield(self._read(account))
        except AwsCallError:
            return None
        return Observation(roles.get(str(resource.spec.get("roleName", "")).lower()), "sweep")
