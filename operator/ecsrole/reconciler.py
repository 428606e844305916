"""The lifecycle of one EcsExecutionRole: observe, then create, adopt, update or delete.

Blocking (it calls IAM through the adapter) and free of kopf: the handlers run it in the
worker pool and turn its Result into a status patch, Events and a retry. Every decision comes
from the pure core: `core.decide` is the one sequence of checks (the same one `ecsrole diff`
runs), carried out here through the IAM adapter (`_IamPort`) and told as an Outcome, Events and
metrics.

Which claim wins a role name is `core.claims`; whether a role is the resource's own is
`core.ownership.standing`, the same rule at reconcile and at deletion.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecsrole.aws.errors import AwsCallError, FailureKind
from ecsrole.context import OperatorContext
from ecsrole.core import claims, decide, model, ownership, plan
from ecsrole.core.config import AccountConfig
from ecsrole.core.constants import ABANDON_ANNOTATION, PAUSED_ANNOTATION
from ecsrole.core.iam import CallerIdentity
from ecsrole.core.model import Aspect, Drift, ObservedRole, Operation, Owner
from ecsrole.core.spec import DeletionPolicy, RoleSpec, SpecError, parse_spec
from ecsrole.status import Outcome

# The only annotations the lifecycle reads: the user's switches.
SWITCH_ANNOTATIONS = (PAUSED_ANNOTATION, ABANDON_ANNOTATION)
# A recorded role found gone under Enforce: the record is dropped first, and the role is created
# anew this long after (see `core.decide._absent`).
RECREATE_AFTER_SECONDS = 1.0
# Strings up to this length are shared between the index's copies: condition types, reasons and
# messages, account ids, namespaces and one-second timestamps repeat across thousands of objects.
SHARED_STRING_MAX = 64


@dataclass(frozen=True, slots=True)
class Resource:
    """The parts of an EcsExecutionRole object the lifecycle reads."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime.datetime | None
    spec: Mapping[str, Any]
    annotations: Mapping[str, str]
    status: Mapping[str, Any]
    deleting: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Resource:
        meta = body.get("metadata", {})
        created = meta.get("creationTimestamp")
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation", 0) or 0),
            created=_parse_time(created) if created else None,
            spec=dict(body.get("spec") or {}),
            # Only the switches: kopf's and kubectl's bookkeeping annotations (a copy of the
            # spec, or of the whole manifest) would be kept for every object in the index.
            annotations={
                key: str(value)
                for key, value in (meta.get("annotations") or {}).items()
                if key in SWITCH_ANNOTATIONS
            },
            status=dict(body.get("status") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
        )

    def for_index(self) -> Resource:
        """A compact copy for the long-lived index: about half the memory of the decoded body.

        The index holds one copy per object for the operator's lifetime. Decoded JSON gives every
        object its own copy of every key and every repeated value, allocated in the middle of a
        creation burst's short-lived objects, where it keeps the heap from shrinking afterwards.
        """
        return dataclasses.replace(
            self,
            namespace=sys.intern(self.namespace),
            spec=_shared(self.spec),
            annotations=_shared(self.annotations),
            status=_shared(self.status),
        )

    @property
    def version(self) -> tuple[str, int]:
        """This object's spec as of this generation (what the settle window keys on)."""
        return (self.uid, self.generation)

    def annotated(self, key: str) -> bool:
        return str(self.annotations.get(key, "")).lower() == "true"


def _shared(value: Any) -> Any:
    """A deep copy of decoded JSON whose keys and short strings are interned (shared)."""
    if isinstance(value, Mapping):
        return {sys.intern(str(key)): _shared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared(item) for item in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING_MAX:
        return sys.intern(value)
    return value


@dataclass(frozen=True)
class Target:
    """The account and role a resource names: the labels of its metrics."""

    account_id: str
    role_name: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the object: type Normal or Warning."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    """A read made by a detection path (sweep or event) and handed to the reconcile.

    `changed_at` is the change's own time when known (a CloudTrail eventTime), for the
    detection latency metric.
    """

    role: ObservedRole | None
    source: str
    changed_at: float | None = None


@dataclass(frozen=True)
class Result:
    """What a reconcile or deletion decided; the handlers apply it.

    `remediated` lists the aspects actually repaired by writes (for the remediation metric);
    `remediation_failed` the aspects of out-of-band drift whose repair write failed.
    `done` False means the work is not finished and `retry_after` says when to try again.
    `detected` is drift newly found on a role that was in sync with this generation (changed
    outside the spec), as opposed to a spec change being applied. `record_dropped` says the
    recorded role went and its record is being dropped, so a re-creation follows.
    """

    outcome: Outcome
    target: Target | None = None
    events: tuple[Event, ...] = ()
    remediated: tuple[Aspect, ...] = ()
    retry_after: float | None = None
    done: bool = True
    detected: tuple[Drift, ...] = ()
    detection_source: str = "sweep"
    detection_latency: float | None = None
    remediation_failed: tuple[Aspect, ...] = ()
    record_dropped: bool = False


def _parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def backoff(kind: FailureKind, retry: int) -> float:
    """Seconds before the next attempt: exponential with jitter, bounded; never a hot loop.

    Throttling and 5xx are transient: a resource is tried again within a minute, so it converges
    soon after an episode ends (every attempt, retries included, passes the account's rate
    limiter, so more attempts do not mean more load than `maxCallsPerSecond`). AccessDenied
    needs a person to change a policy: up to 15 minutes.
    """
    base, cap = {
        FailureKind.THROTTLED: (5.0, 60.0),
        FailureKind.ACCESS_DENIED: (15.0, 900.0),
        FailureKind.AWS_ERROR: (5.0, 60.0),
    }[kind]
    delay: float = min(cap, base * 2 ** min(retry, 10))
    return delay * random.uniform(0.8, 1.2)


def _aws_failed(error: AwsCallError, target: Target | None, retry: int) -> Result:
    """An AWS call failed: Synced=False with its kind, Ready kept as it was, retried later.

    AccessDenied does not pass by itself (someone must change a policy), so it is also
    Stalled, with what to do; throttling and 5xx are work in progress.
    """
    message = f"{error.operation} failed: {error.code or error.kind.value}: {error.message}"
    denied = error.kind == FailureKind.ACCESS_DENIED
    if denied:
        message = (
            f"{message[:700]}; grant the operator's IAM identity this action "
            "(docs/iam-policy.json) or lift what denies it (an SCP, a boundary); retried with "
            "backoff"
        )
    return Result(
        outcome=Outcome.failed(
            model.SyncedReason(error.kind.value), message[:1000], stalled=denied
        ),
        target=target,
        events=(Event("Warning", error.kind.value, message[:1000]),),
        retry_after=backoff(error.kind, retry),
        done=False,
    )


def _target_of(resource: Resource) -> Target | None:
    """The account and role a resource names (None when its spec never parsed)."""
    try:
        spec = parse_spec(resource.spec)
    except SpecError:
        return None
    return Target(spec.account_id, spec.role_name)


def _refused(target: Target | None, refusal: model.Refusal) -> Result:
    """A refusal: Ready=False and Stalled=True with the reason, a Warning Event, no AWS write."""
    return Result(
        outcome=Outcome.refused(refusal),
        target=target,
        events=(Event("Warning", refusal.reason, refusal.message),),
    )


class _IamPort:
    """The decision's port onto IAM: the account's adapter, and a detection path's read in
    place of the adapter's when one was handed over. `applied` counts the applies that
    succeeded, so a failure tells how far the decision got."""

    def __init__(self, context: OperatorContext, observation: Observation | None) -> None:
        self.context = context
        self.observation = observation
        self.applied = 0

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        return self.context.caller_identity(account)

    def read_role(self, account: AccountConfig, role_name: str) -> ObservedRole | None:
        if self.observation is not None:
            return self.observation.role
        return self.context.adapter(account).read_role(role_name)

    def apply(
        self, account: AccountConfig, operations: Sequence[Operation]
    ) -> Mapping[str, Any] | None:
        created = self.context.adapter(account).apply(operations)
        self.applied += 1
        return created


#: Decisions that leave Ready False without a write: (reason, in progress, stalled).
_NOT_READY = {
    decide.Action.PAUSED: (model.ReadyReason.Paused, False, False),
    # Under Report nothing will bring the role back by itself: a human decides.
    decide.Action.REPORT_MISSING: (model.ReadyReason.RoleMissing, False, True),
    decide.Action.FORGET_MISSING: (model.ReadyReason.RoleMissing, True, False),
}


def _acquired(decision: decide.Decision) -> dict[str, Any]:
    """status.adopted, written when a role becomes the resource's (Retain is adopted's default)."""
    if decision.acquisition is None:
        return {}
    return {"adopted": decision.acquisition == decide.Acquisition.ADOPT}


def _acquired_events(decision: decide.Decision) -> tuple[Event, ...]:
    """The Event of a role that became the resource's (after its adoption tags were written)."""
    arn = decision.role.arn if decision.role is not None else ""
    if decision.acquisition == decide.Acquisition.RECORD:
        return (Event("Normal", "Created", f"Recorded IAM role {arn}, created earlier"),)
    if decision.acquisition == decide.Acquisition.ADOPT:
        return (Event("Normal", "Adopted", f"Adopted IAM role {arn}"),)
    return ()


def _repair_failed(
    error: AwsCallError,
    decision: decide.Decision,
    target: Target | None,
    detection: _Detection,
    retry: int,
) -> Result:
    """A repair failed: the role still differs from the spec, so say so (status,
    ecsrole_drifted), count the drift found and its failed repair (remediation outcome
    "error"), and retry."""
    role = decision.role
    assert role is not None
    detected = detection.new_drift(decision.drifts)
    failed = _aws_failed(error, target, retry)
    return dataclasses.replace(
        failed,
        outcome=dataclasses.replace(
            failed.outcome,
            drifts=decision.drifts,
            arn=role.arn,
            role_id=role.role_id,
            extra=_acquired(decision),
        ),
        events=(
            *_acquired_events(decision),
            *detection.events(detected, repaired=()),
            *failed.events,
        ),
        remediation_failed=_aspects(decision.operations) if detection.out_of_band else (),
        **detection.fields(detected),
    )


def _aspects(operations: Sequence[Operation]) -> tuple[Aspect, ...]:
    """Every aspect the operations repair (an UpdateRole can repair two)."""
    return model.ordered(aspect for op in operations for aspect in op.aspects)


@dataclass(frozen=True)
class _Detection:
    """Tells drift (a change made outside the spec) from a spec change being applied.

    Drift is what differs on a role that was already in sync with the object's current
    generation. Only drift counts as a drift event, gets a latency measurement and Events of
    its own; each aspect is reported once while it persists, not on every sweep.
    """

    out_of_band: bool
    had_role: bool
    already_reported: frozenset[str]
    source: str
    latency_from: float | None

    @classmethod
    def none(cls) -> _Detection:
        return cls(False, False, frozenset(), "sweep", None)

    @classmethod
    def start(
        cls,
        context: OperatorContext,
        resource: Resource,
        observation: Observation | None,
        had_role: bool,
    ) -> _Detection:
        in_sync_generation = resource.status.get("observedGeneration") == resource.generation
        reported = frozenset(str(d.get("aspect")) for d in resource.status.get("drift") or [])
        source = observation.source if observation is not None else "sweep"
        since = observation.changed_at if observation is not None else None
        return cls(
            out_of_band=had_role and in_sync_generation,
            had_role=had_role,
            already_reported=reported,
            source=source,
            latency_from=since if since is not None else context.last_in_sync(resource.uid),
        )

    def new_drift(self, drifts: Sequence[Drift]) -> tuple[Drift, ...]:
        if not self.out_of_band:
            return ()
        return tuple(d for d in drifts if d.aspect.value not in self.already_reported)

    def events(self, detected: Sequence[Drift], *, repaired: Sequence[Aspect]) -> tuple[Event, ...]:
        if not detected:
            return ()
        found = "; ".join(d.message for d in detected)
        events = [Event("Warning", "DriftDetected", f"changed outside the spec: {found}"[:1000])]
        fixed = [d.aspect.value for d in detected if d.aspect in repaired]
        if fixed:
            events.append(Event("Normal", "DriftRepaired", "Put back " + ", ".join(fixed)))
        return tuple(events)

    def fields(self, detected: Sequence[Drift]) -> dict[str, Any]:
        latency = None
        if detected and self.latency_from is not None:
            latency = max(0.0, time.time() - self.latency_from)
        return {
            "detected": tuple(detected),
            "detection_source": self.source,
            "detection_latency": latency,
        }


class Reconciler:
    """Brings one resource's role in line with its spec, within the safety rules of DESIGN §3."""

    def __init__(self, context: OperatorContext) -> None:
        self.context = context
        self.config = context.config

    def _account(self, resource: Resource, spec: RoleSpec) -> AccountConfig | None:
        """The account's entry when it lists the resource's namespace; else no AWS call at all."""
        return claims.account_for(self.config, resource.namespace, spec.account_id)

    def _owner(self, resource: Resource) -> Owner:
        return Owner(
            cluster=self.config.cluster_name,
            namespace=resource.namespace,
            name=resource.name,
            uid=resource.uid,
        )

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(
        self,
        resource: Resource,
        *,
        conflicting: bool,
        retry: int = 0,
        observation: Observation | None = None,
    ) -> Result:
        """Converge one resource; `observation` is a detection path's read (else read here).

        `core.decide` decides (every safety check before the first write); this carries the
        decision out and tells it as status, Events and metrics.
        """
        try:
            spec: RoleSpec | SpecError = parse_spec(resource.spec)
        except SpecError as error:
            spec = error
        target = Target(spec.account_id, spec.role_name) if isinstance(spec, RoleSpec) else None
        recorded_id = resource.status.get("roleId")
        facts = decide.Facts(
            namespace=resource.namespace,
            name=resource.name,
            uid=resource.uid,
            created=resource.created,
            spec=spec,
            conflicting=conflicting,
            recorded_role_id=str(recorded_id) if recorded_id else None,
            was_role_missing=any(
                d.get("aspect") == Aspect.RoleMissing.value
                for d in resource.status.get("drift") or ()
            ),
            paused=resource.annotated(PAUSED_ANNOTATION),
            settling=(
                self.context.settling(target.account_id, target.role_name, resource.version)
                if observation is not None and target is not None
                else frozenset()
            ),
        )
        port = _IamPort(self.context, observation)
        try:
            decision = decide.decide(facts, self.config, port)
            return self._carry_out(resource, decision, port, target, observation, retry)
        except AwsCallError as error:
            return _aws_failed(error, target, retry)

    def _carry_out(
        self,
        resource: Resource,
        decision: decide.Decision,
        port: _IamPort,
        target: Target | None,
        observation: Observation | None,
        retry: int,
    ) -> Result:
        if decision.refusal is not None:
            return _refused(target, decision.refusal)
        if decision.action == decide.Action.CREATE:
            return self._create(resource, decision, port, target)
        # A role just recorded or adopted was not in sync with anything yet: not drift.
        detection = (
            _Detection.none()
            if decision.acquisition is not None
            else _Detection.start(
                self.context, resource, observation, bool(resource.status.get("roleId"))
            )
        )
        if decision.action in _NOT_READY:
            return self._not_ready(decision, target, detection)
        return self._converge(resource, decision, port, target, detection, retry)

    def _create(
        self,
        resource: Resource,
        decision: decide.Decision,
        port: _IamPort,
        target: Target | None,
    ) -> Result:
        """CreateRole and the policies; the new role's id is recorded (Created or Recreated)."""
        assert decision.spec is not None
        created = decide.carry_out(decision, port)
        if created is None:  # pragma: no cover - plan_create always starts with CreateRole
            raise RuntimeError("CreateRole returned no role")
        spec = decision.spec
        self.context.record_writes(spec.account_id, spec.role_name, tuple(Aspect), resource.version)
        # Created as declared: a change before the first sweep is then timed from here
        # (detection latency), not left without a starting point.
        self.context.mark_in_sync(resource.uid)
        reason = "Recreated" if decision.recreates else "Created"
        events = [Event("Normal", reason, f"{reason} IAM role {created['Arn']}")]
        if decision.recreates:
            events.append(Event("Normal", "DriftRepaired", "Put back RoleMissing"))
        return Result(
            outcome=Outcome.reconciled(
                arn=created["Arn"], role_id=created["RoleId"], extra={"adopted": False}
            ),
            target=target,
            events=tuple(events),
            remediated=(Aspect.RoleMissing,) if decision.recreates else (),
        )

    def _not_ready(
        self, decision: decide.Decision, target: Target | None, detection: _Detection
    ) -> Result:
        """Paused, or the recorded role is gone: nothing is written."""
        reason, in_progress, stalled = _NOT_READY[decision.action]
        forget = decision.action == decide.Action.FORGET_MISSING
        role = decision.role
        detected = detection.new_drift(decision.drifts)
        return Result(
            outcome=Outcome.not_ready(
                reason,
                decision.message,
                drifts=decision.drifts,
                in_progress=in_progress,
                stalled=stalled,
                arn=role.arn if role is not None else None,
                role_id=role.role_id if role is not None else None,
                # The record of a role that went is dropped first (see `core.decide._absent`).
                extra={"roleId": None} if forget else _acquired(decision),
            ),
            target=target,
            events=(*_acquired_events(decision), *detection.events(detected, repaired=())),
            retry_after=RECREATE_AFTER_SECONDS if forget else None,
            done=not forget,
            record_dropped=forget,
            **detection.fields(detected),
        )

    def _converge(
        self,
        resource: Resource,
        decision: decide.Decision,
        port: _IamPort,
        target: Target | None,
        detection: _Detection,
        retry: int,
    ) -> Result:
        """The resource's own role (recorded or adopted first): repaired, reported or in sync."""
        role, spec = decision.role, decision.spec
        assert role is not None
        assert spec is not None
        extra = _acquired(decision)
        detected = detection.new_drift(decision.drifts)
        try:
            decide.carry_out(decision, port)
        except AwsCallError as error:
            if decision.adoption and not port.applied:
                raise  # the adoption's tags were not written: nothing is the resource's yet
            return _repair_failed(error, decision, target, detection, retry)
        events = list(_acquired_events(decision))
        remediated = _aspects(decision.operations)
        self.context.record_writes(spec.account_id, spec.role_name, remediated, resource.version)
        # What no operation can repair (a boundary set outside the spec: the operator has
        # no DeleteRolePermissionsBoundary) stays reported as drift.
        remaining = tuple(d for d in decision.drifts if d.aspect not in remediated)
        if remediated and not detection.out_of_band:
            events.append(
                Event("Normal", "Updated", "Updated " + ", ".join(a.value for a in remediated))
            )
        events.extend(detection.events(detected, repaired=remediated))
        if not remaining:
            self.context.mark_in_sync(resource.uid)
        return Result(
            outcome=Outcome.reconciled(
                drifts=remaining, arn=role.arn, role_id=role.role_id, extra=extra
            ),
            target=target,
            events=tuple(events),
            remediated=remediated if detection.out_of_band else (),
            **detection.fields(detected),
        )

    # -- deletion ------------------------------------------------------------------------

    def delete(self, resource: Resource, *, retry: int = 0) -> Result:
        """Remove what the operator owns (Delete) or release it (Retain); never touch the rest."""
        deleting = Outcome.not_ready(model.ReadyReason.Deleting, "The resource is being deleted.")
        for annotation, type_, reason, what in (
            (
                ABANDON_ANNOTATION,
                "Warning",
                "Abandoned",
                "finalizer removed, nothing in AWS was touched",
            ),
            (PAUSED_ANNOTATION, "Normal", "Retained", "the role in AWS was left as it is"),
        ):
            if resource.annotated(annotation):
                # The target goes with the result so the resource's metric series go too.
                event = Event(type_, reason, f"{annotation} is set: {what}")
                return Result(outcome=deleting, target=_target_of(resource), events=(event,))
        try:
            spec = parse_spec(resource.spec)
        except SpecError:
            return Result(outcome=deleting)  # never valid, so nothing was ever created
        target = Target(spec.account_id, spec.role_name)
        recorded_id = resource.status.get("roleId")
        account = self._account(resource, spec)
        if account is None and not recorded_id:
            return Result(outcome=deleting, target=target)  # never allowed, never created
        if account is None:
            return self._deletion_blocked(
                target,
                f"account {spec.account_id} is no longer configured for namespace "
                f"{resource.namespace}",
                FailureKind.AWS_ERROR,  # retried soon: the configuration may come back
                retry,
                needs_human=True,
            )
        try:
            return self._delete(
                resource, spec, account, str(recorded_id) if recorded_id else None, target, retry
            )
        except AwsCallError as error:
            why = f"{error.operation} failed: {error.code or error.kind.value}: {error.message}"
            return self._deletion_blocked(target, why, error.kind, retry)

    def _deletion_blocked(
        self,
        target: Target,
        why: str,
        kind: FailureKind,
        retry: int,
        *,
        needs_human: bool | None = None,
    ) -> Result:
        """Retried with backoff; Stalled (a human must act) unless the failure is transient."""
        message = (
            f"cannot delete: {why}. It is retried; to give up and leave the role in AWS "
            f"untouched, annotate the resource with {ABANDON_ANNOTATION}=true"
        )[:1000]
        if needs_human is None:
            needs_human = kind == FailureKind.ACCESS_DENIED
        return Result(
            outcome=Outcome.not_ready(
                model.ReadyReason.DeletionBlocked,
                message,
                in_progress=not needs_human,
                stalled=needs_human,
            ),
            target=target,
            events=(Event("Warning", "DeletionBlocked", message),),
            retry_after=backoff(kind, retry),
            done=False,
        )

    def _delete(
        self,
        resource: Resource,
        spec: RoleSpec,
        account: AccountConfig,
        recorded_id: str | None,
        target: Target,
        retry: int,
    ) -> Result:
        """Delete or release an owned role (`ownership.standing`: the recorded id, or without
        one only a role this object created just before a crash); never touch the rest."""
        deleting = Outcome.not_ready(model.ReadyReason.Deleting, "The resource is being deleted.")
        identity = self.context.caller_identity(account)
        if identity.account_id != spec.account_id and not recorded_id:
            return Result(outcome=deleting, target=target)  # could never have created it
        if identity.account_id != spec.account_id:
            return self._deletion_blocked(
                target,
                f"the credentials for account {spec.account_id} belong to account "
                f"{identity.account_id}",
                FailureKind.ACCESS_DENIED,
                retry,
            )
        adapter = self.context.adapter(account)
        observed = adapter.read_role(spec.role_name, with_instance_profiles=True)
        owner = self._owner(resource)
        owned = (
            observed is not None
            and ownership.standing(
                observed, owner, recorded_id, resource_created=resource.created, path=spec.path
            ).is_ours
        )
        if observed is None or not owned:
            return Result(
                outcome=deleting,
                target=target,
                events=(
                    Event(
                        "Normal",
                        "Deleted",
                        f"role {spec.role_name} is gone or no longer this resource's: left untouched",
                    ),
                ),
            )
        policy = spec.deletion_policy or (
            DeletionPolicy.Retain if resource.status.get("adopted") else DeletionPolicy.Delete
        )
        if policy == DeletionPolicy.Retain:
            adapter.apply(plan.plan_release(observed))
            event = Event(
                "Normal", "Retained", f"Released IAM role {observed.arn}; it stays in AWS"
            )
        else:
            adapter.apply(plan.plan_delete(observed))
            event = Event("Normal", "Deleted", f"Deleted IAM role {observed.arn}")
        return Result(outcome=deleting, target=target, events=(event,))
