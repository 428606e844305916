"""`make chaos`: the full reliability scenarios of issue 8, writing bench/results/chaos-*.json and
docs/reliability.md. Deselected from `make test` (marker `chaos`); short versions of scenarios 2,
4, 5 and 7 run there (tests/e2e/test_reliability.py).

Each test records its figures before asserting, so a scenario that does not hold still shows up
in the table, with `held: no`.
"""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import policy, report, scenarios
from tests.conftest import EXTRA_SECRETS, OPERATOR_LOGS, OperatorFactory, scan_operator_logs
from tests.stack.controlplane import ControlPlane
from tests.stack.kube import Kubectl

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

#: CHAOS_SCALE=0.5 halves the loads below (resources, SIGKILLs, restarts, specs) for a quicker
#: run; the page always shows the load that was actually run.
SCALE = float(os.environ.get("CHAOS_SCALE", "1"))
CHURN_SIZE = max(10, round(200 * SCALE))
THROTTLE = 0.30
MIXED_FAULTS = {
    "throttle": THROTTLE,
    "error": 0.02,
    "latency": 0.05,
    "latency_seconds": 0.3,
    "drop": 0.01,
    "drop_response": 0.01,
}
KILLS = max(2, round(50 * SCALE))
RESTARTS = max(2, round(5 * SCALE))
EXAMPLES = max(100, round(2000 * SCALE))


def _command(test: str) -> str:
    return f"make chaos PYTEST_ARGS='-k {test}'"


def _record(name: str, order: str, passed: bool, **fields: Any) -> None:
    report.write_result(name, {"order": order, "passed": passed, **fields})
    report.write_doc()


@contextlib.contextmanager
def _recorded_failure(name: str, order: str, scenario: str, load: str) -> Iterator[None]:
    """A scenario that raises before it has figures still gets its row (held: no)."""
    try:
        yield
    except Exception as error:
        _record(
            name,
            order,
            False,
            scenario=scenario,
            load=load,
            faults="",
            outcome=f"did not complete: {str(error)[:600]}",
            command=_command(f"test_{order}_"),
            figures={"error": str(error)[:4000]},
        )
        raise


def _faults_text(injected: dict[str, int]) -> str:
    shown = [f"{kind} {count}" for kind, count in injected.items() if count]
    return ", ".join(shown) or "none"


_baseline: dict[str, Any] = {}


def test_1_churn_under_throttling_converges_with_bounded_calls(
    chaos_stack: scenarios.Stack,
    clean_stack: scenarios.Stack,
    own_namespace: str,
    second_own_namespace: str,
) -> None:
    with (
        _recorded_failure("1-throttling", "1", "1. churn under IAM faults", f"{CHURN_SIZE}"),
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="churn") as runs,
    ):
        # The no-fault reference runs beside the faulted run (own operator, proxy, namespace):
        # the faulted run mostly waits out backoffs, so the two share the machine well.
        clean = runs.submit(scenarios.churn, clean_stack, own_namespace, size=CHURN_SIZE, seed=1)
        faulted = runs.submit(
            scenarios.churn,
            chaos_stack,
            second_own_namespace,
            size=CHURN_SIZE,
            faults=MIXED_FAULTS,
            seed=2,
        ).result()
        baseline = clean.result()
        _baseline.update(baseline)
    ratio = faulted["iam_calls_per_resource"] / max(baseline["iam_calls_per_resource"], 0.01)
    passed = True
    try:
        scenarios.assert_churn_sound(baseline)
        scenarios.assert_churn_sound(faulted)
        assert ratio < 4.0, f"faults cost {ratio:.2f}x the calls of a clean run"
    except AssertionError:
        passed = False
        raise
    finally:
        _record(
            "1-throttling",
            "1",
            passed,
            scenario="1. churn while 30% of IAM calls are throttled (plus 500s, latency, drops)",
            load=f"{CHURN_SIZE} resources created, all updated, a third deleted (a tenth of "
            "those with Retain)",
            faults=f"{_faults_text(faulted['injected'])} (rates: {MIXED_FAULTS})",
            outcome=(
                f"all converged in {faulted['seconds_total']} s (clean run beside it "
                f"{baseline['seconds_total']} s); IAM calls per resource "
                f"{faulted['iam_calls_per_resource']} vs {baseline['iam_calls_per_resource']} "
                f"clean ({ratio:.2f}x); duplicates {faulted['duplicates']}, orphans "
                f"{len(faulted['orphans'])}, wrongly deleted {len(faulted['wrongly_deleted'])}, "
                f"bystander roles changed {len(faulted['bystanders_changed'])}, stuck "
                f"finalizers {faulted['stuck_finalizers']}"
            ),
            command=_command("test_1_"),
            figures={"clean": baseline, "faulted": faulted, "calls_ratio": round(ratio, 2)},
        )


def test_2_sigkills_during_churn_leave_no_orphans_or_stuck_finalizers(
    chaos_stack: scenarios.Stack, own_namespace: str
) -> None:
    seed = random.randrange(1_000_000)
    with _recorded_failure("2-sigkill", "2", "2. SIGKILLs during churn", f"{CHURN_SIZE}"):
        figures = scenarios.churn(
            chaos_stack,
            own_namespace,
            size=CHURN_SIZE,
            kills=KILLS,
            kill_gap=2.0,
            lease_duration=3.0,
            seed=seed,
        )
    figures["seed"] = seed
    clean = _baseline.get("iam_calls_per_resource")
    passed = True
    try:
        scenarios.assert_churn_sound(figures)
        assert figures["kills"] == KILLS
        assert figures["iam_calls_per_resource"] < 40
    except AssertionError:
        passed = False
        raise
    finally:
        _record(
            "2-sigkill",
            "2",
            passed,
            scenario="2. random SIGKILLs of the operator during the churn",
            load=f"{CHURN_SIZE} resources created, all updated, a third deleted; two replicas "
            "sharing the Lease (the chart's `replicas: 2`)",
            faults=f"{figures['kills']} SIGKILLs of the leading replica at random moments (0-2 s "
            "after it took the lease); each killed process restarted as the next standby "
            f"(seed {seed})",
            outcome=(
                f"all converged {figures['seconds_to_converge_after_last_fault']} s after the "
                f"last restart ({figures['seconds_total']} s in all); IAM calls per resource "
                f"{figures['iam_calls_per_resource']}"
                + (f" (clean run {clean})" if clean else "")
                + f"; orphans {len(figures['orphans'])}, duplicates {figures['duplicates']}, "
                f"wrongly deleted {len(figures['wrongly_deleted'])}, stuck finalizers "
                f"{figures['stuck_finalizers']}; exits of its own (lease lost under load, "
                f"restarted as Kubernetes would): {figures['operator_exits_on_its_own']}"
            ),
            command=_command("test_2_"),
            figures=figures,
        )


def test_3_apiserver_restarts_recover_without_operator_restart(
    chaos_stack: scenarios.Stack, own_namespace: str, control_plane: ControlPlane
) -> None:
    lease = 30.0
    with _recorded_failure("3-apiserver", "3", "3. kube-apiserver restarts", f"{RESTARTS}"):
        figures = scenarios.apiserver_restarts(
            chaos_stack,
            own_namespace,
            control_plane,
            restarts=RESTARTS,
            outage=2.0,
            lease_duration=lease,
            long_outage=lease * 2 / 3 + 8,
        )
    passed = True
    try:
        assert figures["operator_restarts_during_short_outages"] == 0, figures
        assert all(
            r["outage_seconds"] < figures["renew_deadline_seconds"] for r in figures["rounds"]
        )
        assert figures["old_leader_exit_code"] == 1, figures
    except AssertionError:
        passed = False
        raise
    finally:
        _record(
            "3-apiserver",
            "3",
            passed,
            scenario="3. kube-apiserver restarted while the operator runs",
            load="one operator (lease 30 s, renew deadline 20 s), a new resource after each restart",
            faults=(
                f"{RESTARTS} restarts, outages {[r['outage_seconds'] for r in figures['rounds']]} s; "
                f"then one outage of {figures['long_outage_seconds']} s with a standby waiting"
            ),
            outcome=(
                f"same operator process throughout the short outages (restarts: "
                f"{figures['operator_restarts_during_short_outages']}); a resource created right "
                f"after each restart was Ready within "
                f"{figures['max_seconds_to_ready_after_restart']} s; after the long outage the "
                f"leader exited with code {figures['old_leader_exit_code']} and the standby led "
                f"{figures['standby_took_over_seconds_after_apiserver_back']} s after the API "
                f"server was back (new resource Ready {figures['seconds_to_ready_after_takeover']} s "
                "later)"
            ),
            command=_command("test_3_"),
            figures=figures,
        )


def test_4_generated_specs_are_refused_naming_a_field_or_reconciled(
    chaos_stack: scenarios.Stack, own_namespace: str
) -> None:
    with _recorded_failure("4-bad-input", "4", "4. bad input", f"{EXAMPLES} specs"):
        figures = scenarios.bad_input(chaos_stack, own_namespace, examples=EXAMPLES, seed=4)
    passed = True
    try:
        scenarios.assert_bad_input_handled(figures)
    except AssertionError:
        passed = False
        raise
    finally:
        _record(
            "4-bad-input",
            "4",
            passed,
            scenario="4. bad input: hypothesis-generated specs sent to the real API server",
            load=f"{figures['examples']} specs (valid and invalid), each its own resource",
            faults="invalid values in every field, unknown fields, other accounts, wildcards",
            outcome=(
                f"{figures['refused']} refused by the API server, "
                f"{figures['refused'] - figures['refused_without_field']} of them naming the "
                f"field; {figures['accepted']} accepted, verdicts {figures['verdicts']}; AWS "
                f"writes for refused or Stalled specs: {figures['aws_writes_for_stalled']}; "
                f"operator crashed: {figures['operator_crashed']}"
            ),
            command=_command("test_4_"),
            figures=figures,
        )


def test_5_hostile_tenants_are_refused_with_zero_aws_writes(
    chaos_stack: scenarios.Stack, own_namespace: str, second_own_namespace: str
) -> None:
    with _recorded_failure("5-hostile", "5", "5. hostile tenants", "all cases"):
        figures = scenarios.hostile_tenants(chaos_stack, own_namespace, second_own_namespace)
    passed = True
    try:
        scenarios.assert_hostile_refused(figures)
    except AssertionError:
        passed = False
        raise
    finally:
        cases = figures["cases"]
        by_outcome: dict[str, int] = {}
        for outcome in cases.values():
            by_outcome[outcome["got"]] = by_outcome.get(outcome["got"], 0) + 1
        _record(
            "5-hostile",
            "5",
            passed,
            scenario="5. hostile tenants",
            load=f"{len(cases)} hostile resources from a second namespace, one operator",
            faults="; ".join(outcome["what"] for outcome in cases.values()),
            outcome=(
                f"outcomes {by_outcome}; AWS writes during the hostile phase: "
                f"{figures['aws_writes_during_hostile_phase']}; roles changed "
                f"{len(figures['roles_changed'])}, created {len(figures['roles_created'])}; "
                f"tenant A's role still Ready: {figures['owner_still_ready']}"
            ),
            command=_command("test_5_"),
            figures=figures,
        )


def _policy_actions() -> list[str] | None:
    chosen = os.environ.get("CHAOS_POLICY_ACTIONS")
    if chosen is None:
        return None
    return [a for a in chosen.split(",") if a and a != "none"]


def test_6_the_operators_iam_policy_is_enough_and_every_action_is_needed(
    kubectl: Kubectl,
    cluster: tuple[Path, Path],
    operator_factory: OperatorFactory,
    tmp_path: Path,
) -> None:
    created: list[str] = []

    def create_namespace() -> str:
        name = f"own-pol-{uuid.uuid4().hex[:8]}"
        kubectl.create_namespace(name)
        created.append(name)
        return name

    with (
        _recorded_failure("6-iam-policy", "6", "6. the operator's own IAM policy", "lifecycles"),
        policy.auth_moto(tmp_path / "moto-auth") as server,
    ):
        figures = policy.policy_matrix(
            server,
            scenarios.KubeApi(cluster[0]),
            create_namespace,
            operator_factory,
            EXTRA_SECRETS,
            # e.g. CHAOS_POLICY_ACTIONS=none or =iam:TagRole,iam:GetRole to rerun a few variants
            actions=_policy_actions(),
            # Variants mostly wait (for a step, or for AccessDenied to stay): six share two cores.
            parallel=int(os.environ.get("CHAOS_POLICY_PARALLEL", "6")),
        )
    for name in created:
        kubectl.delete_namespace_nowait(name)
    passed = True
    try:
        assert figures["full_policy_passes"], figures["full_policy"]
        assert figures["actions_not_needed"] == [], figures["actions_not_needed"]
        assert figures["failures_without_access_denied"] == [], figures["removed"]
    except AssertionError:
        passed = False
        raise
    finally:
        failed_at: dict[str, list[str]] = {}
        for result in figures["removed"]:
            failed_at.setdefault(str(result["failed_step"]), []).append(str(result["removed"]))
        _record(
            "6-iam-policy",
            "6",
            passed,
            scenario="6. the operator's own IAM policy (docs/iam-policy.json, actions only)",
            load="one lifecycle per variant: create, update, drift repair, adopt, delete with an "
            "instance profile, retain; moto with IAM access control",
            faults=f"the full policy (Resource widened to *, conditions dropped), then each of "
            f"its {figures['actions']} actions removed in turn",
            outcome=(
                f"full policy: lifecycle "
                f"{'passes' if figures['full_policy_passes'] else 'FAILS'}; removing any one "
                f"action breaks it ({figures['actions'] - len(figures['actions_not_needed'])}/"
                f"{figures['actions']}); first failing step per removed action: {failed_at}; "
                f"not needed: {figures['actions_not_needed'] or 'none'}"
            ),
            command=_command("test_6_"),
            figures=figures,
            notes="Resource scoping and conditions are not checked here (moto does not evaluate "
            "them); the shipped file is linted with parliament in "
            "tests/e2e/test_reliability.py (valid actions, resources and condition keys).",
        )


def test_7_no_credentials_in_any_operator_log_of_the_run() -> None:
    """Runs last in this module; pytest_sessionfinish repeats the scan at the very end."""
    leaks = scan_operator_logs(OPERATOR_LOGS)
    size = sum(path.stat().st_size for path in OPERATOR_LOGS if path.exists())
    passed = not leaks and bool(OPERATOR_LOGS)
    _record(
        "7-logs",
        "7",
        passed,
        scenario="7. no secret in logs",
        load=f"every operator log of the chaos run: {len(OPERATOR_LOGS)} logs, "
        f"{size / 1e6:.1f} MB at DEBUG",
        faults="(scan) moto's access key id and secret key, AKIA/ASIA key ids, session tokens, "
        "keys created for scenario 6",
        outcome=f"logs with key material: {len(leaks)}",
        command="make chaos",
        figures={
            "logs": len(OPERATOR_LOGS),
            "bytes": size,
            "leaks": {str(k): v for k, v in leaks.items()},
        },
    )
    assert OPERATOR_LOGS
    assert leaks == {}
