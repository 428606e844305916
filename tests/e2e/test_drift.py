"""Drift detection end to end: out-of-band changes in moto found by sweeps and by CloudTrail
events, repaired under Enforce, only reported under Report, and silence when nothing changes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest

from tests.conftest import OperatorFactory
from tests.stack.kube import KIND, Kubectl, condition, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config, metric_value
from tests.stack.processes import eventually
from tests.stack.resources import SEED_POLICY, SEED_TRUST, role_manifest

pytestmark = pytest.mark.e2e

SWEEP_SECONDS = 3
# moto is strongly consistent, so these operators judge their own writes at once (settleWindow 0):
# an out-of-band change right after Ready is drift, and no test waits out a window.
NO_SETTLE = "0s"
# Bounds for failure only, generous for a loaded machine: detection latency is a benchmark
# figure (make bench), not something a functional test times.
REPAIR_TIMEOUT = 90.0
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
WIDENED_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        *SEED_TRUST["Statement"],
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
            "Action": "sts:AssumeRole",
        },
    ],
}


def _doc(value: Any) -> Any:
    return json.loads(unquote(value)) if isinstance(value, str) else value


def _role(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = {"description": "declared description", "tags": {"team": "blue"}, **(spec or {})}
    return role_manifest(name, f"drift-{uuid.uuid4().hex[:12]}", **spec)


_metric = metric_value


def _wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until `check`; return the seconds it took."""
    started = time.monotonic()
    eventually(check, timeout=timeout, what=what)
    return time.monotonic() - started


@dataclass
class Change:
    """One out-of-band change and how to tell it was put back."""

    aspect: str
    apply: Callable[[Any, str], None]
    repaired: Callable[[Any, str], bool]


def _detach_seed(iam: Any, role: str) -> None:
    iam.detach_role_policy(RoleName=role, PolicyArn=SEED_POLICY)


def _attached(iam: Any, role: str) -> set[str]:
    return {
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    }


def _get(iam: Any, role: str) -> dict[str, Any]:
    result: dict[str, Any] = iam.get_role(RoleName=role)["Role"]
    return result


def _tags(iam: Any, role: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in _get(iam, role).get("Tags", [])}


def _delete_role(iam: Any, role: str) -> None:
    for arn in _attached(iam, role):
        iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    iam.delete_role(RoleName=role)


def _role_exists(iam: Any, role: str) -> bool:
    try:
        _get(iam, role)
    except iam.exceptions.NoSuchEntityException:
        return False
    return SEED_POLICY in _attached(iam, role)


CHANGES = [
    Change("ManagedPolicy", _detach_seed, lambda iam, r: SEED_POLICY in _attached(iam, r)),
    Change(
        "ManagedPolicy",
        lambda iam, r: iam.attach_role_policy(RoleName=r, PolicyArn=ADMIN_POLICY),
        lambda iam, r: ADMIN_POLICY not in _attached(iam, r),
    ),
    Change(
        "TrustPolicy",
        lambda iam, r: iam.update_assume_role_policy(
            RoleName=r, PolicyDocument=json.dumps(WIDENED_TRUST)
        ),
        lambda iam, r: _doc(_get(iam, r)["AssumeRolePolicyDocument"]) == SEED_TRUST,
    ),
    Change(
        "InlinePolicy",
        lambda iam, r: iam.put_role_policy(
            RoleName=r,
            PolicyName="sneaky",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        ),
        lambda iam, r: iam.list_role_policies(RoleName=r)["PolicyNames"] == [],
    ),
    Change(
        "Tags",
        lambda iam, r: iam.tag_role(RoleName=r, Tags=[{"Key": "team", "Value": "red"}]),
        lambda iam, r: _tags(iam, r).get("team") == "blue",
    ),
    Change(
        "Description",
        lambda iam, r: iam.update_role_description(RoleName=r, Description="changed by hand"),
        lambda iam, r: _get(iam, r).get("Description") == "declared description",
    ),
    Change(
        "MaxSessionDuration",
        lambda iam, r: iam.update_role(
            RoleName=r, Description="declared description", MaxSessionDuration=7200
        ),
        lambda iam, r: _get(iam, r)["MaxSessionDuration"] == 3600,
    ),
    Change("RoleMissing", _delete_role, _role_exists),
]


@pytest.fixture
def sweeping_operator(
    operator_factory: OperatorFactory, own_namespace: str
) -> tuple[OperatorProcess, str]:
    config = dev_config(
        "e2e-drift",
        {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace], "sweepMode": "bulk"}},
        driftCheckInterval=f"{SWEEP_SECONDS}s",
        settleWindow=NO_SETTLE,
    )
    return operator_factory(config, namespaces=[own_namespace]), own_namespace


def test_each_out_of_band_change_is_found_by_the_sweep_and_put_back(
    sweeping_operator: tuple[OperatorProcess, str],
    kubectl: Kubectl,
    aws: Callable[..., Any],
) -> None:
    operator, namespace = sweeping_operator
    roles = {}
    for index, _ in enumerate(CHANGES):
        manifest = _role(f"enforced-{index}")
        roles[index] = manifest["spec"]["roleName"]
        kubectl.apply(manifest, namespace=namespace)
    for index in roles:
        wait_for_condition(kubectl, namespace, f"enforced-{index}", "Ready", timeout=120)
    iam = aws("iam")

    changed_at = {}
    for index, change in enumerate(CHANGES):
        change.apply(iam, roles[index])
        changed_at[index] = time.monotonic()
    pending = set(roles)
    took: dict[str, float] = {}
    deadline = time.monotonic() + REPAIR_TIMEOUT
    while pending and time.monotonic() < deadline:
        for index in list(pending):
            if CHANGES[index].repaired(iam, roles[index]):
                took[f"{CHANGES[index].aspect}-{index}"] = time.monotonic() - changed_at[index]
                pending.discard(index)
        time.sleep(0.2)
    assert not pending, (
        f"not put back within {REPAIR_TIMEOUT:.0f} s: {[CHANGES[i].aspect for i in pending]}; "
        f"others took {took}"
    )
    print(f"sweep-path repairs took {took}")

    metrics = operator.metrics_text()
    for change in CHANGES:
        assert _metric(metrics, "ecsrole_drift_events_total", aspect=change.aspect) >= 1, change
        assert (
            _metric(
                metrics, "ecsrole_drift_remediations_total", aspect=change.aspect, outcome="success"
            )
            >= 1
        ), change
    assert _metric(metrics, "ecsrole_drift_detection_latency_seconds_count", source="sweep") >= len(
        CHANGES
    )
    for index in roles:
        name = f"enforced-{index}"
        resource = wait_for_condition(kubectl, namespace, name, "Drifted", "False", timeout=120)
        assert condition(resource, "Ready")["status"] == "True"  # type: ignore[index]
        events = kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            f"involvedObject.name={name}",
            "-o",
            "jsonpath={range .items[*]}{.reason} {end}",
        ).stdout
        assert "DriftDetected" in events, (name, events)
        assert "DriftRepaired" in events, (name, events)


def test_report_mode_reports_and_changes_nothing(
    sweeping_operator: tuple[OperatorProcess, str], kubectl: Kubectl, aws: Callable[..., Any]
) -> None:
    operator, namespace = sweeping_operator
    manifest = _role("reported", {"driftPolicy": "Report"})
    role = manifest["spec"]["roleName"]
    kubectl.apply(manifest, namespace=namespace)
    wait_for_condition(kubectl, namespace, "reported", "Ready", timeout=120)
    iam = aws("iam")
    iam.attach_role_policy(RoleName=role, PolicyArn=ADMIN_POLICY)

    resource = wait_for_condition(
        kubectl,
        namespace,
        "reported",
        "Drifted",
        "True",
        reason="ManagedPolicy",
        timeout=REPAIR_TIMEOUT,
    )
    assert condition(resource, "Ready")["status"] == "True"  # type: ignore[index]
    drift = resource["status"]["drift"]
    assert [d["aspect"] for d in drift] == ["ManagedPolicy"]
    assert "AdministratorAccess" in drift[0]["message"]
    assert resource["status"]["lastDriftTime"]
    operator.wait_sweeps(2)  # two more looks at the drifted role
    assert ADMIN_POLICY in _attached(iam, role), "Report mode must not repair"
    events = kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=reported",
        "-o",
        "jsonpath={range .items[*]}{.reason}={.message}|{end}",
    ).stdout
    detected = [e for e in events.split("|") if e.startswith("DriftDetected=")]
    assert len(detected) == 1, f"one Event for a persisting drift, not one per sweep: {detected}"
    metrics = operator.metrics_text()
    assert _metric(metrics, "ecsrole_drifted", name="reported") == 1
    assert _metric(metrics, "ecsrole_drift_events_total", aspect="ManagedPolicy") == 1

    iam.detach_role_policy(RoleName=role, PolicyArn=ADMIN_POLICY)
    wait_for_condition(kubectl, namespace, "reported", "Drifted", "False", timeout=REPAIR_TIMEOUT)
    _wait(
        lambda: _metric(operator.metrics_text(), "ecsrole_drifted", name="reported") == 0,
        60,
        "ecsrole_drifted back to 0",
    )


def test_steady_state_writes_nothing_over_ten_sweeps(
    operator_factory: OperatorFactory, own_namespace: str, kubectl: Kubectl
) -> None:
    config = dev_config(
        "e2e-steady",
        {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace]}},
        driftCheckInterval="1s",
    )
    operator = operator_factory(config, namespaces=[own_namespace])
    for name in ("steady-a", "steady-b"):
        kubectl.apply(_role(name), namespace=own_namespace)
    for name in ("steady-a", "steady-b"):
        wait_for_condition(kubectl, own_namespace, name, "Ready", timeout=120)
    # Whatever the creation still had in flight (kopf's own annotations) lands within a sweep.
    operator.wait_sweeps(2)
    versions = {
        name: kubectl.get_json(KIND, name, own_namespace)["metadata"]["resourceVersion"]  # type: ignore[index]
        for name in ("steady-a", "steady-b")
    }
    operator.wait_sweeps(10)
    metrics = operator.metrics_text()
    assert _metric(metrics, "ecsrole_drift_events_total") == 0
    assert _metric(metrics, "ecsrole_drift_sweep_last_success_timestamp_seconds") > time.time() - 30
    assert _metric(metrics, "ecsrole_managed_roles", account_id=DEFAULT_ACCOUNT_ID) == 2
    for name, version in versions.items():
        now = kubectl.get_json(KIND, name, own_namespace)["metadata"]["resourceVersion"]  # type: ignore[index]
        assert now == version, f"{name} was written although nothing changed"


def _cloudtrail_event(
    role: str,
    name: str = "DetachRolePolicy",
    actor: str = "arn:aws:sts::123456789012:assumed-role/Admin/alice",
    error: str | None = None,
) -> str:
    """An EventBridge 'AWS API Call via CloudTrail' event as SQS delivers it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    detail: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": actor,
            "accountId": DEFAULT_ACCOUNT_ID,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{actor.split('/')[-2]}",
                }
            },
        },
        "eventTime": now,
        "eventSource": "iam.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "requestParameters": {"roleName": role, "policyArn": SEED_POLICY},
        "responseElements": None,
        "recipientAccountId": DEFAULT_ACCOUNT_ID,
    }
    if error:
        detail["errorCode"] = error
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.iam",
            "account": DEFAULT_ACCOUNT_ID,
            "time": now,
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


def test_cloudtrail_event_leads_to_repair_within_seconds(
    operator_factory: OperatorFactory, own_namespace: str, kubectl: Kubectl, aws: Callable[..., Any]
) -> None:
    sqs = aws("sqs")
    queue = sqs.create_queue(QueueName=f"ecsrole-events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    config = dev_config(
        "e2e-events",
        {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace]}},
        driftCheckInterval="10m",
        settleWindow=NO_SETTLE,
        events={"sqsQueueUrl": queue},
    )
    operator = operator_factory(config, namespaces=[own_namespace])
    names = {}
    for key in ("repaired", "failed-call", "own-call"):
        manifest = _role(key)
        names[key] = manifest["spec"]["roleName"]
        kubectl.apply(manifest, namespace=own_namespace)
    for key in names:
        wait_for_condition(kubectl, own_namespace, key, "Ready", timeout=120)
    iam = aws("iam")
    own_arn = aws("sts").get_caller_identity()["Arn"]  # the operator runs with these credentials

    # A real out-of-band detach, announced by its CloudTrail event: put back (no sweep runs).
    _detach_seed(iam, names["repaired"])
    sqs.send_message(QueueUrl=queue, MessageBody=_cloudtrail_event(names["repaired"]))
    took = _wait(
        lambda: SEED_POLICY in _attached(iam, names["repaired"]),
        REPAIR_TIMEOUT,
        "repair from the event",
    )
    metrics = operator.metrics_text()
    assert _metric(metrics, "ecsrole_drift_detection_latency_seconds_count", source="event") == 1
    assert _metric(metrics, "ecsrole_drift_events_total", aspect="ManagedPolicy") == 1

    # Events that must change nothing: a failed call, the operator's own call, an unmanaged role.
    _detach_seed(iam, names["failed-call"])
    _detach_seed(iam, names["own-call"])
    for body in (
        _cloudtrail_event(names["failed-call"], error="AccessDenied"),
        _cloudtrail_event(names["own-call"], actor=own_arn),
        _cloudtrail_event("a-role-nobody-manages"),
        "not even JSON",
    ):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    def drained() -> bool:
        # A message is deleted only once handled (re-read, repaired or skipped); until then it
        # is received but not visible.
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(int(count) == 0 for count in attributes.values())

    _wait(drained, 90, "every event handled and deleted")
    assert SEED_POLICY not in _attached(iam, names["failed-call"])
    assert SEED_POLICY not in _attached(iam, names["own-call"])
    assert _metric(operator.metrics_text(), "ecsrole_drift_events_total") == 1
    print(f"event-path repair took {took:.2f}s")
