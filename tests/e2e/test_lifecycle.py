"""The lifecycle of an EcsExecutionRole (issue 4's "done when" list), end to end.

Everything here runs against a real kube-apiserver, a real moto server over HTTP and the
operator as a real process, and asserts what a user would notice: conditions, Events, and the
role as IAM reports it (read with boto3 and compared semantically: IAM returns URL-encoded
documents with single values where lists were sent). Most tests use the session's shared
operator (config: tests/conftest.py SHARED_ACCOUNTS, cluster "e2e-shared"); a test starts its
own operator only where the configuration must differ or the operator must crash or stop.

moto state is global, so every test uses its own role names; namespaces are fresh and never
waited on when deleted.
"""

from __future__ import annotations

import datetime
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote

import pytest

from tests.conftest import (
    ALLOWED_POLICY_ARN,
    CROSS_ACCOUNT_ID,
    MISMATCHED_ACCOUNT_ID,
    NO_ADOPTION_ACCOUNT_ID,
    SHARED_NAMESPACE_PREFIX,
    UNLISTED_NAMESPACE_ACCOUNT_ID,
    OperatorFactory,
    fresh_namespace,
)
from tests.stack.kube import KIND, Kubectl, condition
from tests.stack.moto import ACCESS_KEY_ID, DEFAULT_ACCOUNT_ID, SECRET_ACCESS_KEY
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import WaitTimeoutError, eventually
from tests.stack.resources import SEED_POLICY, SEED_TRUST
from tests.stack.resources import role_manifest as manifest

pytestmark = pytest.mark.e2e

T = TypeVar("T")
Aws = Callable[..., Any]

SHARED_CLUSTER = "e2e-shared"
NOT_ALLOWED_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
OWNERSHIP_PREFIX = "ecsrole.dev/"
PAUSED = "ecsrole.dev/paused"
ABANDON = "ecsrole.dev/abandon"


# -- helpers ------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def trust_with(*extra_statements: Mapping[str, Any]) -> dict[str, Any]:
    """The seed trust plus more statements (a widened trust, as someone might set by hand)."""
    return {**SEED_TRUST, "Statement": [*SEED_TRUST["Statement"], *extra_statements]}


ROOT_TRUST_STATEMENT = {
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:root"},
    "Action": "sts:AssumeRole",
}


def normalize(document: Any) -> Any:
    """A policy document in a canonical form: decoded, one-element lists as scalars, lists sorted.

    IAM hands documents back URL-encoded, may turn ["x"] into "x" (or the reverse), reorder
    lists and drop an empty Sid; none of that changes what the policy means.
    """
    if isinstance(document, str):
        try:
            return normalize(json.loads(unquote(document)))
        except ValueError:
            return document
    if isinstance(document, Mapping):
        # An empty Sid means no Sid: IAM may drop it or keep it.
        return {
            key: normalize(value)
            for key, value in document.items()
            if not (key == "Sid" and value == "")
        }
    if isinstance(document, list):
        items = [normalize(item) for item in document]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return document


def role_state(iam: Any, role_name: str) -> dict[str, Any] | None:
    """Everything IAM says about a role that the operator could change, or None when absent."""
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    inline_names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    tags = iam.list_role_tags(RoleName=role_name)["Tags"]
    profiles = iam.list_instance_profiles_for_role(RoleName=role_name)["InstanceProfiles"]
    return {
        "role_id": role["RoleId"],
        "arn": role["Arn"],
        "path": role["Path"],
        "trust": normalize(role["AssumeRolePolicyDocument"]),
        "description": role.get("Description") or "",
        "max_session_duration": role.get("MaxSessionDuration"),
        "boundary": (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
        "attached": sorted(p["PolicyArn"] for p in attached),
        "inline": {
            name: normalize(
                iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
            )
            for name in inline_names
        },
        "tags": {t["Key"]: t["Value"] for t in tags},
        "instance_profiles": sorted(p["InstanceProfileName"] for p in profiles),
    }


def user_tags(state: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in state["tags"].items() if not k.startswith(OWNERSHIP_PREFIX)}


def ownership_tags(state: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in state["tags"].items() if k.startswith(OWNERSHIP_PREFIX)}


def expected_ownership(
    namespace: str, name: str, uid: str, cluster: str = SHARED_CLUSTER
) -> dict[str, str]:
    return {
        "ecsrole.dev/cluster": cluster,
        "ecsrole.dev/namespace": namespace,
        "ecsrole.dev/name": name,
        "ecsrole.dev/uid": uid,
    }


def create_role_by_hand(
    iam: Any,
    role_name: str,
    *,
    trust: Mapping[str, Any] = SEED_TRUST,
    path: str = "/",
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RoleName": role_name,
        "Path": path,
        "AssumeRolePolicyDocument": json.dumps(trust),
    }
    if description is not None:
        params["Description"] = description
    if tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    role: dict[str, Any] = iam.create_role(**params)["Role"]
    return role


def wait_ready(
    kubectl: Kubectl, namespace: str, name: str, reason: str = "Reconciled", timeout: float = 90.0
) -> dict[str, Any]:
    """Wait until the operator has handled the CURRENT generation with Ready's `reason`.

    Ready must be True for Reconciled and False for any other reason, and both the condition's
    and status.observedGeneration must equal metadata.generation (so a stale verdict about an
    older spec never passes).
    """
    expected = "True" if reason == "Reconciled" else "False"
    last: dict[str, Any] | None = None

    def settled() -> dict[str, Any] | None:
        nonlocal last
        last = kubectl.get_json(KIND, name, namespace)
        ready = condition(last, "Ready")
        if last is None or ready is None:
            return None
        generation = last["metadata"]["generation"]
        if (
            ready.get("status") == expected
            and ready.get("reason") == reason
            and ready.get("observedGeneration") == generation
            and last.get("status", {}).get("observedGeneration") == generation
        ):
            return last
        return None

    try:
        return eventually(
            settled, what=f"{namespace}/{name} Ready={expected}/{reason}", timeout=timeout
        )
    except WaitTimeoutError as error:
        shown = json.dumps((last or {}).get("status"), indent=2)
        raise WaitTimeoutError(f"{error}\nstatus was:\n{shown}") from None


def conditions_of(resource: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in resource["status"].get("conditions", [])}


def events_of(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    result = kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "json",
    )
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def wait_event(
    kubectl: Kubectl, namespace: str, name: str, reason: str, type_: str | None = None
) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for event in events_of(kubectl, namespace, name):
            if event.get("reason") == reason and type_ in (None, event.get("type")):
                return event
        return None

    return eventually(find, what=f"Event {reason} on {namespace}/{name}", timeout=60)


def delete_resource(kubectl: Kubectl, namespace: str, name: str) -> None:
    kubectl("delete", KIND, name, "-n", namespace, "--wait=false")


def wait_gone(kubectl: Kubectl, namespace: str, name: str, timeout: float = 90.0) -> None:
    """The object disappears: the finalizer was removed, nothing is stuck."""
    eventually(
        lambda: kubectl.get_json(KIND, name, namespace) is None,
        what=f"{namespace}/{name} disappears (finalizer removed)",
        timeout=timeout,
    )


def annotate(kubectl: Kubectl, namespace: str, name: str, *pairs: str) -> None:
    kubectl("annotate", "--overwrite", KIND, name, "-n", namespace, *pairs)


def aws_call_series(metrics_text: str) -> dict[str, float]:
    """ecsrole_aws_api_calls_total series (labels text -> value) from a /metrics page."""
    series = {}
    for line in metrics_text.splitlines():
        if line.startswith("ecsrole_aws_api_calls_total{"):
            labels, value = line.rsplit(" ", 1)
            series[labels] = float(value)
    return series


@pytest.fixture
def second_namespace(kubectl: Kubectl) -> Iterator[str]:
    """Another fresh namespace watched by the shared operator (another tenant)."""
    yield from fresh_namespace(kubectl, SHARED_NAMESPACE_PREFIX)


@pytest.fixture
def iam(aws: Aws) -> Any:
    """IAM of moto's default account (123456789012), the shared operator's own account."""
    return aws("iam")


# -- 1. role absent: created ---------------------------------------------------------------------


def test_absent_role_is_created_with_seed_trust_and_policy(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-create")
    kubectl.apply(manifest("app", role_name), namespace=namespace)

    # The real `kubectl wait`, as a user or a CI pipeline would run it (kstatus-compatible).
    kubectl(
        "wait",
        "--for=condition=Ready",
        f"{KIND}/app",
        "-n",
        namespace,
        "--timeout=60s",
        timeout=70,
    )
    resource = wait_ready(kubectl, namespace, "app")
    state = role_state(iam, role_name)
    assert state is not None
    assert state["trust"] == normalize(SEED_TRUST)
    assert state["attached"] == [SEED_POLICY]
    assert state["inline"] == {}
    assert state["path"] == "/"
    assert state["description"] == ""
    assert state["max_session_duration"] == 3600
    assert state["boundary"] is None
    assert state["tags"] == expected_ownership(namespace, "app", resource["metadata"]["uid"])

    status = resource["status"]
    assert status["arn"] == f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{role_name}"
    assert status["roleId"] == state["role_id"]
    assert status["adopted"] is False
    assert conditions_of(resource) == {
        "Ready": ("True", "Reconciled"),
        "Synced": ("True", "ReconcileSuccess"),
        "Drifted": ("False", "InSync"),
        "Reconciling": ("False", "Idle"),
        "Stalled": ("False", "NotStalled"),
    }
    created = wait_event(kubectl, namespace, "app", "Created", "Normal")
    assert status["arn"] in created["message"]


# -- 2. role exists, not owned: refused; adoption -----------------------------------------------


def test_existing_role_not_owned_is_refused_then_adopted_corrected_and_retained(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-adopt")
    created = create_role_by_hand(
        iam,
        role_name,
        description="made by hand",
        tags={"team": "payments", "legacy": "yes"},
    )
    before = role_state(iam, role_name)
    assert before is not None

    # Without adopt: refused, stalled, and the role is not touched at all.
    kubectl.apply(manifest("app", role_name, tags={"team": "payments"}), namespace=namespace)
    resource = wait_ready(kubectl, namespace, "app", "RoleExistsNotOwned")
    assert conditions_of(resource)["Stalled"] == ("True", "RoleExistsNotOwned")
    assert conditions_of(resource)["Reconciling"][0] == "False"
    assert "roleId" not in resource["status"]
    assert "spec.adopt" in (condition(resource, "Ready") or {})["message"]
    wait_event(kubectl, namespace, "app", "RoleExistsNotOwned", "Warning")
    assert role_state(iam, role_name) == before

    # adopt: true in an account that allows adoption: adopted, corrected, ownership-tagged.
    kubectl.apply(
        manifest("app", role_name, tags={"team": "payments"}, adopt=True), namespace=namespace
    )
    resource = wait_ready(kubectl, namespace, "app")
    uid = resource["metadata"]["uid"]
    after = role_state(iam, role_name)
    assert after is not None
    assert after["role_id"] == created["RoleId"]  # the same role, not a new one
    assert after["attached"] == [SEED_POLICY]
    assert after["description"] == ""
    assert after["trust"] == normalize(SEED_TRUST)
    assert after["tags"] == {"team": "payments", **expected_ownership(namespace, "app", uid)}
    assert resource["status"]["adopted"] is True
    assert resource["status"]["roleId"] == created["RoleId"]
    assert conditions_of(resource)["Stalled"] == ("False", "NotStalled")
    wait_event(kubectl, namespace, "app", "Adopted", "Normal")

    # Deleting the resource retains an adopted role (the default for adopted roles) and
    # releases it: only the ownership tags go.
    delete_resource(kubectl, namespace, "app")
    wait_gone(kubectl, namespace, "app")
    retained = role_state(iam, role_name)
    assert retained is not None
    assert retained["tags"] == {"team": "payments"}
    assert {k: v for k, v in retained.items() if k != "tags"} == {
        k: v for k, v in after.items() if k != "tags"
    }


ADOPTION_REFUSALS = {
    # case: (account, role name (None: a unique one), trust of the hand-made role, the reason
    # the refusal message must give)
    "trusts-another-principal": (
        DEFAULT_ACCOUNT_ID,
        None,
        trust_with(ROOT_TRUST_STATEMENT),
        "trust policy",
    ),
    "sso-role": (DEFAULT_ACCOUNT_ID, "AWSReservedSSO_e2e_{hex}", SEED_TRUST, "protected"),
    "organization-access-role": (
        DEFAULT_ACCOUNT_ID,
        "OrganizationAccountAccessRole",
        SEED_TRUST,
        "Organizations",
    ),
    "account-without-adoption": (NO_ADOPTION_ACCOUNT_ID, None, SEED_TRUST, "allowAdoption"),
}


@pytest.mark.parametrize("case", list(ADOPTION_REFUSALS))
def test_adoption_refused_leaves_role_untouched(
    case: str, kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, aws: Aws
) -> None:
    account_id, name_template, trust, why = ADOPTION_REFUSALS[case]
    iam = aws("iam", account_id=account_id)
    role_name = (name_template or "e2e-refused-{hex}").format(hex=uuid.uuid4().hex[:10])
    try:
        create_role_by_hand(iam, role_name, trust=trust, tags={"owner": "someone-else"})
    except iam.exceptions.EntityAlreadyExistsException:
        # OrganizationAccountAccessRole has one fixed name per account; a rerun finds it.
        assert case == "organization-access-role"
    before = role_state(iam, role_name)

    kubectl.apply(
        manifest("app", role_name, account_id=account_id, adopt=True), namespace=namespace
    )
    resource = wait_ready(kubectl, namespace, "app", "AdoptionRefused")
    assert conditions_of(resource)["Stalled"] == ("True", "AdoptionRefused")
    assert why in (condition(resource, "Ready") or {})["message"]
    assert "roleId" not in resource["status"]
    wait_event(kubectl, namespace, "app", "AdoptionRefused", "Warning")
    assert role_state(iam, role_name) == before


# -- 3. role exists, owned, changed out of band: corrected ---------------------------------------


def test_owned_role_with_wrong_trust_and_no_policy_is_corrected(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-drift")
    kubectl.apply(manifest("app", role_name), namespace=namespace)
    wait_ready(kubectl, namespace, "app")

    # Out of band: trust widened to the whole account, the seed policy detached.
    iam.update_assume_role_policy(
        RoleName=role_name, PolicyDocument=json.dumps(trust_with(ROOT_TRUST_STATEMENT))
    )
    iam.detach_role_policy(RoleName=role_name, PolicyArn=SEED_POLICY)
    broken = role_state(iam, role_name)
    assert broken is not None
    assert broken["attached"] == []

    # No periodic sweep yet: a harmless spec change triggers the reconcile.
    kubectl.apply(manifest("app", role_name, description="touched"), namespace=namespace)
    resource = wait_ready(kubectl, namespace, "app")
    fixed = role_state(iam, role_name)
    assert fixed is not None
    assert fixed["trust"] == normalize(SEED_TRUST)
    assert fixed["attached"] == [SEED_POLICY]
    assert fixed["description"] == "touched"
    assert fixed["role_id"] == broken["role_id"]
    assert conditions_of(resource)["Drifted"] == ("False", "InSync")
    updated = wait_event(kubectl, namespace, "app", "Updated", "Normal")
    assert "TrustPolicy" in updated["message"]
    assert "ManagedPolicy" in updated["message"]


# -- 4. every spec change reaches IAM; refusals write nothing -----------------------------------


def test_each_spec_change_is_applied_in_iam(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-spec")
    boundary_arn = iam.create_policy(
        PolicyName=unique("e2e-boundary"),
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    region_account = f"us-east-1:{DEFAULT_ACCOUNT_ID}"
    secret = f"arn:aws:secretsmanager:{region_account}:secret:app/db-password-??????"
    parameter = f"arn:aws:ssm:{region_account}:parameter/app/flags"
    key = f"arn:aws:kms:{region_account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    cluster_arn = f"arn:aws:ecs:{region_account}:cluster/app"

    spec: dict[str, Any] = {}
    generation = 0

    def step(**changes: Any) -> dict[str, Any]:
        """Apply the spec with `changes` (None removes a field); return IAM's role afterwards."""
        nonlocal generation
        for field, value in changes.items():
            if value is None:
                spec.pop(field, None)
            else:
                spec[field] = value
        kubectl.apply(manifest("app", role_name, **spec), namespace=namespace)
        resource = wait_ready(kubectl, namespace, "app")
        assert resource["metadata"]["generation"] > generation, (
            "the change was not a new generation"
        )
        generation = resource["metadata"]["generation"]
        assert resource["status"]["observedGeneration"] == generation
        state = role_state(iam, role_name)
        assert state is not None
        return state

    state = step()
    role_id = state["role_id"]

    state = step(tags={"team": "a", "env": "dev"})
    assert user_tags(state) == {"team": "a", "env": "dev"}

    state = step(tags={"team": "b"})
    assert user_tags(state) == {"team": "b"}

    state = step(description="execution role of app")
    assert state["description"] == "execution role of app"

    state = step(maxSessionDuration=7200)
    assert state["max_session_duration"] == 7200
    assert state["description"] == "execution role of app"  # UpdateRole kept the other field

    state = step(
        permissions={
            "secretArns": [secret],
            "parameterArns": [parameter],
            "kmsKeyArns": [key],
            "createLogGroups": True,
        }
    )
    assert state["inline"] == {
        "ecsrole-permissions": normalize(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ReadSecrets",
                        "Effect": "Allow",
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": secret,
                    },
                    {
                        "Sid": "ReadParameters",
                        "Effect": "Allow",
                        "Action": "ssm:GetParameters",
                        "Resource": parameter,
                    },
                    {
                        "Sid": "DecryptWithKeys",
                        "Effect": "Allow",
                        "Action": "kms:Decrypt",
                        "Resource": key,
                    },
                    {
                        "Sid": "CreateLogGroups",
                        "Effect": "Allow",
                        "Action": "logs:CreateLogGroup",
                        "Resource": f"arn:aws:logs:*:{DEFAULT_ACCOUNT_ID}:log-group:*",
                    },
                ],
            }
        )
    }

    state = step(permissions={"secretArns": [secret]})
    statements = state["inline"]["ecsrole-permissions"]["Statement"]
    assert statements["Action"] == "secretsmanager:GetSecretValue"  # the only one left

    state = step(trust={"sourceAccounts": [DEFAULT_ACCOUNT_ID], "sourceArns": [cluster_arn]})
    seed_statement = SEED_TRUST["Statement"][0]
    assert state["trust"] == normalize(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    **seed_statement,
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": DEFAULT_ACCOUNT_ID},
                        "ArnLike": {"aws:SourceArn": cluster_arn},
                    },
                }
            ],
        }
    )

    state = step(permissionsBoundaryArn=boundary_arn)
    assert state["boundary"] == boundary_arn

    state = step(additionalPolicyArns=[ALLOWED_POLICY_ARN])
    assert state["attached"] == sorted([SEED_POLICY, ALLOWED_POLICY_ARN])

    # Removing fields removes what they granted.
    state = step(tags=None, permissions=None, trust=None, additionalPolicyArns=None)
    assert user_tags(state) == {}
    assert state["inline"] == {}
    assert state["trust"] == normalize(SEED_TRUST)
    assert state["attached"] == [SEED_POLICY]
    assert state["boundary"] == boundary_arn
    assert state["role_id"] == role_id  # all of it in place, never a replacement


def test_policy_not_allowed_writes_nothing(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-policy")
    kubectl.apply(manifest("app", role_name), namespace=namespace)
    wait_ready(kubectl, namespace, "app")
    before = role_state(iam, role_name)

    kubectl.apply(
        manifest(
            "app",
            role_name,
            description="would change",
            additionalPolicyArns=[ALLOWED_POLICY_ARN, NOT_ALLOWED_POLICY],
        ),
        namespace=namespace,
    )
    resource = wait_ready(kubectl, namespace, "app", "PolicyNotAllowed")
    assert conditions_of(resource)["Stalled"] == ("True", "PolicyNotAllowed")
    message = (condition(resource, "Ready") or {})["message"]
    assert "spec.additionalPolicyArns[1]" in message
    assert NOT_ALLOWED_POLICY in message
    wait_event(kubectl, namespace, "app", "PolicyNotAllowed", "Warning")
    assert role_state(iam, role_name) == before


def test_permission_outside_allowed_patterns_writes_nothing(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, aws: Aws
) -> None:
    # Account 111111111111 grants the shared-* namespaces no allowedResourcePatterns.
    iam = aws("iam", account_id=CROSS_ACCOUNT_ID)
    role_name = unique("e2e-perm")
    kubectl.apply(
        manifest("app", role_name, account_id=CROSS_ACCOUNT_ID, path="/ecs/"),
        namespace=namespace,
    )
    wait_ready(kubectl, namespace, "app")
    before = role_state(iam, role_name)

    secret = f"arn:aws:secretsmanager:us-east-1:{CROSS_ACCOUNT_ID}:secret:other-team/db-AbCdEf"
    kubectl.apply(
        manifest(
            "app",
            role_name,
            account_id=CROSS_ACCOUNT_ID,
            path="/ecs/",
            description="would change",
            permissions={"secretArns": [secret], "createLogGroups": True},
        ),
        namespace=namespace,
    )
    resource = wait_ready(kubectl, namespace, "app", "PermissionNotAllowed")
    assert conditions_of(resource)["Stalled"] == ("True", "PermissionNotAllowed")
    assert "spec.permissions.secretArns[0]" in (condition(resource, "Ready") or {})["message"]
    wait_event(kubectl, namespace, "app", "PermissionNotAllowed", "Warning")
    assert role_state(iam, role_name) == before


# -- 5. deletion ---------------------------------------------------------------------------------


def test_delete_removes_created_role_even_in_an_instance_profile(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-delete")
    kubectl.apply(
        manifest(
            "app",
            role_name,
            additionalPolicyArns=[ALLOWED_POLICY_ARN],
            permissions={"createLogGroups": True},
        ),
        namespace=namespace,
    )
    wait_ready(kubectl, namespace, "app")
    profile = unique("e2e-profile")
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role_name)
    state = role_state(iam, role_name)
    assert state is not None
    assert state["instance_profiles"] == [profile]

    delete_resource(kubectl, namespace, "app")
    wait_gone(kubectl, namespace, "app")
    assert role_state(iam, role_name) is None
    # The instance profile is not the operator's: it stays, without the role.
    remaining = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    assert remaining["Roles"] == []
    wait_event(kubectl, namespace, "app", "Deleted", "Normal")


def test_delete_with_retain_keeps_role_and_drops_ownership_tags(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-retain")
    kubectl.apply(
        manifest("app", role_name, deletionPolicy="Retain", tags={"team": "a"}),
        namespace=namespace,
    )
    wait_ready(kubectl, namespace, "app")
    before = role_state(iam, role_name)
    assert before is not None

    delete_resource(kubectl, namespace, "app")
    wait_gone(kubectl, namespace, "app")
    after = role_state(iam, role_name)
    assert after is not None
    assert after["tags"] == {"team": "a"}
    assert {k: v for k, v in after.items() if k != "tags"} == {
        k: v for k, v in before.items() if k != "tags"
    }
    wait_event(kubectl, namespace, "app", "Retained", "Normal")


# -- 6. a second claim on the same role ----------------------------------------------------------


def test_second_resource_for_the_same_role_is_conflicting_and_writes_nothing(
    kubectl: Kubectl,
    namespace: str,
    second_namespace: str,
    shared_operator: OperatorProcess,
    iam: Any,
) -> None:
    role_name = unique("e2e-claim")
    first_name = unique("first-owner")
    kubectl.apply(manifest(first_name, role_name, tags={"team": "a"}), namespace=namespace)
    wait_ready(kubectl, namespace, first_name)
    before = role_state(iam, role_name)

    # Same role; and the same role spelled in another case (IAM names are case-insensitive).
    for name, claimed in (("intruder", role_name), ("intruder-upper", role_name.upper())):
        kubectl.apply(
            manifest(
                name,
                claimed,
                description="hijack",
                tags={"team": "b"},
                additionalPolicyArns=[ALLOWED_POLICY_ARN],
                adopt=True,
            ),
            namespace=second_namespace,
        )
    for name in ("intruder", "intruder-upper"):
        resource = wait_ready(kubectl, second_namespace, name, "ConflictingResource")
        assert conditions_of(resource)["Stalled"] == ("True", "ConflictingResource")
        message = (condition(resource, "Ready") or {})["message"]
        assert namespace not in message
        assert first_name not in message
        event = wait_event(kubectl, second_namespace, name, "ConflictingResource", "Warning")
        assert namespace not in event["message"]
        assert first_name not in event["message"]
    assert role_state(iam, role_name) == before

    # Deleting the conflicting resources never touches the first one's role.
    for name in ("intruder", "intruder-upper"):
        delete_resource(kubectl, second_namespace, name)
    for name in ("intruder", "intruder-upper"):
        wait_gone(kubectl, second_namespace, name)
    assert role_state(iam, role_name) == before
    first = kubectl.get_json(KIND, first_name, namespace)
    assert conditions_of(first or {"status": {}})["Ready"] == ("True", "Reconciled")


# -- 7. accounts ---------------------------------------------------------------------------------


def test_cross_account_role_is_created_in_that_account_only(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, aws: Aws
) -> None:
    role_name = unique("e2e-cross")
    kubectl.apply(
        manifest("app", role_name, account_id=CROSS_ACCOUNT_ID, path="/ecs/team-a/"),
        namespace=namespace,
    )
    resource = wait_ready(kubectl, namespace, "app")
    state = role_state(aws("iam", account_id=CROSS_ACCOUNT_ID), role_name)
    assert state is not None
    assert state["path"] == "/ecs/team-a/"
    assert state["trust"] == normalize(SEED_TRUST)
    assert state["attached"] == [SEED_POLICY]
    arn = f"arn:aws:iam::{CROSS_ACCOUNT_ID}:role/ecs/team-a/{role_name}"
    assert state["arn"] == arn
    assert resource["status"]["arn"] == arn
    assert resource["status"]["roleId"] == state["role_id"]
    assert role_state(aws("iam"), role_name) is None


def test_account_with_credentials_of_another_account_is_refused(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, aws: Aws
) -> None:
    role_name = unique("e2e-mismatch")
    kubectl.apply(manifest("app", role_name, account_id=MISMATCHED_ACCOUNT_ID), namespace=namespace)
    resource = wait_ready(kubectl, namespace, "app", "AccountMismatch")
    assert conditions_of(resource)["Stalled"] == ("True", "AccountMismatch")
    assert DEFAULT_ACCOUNT_ID in (condition(resource, "Ready") or {})["message"]
    for account_id in (
        MISMATCHED_ACCOUNT_ID,
        DEFAULT_ACCOUNT_ID,
        CROSS_ACCOUNT_ID,
        NO_ADOPTION_ACCOUNT_ID,
    ):
        assert role_state(aws("iam", account_id=account_id), role_name) is None, account_id


def test_namespace_not_listed_for_account_gets_account_not_allowed_and_zero_aws_calls(
    kubectl: Kubectl, own_namespace: str, operator_factory: OperatorFactory, aws: Aws
) -> None:
    config = dev_config(
        "e2e-unlisted",
        {
            UNLISTED_NAMESPACE_ACCOUNT_ID: {
                "roleArn": f"arn:aws:iam::{UNLISTED_NAMESPACE_ACCOUNT_ID}:role/ecsrole-operator",
                "namespaces": ["team-that-does-not-exist"],
            }
        },
    )
    operator = operator_factory(config, namespaces=[own_namespace])
    role_name = unique("e2e-unlisted")
    kubectl.apply(
        manifest("app", role_name, account_id=UNLISTED_NAMESPACE_ACCOUNT_ID),
        namespace=own_namespace,
    )
    resource = wait_ready(kubectl, own_namespace, "app", "AccountNotAllowed")
    assert conditions_of(resource)["Stalled"] == ("True", "AccountNotAllowed")
    wait_event(kubectl, own_namespace, "app", "AccountNotAllowed", "Warning")

    text = operator.metrics_text()
    assert 'ecsrole_reconcile_errors_total{reason="AccountNotAllowed"}' in text
    called = {labels: value for labels, value in aws_call_series(text).items() if value != 0}
    assert called == {}, f"AWS was called for a namespace the account does not list: {called}"
    assert role_state(aws("iam", account_id=UNLISTED_NAMESPACE_ACCOUNT_ID), role_name) is None


def test_namespace_not_listed_is_refused_by_the_shared_operator_too(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess
) -> None:
    kubectl.apply(
        manifest("app", unique("e2e-unlisted"), account_id=UNLISTED_NAMESPACE_ACCOUNT_ID),
        namespace=namespace,
    )
    resource = wait_ready(kubectl, namespace, "app", "AccountNotAllowed")
    message = (condition(resource, "Ready") or {})["message"]
    # The refusal names this namespace and account, never the namespaces that are listed.
    assert namespace in message
    assert "team-that-does-not-exist" not in message


# -- 9. paused, abandon ------------------------------------------------------------------------


def test_paused_resource_creates_nothing_until_unpaused(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-paused")
    kubectl.apply(manifest("app", role_name, annotations={PAUSED: "true"}), namespace=namespace)
    resource = wait_ready(kubectl, namespace, "app", "Paused")
    assert PAUSED in (condition(resource, "Ready") or {})["message"]
    assert role_state(iam, role_name) is None

    kubectl.apply(manifest("app", role_name), namespace=namespace)  # drops the annotation
    resource = wait_ready(kubectl, namespace, "app")
    state = role_state(iam, role_name)
    assert state is not None
    assert resource["status"]["roleId"] == state["role_id"]


def test_abandoned_resource_goes_and_leaves_the_role_as_it_is(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, iam: Any
) -> None:
    role_name = unique("e2e-abandon")
    kubectl.apply(manifest("app", role_name, tags={"team": "a"}), namespace=namespace)
    wait_ready(kubectl, namespace, "app")
    before = role_state(iam, role_name)
    assert before is not None

    annotate(kubectl, namespace, "app", f"{ABANDON}=true")
    delete_resource(kubectl, namespace, "app")
    wait_gone(kubectl, namespace, "app")
    assert role_state(iam, role_name) == before  # ownership tags included
    wait_event(kubectl, namespace, "app", "Abandoned", "Warning")


# -- 9. crash recovery (own operator) -----------------------------------------------------------


def own_config(cluster: str, namespaces: list[str]) -> dict[str, Any]:
    """An operator config for moto's default account only, listing `namespaces`."""
    return dev_config(cluster, {DEFAULT_ACCOUNT_ID: {"namespaces": namespaces}})


def test_role_created_just_before_a_crash_is_recovered(
    kubectl: Kubectl, own_namespace: str, operator_factory: OperatorFactory, iam: Any
) -> None:
    cluster = unique("e2e-crash")
    role_name = unique("e2e-crash")
    # No operator runs yet: the resource exists, then "CreateRole" happens, then the crash.
    kubectl.apply(manifest("app", role_name), namespace=own_namespace)
    uid = (kubectl.get_json(KIND, "app", own_namespace) or {})["metadata"]["uid"]
    created = create_role_by_hand(
        iam,
        role_name,
        trust=trust_with(ROOT_TRUST_STATEMENT),
        tags=expected_ownership(own_namespace, "app", uid, cluster=cluster),
    )

    operator_factory(own_config(cluster, [own_namespace]), namespaces=[own_namespace])
    resource = wait_ready(kubectl, own_namespace, "app")
    state = role_state(iam, role_name)
    assert state is not None
    assert state["role_id"] == created["RoleId"]
    assert resource["status"]["roleId"] == created["RoleId"]
    assert resource["status"]["adopted"] is False
    assert state["trust"] == normalize(SEED_TRUST)
    assert state["attached"] == [SEED_POLICY]
    assert ownership_tags(state) == expected_ownership(own_namespace, "app", uid, cluster=cluster)


def test_role_created_just_before_a_crash_is_deleted_with_its_resource(
    kubectl: Kubectl, own_namespace: str, operator_factory: OperatorFactory, iam: Any
) -> None:
    cluster = unique("e2e-crash-delete")
    role_name = unique("e2e-crash-delete")
    config = own_config(cluster, [own_namespace])
    # The operator puts its finalizer on the object (paused: it creates nothing), then stops.
    paused = manifest("app", role_name)
    paused["metadata"]["annotations"] = {PAUSED: "true"}
    operator = operator_factory(config, namespaces=[own_namespace])
    kubectl.apply(paused, namespace=own_namespace)
    eventually(
        lambda: (
            "ecsrole.dev/finalizer"
            in (
                (kubectl.get_json(KIND, "app", own_namespace) or {})
                .get("metadata", {})
                .get("finalizers")
                or []
            )
        ),
        what="the finalizer",
    )
    operator.stop()
    # "CreateRole, then a crash": the role exists with this object's tags, no roleId recorded.
    uid = (kubectl.get_json(KIND, "app", own_namespace) or {})["metadata"]["uid"]
    create_role_by_hand(
        iam,
        role_name,
        trust=SEED_TRUST,
        tags=expected_ownership(own_namespace, "app", uid, cluster=cluster),
    )
    kubectl("annotate", KIND, "app", "-n", own_namespace, f"{PAUSED}-")
    kubectl("delete", KIND, "app", "-n", own_namespace, "--wait=false")

    operator_factory(config, namespaces=[own_namespace])
    eventually(
        lambda: kubectl.get_json(KIND, "app", own_namespace) is None, what="the object to go"
    )
    assert role_state(iam, role_name) is None, "the crash leftover must not be orphaned"


KILL_TEST_LEASE_SECONDS = 3.0


def wait_leader(operator: OperatorProcess) -> None:
    """A (re)started operator serves /healthz while it stands by; wait until it leads."""

    def leads() -> bool:
        try:
            return "ecsrole_leader 1.0" in operator.metrics_text().splitlines()
        except OSError:
            return False

    eventually(leads, what="the operator holds its leader lease", timeout=30)


def test_operator_killed_at_random_moments_converges_to_one_role(
    kubectl: Kubectl, own_namespace: str, operator_factory: OperatorFactory, iam: Any
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    print(f"random kill seed: {seed}")  # shown when the test fails
    cluster = unique("e2e-kill")
    role_name = unique("e2e-kill")
    path = f"/{unique('kill')}/"
    # A short lease: a SIGKILLed leader never releases it, so each restart waits it out.
    operator = operator_factory(
        own_config(cluster, [own_namespace]),
        namespaces=[own_namespace],
        lease_duration=KILL_TEST_LEASE_SECONDS,
    )

    # Create, then two updates, each interrupted by SIGKILL within its first second; each
    # restarted operator also resumes whatever the killed one left half done.
    for round_ in range(3):
        wait_leader(operator)
        kubectl.apply(
            manifest("app", role_name, path=path, tags={"round": str(round_)}),
            namespace=own_namespace,
        )
        time.sleep(rng.uniform(0.0, 1.0))  # the random moment of the crash
        operator.kill()
        operator.start()

    resource = wait_ready(kubectl, own_namespace, "app")
    uid = resource["metadata"]["uid"]
    roles = iam.list_roles(PathPrefix=path)["Roles"]
    assert [r["RoleName"].lower() for r in roles] == [role_name.lower()], roles
    state = role_state(iam, role_name)
    assert state is not None
    assert resource["status"]["roleId"] == state["role_id"]
    assert state["tags"] == {
        "round": "2",
        **expected_ownership(own_namespace, "app", uid, cluster=cluster),
    }
    assert state["trust"] == normalize(SEED_TRUST)
    assert state["attached"] == [SEED_POLICY]

    delete_resource(kubectl, own_namespace, "app")
    wait_gone(kubectl, own_namespace, "app")
    assert role_state(iam, role_name) is None


def test_deletion_blocked_when_the_account_is_gone_until_abandoned(
    kubectl: Kubectl, own_namespace: str, operator_factory: OperatorFactory, iam: Any
) -> None:
    cluster = unique("e2e-blocked")
    role_name = unique("e2e-blocked")
    operator = operator_factory(own_config(cluster, [own_namespace]), namespaces=[own_namespace])
    kubectl.apply(manifest("app", role_name), namespace=own_namespace)
    wait_ready(kubectl, own_namespace, "app")
    before = role_state(iam, role_name)
    operator.stop()

    # Restarted with a configuration where the account no longer lists the namespace.
    operator_factory(own_config(cluster, ["someone-else"]), namespaces=[own_namespace])
    delete_resource(kubectl, own_namespace, "app")
    resource = wait_ready(kubectl, own_namespace, "app", "DeletionBlocked")
    assert ABANDON in (condition(resource, "Ready") or {})["message"]
    assert conditions_of(resource)["Reconciling"] == ("True", "DeletionBlocked")
    event = wait_event(kubectl, own_namespace, "app", "DeletionBlocked", "Warning")
    assert ABANDON in event["message"]
    assert role_state(iam, role_name) == before

    annotate(kubectl, own_namespace, "app", f"{ABANDON}=true")
    wait_gone(kubectl, own_namespace, "app")
    assert role_state(iam, role_name) == before


# -- 8. ownership spoofing -----------------------------------------------------------------------

# The operator takes a role carrying a resource's exact ownership tags as its own only when the
# role is no older than the resource (minus 30 s of clock skew): that is CreateRole followed by
# a crash. A role made before the resource and then tagged by hand must not pass. moto cannot
# backdate a role, so the role is created when this module starts, and the test, placed late in
# the module, waits out whatever of the 30 s has not already passed.
SPOOF_MIN_AGE = 35.0


@pytest.fixture(scope="module", autouse=True)
def early_role(aws: Aws) -> tuple[str, float]:
    role_name = unique("e2e-spoof")
    create_role_by_hand(aws("iam"), role_name)
    return role_name, time.monotonic()


def test_copied_ownership_tags_on_an_older_role_do_not_make_it_owned(
    kubectl: Kubectl,
    namespace: str,
    shared_operator: OperatorProcess,
    iam: Any,
    early_role: tuple[str, float],
) -> None:
    role_name, created_at = early_role
    wait = SPOOF_MIN_AGE - (time.monotonic() - created_at)
    if wait > 0:
        time.sleep(wait)  # no condition to wait for: only the role's age matters
    kubectl.apply(manifest("app", role_name), namespace=namespace)
    resource = wait_ready(kubectl, namespace, "app", "RoleExistsNotOwned")
    uid = resource["metadata"]["uid"]
    role_created = iam.get_role(RoleName=role_name)["Role"]["CreateDate"]
    resource_created = datetime.datetime.fromisoformat(
        resource["metadata"]["creationTimestamp"].replace("Z", "+00:00")
    )
    assert role_created < resource_created - datetime.timedelta(seconds=30)

    # Someone with iam:TagRole copies this resource's ownership tags onto the older role.
    iam.tag_role(
        RoleName=role_name,
        Tags=[{"Key": k, "Value": v} for k, v in expected_ownership(namespace, "app", uid).items()],
    )
    before = role_state(iam, role_name)
    kubectl.apply(manifest("app", role_name, description="touched"), namespace=namespace)
    resource = wait_ready(kubectl, namespace, "app", "RoleExistsNotOwned")
    assert conditions_of(resource)["Stalled"] == ("True", "RoleExistsNotOwned")
    assert "roleId" not in resource["status"]
    assert role_state(iam, role_name) == before

    # Deleting the resource leaves the role alone as well (it was never this resource's).
    delete_resource(kubectl, namespace, "app")
    wait_gone(kubectl, namespace, "app")
    assert role_state(iam, role_name) == before


# -- 10. no credentials in DEBUG logs -------------------------------------------------------------

KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
MOTO_SESSION_TOKEN_PREFIX = "FQoGZXIvYXdz"  # noqa: S105 - what moto session tokens start with


def test_debug_logs_of_cross_account_work_hold_no_credentials(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess, aws: Aws
) -> None:
    # Cross-account work (AssumeRole into 111111111111) in this very test, so the scan below
    # is never vacuous whatever ran before.
    role_name = unique("e2e-logs")
    kubectl.apply(
        manifest("app", role_name, account_id=CROSS_ACCOUNT_ID, path="/ecs/"),
        namespace=namespace,
    )
    wait_ready(kubectl, namespace, "app")
    assert role_state(aws("iam", account_id=CROSS_ACCOUNT_ID), role_name) is not None
    assume_role_calls = {
        labels: value
        for labels, value in aws_call_series(shared_operator.metrics_text()).items()
        if 'operation="AssumeRole"' in labels and 'outcome="success"' in labels
    }
    assert assume_role_calls, "the shared operator never assumed a role"

    text = shared_operator.log_path.read_text(errors="replace")
    levels = {line.get("level") for line in shared_operator.log_lines()}
    assert "debug" in levels, "the operator did not log at DEBUG"
    assert role_name in text  # the reconcile of this test is in the scanned log
    assert SECRET_ACCESS_KEY not in text
    assert ACCESS_KEY_ID not in text
    assert MOTO_SESSION_TOKEN_PREFIX not in text
    assert [m.group(0) for m in KEY_ID.finditer(text)] == []
