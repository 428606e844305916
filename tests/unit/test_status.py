"""Conditions and status patches: what `kubectl get`, kstatus and GitOps tools read."""

from __future__ import annotations

from typing import Any

import pytest

from ecsrole.core.model import Aspect, Drift, ReadyReason, Refusal, SyncedReason
from ecsrole.status import Outcome, patch_for

pytestmark = pytest.mark.unit

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def _by_type(patch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in patch["conditions"]}


def test_first_success_writes_all_five_conditions_and_ids() -> None:
    patch = patch_for(
        Outcome.reconciled(arn="arn:aws:iam::123456789012:role/r", role_id="AROAEXAMPLE"),
        generation=1,
        status={},
        now=T0,
    )
    conditions = _by_type(patch)
    assert set(conditions) == {"Ready", "Synced", "Drifted", "Reconciling", "Stalled"}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "Reconciled"
    assert conditions["Synced"]["reason"] == "ReconcileSuccess"
    assert conditions["Drifted"] == {**conditions["Drifted"], "status": "False", "reason": "InSync"}
    assert conditions["Reconciling"]["status"] == "False"
    assert conditions["Stalled"]["status"] == "False"
    assert all(
        c["observedGeneration"] == 1 and c["lastTransitionTime"] == T0 for c in conditions.values()
    )
    assert patch["arn"] == "arn:aws:iam::123456789012:role/r"
    assert patch["roleId"] == "AROAEXAMPLE"
    assert patch["observedGeneration"] == 1
    assert patch["lastSyncTime"] == T0


def _status_after(outcome: Outcome, generation: int = 1, now: str = T0) -> dict[str, Any]:
    return patch_for(outcome, generation=generation, status={}, now=now)


def test_nothing_new_writes_nothing() -> None:
    outcome = Outcome.reconciled(arn="arn:aws:iam::123456789012:role/r", role_id="AROAEXAMPLE")
    status = _status_after(outcome)
    assert patch_for(outcome, generation=1, status=status, now=T1) == {}


def test_transition_time_moves_only_when_status_changes() -> None:
    status = _status_after(Outcome.reconciled())
    drifted = Outcome.reconciled(drifts=(Drift(Aspect.TrustPolicy, "trust also allows X"),))
    patch = patch_for(drifted, generation=1, status=status, now=T1)
    conditions = _by_type(patch)
    assert conditions["Drifted"]["status"] == "True"
    assert conditions["Drifted"]["reason"] == "TrustPolicy"
    assert conditions["Drifted"]["lastTransitionTime"] == T1
    assert conditions["Ready"]["lastTransitionTime"] == T0
    assert patch["drift"] == [{"aspect": "TrustPolicy", "message": "trust also allows X"}]
    assert patch["lastDriftTime"] == T1


def test_refusal_is_stalled_with_the_same_reason() -> None:
    patch = _status_after(Outcome.refused(Refusal(ReadyReason.PolicyNotAllowed, "no")))
    conditions = _by_type(patch)
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "PolicyNotAllowed"
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "PolicyNotAllowed"


#: What the reconciler reports when an AWS call was throttled (reconciler._aws_failed).
THROTTLED = Outcome.failed(
    SyncedReason.Throttled, "PutRolePolicy failed: Throttling: Rate exceeded", stalled=False
)


def test_aws_failure_flips_synced_but_not_ready() -> None:
    status = _status_after(Outcome.reconciled())
    patch = patch_for(THROTTLED, generation=1, status=status, now=T1)
    conditions = _by_type(patch)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["lastTransitionTime"] == T0
    assert conditions["Synced"]["status"] == "False"
    assert conditions["Synced"]["reason"] == "Throttled"
    assert conditions["Reconciling"]["status"] == "True"
    assert "lastSyncTime" not in patch


def test_a_spec_change_not_applied_yet_leaves_ready_on_the_generation_it_judged() -> None:
    """Throttled while applying generation 2: Ready=True still speaks of generation 1 only."""
    status = _status_after(Outcome.reconciled(), generation=1)
    patch = patch_for(THROTTLED, generation=2, status=status, now=T1)
    conditions = _by_type(patch)
    assert (conditions["Ready"]["status"], conditions["Ready"]["observedGeneration"]) == ("True", 1)
    assert patch["observedGeneration"] == 2
    for type_ in ("Synced", "Reconciling"):
        assert conditions[type_]["observedGeneration"] == 2
        assert conditions[type_]["reason"] == "Throttled"
        assert "Rate exceeded" in conditions[type_]["message"]
    assert conditions["Reconciling"]["status"] == "True"
    # Once applied, Ready moves to the new generation.
    applied = patch_for(Outcome.reconciled(), generation=2, status={**status, **patch}, now=T1)
    assert _by_type(applied)["Ready"]["observedGeneration"] == 2
    assert _by_type(applied)["Reconciling"]["status"] == "False"


def test_aws_failure_before_any_success_says_creating() -> None:
    patch = _status_after(
        Outcome.failed(SyncedReason.AccessDenied, "GetRole failed: AccessDenied", stalled=False)
    )
    conditions = _by_type(patch)
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "Creating"


def test_new_generation_rewrites_conditions_with_it() -> None:
    status = _status_after(Outcome.reconciled())
    patch = patch_for(Outcome.reconciled(), generation=2, status=status, now=T1)
    assert patch["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in patch["conditions"])
    assert all(c["lastTransitionTime"] == T0 for c in patch["conditions"])


def test_ready_in_report_mode_never_says_matches_beside_drift() -> None:
    drift = Drift(Aspect.ManagedPolicy, "AdministratorAccess is attached but not declared")
    conditions = _by_type(
        patch_for(Outcome.reconciled(drifts=(drift,)), generation=1, status={}, now=T0)
    )
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Drifted"]["status"] == "True"
    assert "matches" not in conditions["Ready"]["message"]
    assert "Drifted" in conditions["Ready"]["message"]


def test_a_stalled_outcome_is_never_reconciling_too() -> None:
    """kstatus stops at the first True one of the two: Reconciling would hide Stalled."""
    outcome = Outcome.not_ready(
        ReadyReason.DeletionBlocked,
        "cannot delete: ...; annotate the resource with ecsrole.dev/abandon=true",
        in_progress=True,
        stalled=True,
    )
    conditions = _by_type(patch_for(outcome, generation=1, status={}, now=T0))
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "DeletionBlocked"
    assert "ecsrole.dev/abandon" in conditions["Stalled"]["message"]
    assert conditions["Reconciling"]["status"] == "False"


def test_access_denied_is_stalled_with_the_sync_reason_and_ready_kept() -> None:
    previous = patch_for(Outcome.reconciled(), generation=1, status={}, now=T0)
    denied = Outcome.failed(
        SyncedReason.AccessDenied,
        "UpdateRole failed: AccessDenied: no; grant the operator's IAM identity ...",
        stalled=True,
    )
    conditions = _by_type(patch_for(denied, generation=2, status=previous, now=T1))
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["observedGeneration"] == 1
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "AccessDenied"
    assert "grant" in conditions["Stalled"]["message"]
    assert conditions["Reconciling"]["status"] == "False"
