"""Short versions of the reliability scenarios of issue 8 (the full ones: `make chaos`).

Scenario 2 (SIGKILLs during churn), 4 (hypothesis-generated specs), 5 (hostile tenants) run
here with small sizes through the same code as tests/chaos/test_chaos.py; scenario 7 (no
credential in any operator log) is checked over every operator log of the session by the
`pytest_sessionfinish` hook in tests/conftest.py, and its scanner is tested below.
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import scenarios
from tests.conftest import EXTRA_SECRETS, OPERATOR_LOGS, scan_operator_logs, secrets_in_log
from tests.stack.moto import ACCESS_KEY_ID, SECRET_ACCESS_KEY

POLICY_PATH = Path(__file__).resolve().parents[2] / "docs" / "iam-policy.json"

KILLS = 4
CHURN_SIZE = 20
EXAMPLES = 300


@pytest.mark.e2e
def test_sigkills_during_churn_converge_without_orphans_or_stuck_finalizers(
    chaos_stack: scenarios.Stack, own_namespace: str
) -> None:
    seed = random.randrange(1_000_000)
    print(f"seed: {seed}")  # shown when the test fails
    figures = scenarios.churn(
        chaos_stack, own_namespace, size=CHURN_SIZE, kills=KILLS, kill_gap=2.0, seed=seed
    )
    print(figures)
    scenarios.assert_churn_sound(figures)
    assert figures["kills"] == KILLS
    # Bounded cost: crashes re-read, they do not loop (a clean run costs about 10 per resource).
    assert figures["iam_calls_per_resource"] < 40, figures["calls_by_action"]


@pytest.mark.e2e
def test_generated_specs_are_refused_naming_a_field_or_reconciled(
    chaos_stack: scenarios.Stack, own_namespace: str
) -> None:
    figures = scenarios.bad_input(chaos_stack, own_namespace, examples=EXAMPLES, seed=8)
    print(figures)
    scenarios.assert_bad_input_handled(figures)


@pytest.mark.e2e
def test_hostile_tenants_are_refused_with_zero_aws_writes(
    chaos_stack: scenarios.Stack, own_namespace: str, second_own_namespace: str
) -> None:
    figures = scenarios.hostile_tenants(chaos_stack, own_namespace, second_own_namespace)
    print(figures)
    scenarios.assert_hostile_refused(figures)


@pytest.mark.unit
def test_the_log_scan_finds_every_kind_of_key_material(tmp_path: Path) -> None:
    assert secrets_in_log('{"event": "calling iam", "level": "debug"}') == []
    assert secrets_in_log(f"key={ACCESS_KEY_ID}")
    assert secrets_in_log(f"secret={SECRET_ACCESS_KEY}")
    assert secrets_in_log("token=FQoGZXIvYXdzEXAMPLE")
    assert secrets_in_log("id ASIAABCDEFGHIJKLMNOP in a message")
    EXTRA_SECRETS.add("made-up-secret-for-this-test")
    try:
        log = tmp_path / "operator.log"
        log.write_text('{"event": "x", "secret": "made-up-secret-for-this-test"}\n')
        assert list(scan_operator_logs([log])) == [log]
    finally:
        EXTRA_SECRETS.discard("made-up-secret-for-this-test")


@pytest.mark.e2e
def test_no_operator_log_so_far_holds_credentials() -> None:
    """Runs after the scenarios above (file order); the session hook repeats it at the end."""
    assert scan_operator_logs(OPERATOR_LOGS) == {}


# -- scenario 6, the static half: the shipped IAM policy passes parliament --------------------------

POLICY_PLACEHOLDERS = {
    "${Partition}": "aws",
    "${AccountId}": "123456789012",
    "${RolePathPrefix}": "/ecs/",
    "${ClusterName}": "prod-eu-1",
    "${PermissionsBoundaryArn}": "arn:aws:iam::123456789012:policy/ecs-task-boundary",
    "${AllowedPolicyArns}": "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess",
}


def _parliament_findings(policy_text: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports the deprecated pkg_resources
        from parliament import analyze_policy_string

    analyzed = analyze_policy_string(policy_text, include_community_auditors=False)
    return [
        f"{finding.issue}: {finding.detail} at {finding.location}" for finding in analyzed.findings
    ]


@pytest.mark.unit
def test_shipped_iam_policy_passes_parliament() -> None:
    """Valid actions, resource types per action and condition keys per action (parliament's
    IAM definitions), with the ${...} placeholders filled with example values."""
    text = POLICY_PATH.read_text()
    for placeholder, value in POLICY_PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    assert "${" not in text, "a placeholder without an example value"
    assert _parliament_findings(text) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("statement", "issue"),
    [
        ({"Action": "iam:GetRoles", "Resource": "*"}, "UNKNOWN_ACTION"),
        (
            {"Action": "iam:CreateRole", "Resource": "arn:aws:iam::123456789012:policy/x"},
            "RESOURCE_MISMATCH",
        ),
        (
            {
                "Action": "iam:CreateRole",
                "Resource": "arn:aws:iam::123456789012:role/x",
                "Condition": {"StringEquals": {"iam:NoSuchKey": "x"}},
            },
            "UNKNOWN_CONDITION_FOR_ACTION",
        ),
    ],
)
def test_parliament_would_catch_a_bad_statement(statement: dict[str, Any], issue: str) -> None:
    """The lint above is not vacuous: the mistakes it is there for are found."""
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]}
    findings = _parliament_findings(json.dumps(policy))
    assert any(finding.startswith(issue) for finding in findings), findings


@pytest.mark.e2e
def test_a_throttled_spec_change_keeps_ready_on_the_generation_that_is_in_aws(
    chaos_stack: scenarios.Stack, own_namespace: str
) -> None:
    """Every IAM write throttled while generation 2 is applied: Ready=True keeps speaking of
    generation 1 (what AWS holds), Synced and Reconciling say Throttled; when IAM answers again,
    generation 2 reaches AWS and Ready moves to it."""
    run = f"{random.randrange(16**8):08x}"
    role_name = f"throttled-{run}"
    operator = chaos_stack.start_operator(
        scenarios.operator_config(f"throttled-{run}", [own_namespace]), namespaces=[own_namespace]
    )
    scenarios.wait_leading(operator)
    api, iam = chaos_stack.api, chaos_stack.iam()

    def resource() -> dict[str, Any]:
        return api.list_by_name(own_namespace).get("app") or {}

    api.apply(own_namespace, scenarios.role_manifest("app", role_name, description="one"))
    scenarios.wait_for(lambda: scenarios.settled(resource()), what="generation 1", timeout=60)

    chaos_stack.proxy.set_rates(throttle=1.0)
    api.apply(own_namespace, scenarios.role_manifest("app", role_name, description="two"))

    def throttled() -> dict[str, Any] | None:
        current = resource()
        synced = scenarios.condition(current, "Synced") or {}
        if synced.get("reason") == "Throttled" and synced.get("observedGeneration") == 2:
            return current
        return None

    current = scenarios.wait_for(throttled, what="Synced=False/Throttled", timeout=60)
    ready = scenarios.condition(current, "Ready") or {}
    reconciling = scenarios.condition(current, "Reconciling") or {}
    assert (ready["status"], ready["observedGeneration"]) == ("True", 1)
    assert (reconciling["status"], reconciling["reason"]) == ("True", "Throttled")
    assert current["status"]["observedGeneration"] == 2
    assert not scenarios.settled(current)
    assert iam.get_role(RoleName=role_name)["Role"]["Description"] == "one"

    chaos_stack.proxy.clear()
    # The throttled attempt is retried after its backoff (5 s and up, with jitter).
    scenarios.wait_for(lambda: scenarios.settled(resource()), what="generation 2", timeout=90)
    assert iam.get_role(RoleName=role_name)["Role"]["Description"] == "two"
