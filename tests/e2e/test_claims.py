"""Claims and ownership end to end (issue 16): the three sequences a hostile probe broke.

The stateful model (tests/unit/claims_model.py) finds sequences; these tests prove the wiring
against a real kube-apiserver, a real moto server and the operator as a process:

1. a squatter in a namespace the account does not list claims nothing;
2. the loser of a conflict proceeds by itself, within seconds, once the winner is deleted;
3. a role re-created by hand with copied ownership tags is never taken for the recorded one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import OperatorFactory, fresh_namespace
from tests.e2e.test_lifecycle import (
    conditions_of,
    create_role_by_hand,
    delete_resource,
    expected_ownership,
    role_state,
    unique,
    wait_event,
    wait_gone,
    wait_ready,
)
from tests.stack.kube import KIND, Kubectl, condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.resources import EC2_TRUST, SEED_POLICY
from tests.stack.resources import role_manifest as manifest

pytestmark = pytest.mark.e2e

#: No sweep while a test runs: what the operator does is then what a handler or a take-over did.
NO_SWEEP = "3600s"


@pytest.fixture
def tenant_b(kubectl: Kubectl) -> Iterator[str]:
    """A namespace the operator watches but the account does not list."""
    yield from fresh_namespace(kubectl, "e2e-tenant-b-")


@pytest.fixture
def iam(aws: Any) -> Any:
    return aws("iam")


def _operator(
    operator_factory: OperatorFactory, cluster: str, allowed: list[str], watched: list[str]
) -> OperatorProcess:
    config = dev_config(
        cluster, {DEFAULT_ACCOUNT_ID: {"namespaces": allowed}}, driftCheckInterval=NO_SWEEP
    )
    return operator_factory(config, namespaces=watched)


def test_a_squatter_in_a_namespace_the_account_does_not_list_blocks_nothing(
    kubectl: Kubectl,
    own_namespace: str,
    tenant_b: str,
    operator_factory: OperatorFactory,
    iam: Any,
) -> None:
    _operator(operator_factory, "e2e-squat", [own_namespace], [own_namespace, tenant_b])
    role_name = unique("e2e-squat")
    # The squatter comes first (older), spelling the name in another case.
    kubectl.apply(manifest("squatter", role_name.upper()), namespace=tenant_b)
    squatter = wait_ready(kubectl, tenant_b, "squatter", "AccountNotAllowed")
    assert conditions_of(squatter)["Stalled"] == ("True", "AccountNotAllowed")

    kubectl.apply(manifest("app", role_name), namespace=own_namespace)
    resource = wait_ready(kubectl, own_namespace, "app", timeout=60)
    state = role_state(iam, role_name)
    assert state is not None
    assert resource["status"]["roleId"] == state["role_id"]
    assert state["attached"] == [SEED_POLICY]

    # Deleting the squatter leaves the role and its resource as they are.
    delete_resource(kubectl, tenant_b, "squatter")
    wait_gone(kubectl, tenant_b, "squatter")
    assert role_state(iam, role_name) == state
    assert conditions_of(kubectl.get_json(KIND, "app", own_namespace) or {"status": {}})[
        "Ready"
    ] == ("True", "Reconciled")


def test_the_loser_of_a_conflict_proceeds_by_itself_once_the_winner_is_deleted(
    kubectl: Kubectl,
    own_namespace: str,
    second_own_namespace: str,
    operator_factory: OperatorFactory,
    iam: Any,
) -> None:
    namespaces = [own_namespace, second_own_namespace]
    _operator(operator_factory, "e2e-takeover", namespaces, namespaces)
    role_name = unique("e2e-takeover")
    kubectl.apply(manifest("winner", role_name), namespace=own_namespace)
    winner = wait_ready(kubectl, own_namespace, "winner")
    first_id = winner["status"]["roleId"]

    kubectl.apply(manifest("loser", role_name.upper()), namespace=second_own_namespace)
    loser = wait_ready(kubectl, second_own_namespace, "loser", "ConflictingResource")
    message = (condition(loser, "Ready") or {})["message"]
    assert own_namespace not in message
    assert "winner" not in message

    # Nobody touches the loser: deleting the winner (Delete: its role goes) is enough.
    delete_resource(kubectl, own_namespace, "winner")
    wait_gone(kubectl, own_namespace, "winner")
    loser = wait_ready(kubectl, second_own_namespace, "loser", timeout=60)
    state = role_state(iam, role_name.upper())  # moto, unlike IAM, keeps names case-sensitive
    assert state is not None
    assert state["role_id"] == loser["status"]["roleId"] != first_id
    assert state["tags"] == expected_ownership(
        second_own_namespace, "loser", loser["metadata"]["uid"], cluster="e2e-takeover"
    )
    wait_event(kubectl, second_own_namespace, "loser", "Created", "Normal")


def _replace_by_hand(iam: Any, role_name: str, tags: dict[str, str]) -> dict[str, Any]:
    """Delete the role as someone with IAM rights would, then create an impostor at once."""
    for policy in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=policy["PolicyArn"])
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role_name, PolicyName=name)
    path = iam.get_role(RoleName=role_name)["Role"]["Path"]
    iam.delete_role(RoleName=role_name)
    return create_role_by_hand(iam, role_name, trust=EC2_TRUST, path=path, tags=tags)


def test_an_impostor_with_copied_ownership_tags_is_never_taken_for_the_recorded_role(
    kubectl: Kubectl, own_namespace: str, operator_factory: OperatorFactory, iam: Any
) -> None:
    operator = _operator(operator_factory, "e2e-impostor", [own_namespace], [own_namespace])
    role_name = unique("e2e-impostor")
    kubectl.apply(manifest("app", role_name, tags={"team": "a"}), namespace=own_namespace)
    resource = wait_ready(kubectl, own_namespace, "app")
    recorded = resource["status"]["roleId"]
    tags = role_state(iam, role_name)["tags"]  # type: ignore[index]

    impostor = _replace_by_hand(iam, role_name, tags)
    assert impostor["RoleId"] != recorded
    before = role_state(iam, role_name)
    writes_before = _iam_writes(operator)

    # A spec change makes the operator look at once (no sweep runs in this test).
    kubectl.apply(
        manifest("app", role_name, tags={"team": "a"}, description="look again"),
        namespace=own_namespace,
    )
    resource = wait_ready(kubectl, own_namespace, "app", "RoleExistsNotOwned")
    assert conditions_of(resource)["Stalled"] == ("True", "RoleExistsNotOwned")
    assert resource["status"]["roleId"] == recorded
    message = (condition(resource, "Ready") or {})["message"]
    assert impostor["RoleId"] in message
    assert recorded in message
    assert role_state(iam, role_name) == before
    assert _iam_writes(operator) == writes_before

    # Deleting the resource leaves the impostor alone.
    delete_resource(kubectl, own_namespace, "app")
    wait_gone(kubectl, own_namespace, "app")
    assert role_state(iam, role_name) == before
    assert _iam_writes(operator) == writes_before


def _iam_writes(operator: OperatorProcess) -> dict[str, float]:
    """The operator's IAM calls other than reads, by operation (ecsrole_aws_api_calls_total)."""
    reads = ("Get", "List")
    calls: dict[str, float] = {}
    for line in operator.metrics_text().splitlines():
        if not line.startswith("ecsrole_aws_api_calls_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        fields = dict(part.split("=", 1) for part in labels[labels.index("{") + 1 : -1].split(","))
        operation = json.loads(fields["operation"])
        if fields["service"] == '"iam"' and not operation.startswith(reads):
            calls[operation] = calls.get(operation, 0.0) + float(value)
    return calls
