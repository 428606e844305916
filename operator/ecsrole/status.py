"""Status of an EcsExecutionRole, computed in one place from one reconcile outcome.

Conditions follow the Kubernetes API conventions and kstatus: the full list is written each
time, lastTransitionTime moves only when a condition's status changes, and `Reconciling` and
`Stalled` are what kstatus (so `kubectl wait`, Flux and Argo CD) read. Nothing is written when
nothing changed: `patch_for` returns an empty patch, so a quiet sweep costs no API write.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecsrole.core.model import Drift, ReadyReason, Refusal, SyncedReason


@dataclass(frozen=True)
class Outcome:
    """What a reconcile found and did, as the status should tell it; made by its constructors.

    `ready_reason` None means Ready=True/Reconciled. `sync_error` None means the attempt
    succeeded. `stalled` means no progress is possible without a human (a refusal, a role gone
    under driftPolicy Report, a deletion that cannot complete): Stalled=True then carries the
    Ready reason and its message, which must say what to do. `keeps_ready` (a failed AWS call,
    `Outcome.failed`) keeps the previous Ready condition as it was: a throttled or failing call
    says nothing new about the role, so it must not flip Ready.
    """

    ready_reason: ReadyReason | None = None
    ready_message: str = ""
    sync_error: SyncedReason | None = None
    sync_message: str = ""
    drifts: tuple[Drift, ...] = ()
    in_progress: bool = False
    stalled: bool = False
    arn: str | None = None
    role_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    keeps_ready: bool = False

    @classmethod
    def reconciled(
        cls,
        *,
        drifts: tuple[Drift, ...] = (),
        arn: str | None = None,
        role_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Ready=True: the role is the resource's and matches the spec (or, under Report, the
        drifts say how it differs)."""
        return cls(drifts=drifts, arn=arn, role_id=role_id, extra=dict(extra or {}))

    @classmethod
    def not_ready(
        cls,
        reason: ReadyReason,
        message: str,
        *,
        drifts: tuple[Drift, ...] = (),
        in_progress: bool = False,
        stalled: bool = False,
        arn: str | None = None,
        role_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Ready=False with `reason`; `message` says why and, when stalled, what to do."""
        return cls(
            ready_reason=reason,
            ready_message=message,
            drifts=drifts,
            in_progress=in_progress,
            stalled=stalled,
            arn=arn,
            role_id=role_id,
            extra=dict(extra or {}),
        )

    @classmethod
    def refused(cls, refusal: Refusal) -> Outcome:
        """A refusal: Ready=False and Stalled=True, until a human changes something."""
        return cls.not_ready(refusal.reason, refusal.message, stalled=True)

    @classmethod
    def failed(cls, reason: SyncedReason, message: str, *, stalled: bool) -> Outcome:
        """An AWS call failed: Synced=False; Ready stays as it was. Retried later, so it is
        work in progress unless a human must act first (`stalled`)."""
        return cls(
            sync_error=reason,
            sync_message=message,
            in_progress=not stalled,
            stalled=stalled,
            keeps_ready=True,
        )

    @property
    def is_ready(self) -> bool:
        return self.ready_reason is None and not self.keeps_ready

    @property
    def ready_label(self) -> str:
        """The Ready reason for logs: "Unchanged" when the previous one is kept."""
        if self.keeps_ready:
            return "Unchanged"
        return self.ready_reason or ReadyReason.Reconciled


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    type_: str, status: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": str(reason),
        "message": message,
        "observedGeneration": generation,
    }


def _drift_message(drifts: Sequence[Drift]) -> str:
    return "; ".join(d.message for d in drifts)


def _ready_message(outcome: Outcome) -> str:
    """Ready=True's message; it never says "matches" beside Drifted=True (Report mode)."""
    if outcome.ready_message:
        return outcome.ready_message
    if outcome.drifts:
        return (
            "The role exists and is managed, but differs from the spec: driftPolicy is Report, "
            "so it is reported (see Drifted), not put back."
        )
    return "The role in AWS matches the spec."


def desired_conditions(
    outcome: Outcome, generation: int, previous: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The five conditions without timestamps (those come from `merge_conditions`)."""
    by_type = {c.get("type"): c for c in previous}
    if outcome.keeps_ready and "Ready" in by_type:
        # Ready still describes the generation it was judged on: after a spec change that could
        # not be applied yet, Ready=True must not claim the new generation is in AWS.
        old = by_type["Ready"]
        old_generation = old.get("observedGeneration")
        ready = _condition(
            "Ready",
            old.get("status") == "True",
            str(old.get("reason", "")),
            str(old.get("message", "")),
            old_generation if isinstance(old_generation, int) else generation,
        )
    elif outcome.keeps_ready:
        ready = _condition(
            "Ready",
            False,
            ReadyReason.Creating,
            "Waiting for the first successful reconcile.",
            generation,
        )
    elif outcome.ready_reason is None:
        ready = _condition(
            "Ready", True, ReadyReason.Reconciled, _ready_message(outcome), generation
        )
    else:
        ready = _condition("Ready", False, outcome.ready_reason, outcome.ready_message, generation)
    synced = _condition(
        "Synced",
        outcome.sync_error is None,
        outcome.sync_error or SyncedReason.ReconcileSuccess,
        outcome.sync_message if outcome.sync_error else "The last reconcile succeeded.",
        generation,
    )
    if outcome.drifts:
        drifted = _condition(
            "Drifted",
            True,
            outcome.drifts[0].aspect.value,
            _drift_message(outcome.drifts),
            generation,
        )
    else:
        drifted = _condition("Drifted", False, "InSync", "The role matches the spec.", generation)
    if outcome.stalled or not outcome.in_progress:
        # Stalled and Reconciling are never both True: kstatus reads the first True one it
        # meets, so a stalled object that also said Reconciling would read InProgress.
        reconciling = _condition("Reconciling", False, "Idle", "No work in progress.", generation)
    elif outcome.sync_error is not None:  # retrying after a failed attempt: say why
        reconciling = _condition(
            "Reconciling", True, outcome.sync_error, outcome.sync_message, generation
        )
    else:
        reconciling = _condition("Reconciling", True, ready["reason"], ready["message"], generation)
    if not outcome.stalled:
        stalled = _condition("Stalled", False, "NotStalled", "Nothing blocks progress.", generation)
    elif outcome.sync_error is not None:  # a failed call a human must fix (AccessDenied)
        stalled = _condition("Stalled", True, outcome.sync_error, outcome.sync_message, generation)
    else:
        stalled = _condition("Stalled", True, ready["reason"], ready["message"], generation)
    return [ready, synced, drifted, reconciling, stalled]


def merge_conditions(
    new: Sequence[dict[str, Any]], previous: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Carry lastTransitionTime over unless the status changed."""
    by_type = {c.get("type"): c for c in previous}
    merged = []
    for condition in new:
        old = by_type.get(condition["type"])
        if (
            old is not None
            and old.get("status") == condition["status"]
            and old.get("lastTransitionTime")
        ):
            transition = old["lastTransitionTime"]
        else:
            transition = now
        merged.append({**condition, "lastTransitionTime": transition})
    return merged


def _comparable(conditions: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            c.get("type"),
            c.get("status"),
            c.get("reason"),
            c.get("message"),
            c.get("observedGeneration"),
        )
        for c in conditions
    )


def patch_for(
    outcome: Outcome, *, generation: int, status: Mapping[str, Any], now: str | None = None
) -> dict[str, Any]:
    """The status patch for this outcome, or {} when the status already says all of it."""
    now = now or now_rfc3339()
    previous: Sequence[Mapping[str, Any]] = status.get("conditions") or []
    conditions = merge_conditions(desired_conditions(outcome, generation, previous), previous, now)
    drift = [{"aspect": d.aspect.value, "message": d.message} for d in outcome.drifts]
    patch: dict[str, Any] = {}
    if _comparable(conditions) != _comparable(previous):
        patch["conditions"] = conditions
    if status.get("observedGeneration") != generation:
        patch["observedGeneration"] = generation
    if (status.get("drift") or []) != drift:
        patch["drift"] = drift
        if drift:
            patch["lastDriftTime"] = now
    for key, value in (("arn", outcome.arn), ("roleId", outcome.role_id)):
        if value and status.get(key) != value:
            patch[key] = value
    for key, value in outcome.extra.items():
        if status.get(key) != value:
            patch[key] = value
    if patch and outcome.sync_error is None:
        patch["lastSyncTime"] = now
    if patch and "conditions" not in patch:
        # The condition list is written whole each time anything is written.
        patch["conditions"] = conditions
    return patch
