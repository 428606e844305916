"""The core's value types."""

from __future__ import annotations

import datetime
import json
import urllib.parse

import pytest
from botocore import xform_name

from ecsrole.core import constants, model

from .factories import OWNER, desired_role, seed_trust

pytestmark = pytest.mark.unit

ALL_ACTIONS = (
    "CreateRole",
    "UpdateAssumeRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "TagRole",
    "UntagRole",
    "UpdateRole",
    "PutRolePermissionsBoundary",
    "RemoveRoleFromInstanceProfile",
    "DeleteRole",
)


def test_aspect_values_equal_their_names() -> None:
    assert [aspect.value for aspect in model.Aspect] == [aspect.name for aspect in model.Aspect]
    assert {aspect.value for aspect in model.Aspect} == {
        "TrustPolicy",
        "ManagedPolicy",
        "InlinePolicy",
        "Tags",
        "Description",
        "MaxSessionDuration",
        "PermissionsBoundary",
        "RoleMissing",
    }
    assert model.Aspect.TrustPolicy == "TrustPolicy"


def test_ready_and_synced_reasons_are_the_documented_condition_reasons() -> None:
    # DESIGN section 2: dashboards, alerts and kstatus users match on these strings.
    assert {reason.value for reason in model.ReadyReason} == {
        "Reconciled",
        "Creating",
        "InvalidSpec",
        "AccountNotAllowed",
        "AccountMismatch",
        "RoleExistsNotOwned",
        "AdoptionRefused",
        "ConflictingResource",
        "PolicyNotAllowed",
        "PermissionNotAllowed",
        "Paused",
        "Deleting",
        "DeletionBlocked",
        "RoleMissing",
    }
    assert {reason.value for reason in model.SyncedReason} == {
        "ReconcileSuccess",
        "AccessDenied",
        "Throttled",
        "AwsError",
    }
    for enum in (model.ReadyReason, model.SyncedReason):
        assert all(reason.value == reason.name for reason in enum)


def test_owner_tags() -> None:
    assert OWNER.tags() == {
        "ecsrole.dev/cluster": "prod-eu-1",
        "ecsrole.dev/namespace": "team-a",
        "ecsrole.dev/name": "web",
        "ecsrole.dev/uid": "uid-1234",
    }
    assert tuple(OWNER.tags()) == constants.OWNERSHIP_TAG_KEYS


def test_desired_arn_includes_partition_and_path() -> None:
    role = desired_role()
    assert role.arn == "arn:aws:iam::111111111111:role/ecs/web-exec"


def test_desired_role_is_hashable_despite_mapping_fields() -> None:
    role = desired_role()
    assert hash(role) == hash(desired_role())
    assert role == desired_role()


def _observed(**overrides: object) -> model.ObservedRole:
    values: dict[str, object] = {
        "arn": "arn:aws:iam::111111111111:role/ecs/web",
        "role_id": "AROA1",
        "role_name": "web",
        "path": "/ecs/",
        "trust_policy": seed_trust(),
    }
    values.update(overrides)
    return model.ObservedRole(**values)  # type: ignore[arg-type]


def test_observed_role_decodes_url_encoded_documents() -> None:
    encoded = urllib.parse.quote(json.dumps(seed_trust()))
    observed = _observed(trust_policy=encoded, inline_policies={"p": encoded, "q": seed_trust()})
    assert observed.trust_policy == seed_trust()
    assert observed.inline_policies == {"p": seed_trust(), "q": seed_trust()}


def test_observed_role_defaults_and_normalisation() -> None:
    observed = _observed(
        description=None, permissions_boundary_arn="", managed_policy_arns=["a", "a"]
    )
    assert observed.description == ""
    assert observed.permissions_boundary_arn is None
    assert observed.managed_policy_arns == frozenset({"a"})
    assert observed.instance_profile_names is None
    assert observed.max_session_duration == 3600
    assert observed.tags == {}


def test_observed_role_does_not_share_callers_mappings() -> None:
    tags = {"a": "b"}
    observed = _observed(tags=tags)
    tags["c"] = "d"
    assert observed.tags == {"a": "b"}


def test_observed_role_from_a_get_role_response() -> None:
    created = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    observed = model.ObservedRole.from_iam(
        {
            "Path": "/ecs/",
            "RoleName": "web",
            "RoleId": "AROA1",
            "Arn": "arn:aws:iam::111111111111:role/ecs/web",
            "CreateDate": created,
            "AssumeRolePolicyDocument": seed_trust(),
            "Description": "d",
            "MaxSessionDuration": 7200,
            "PermissionsBoundary": {
                "PermissionsBoundaryType": "Policy",
                "PermissionsBoundaryArn": "arn:aws:iam::aws:policy/B",
            },
            "Tags": [{"Key": "k", "Value": "v"}],
        },
        managed_policy_arns=["arn:aws:iam::aws:policy/P"],
        inline_policies={"i": json.dumps(seed_trust())},
        instance_profile_names=["ip"],
    )
    assert observed.role_id == "AROA1"
    assert observed.description == "d"
    assert observed.max_session_duration == 7200
    assert observed.permissions_boundary_arn == "arn:aws:iam::aws:policy/B"
    assert observed.tags == {"k": "v"}
    assert observed.inline_policies == {"i": seed_trust()}
    assert observed.instance_profile_names == ("ip",)
    assert observed.create_date == created


def test_observed_role_from_a_minimal_response() -> None:
    observed = model.ObservedRole.from_iam(
        {
            "Path": "/",
            "RoleName": "web",
            "RoleId": "AROA1",
            "Arn": "arn:aws:iam::111111111111:role/web",
            "AssumeRolePolicyDocument": seed_trust(),
        },
        managed_policy_arns=[],
        inline_policies={},
    )
    assert observed.description == ""
    assert observed.permissions_boundary_arn is None
    assert observed.tags == {}
    assert observed.create_date is None


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_operation_method_names_match_boto3(action: model.IamAction) -> None:
    operation = model.Operation(action, {})
    assert operation.method_name == xform_name(action)


def test_only_removals_treat_a_missing_target_as_done() -> None:
    done = {a for a in ALL_ACTIONS if model.Operation(a, {}).absent_target_means_done}  # type: ignore[arg-type]
    assert done == {
        "DetachRolePolicy",
        "DeleteRolePolicy",
        "RemoveRoleFromInstanceProfile",
        "DeleteRole",
    }


def test_a_drift_carries_only_its_own_aspects_delta() -> None:
    fields = model.RoleFieldsDelta("web", 3600)
    assert model.Drift(model.Aspect.Description, "d", fields).delta == fields
    assert model.Drift(model.Aspect.MaxSessionDuration, "m", fields).delta == fields
    assert model.Drift(model.Aspect.RoleMissing, "reported only").delta is None
    with pytest.raises(TypeError, match="a Tags drift carries a TagDelta, not a RoleFieldsDelta"):
        model.Drift(model.Aspect.Tags, "t", fields)


def test_drifts_with_mapping_deltas_are_hashable() -> None:
    drift = model.Drift(model.Aspect.Tags, "t", model.TagDelta(missing=("a",), to_set={"a": "1"}))
    assert hash(drift) == hash(model.Drift(model.Aspect.Tags, "t", model.TagDelta()))
    assert drift != model.Drift(model.Aspect.Tags, "t", model.TagDelta())
