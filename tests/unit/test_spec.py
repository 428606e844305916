"""Parsing the spec without trusting the CRD."""

from __future__ import annotations

from typing import Any

import pytest

from ecsrole.core import spec

from .factories import ACCOUNT_ID, BOUNDARY, spec_dict

pytestmark = pytest.mark.unit


def test_minimal_spec_takes_design_defaults() -> None:
    parsed = spec.parse_spec({"accountId": ACCOUNT_ID, "roleName": "web"})
    assert parsed == spec.RoleSpec(account_id=ACCOUNT_ID, role_name="web")
    assert parsed.path == "/"
    assert parsed.description == ""
    assert parsed.max_session_duration == 3600
    assert parsed.permissions_boundary_arn is None
    assert parsed.tags == {}
    assert parsed.trust == spec.TrustSpec()
    assert parsed.permissions == spec.PermissionsSpec()
    assert not parsed.permissions.declared
    assert parsed.additional_policy_arns == ()
    assert parsed.drift_policy is spec.DriftPolicy.Enforce
    assert parsed.deletion_policy is None
    assert parsed.adopt is False


def test_null_fields_take_defaults() -> None:
    parsed = spec.parse_spec(
        spec_dict(
            path=None,
            description=None,
            maxSessionDuration=None,
            tags=None,
            trust=None,
            permissions=None,
            driftPolicy=None,
            deletionPolicy=None,
            adopt=None,
        )
    )
    assert parsed.path == "/"
    assert parsed.drift_policy is spec.DriftPolicy.Enforce


def test_full_spec() -> None:
    parsed = spec.parse_spec(
        spec_dict(
            description="web tier",
            maxSessionDuration=7200,
            permissionsBoundaryArn=BOUNDARY,
            tags={"team": "a"},
            trust={"sourceAccounts": [ACCOUNT_ID], "sourceArns": ["arn:aws:ecs:us-east-1:1:*"]},
            permissions={
                "secretArns": ["arn:aws:secretsmanager:us-east-1:1:secret:x"],
                "parameterArns": ["arn:aws:ssm:us-east-1:1:parameter/x"],
                "kmsKeyArns": ["arn:aws:kms:us-east-1:1:key/k"],
                "createLogGroups": True,
            },
            additionalPolicyArns=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
            driftPolicy="Report",
            deletionPolicy="Retain",
            adopt=True,
        )
    )
    assert parsed.description == "web tier"
    assert parsed.max_session_duration == 7200
    assert parsed.permissions_boundary_arn == BOUNDARY
    assert parsed.tags == {"team": "a"}
    assert parsed.trust.source_accounts == (ACCOUNT_ID,)
    assert parsed.permissions.create_log_groups
    assert parsed.permissions.declared
    assert parsed.drift_policy is spec.DriftPolicy.Report
    assert parsed.deletion_policy is spec.DeletionPolicy.Retain
    assert parsed.adopt


@pytest.mark.parametrize(
    ("permissions", "declared"),
    [
        ({}, False),
        ({"secretArns": ["arn:aws:secretsmanager:us-east-1:1:secret:x"]}, True),
        ({"parameterArns": ["arn:aws:ssm:us-east-1:1:parameter/x"]}, True),
        ({"kmsKeyArns": ["arn:aws:kms:us-east-1:1:key/k"]}, True),
        ({"createLogGroups": True}, True),
        ({"createLogGroups": False}, False),
    ],
)
def test_permissions_declared(permissions: dict[str, Any], declared: bool) -> None:
    assert spec.parse_spec(spec_dict(permissions=permissions)).permissions.declared is declared


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"accountId": None}, "spec.accountId", "is required"),
        ({"roleName": None}, "spec.roleName", "is required"),
        ({"accountId": 111111111111}, "spec.accountId", "must be a string"),
        ({"accountId": "1111"}, "spec.accountId", "12 digits"),
        ({"roleName": "a b"}, "spec.roleName", "may contain only"),
        ({"roleName": "r" * 65}, "spec.roleName", "at most 64"),
        ({"path": "ecs"}, "spec.path", "start and end"),
        ({"path": ""}, "spec.path", "start and end"),
        ({"path": 3}, "spec.path", "must be a string"),
        ({"description": "d" * 1001}, "spec.description", "at most 1000"),
        ({"description": "🚀"}, "spec.description", "Latin-1"),
        ({"maxSessionDuration": 3599}, "spec.maxSessionDuration", "between 3600 and 43200"),
        ({"maxSessionDuration": 43201}, "spec.maxSessionDuration", "between 3600 and 43200"),
        ({"maxSessionDuration": "3600"}, "spec.maxSessionDuration", "integer"),
        ({"maxSessionDuration": True}, "spec.maxSessionDuration", "integer"),
        ({"maxSessionDuration": 3600.5}, "spec.maxSessionDuration", "integer"),
        (
            {"permissionsBoundaryArn": "arn:aws:iam::1:role/x"},
            "spec.permissionsBoundaryArn",
            "policy",
        ),
        ({"permissionsBoundaryArn": ""}, "spec.permissionsBoundaryArn", "IAM ARN"),
        ({"tags": ["a"]}, "spec.tags", "map"),
        ({"tags": {"a": 1}}, "spec.tags.a", "strings"),
        ({"tags": {"a,b": "v"}}, "spec.tags.a,b", "tag keys may contain only"),
        ({"tags": {"": "v"}}, "spec.tags.", "must not be empty"),
        ({"tags": {"k" * 129: "v"}}, "spec.tags." + "k" * 129, "at most 128"),
        ({"tags": {"a": "v" * 257}}, "spec.tags.a", "at most 256"),
        ({"tags": {"aws:x": "v"}}, "spec.tags.aws:x", "reserved"),
        ({"tags": {"AWS:x": "v"}}, "spec.tags.AWS:x", "reserved"),
        ({"tags": {"ecsrole.dev/uid": "v"}}, "spec.tags.ecsrole.dev/uid", "reserved"),
        ({"tags": {"EcsRole.DEV/uid": "v"}}, "spec.tags.EcsRole.DEV/uid", "reserved"),
        ({"tags": {"Team": "a", "team": "b"}}, "spec.tags.team", "regardless of case"),
        ({"tags": {f"k{i}": "v" for i in range(47)}}, "spec.tags", "at most 46"),
        ({"trust": "x"}, "spec.trust", "must be an object"),
        ({"trust": {"sourceAccount": ["1"]}}, "spec.trust.sourceAccount", "unknown field"),
        ({"trust": {"sourceAccounts": "1"}}, "spec.trust.sourceAccounts", "list"),
        ({"trust": {"sourceAccounts": ["1"]}}, "spec.trust.sourceAccounts[0]", "12 digits"),
        ({"trust": {"sourceArns": ["nope"]}}, "spec.trust.sourceArns[0]", "not an ARN"),
        ({"trust": {"sourceArns": [""]}}, "spec.trust.sourceArns[0]", "non-empty"),
        ({"permissions": {"secretArns": [1]}}, "spec.permissions.secretArns[0]", "non-empty"),
        (
            {"permissions": {"parameterArns": ["x"]}},
            "spec.permissions.parameterArns[0]",
            "not an ARN",
        ),
        ({"permissions": {"kmsKeyArns": ["x"]}}, "spec.permissions.kmsKeyArns[0]", "not an ARN"),
        (
            {"permissions": {"createLogGroups": "yes"}},
            "spec.permissions.createLogGroups",
            "true or false",
        ),
        ({"permissions": {"policy": "{}"}}, "spec.permissions.policy", "unknown field"),
        ({"additionalPolicyArns": ["arn:aws:s3:::b"]}, "spec.additionalPolicyArns[0]", "IAM ARN"),
        (
            {"additionalPolicyArns": [f"arn:aws:iam::aws:policy/P{i}" for i in range(20)]},
            "spec.additionalPolicyArns",
            "at most 19",
        ),
        ({"driftPolicy": "enforce"}, "spec.driftPolicy", "Enforce or Report"),
        ({"deletionPolicy": "Orphan"}, "spec.deletionPolicy", "Delete or Retain"),
        ({"adopt": "true"}, "spec.adopt", "true or false"),
        ({"trustPolicy": {}}, "spec.trustPolicy", "unknown field"),
    ],
)
def test_invalid_specs_name_the_field(overrides: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(spec.SpecError) as raised:
        spec.parse_spec(spec_dict(**overrides))
    assert raised.value.field == field
    assert message in raised.value.message
    assert str(raised.value) == f"{field}: {raised.value.message}"


def test_spec_must_be_a_mapping() -> None:
    with pytest.raises(spec.SpecError, match="must be an object"):
        spec.parse_spec(["not", "a", "spec"])  # type: ignore[arg-type]


def test_forty_six_tags_are_allowed() -> None:
    tags = {f"k{i}": "v" for i in range(46)}
    assert len(spec.parse_spec(spec_dict(tags=tags)).tags) == 46


def test_check_rechecks_a_directly_built_spec() -> None:
    with pytest.raises(spec.SpecError, match="reserved"):
        spec.check(spec.RoleSpec(account_id=ACCOUNT_ID, role_name="r", tags={"aws:x": "v"}))
    with pytest.raises(spec.SpecError, match="12 digits"):
        spec.check(spec.RoleSpec(account_id="x", role_name="r"))


def test_drift_and_deletion_policies_are_strings() -> None:
    assert spec.DriftPolicy.Enforce == "Enforce"
    assert spec.DeletionPolicy.Retain == "Retain"
