"""End to end: an EcsExecutionRole applied to a real API server becomes a real role in moto."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from tests.stack.kube import Kubectl, condition, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess
from tests.stack.resources import SEED_POLICY, SEED_TRUST

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _policy(document: Any) -> Any:
    return json.loads(unquote(document)) if isinstance(document, str) else document


def test_example_becomes_a_ready_role_with_seed_trust_and_policy(
    kubectl: Kubectl,
    namespace: str,
    shared_operator: OperatorProcess,
    aws: Callable[..., Any],
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "ecsexecutionrole-minimal.yaml").read_text())
    role_name = f"e2e-{uuid.uuid4().hex[:12]}"
    manifest["metadata"]["name"] = "example"
    manifest["spec"]["roleName"] = role_name
    kubectl.apply(manifest, namespace=namespace)

    resource = wait_for_condition(kubectl, namespace, "example", "Ready", "True", timeout=120)

    iam = aws("iam")
    role = iam.get_role(RoleName=role_name)["Role"]
    assert _policy(role["AssumeRolePolicyDocument"]) == SEED_TRUST
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [SEED_POLICY]
    tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
    assert tags["ecsrole.dev/namespace"] == namespace
    assert tags["ecsrole.dev/name"] == "example"
    assert tags["ecsrole.dev/uid"] == resource["metadata"]["uid"]

    status = resource["status"]
    assert status["arn"] == f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{role_name}"
    assert status["roleId"] == role["RoleId"]
    assert status["observedGeneration"] == resource["metadata"]["generation"]
    for type_, expected in (("Synced", "True"), ("Drifted", "False"), ("Stalled", "False")):
        found = condition(resource, type_)
        assert found is not None, type_
        assert found["status"] == expected, (type_, found)
    # kopf's bookkeeping stays out of status and under the ecsrole.dev prefix.
    assert "kopf" not in status
    assert "ecsrole.dev/finalizer" in resource["metadata"]["finalizers"]
    assert not [a for a in resource["metadata"].get("annotations", {}) if "zalando" in a]
