"""Plans: the exact IAM calls, their order, and that they converge against a strict fake IAM."""

from __future__ import annotations

import json
import random

import pytest

from ecsrole.core import diff, model, plan

from .factories import (
    ACCOUNT_ID,
    ADMIN_POLICY,
    BOUNDARY,
    OWNER,
    READONLY_POLICY,
    SECRET,
    SEED_POLICY,
    desired_role,
    observed_from,
    seed_trust,
)
from .fake_iam import FakeIam, IamError, validate_params

pytestmark = pytest.mark.unit

Aspect = model.Aspect
RESTRICTIVE = {
    "PutRolePermissionsBoundary",
    "UpdateAssumeRolePolicy",
    "DetachRolePolicy",
    "DeleteRolePolicy",
    "UntagRole",
}
ADDITIVE = {"AttachRolePolicy", "TagRole", "UpdateRole"}


def actions(operations: tuple[model.Operation, ...]) -> list[str]:
    return [operation.action for operation in operations]


def full_role() -> model.DesiredRole:
    return desired_role(
        description="web tier",
        maxSessionDuration=7200,
        permissionsBoundaryArn=BOUNDARY,
        tags={"team": "a"},
        permissions={"secretArns": [SECRET]},
        additionalPolicyArns=[READONLY_POLICY],
    )


# -- create ----------------------------------------------------------------------------------


def test_create_puts_everything_including_ownership_tags_in_create_role() -> None:
    role = full_role()
    operations = plan.plan_create(role)
    assert actions(operations) == [
        "CreateRole",
        "AttachRolePolicy",
        "AttachRolePolicy",
        "PutRolePolicy",
    ]
    create = operations[0]
    assert create.aspects == {Aspect.RoleMissing}
    assert create.params == {
        "Path": "/ecs/",
        "RoleName": "web-exec",
        "AssumeRolePolicyDocument": json.dumps(role.trust_policy, separators=(",", ":")),
        "Description": "web tier",
        "MaxSessionDuration": 7200,
        "PermissionsBoundary": BOUNDARY,
        "Tags": [{"Key": k, "Value": v} for k, v in sorted({**OWNER.tags(), "team": "a"}.items())],
    }
    assert {op.params["PolicyArn"] for op in operations[1:3]} == {SEED_POLICY, READONLY_POLICY}
    put = operations[3]
    assert put.params["PolicyName"] == "ecsrole-permissions"
    assert json.loads(put.params["PolicyDocument"]) == role.inline_policies["ecsrole-permissions"]
    for operation in operations:
        validate_params(operation)


def test_create_omits_unset_description_and_boundary() -> None:
    create = plan.plan_create(desired_role())[0]
    assert "Description" not in create.params
    assert "PermissionsBoundary" not in create.params


def test_created_role_has_no_drift() -> None:
    role = full_role()
    iam = FakeIam(ACCOUNT_ID, "aws")
    iam.apply(plan.plan_create(role))
    assert diff.diff(role, iam.observe(role.role_name)) == ()


def test_update_with_role_missing_recreates() -> None:
    role = desired_role()
    drifts = diff.diff(role, None)
    assert plan.plan_update(role.role_name, drifts) == plan.plan_create(role)


# -- update ----------------------------------------------------------------------------------


def drifted(role: model.DesiredRole) -> model.ObservedRole:
    """A role someone widened in every way at once."""
    return observed_from(
        role,
        trust_policy=seed_trust(Principal={"AWS": "arn:aws:iam::999999999999:root"}),
        managed_policy_arns={SEED_POLICY, ADMIN_POLICY},
        inline_policies={
            "backdoor": seed_trust(),
            "ecsrole-permissions": {
                "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}
            },
        },
        permissions_boundary_arn=None,
        tags={**OWNER.tags(), "Team": "b", "extra": "x"},
        description="hand edit",
        max_session_duration=3600,
    )


def test_update_orders_restrictive_before_additive() -> None:
    role = full_role()
    observed = drifted(role)
    operations = plan.plan_update(observed.role_name, diff.diff(role, observed))
    assert actions(operations) == [
        "PutRolePermissionsBoundary",
        "UpdateAssumeRolePolicy",
        "DetachRolePolicy",
        "DeleteRolePolicy",
        "PutRolePolicy",
        "UntagRole",
        "AttachRolePolicy",
        "TagRole",
        "UpdateRole",
    ]
    by_action = {op.action: op for op in operations}
    assert by_action["DetachRolePolicy"].params == {
        "RoleName": "web-exec",
        "PolicyArn": ADMIN_POLICY,
    }
    assert by_action["DeleteRolePolicy"].params == {
        "RoleName": "web-exec",
        "PolicyName": "backdoor",
    }
    assert by_action["AttachRolePolicy"].params["PolicyArn"] == READONLY_POLICY
    assert by_action["UntagRole"].params == {"RoleName": "web-exec", "TagKeys": ["Team", "extra"]}
    assert by_action["TagRole"].params["Tags"] == [{"Key": "team", "Value": "a"}]
    assert by_action["UpdateRole"].params == {
        "RoleName": "web-exec",
        "Description": "web tier",
        "MaxSessionDuration": 7200,
    }
    assert by_action["PutRolePermissionsBoundary"].params == {
        "RoleName": "web-exec",
        "PermissionsBoundary": BOUNDARY,
    }
    for operation in operations:
        validate_params(operation)
        assert operation.aspects


def test_update_touches_only_drifted_aspects() -> None:
    role = full_role()
    observed = drifted(role)
    drifts = diff.diff(role, observed)
    only_trust = plan.plan_update(
        observed.role_name, [d for d in drifts if d.aspect is Aspect.TrustPolicy]
    )
    assert actions(only_trust) == ["UpdateAssumeRolePolicy"]
    assert plan.plan_update(observed.role_name, ()) == ()


@pytest.mark.parametrize(
    ("aspect", "edit"),
    [
        (Aspect.Description, {"description": "hand edit"}),
        (Aspect.MaxSessionDuration, {"max_session_duration": 7200}),
    ],
)
def test_update_role_always_sends_description_and_session_together(
    aspect: model.Aspect, edit: dict[str, object]
) -> None:
    role = desired_role()
    observed = observed_from(role, **edit)
    drifts = diff.diff(role, observed)
    assert [d.aspect for d in drifts] == [aspect]
    operations = plan.plan_update(observed.role_name, drifts)
    assert actions(operations) == ["UpdateRole"]
    assert operations[0].params == {
        "RoleName": "web-exec",
        "Description": "",
        "MaxSessionDuration": 3600,
    }
    assert operations[0].aspects == {aspect}


def test_one_update_role_names_both_fields_it_repairs() -> None:
    role = desired_role(description="web tier", maxSessionDuration=7200)
    observed = observed_from(desired_role())
    drifts = diff.diff(role, observed)
    assert {d.aspect for d in drifts} == {Aspect.Description, Aspect.MaxSessionDuration}
    operations = plan.plan_update(observed.role_name, drifts)
    assert actions(operations) == ["UpdateRole"]
    assert operations[0].aspects == {Aspect.Description, Aspect.MaxSessionDuration}


def test_unexpected_boundary_is_reported_never_removed() -> None:
    role = desired_role()
    observed = observed_from(role, permissions_boundary_arn=BOUNDARY)
    drifts = diff.diff(role, observed)
    assert [d.aspect for d in drifts] == [Aspect.PermissionsBoundary]
    assert plan.plan_update(observed.role_name, drifts) == ()


def test_ignored_tags_are_never_touched() -> None:
    role = desired_role(tags={"team": "a"})
    observed = observed_from(role, tags={**OWNER.tags(), "CostCenter": "42", "team": "b"})
    # The desired role carries the account's ignoredTagKeys (build_desired puts them there), so
    # the drifts, and the plan made from them, leave the key out.
    carried = model.DesiredRole(**{**role.__dict__, "ignored_tag_keys": frozenset({"CostCenter"})})
    operations = plan.plan_update(observed.role_name, diff.diff(carried, observed))
    assert actions(operations) == ["TagRole"]
    assert operations[0].params["Tags"] == [{"Key": "team", "Value": "a"}]


def test_update_names_the_role_as_iam_spells_it() -> None:
    role = desired_role(tags={"team": "a"})
    observed = observed_from(role, role_name="Web-Exec", tags=OWNER.tags())
    operations = plan.plan_update(observed.role_name, diff.diff(role, observed))
    assert [op.params["RoleName"] for op in operations] == ["Web-Exec"]


def test_update_plans_only_from_the_deltas() -> None:
    """A hand-written delta is planned as written: the plan compares nothing again."""
    drifts = [
        model.Drift(Aspect.Tags, "t", model.TagDelta(extra=("old",), to_set={"new": "1"})),
        model.Drift(Aspect.ManagedPolicy, "m", model.ManagedPolicyDelta(detach=(ADMIN_POLICY,))),
        model.Drift(Aspect.PermissionsBoundary, "b", model.BoundaryDelta(put=BOUNDARY)),
    ]
    operations = plan.plan_update("r", drifts)
    assert [
        (op.action, {k: v for k, v in op.params.items() if k != "RoleName"}) for op in operations
    ] == [
        ("PutRolePermissionsBoundary", {"PermissionsBoundary": BOUNDARY}),
        ("DetachRolePolicy", {"PolicyArn": ADMIN_POLICY}),
        ("UntagRole", {"TagKeys": ["old"]}),
        ("TagRole", {"Tags": [{"Key": "new", "Value": "1"}]}),
    ]


def test_a_drift_without_its_delta_is_not_planned() -> None:
    with pytest.raises(ValueError, match="without a delta: Tags"):
        plan.plan_update("r", [model.Drift(Aspect.Tags, "reported by hand")])


def test_update_is_idempotent_against_a_strict_iam() -> None:
    role = full_role()
    iam = FakeIam(ACCOUNT_ID, "aws", random.Random(1))
    iam.apply(plan.plan_create(role))
    stored = iam.roles["web-exec"]
    stored.managed.add(ADMIN_POLICY)
    stored.inline["backdoor"] = seed_trust()
    stored.tags["Team"] = stored.tags.pop("team")
    stored.trust = seed_trust(Principal="*")
    stored.description = None
    observed = iam.observe("web-exec")
    drifts = diff.diff(role, observed)
    iam.apply(plan.plan_update(observed.role_name, drifts))
    after = iam.observe("web-exec")
    assert diff.diff(role, after) == ()
    assert plan.plan_update(after.role_name, diff.diff(role, after)) == ()


def test_stale_update_reports_missing_targets_as_done() -> None:
    role = desired_role()
    iam = FakeIam(ACCOUNT_ID, "aws")
    iam.apply(plan.plan_create(role))
    iam.roles["web-exec"].managed.add(ADMIN_POLICY)
    observed = iam.observe("web-exec")
    operations = plan.plan_update(observed.role_name, diff.diff(role, observed))
    iam.apply(operations)
    with pytest.raises(IamError) as raised:
        iam.apply(operations)  # replayed from a stale read
    assert raised.value.code == "NoSuchEntity"
    assert operations[0].absent_target_means_done


# -- delete and release ----------------------------------------------------------------------


def test_delete_removes_everything_then_the_role() -> None:
    role = full_role()
    observed = observed_from(
        role,
        inline_policies={"ecsrole-permissions": seed_trust(), "x": seed_trust()},
        instance_profile_names=("profile-b", "profile-a"),
    )
    operations = plan.plan_delete(observed)
    assert actions(operations) == [
        "DetachRolePolicy",
        "DetachRolePolicy",
        "DeleteRolePolicy",
        "DeleteRolePolicy",
        "RemoveRoleFromInstanceProfile",
        "RemoveRoleFromInstanceProfile",
        "DeleteRole",
    ]
    assert operations[4].params == {"InstanceProfileName": "profile-a", "RoleName": "web-exec"}
    assert all(not op.aspects for op in operations)
    for operation in operations:
        validate_params(operation)


def test_delete_against_a_strict_iam() -> None:
    role = full_role()
    iam = FakeIam(ACCOUNT_ID, "aws")
    iam.apply(plan.plan_create(role))
    iam.roles["web-exec"].instance_profiles.append("ecs-instance")
    observed = iam.observe("web-exec")
    assert observed is not None
    iam.apply(plan.plan_delete(observed))
    assert iam.observe("web-exec") is None


def test_delete_needs_the_instance_profiles() -> None:
    observed = observed_from(desired_role(), instance_profile_names=None)
    with pytest.raises(ValueError, match="instance profiles"):
        plan.plan_delete(observed)


def test_release_drops_only_the_ownership_tags() -> None:
    role = desired_role(tags={"team": "a"})
    observed = observed_from(role, tags={**OWNER.tags(), "team": "a", "ECSROLE.dev/Extra": "1"})
    operations = plan.plan_release(observed)
    assert actions(operations) == ["UntagRole"]
    assert operations[0].params == {
        "RoleName": "web-exec",
        "TagKeys": sorted([*OWNER.tags()]),
    }
    validate_params(operations[0])
    assert plan.plan_release(observed_from(role, tags={"team": "a"})) == ()


def test_release_matches_ownership_keys_in_any_case() -> None:
    observed = observed_from(desired_role(), tags={"ECSROLE.DEV/UID": "u"})
    assert plan.plan_release(observed)[0].params["TagKeys"] == ["ECSROLE.DEV/UID"]


# -- adoption --------------------------------------------------------------------------------


def test_tag_owner_tags_an_adopted_role() -> None:
    observed = observed_from(desired_role(), tags={"team": "a"})
    operations = plan.plan_tag_owner(observed, OWNER)
    assert actions(operations) == ["TagRole"]
    assert operations[0].params["Tags"] == [
        {"Key": k, "Value": v} for k, v in sorted(OWNER.tags().items())
    ]
    for operation in operations:
        validate_params(operation)


def test_tag_owner_replaces_stale_ownership_spellings() -> None:
    observed = observed_from(
        desired_role(), tags={"ECSROLE.DEV/UID": "u", "ecsrole.dev/cluster": OWNER.cluster}
    )
    operations = plan.plan_tag_owner(observed, OWNER)
    assert actions(operations) == ["UntagRole", "TagRole"]
    assert operations[0].params["TagKeys"] == ["ECSROLE.DEV/UID"]
    assert {t["Key"] for t in operations[1].params["Tags"]} == {
        "ecsrole.dev/namespace",
        "ecsrole.dev/name",
        "ecsrole.dev/uid",
    }


def test_tag_owner_is_a_no_op_when_already_tagged() -> None:
    assert plan.plan_tag_owner(observed_from(desired_role()), OWNER) == ()


def test_operation_classes_cover_every_update_action() -> None:
    role = full_role()
    observed = drifted(role)
    for operation in plan.plan_update(observed.role_name, diff.diff(role, observed)):
        assert operation.action in RESTRICTIVE | ADDITIVE | {"PutRolePolicy"}
