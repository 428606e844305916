"""`ecsrole diff`'s judgement, exit status and reports, against a fake read-only IAM."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ecsrole.aws import readonly
from ecsrole.aws.errors import AwsCallError, FailureKind
from ecsrole.aws.iam import CallerIdentity
from ecsrole.core import config, model, ownership
from ecsrole.tools import diff, manifests

from .factories import (
    ACCOUNT_ID,
    ADMIN_POLICY,
    BOUNDARY,
    NAMESPACE,
    OTHER_ACCOUNT_ID,
    OWNER,
    READONLY_POLICY,
    SECRET,
    account,
    desired_role,
    observed_from,
    spec_dict,
)

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
CLUSTER = OWNER.cluster


class FakeReader:
    """Only the reads a diff may make; it records every call."""

    def __init__(
        self,
        roles: Mapping[str, model.ObservedRole] | None = None,
        *,
        account_id: str = ACCOUNT_ID,
        error: AwsCallError | None = None,
    ) -> None:
        self.roles = {name.lower(): role for name, role in (roles or {}).items()}
        self.account_id = account_id
        self.error = error
        self.calls: list[str] = []

    def caller_identity(self) -> CallerIdentity:
        self.calls.append("caller_identity")
        return CallerIdentity(
            self.account_id, f"arn:aws:sts::{self.account_id}:assumed-role/ci-diff/run", "AROA:run"
        )

    def read_role(self, role_name: str) -> model.ObservedRole | None:
        self.calls.append(f"read_role {role_name}")
        if self.error is not None:
            raise self.error
        return self.roles.get(role_name.lower())


def operator_config(**account_overrides: Any) -> config.OperatorConfig:
    values: dict[str, Any] = {"allow_adoption": True}
    values.update(account_overrides)
    return config.OperatorConfig(cluster_name=CLUSTER, accounts={ACCOUNT_ID: account(**values)})


def manifest(
    name: str = OWNER.name,
    namespace: str = NAMESPACE,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> manifests.Manifest:
    return manifests.Manifest(
        source=f"{name}.yaml",
        namespace=namespace,
        name=name,
        spec=spec_dict(**spec),
        annotations=dict(annotations or {}),
    )


def judge(
    *items: manifests.Manifest,
    reader: FakeReader | None = None,
    operator: config.OperatorConfig | None = None,
) -> list[diff.RoleDiff]:
    fake = reader if reader is not None else FakeReader()
    return diff.evaluate_all(
        list(items), config=operator or operator_config(), reader=lambda _account: fake
    )


def owned(**overrides: Any) -> model.ObservedRole:
    """The role as the operator made it for OWNER (uid tag included)."""
    return observed_from(desired_role(), **overrides)


def unowned(**overrides: Any) -> model.ObservedRole:
    role = desired_role()
    tags = {k: v for k, v in role.tags.items() if not k.startswith("ecsrole.dev/")}
    values: dict[str, Any] = {"tags": tags, "role_id": "AROAHANDMADE"}
    values.update(overrides)
    return observed_from(role, **values)


# -- outcomes ----------------------------------------------------------------------------------


def test_missing_role_is_a_create_with_the_planned_calls_and_a_placeholder_uid() -> None:
    (result,) = judge(manifest())
    assert result.outcome == diff.Outcome.Create
    assert result.changes
    assert [op.action for op in result.operations] == ["CreateRole", "AttachRolePolicy"]
    tags = {t["Key"]: t["Value"] for t in result.operations[0].params["Tags"]}
    assert tags["ecsrole.dev/uid"] == diff.UID_PLACEHOLDER
    assert tags["ecsrole.dev/namespace"] == NAMESPACE
    assert [d.aspect for d in result.drifts] == [model.Aspect.RoleMissing]
    assert result.arn == f"arn:aws:iam::{ACCOUNT_ID}:role/ecs/web-exec"
    assert diff.exit_code([result]) == diff.EXIT_CHANGES


@pytest.mark.parametrize("uid", [OWNER.uid, "another-uid-after-a-restore"])
def test_owned_role_is_in_sync_whatever_its_uid_tag(uid: str) -> None:
    role = owned(tags={**desired_role().tags, "ecsrole.dev/uid": uid})
    (result,) = judge(manifest(), reader=FakeReader({"web-exec": role}))
    assert result.outcome == diff.Outcome.InSync
    assert not result.changes
    assert result.drifts == ()
    assert result.operations == ()
    assert diff.exit_code([result]) == diff.EXIT_NO_CHANGES


def test_drift_under_enforce_is_an_update_with_the_repairs() -> None:
    role = owned(managed_policy_arns=desired_role().managed_policy_arns | {ADMIN_POLICY})
    (result,) = judge(manifest(), reader=FakeReader({"web-exec": role}))
    assert result.outcome == diff.Outcome.Update
    assert [(d.aspect, d.message) for d in result.drifts] == [
        (model.Aspect.ManagedPolicy, f"managed policy {ADMIN_POLICY} is attached but not declared")
    ]
    assert [(op.action, dict(op.params)) for op in result.operations] == [
        ("DetachRolePolicy", {"RoleName": "web-exec", "PolicyArn": ADMIN_POLICY})
    ]
    assert diff.exit_code([result]) == diff.EXIT_CHANGES


def test_drift_under_report_is_reported_without_calls_and_is_no_change() -> None:
    role = owned(description="changed by hand")
    (result,) = judge(manifest(driftPolicy="Report"), reader=FakeReader({"web-exec": role}))
    assert result.outcome == diff.Outcome.ReportOnly
    assert [d.aspect for d in result.drifts] == [model.Aspect.Description]
    assert result.operations == ()
    assert diff.exit_code([result]) == diff.EXIT_NO_CHANGES


def test_drift_the_operator_cannot_repair_is_reported_only() -> None:
    role = owned(
        permissions_boundary_arn=BOUNDARY
    )  # never removed: no DeleteRolePermissionsBoundary
    (result,) = judge(manifest(), reader=FakeReader({"web-exec": role}))
    assert result.outcome == diff.Outcome.ReportOnly
    assert result.drifts[0].aspect == model.Aspect.PermissionsBoundary


def test_paused_resources_are_observed_and_never_written() -> None:
    paused = {"ecsrole.dev/paused": "true"}
    (missing,) = judge(manifest(annotations=paused))
    drifted_role = owned(description="changed by hand")
    (drifted,) = judge(manifest(annotations=paused), reader=FakeReader({"web-exec": drifted_role}))
    (adoption,) = judge(
        manifest(annotations=paused, adopt=True), reader=FakeReader({"web-exec": unowned()})
    )
    for result in (missing, drifted, adoption):
        assert result.outcome == diff.Outcome.Paused
        assert result.operations == ()
    assert [d.aspect for d in drifted.drifts] == [model.Aspect.Description]
    assert diff.exit_code([missing, drifted, adoption]) == diff.EXIT_NO_CHANGES


def test_existing_role_without_adopt_is_refused() -> None:
    (result,) = judge(manifest(), reader=FakeReader({"web-exec": unowned()}))
    assert (result.outcome, result.reason) == (diff.Outcome.Refused, "RoleExistsNotOwned")
    assert "spec.adopt" in (result.message or "")
    assert diff.exit_code([result]) == diff.EXIT_CHANGES


def test_adoption_writes_the_ownership_tags_then_repairs_under_enforce() -> None:
    role = unowned(description="made by hand")
    (result,) = judge(manifest(adopt=True), reader=FakeReader({"web-exec": role}))
    assert result.outcome == diff.Outcome.Adopt
    # The ownership tags are the adoption's own write, not reported again as tag drift.
    assert [d.aspect for d in result.drifts] == [model.Aspect.Description]
    assert [op.action for op in result.operations] == ["TagRole", "UpdateRole"]
    tags = {t["Key"]: t["Value"] for t in result.operations[0].params["Tags"]}
    assert tags == {
        "ecsrole.dev/cluster": CLUSTER,
        "ecsrole.dev/namespace": NAMESPACE,
        "ecsrole.dev/name": "web",
        "ecsrole.dev/uid": diff.UID_PLACEHOLDER,
    }


def test_adoption_under_report_only_tags() -> None:
    role = unowned(description="made by hand")
    (result,) = judge(
        manifest(adopt=True, driftPolicy="Report"), reader=FakeReader({"web-exec": role})
    )
    assert result.outcome == diff.Outcome.Adopt
    assert [op.action for op in result.operations] == ["TagRole"]
    assert "only reported" in (result.message or "")


@pytest.mark.parametrize(
    ("role", "operator", "why"),
    [
        (
            unowned(tags={"ecsrole.dev/cluster": "other", "ecsrole.dev/name": "x"}),
            operator_config(),
            "owned by another",
        ),
        (unowned(), operator_config(allow_adoption=False), "allowAdoption"),
        (
            unowned(trust_policy={"Version": "2012-10-17", "Statement": []}),
            operator_config(),
            "trust policy",
        ),
    ],
)
def test_adoption_refusals(
    role: model.ObservedRole, operator: config.OperatorConfig, why: str
) -> None:
    (result,) = judge(
        manifest(adopt=True), reader=FakeReader({"web-exec": role}), operator=operator
    )
    assert (result.outcome, result.reason) == (diff.Outcome.Refused, "AdoptionRefused")
    assert why in (result.message or "")


def test_a_role_of_this_cluster_namespace_and_name_is_owned_even_for_another_uid() -> None:
    """The uid-less rule: cluster, namespace and name tags decide (DESIGN ownership, minus uid)."""
    role = unowned(tags={**OWNER.tags(), "ecsrole.dev/uid": "x", "team": "a"})
    (result,) = judge(manifest(tags={"team": "a"}), reader=FakeReader({"web-exec": role}))
    assert result.outcome == diff.Outcome.InSync
    other_name = unowned(tags={**OWNER.tags(), "ecsrole.dev/name": "api"})
    (refused,) = judge(manifest(), reader=FakeReader({"web-exec": other_name}))
    assert refused.reason == "RoleExistsNotOwned"


@pytest.mark.parametrize(
    ("item", "operator", "reason", "text", "identity_read"),
    [
        (manifest(path=7), operator_config(), "InvalidSpec", "spec.path", False),
        (
            manifest(),
            config.OperatorConfig(cluster_name=CLUSTER),
            "AccountNotAllowed",
            # The operator's words for an unlisted account and for an unlisted namespace.
            "the operator configuration must list the namespace for that account",
            False,
        ),
        (manifest(namespace="team-z"), operator_config(), "AccountNotAllowed", "team-z", False),
        (manifest(path="/other/"), operator_config(), "InvalidSpec", "role path prefix", True),
        (
            manifest(additionalPolicyArns=[ADMIN_POLICY]),
            operator_config(),
            "PolicyNotAllowed",
            "allowedPolicyArns",
            True,
        ),
        (
            manifest(permissions={"secretArns": [SECRET.replace("team-a/", "team-b/")]}),
            operator_config(),
            "PermissionNotAllowed",
            "allowedResourcePatterns",
            True,
        ),
    ],
)
def test_refusals_before_reading_the_role(
    item: manifests.Manifest,
    operator: config.OperatorConfig,
    reason: str,
    text: str,
    identity_read: bool,
) -> None:
    """Like the operator: no AWS call before the account check; the partition (from the caller
    identity) before the desired state; never a role read for a refused spec."""
    reader = FakeReader({"web-exec": owned()})
    (result,) = judge(item, reader=reader, operator=operator)
    assert (result.outcome, result.reason) == (diff.Outcome.Refused, reason)
    assert text in (result.message or "")
    assert reader.calls == (["caller_identity"] if identity_read else [])


def test_account_not_allowed_makes_no_aws_call_at_all() -> None:
    asked: list[str] = []

    def reader(account_config: config.AccountConfig) -> FakeReader:
        asked.append(account_config.account_id)
        return FakeReader()

    results = diff.evaluate_all(
        [manifest(namespace="team-z"), manifest(accountId=OTHER_ACCOUNT_ID)],
        config=operator_config(),
        reader=reader,
    )
    assert [r.reason for r in results] == ["AccountNotAllowed", "AccountNotAllowed"]
    assert asked == []


def test_a_second_manifest_for_the_same_role_conflicts() -> None:
    first = manifest()
    second = dataclasses.replace(manifest(name="web-2", roleName="WEB-EXEC"), source="b.yaml")
    results = judge(first, second)
    assert [r.outcome for r in results] == [diff.Outcome.Create, diff.Outcome.Refused]
    assert results[1].reason == "ConflictingResource"
    # The operator's message, which names no other tenant's object (DESIGN section 3).
    message = results[1].message or ""
    assert "another EcsExecutionRole has an earlier claim on role WEB-EXEC" in message
    assert "team-a/web" not in message
    assert "web.yaml" not in message


def test_credentials_of_another_account_are_an_error() -> None:
    (result,) = judge(manifest(), reader=FakeReader(account_id=OTHER_ACCOUNT_ID))
    assert (result.outcome, result.reason) == (diff.Outcome.Error, "AccountMismatch")
    assert diff.exit_code([result]) == diff.EXIT_ERROR


def test_an_aws_failure_is_an_error_for_that_manifest_only() -> None:
    denied = AwsCallError(FailureKind.ACCESS_DENIED, "GetRole", "AccessDenied", "not authorized")
    results = judge(
        manifest(),
        manifest(name="x", namespace="team-b-1", roleName="other"),
        reader=FakeReader(error=denied),
    )
    assert [(r.outcome, r.reason) for r in results] == [
        (diff.Outcome.Error, "AccessDenied"),
        (diff.Outcome.Error, "AccessDenied"),
    ]
    assert "GetRole failed: AccessDenied: not authorized" in (results[0].message or "")


def test_missing_credentials_stop_the_whole_diff() -> None:
    missing = AwsCallError(
        FailureKind.AWS_ERROR, "GetRole", "NoCredentialsError", "Unable to locate credentials"
    )
    with pytest.raises(readonly.MissingCredentialsError):
        judge(manifest(), reader=FakeReader(error=missing))


def test_the_diff_only_asks_for_identity_and_role_reads() -> None:
    reader = FakeReader({"web-exec": owned(description="x")})
    judge(manifest(), manifest(name="api", roleName="api-exec"), reader=reader)
    assert reader.calls == ["caller_identity", "read_role web-exec", "read_role api-exec"]


# -- exit status -------------------------------------------------------------------------------


def _result(outcome: diff.Outcome) -> diff.RoleDiff:
    return diff.RoleDiff(manifest(), outcome)


@pytest.mark.parametrize(
    ("outcomes", "errors", "code"),
    [
        ([], [], 0),
        ([diff.Outcome.InSync, diff.Outcome.ReportOnly, diff.Outcome.Paused], [], 0),
        ([diff.Outcome.InSync, diff.Outcome.Create], [], 2),
        ([diff.Outcome.Update], [], 2),
        ([diff.Outcome.Adopt], [], 2),
        ([diff.Outcome.Refused], [], 2),
        ([diff.Outcome.Create, diff.Outcome.Error], [], 1),
        ([diff.Outcome.InSync], ["f.yaml: not valid YAML"], 1),
    ],
)
def test_exit_status(outcomes: list[diff.Outcome], errors: list[str], code: int) -> None:
    assert diff.exit_code([_result(o) for o in outcomes], errors=errors) == code


# -- reports -----------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    text = DOCS.read_text()
    marker = text.index("<!-- ecsrole.dev/diff/v1 schema")
    block = re.search(r"```json\n(.*?)\n```", text[marker:], re.DOTALL)
    assert block is not None
    schema: dict[str, Any] = json.loads(block.group(1))
    return schema


def _every_outcome() -> list[diff.RoleDiff]:
    drifted = owned(managed_policy_arns=desired_role().managed_policy_arns | {ADMIN_POLICY})
    return judge(
        manifest(),
        manifest(name="drifted", roleName="drifted"),
        manifest(name="adopted", roleName="adopted", adopt=True),
        manifest(name="refused", roleName="refused", additionalPolicyArns=[ADMIN_POLICY]),
        manifest(name="allowed", roleName="allowed", additionalPolicyArns=[READONLY_POLICY]),
        reader=FakeReader(
            {
                "drifted": dataclasses.replace(
                    drifted,
                    role_name="drifted",
                    tags={**drifted.tags, "ecsrole.dev/name": "drifted"},
                ),
                "adopted": unowned(role_name="adopted"),
            }
        ),
    )


def test_json_report_matches_the_documented_schema() -> None:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    results = [
        *_every_outcome(),
        diff.RoleDiff(manifest(name="err"), diff.Outcome.Error, reason="AwsError"),
    ]
    document = json.loads(
        diff.render_json(results, cluster_name=CLUSTER, warnings=["w"], errors=[])
    )
    jsonschema.validate(document, schema)
    assert document["apiVersion"] == "ecsrole.dev/diff/v1"
    assert document["exitCode"] == 1
    # The documented enums are exactly the code's.
    resource = schema["$defs"]["resource"]["properties"]
    assert resource["result"]["enum"] == [o.value for o in diff.Outcome]
    assert schema["$defs"]["aspect"]["enum"] == [a.value for a in diff_module_severity()]
    assert set(schema["properties"]["summary"]["required"]) == {o.value for o in diff.Outcome}
    # Policy documents are objects in the report, not JSON text.
    create = document["resources"][0]["operations"][0]
    assert create["action"] == "CreateRole"
    assert isinstance(create["params"]["AssumeRolePolicyDocument"], dict)


def diff_module_severity() -> list[model.Aspect]:
    from ecsrole.core import diff as core_diff

    return list(core_diff.SEVERITY)


def test_json_report_of_a_failed_run_still_validates() -> None:
    document = json.loads(
        diff.render_json([], cluster_name=None, errors=["no AWS credentials found: x"])
    )
    jsonschema.validate(document, _schema())
    assert document["exitCode"] == 1
    assert document["resources"] == []


def test_text_report_names_each_resource_its_drift_and_calls() -> None:
    text = diff.render_text(_every_outcome())
    lines = text.splitlines()
    assert lines[0].startswith(
        "+ team-a/web (web.yaml): role web-exec in account 111111111111: does not exist"
    )
    assert any(line.startswith("    CreateRole {") for line in lines)
    assert (
        f"    drift ManagedPolicy: managed policy {ADMIN_POLICY} is attached but not declared"
        in lines
    )
    assert any(line.startswith("    DetachRolePolicy {") for line in lines)
    assert any(line.startswith("! team-a/refused") and "PolicyNotAllowed" in line for line in lines)
    assert lines[-2] == "Summary: 5 EcsExecutionRole(s): 2 Create, 1 Update, 1 Adopt, 1 Refused."
    assert lines[-1].startswith("Changes:")
    assert diff.render_text([]).splitlines()[-1].startswith("No changes")


# -- the uid-less ownership rule (core/ownership.py) ---------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (OWNER.tags(), True),
        ({**OWNER.tags(), "ecsrole.dev/uid": "another"}, True),
        ({k: v for k, v in OWNER.tags().items() if k != "ecsrole.dev/uid"}, True),
        ({**OWNER.tags(), "ecsrole.dev/cluster": "other"}, False),
        ({**OWNER.tags(), "ecsrole.dev/namespace": "team-b"}, False),
        ({**OWNER.tags(), "ecsrole.dev/name": "api"}, False),
        (
            {
                "ECSROLE.DEV/CLUSTER": CLUSTER,
                "ecsrole.dev/namespace": NAMESPACE,
                "ecsrole.dev/name": "web",
            },
            False,
        ),
        ({}, False),
    ],
)
def test_ownership_without_uid(tags: dict[str, str], expected: bool) -> None:
    role = owned(tags=tags)
    assert ownership.ownership_tags_match_without_uid(role, OWNER) is expected
    # Never enough for the operator itself, which also needs the uid and the recorded role id.
    if expected and tags.get("ecsrole.dev/uid") != OWNER.uid:
        assert not ownership.is_owned(role, OWNER, role.role_id)
