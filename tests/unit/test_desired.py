"""Spec + account -> the role that must exist, or a refusal: where tenancy is enforced."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecsrole.core import desired, model, spec

from .factories import (
    ACCOUNT_ID,
    ADMIN_POLICY,
    BOUNDARY,
    ECS_SOURCE_ARN,
    KMS_KEY,
    OTHER_ACCOUNT_ID,
    OWNER,
    PARAMETER,
    READONLY_POLICY,
    SECRET,
    SEED_POLICY,
    account,
    build,
    desired_role,
    role_spec,
)

pytestmark = pytest.mark.unit

DESIGN_TRUST = json.loads(
    '{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":'
    '{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)


def refusal(spec_overrides: dict[str, Any], **kwargs: Any) -> model.Refusal:
    result = build(spec_overrides, **kwargs)
    assert isinstance(result, model.Refusal), result
    return result


# -- the role --------------------------------------------------------------------------------


def test_minimal_role_is_exactly_designs_execution_role() -> None:
    role = desired_role()
    assert role.trust_policy == DESIGN_TRUST
    assert role.managed_policy_arns == {SEED_POLICY}
    assert role.inline_policies == {}
    assert role.role_name == "web-exec"
    assert role.path == "/ecs/"
    assert role.description == ""
    assert role.max_session_duration == 3600
    assert role.permissions_boundary_arn is None
    assert role.tags == OWNER.tags()
    assert role.account_id == ACCOUNT_ID
    assert role.partition == "aws"


def test_declared_fields_are_carried_over() -> None:
    role = desired_role(description="web", maxSessionDuration=7200, tags={"team": "a"})
    assert role.description == "web"
    assert role.max_session_duration == 7200
    assert role.tags == {"team": "a", **OWNER.tags()}


def test_ignored_tag_keys_travel_lower_cased() -> None:
    result = build(account_config=account(ignored_tag_keys=("CostCenter",)))
    assert isinstance(result, model.DesiredRole)
    assert result.ignored_tag_keys == {"costcenter"}


@pytest.mark.parametrize(
    ("partition", "region"), [("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1")]
)
def test_every_built_arn_takes_the_callers_partition(partition: str, region: str) -> None:
    account_config = account(
        allowed_resource_patterns={
            "team-a": (f"arn:{partition}:secretsmanager:*:{ACCOUNT_ID}:secret:*",)
        }
    )
    secret = f"arn:{partition}:secretsmanager:{region}:{ACCOUNT_ID}:secret:x"
    result = build(
        {
            "permissions": {"secretArns": [secret], "createLogGroups": True},
            "trust": {"sourceArns": [f"arn:{partition}:ecs:{region}:{ACCOUNT_ID}:*"]},
        },
        account_config=account_config,
        partition=partition,
    )
    assert isinstance(result, model.DesiredRole), result
    assert result.managed_policy_arns == {
        f"arn:{partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    }
    assert result.arn.startswith(f"arn:{partition}:iam::")
    statements = result.inline_policies["ecsrole-permissions"]["Statement"]
    assert statements[-1]["Resource"] == [f"arn:{partition}:logs:*:{ACCOUNT_ID}:log-group:*"]
    wrong = build(
        {"permissions": {"secretArns": [SECRET]}}, account_config=account(), partition=partition
    )
    assert isinstance(wrong, model.Refusal)
    assert wrong.reason == "PermissionNotAllowed"


# -- trust -----------------------------------------------------------------------------------


def test_confused_deputy_conditions() -> None:
    role = desired_role(
        trust={
            "sourceAccounts": [ACCOUNT_ID, ACCOUNT_ID],
            "sourceArns": [ECS_SOURCE_ARN, f"arn:aws:ecs:eu-west-1:{ACCOUNT_ID}:cluster/a"],
        }
    )
    statement = role.trust_policy["Statement"][0]
    assert {k: v for k, v in statement.items() if k != "Condition"} == DESIGN_TRUST["Statement"][0]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": [ACCOUNT_ID]},
        "ArnLike": {
            "aws:SourceArn": sorted(
                [ECS_SOURCE_ARN, f"arn:aws:ecs:eu-west-1:{ACCOUNT_ID}:cluster/a"]
            )
        },
    }


def test_only_source_accounts_gives_only_string_equals() -> None:
    condition = desired_role(trust={"sourceAccounts": [ACCOUNT_ID]}).trust_policy["Statement"][0][
        "Condition"
    ]
    assert condition == {"StringEquals": {"aws:SourceAccount": [ACCOUNT_ID]}}


@pytest.mark.parametrize(
    ("trust", "field", "message"),
    [
        ({"sourceAccounts": [OTHER_ACCOUNT_ID]}, "spec.trust.sourceAccounts[0]", "own account"),
        (
            {"sourceArns": ["arn:aws:ecs:us-east-1:*:*"]},
            "spec.trust.sourceArns[0]",
            "without wildcards",
        ),
        (
            {"sourceArns": [f"arn:aws:ecs:us-east-1:{OTHER_ACCOUNT_ID}:*"]},
            "spec.trust.sourceArns[0]",
            "own account",
        ),
        (
            {"sourceArns": ["arn:aws:ecs:us-east-1:1111111111*:*"]},
            "spec.trust.sourceArns[0]",
            "own account",
        ),
        (
            {"sourceArns": [f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:*"]},
            "spec.trust.sourceArns[0]",
            "not an ECS ARN",
        ),
        (
            {"sourceArns": [f"arn:aws-cn:ecs:cn-north-1:{ACCOUNT_ID}:*"]},
            "spec.trust.sourceArns[0]",
            "partition aws",
        ),
        ({"sourceArns": [f"arn:aws:ecs::{ACCOUNT_ID}:*"]}, "spec.trust.sourceArns[0]", "region"),
        (
            {"sourceArns": [f"arn:aws:ecs:US EAST:{ACCOUNT_ID}:*"]},
            "spec.trust.sourceArns[0]",
            "region",
        ),
    ],
)
def test_trust_conditions_only_name_the_roles_own_account(
    trust: dict[str, Any], field: str, message: str
) -> None:
    result = refusal({"trust": trust})
    assert result.reason == "InvalidSpec"
    assert result.message.startswith(f"{field}: ")
    assert message in result.message


def test_wildcard_region_in_source_arn_is_accepted() -> None:
    assert desired_role(trust={"sourceArns": [f"arn:aws:ecs:*:{ACCOUNT_ID}:*"]})


def test_trust_policy_size_limit() -> None:
    arns = [f"arn:aws:ecs:us-east-1:{ACCOUNT_ID}:task/cluster-{i:04d}/*" for i in range(100)]
    result = refusal({"trust": {"sourceArns": arns}})
    assert result.reason == "InvalidSpec"
    assert result.message.startswith("spec.trust: ")


# -- managed policies ------------------------------------------------------------------------


def test_allowed_additional_policies_are_attached_with_the_seed() -> None:
    team_policy = f"arn:aws:iam::{ACCOUNT_ID}:policy/team-a/read"
    role = desired_role(additionalPolicyArns=[READONLY_POLICY, team_policy, READONLY_POLICY])
    assert role.managed_policy_arns == {SEED_POLICY, READONLY_POLICY, team_policy}


def test_seed_policy_is_always_allowed() -> None:
    role = desired_role(additionalPolicyArns=[SEED_POLICY])
    assert role.managed_policy_arns == {SEED_POLICY}


def test_policy_not_in_allowed_list_is_refused() -> None:
    result = refusal({"additionalPolicyArns": [READONLY_POLICY, ADMIN_POLICY]})
    assert result.reason == "PolicyNotAllowed"
    assert result.message.startswith("spec.additionalPolicyArns[1]: ")
    assert ADMIN_POLICY in result.message


def test_no_policy_is_allowed_by_default() -> None:
    result = refusal(
        {"additionalPolicyArns": [READONLY_POLICY]}, account_config=account(allowed_policy_arns=())
    )
    assert result.reason == "PolicyNotAllowed"


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        ("arn:aws-cn:iam::aws:policy/ReadOnlyAccess", "partition aws"),
        (
            f"arn:aws:iam::{OTHER_ACCOUNT_ID}:policy/team-a/read",
            "AWS managed policy or a policy of account",
        ),
    ],
)
def test_policy_from_elsewhere_is_invalid(arn: str, message: str) -> None:
    result = refusal(
        {"additionalPolicyArns": [arn]}, account_config=account(allowed_policy_arns=("*",))
    )
    assert result.reason == "InvalidSpec"
    assert message in result.message


# -- path and boundary -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/other/", "/ECS/", "/ecsx/"])
def test_path_must_sit_under_the_account_prefix(path: str) -> None:
    result = refusal({"path": path})
    assert result.reason == "InvalidSpec"
    assert result.message.startswith("spec.path: ")
    assert "/ecs/" in result.message


def test_deeper_path_is_fine() -> None:
    assert desired_role(path="/ecs/web/").path == "/ecs/web/"


def test_account_boundary_applies_when_spec_has_none() -> None:
    result = build(account_config=account(permissions_boundary_arn=BOUNDARY))
    assert isinstance(result, model.DesiredRole)
    assert result.permissions_boundary_arn == BOUNDARY


def test_spec_boundary_must_equal_the_accounts() -> None:
    other = f"arn:aws:iam::{ACCOUNT_ID}:policy/other"
    ok = build(
        {"permissionsBoundaryArn": BOUNDARY},
        account_config=account(permissions_boundary_arn=BOUNDARY),
    )
    assert isinstance(ok, model.DesiredRole)
    result = refusal(
        {"permissionsBoundaryArn": other}, account_config=account(permissions_boundary_arn=BOUNDARY)
    )
    assert result.reason == "InvalidSpec"
    assert result.message.startswith("spec.permissionsBoundaryArn: ")


def test_spec_boundary_without_account_boundary() -> None:
    assert desired_role(permissionsBoundaryArn=BOUNDARY).permissions_boundary_arn == BOUNDARY
    aws_managed = "arn:aws:iam::aws:policy/PowerUserAccess"
    assert desired_role(permissionsBoundaryArn=aws_managed).permissions_boundary_arn == aws_managed


@pytest.mark.parametrize(
    "boundary",
    [f"arn:aws-cn:iam::{ACCOUNT_ID}:policy/b", f"arn:aws:iam::{OTHER_ACCOUNT_ID}:policy/b"],
)
def test_spec_boundary_from_elsewhere_is_invalid(boundary: str) -> None:
    assert refusal({"permissionsBoundaryArn": boundary}).reason == "InvalidSpec"


# -- permissions extras ----------------------------------------------------------------------


def test_permissions_render_one_inline_policy() -> None:
    role = desired_role(
        permissions={
            "secretArns": [SECRET, SECRET],
            "parameterArns": [PARAMETER],
            "kmsKeyArns": [KMS_KEY],
            "createLogGroups": True,
        }
    )
    assert list(role.inline_policies) == ["ecsrole-permissions"]
    assert role.inline_policies["ecsrole-permissions"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [SECRET],
            },
            {
                "Sid": "ReadParameters",
                "Effect": "Allow",
                "Action": ["ssm:GetParameters"],
                "Resource": [PARAMETER],
            },
            {
                "Sid": "DecryptWithKeys",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": [KMS_KEY],
            },
            {
                "Sid": "CreateLogGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup"],
                "Resource": [f"arn:aws:logs:*:{ACCOUNT_ID}:log-group:*"],
            },
        ],
    }


def test_only_declared_extras_are_rendered() -> None:
    role = desired_role(permissions={"createLogGroups": True})
    statements = role.inline_policies["ecsrole-permissions"]["Statement"]
    assert [s["Sid"] for s in statements] == ["CreateLogGroups"]
    assert desired_role(permissions={"createLogGroups": False}).inline_policies == {}


def test_secret_random_suffix_wildcard_is_the_one_wildcard_allowed() -> None:
    arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:team-a/db-??????"
    role = desired_role(permissions={"secretArns": [arn]})
    assert role.inline_policies["ecsrole-permissions"]["Statement"][0]["Resource"] == [arn]


P = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:"


@pytest.mark.parametrize(
    ("field", "arn", "reason", "message"),
    [
        ("secretArns", P + "team-a/*", "PermissionNotAllowed", "wildcard"),
        ("secretArns", P + "team-a/db-?????", "PermissionNotAllowed", "wildcard"),
        ("secretArns", P + "team-a/?b-AbCdEf", "PermissionNotAllowed", "wildcard"),
        (
            "secretArns",
            f"arn:aws:secretsmanager:*:{ACCOUNT_ID}:secret:team-a/db",
            "PermissionNotAllowed",
            "wildcard",
        ),
        (
            "secretArns",
            f"arn:aws:secretsmanager:us-east-1:{OTHER_ACCOUNT_ID}:secret:team-a/db",
            "PermissionNotAllowed",
            f"account {ACCOUNT_ID}",
        ),
        (
            "secretArns",
            "arn:aws:secretsmanager:us-east-1:*:secret:team-a/db",
            "PermissionNotAllowed",
            f"account {ACCOUNT_ID}",
        ),
        (
            "secretArns",
            f"arn:aws-cn:secretsmanager:cn-north-1:{ACCOUNT_ID}:secret:team-a/db",
            "PermissionNotAllowed",
            "partition",
        ),
        ("secretArns", P + "team-b/db", "PermissionNotAllowed", "not allowed for namespace team-a"),
        ("secretArns", PARAMETER, "InvalidSpec", "not a secretsmanager ARN"),
        (
            "secretArns",
            f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:rotation:team-a/db",
            "InvalidSpec",
            "must name a secret",
        ),
        ("secretArns", P + "team-a/d b", "InvalidSpec", "invalid secret name"),
        (
            "secretArns",
            f"arn:aws:secretsmanager::{ACCOUNT_ID}:secret:team-a/db",
            "InvalidSpec",
            "must name a region",
        ),
        (
            "parameterArns",
            f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter/team-a/*",
            "PermissionNotAllowed",
            "wildcard",
        ),
        (
            "parameterArns",
            f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter//team-a/x",
            "InvalidSpec",
            "leading slash",
        ),
        (
            "parameterArns",
            f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:document/team-a/x",
            "InvalidSpec",
            "must name a parameter",
        ),
        (
            "parameterArns",
            f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter/team-b/x",
            "PermissionNotAllowed",
            "not allowed",
        ),
        ("kmsKeyArns", f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:alias/team-a", "InvalidSpec", "alias"),
        (
            "kmsKeyArns",
            f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/*",
            "PermissionNotAllowed",
            "wildcard",
        ),
        (
            "kmsKeyArns",
            f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/",
            "InvalidSpec",
            "must name a KMS key",
        ),
        ("kmsKeyArns", SECRET, "InvalidSpec", "not a kms ARN"),
    ],
)
def test_permission_arns_must_be_the_roles_own_and_allowed(
    field: str, arn: str, reason: str, message: str
) -> None:
    result = refusal(
        {"permissions": {field: [SECRET if field == "secretArns" else arn, arn]}}
        if field == "secretArns"
        else {"permissions": {field: [arn]}}
    )
    assert result.reason == reason
    index = 1 if field == "secretArns" else 0
    assert result.message.startswith(f"spec.permissions.{field}[{index}]: ")
    assert message in result.message


def test_permission_refusal_never_shows_the_accounts_patterns() -> None:
    result = refusal({"permissions": {"secretArns": [P + "team-b/db"]}})
    assert "team-b/*" not in result.message
    assert "team-a/*" not in result.message
    assert P + "team-b/db" in result.message


def test_patterns_follow_the_namespace() -> None:
    team_b_secret = P + "team-b/db"
    ok = build({"permissions": {"secretArns": [team_b_secret]}}, namespace="team-b-prod")
    assert isinstance(ok, model.DesiredRole)
    no = build({"permissions": {"secretArns": [P + "team-a/db"]}}, namespace="team-b-prod")
    assert isinstance(no, model.Refusal)
    assert no.reason == "PermissionNotAllowed"


def test_no_patterns_means_no_permissions() -> None:
    result = refusal(
        {"permissions": {"secretArns": [SECRET]}},
        account_config=account(allowed_resource_patterns={}),
    )
    assert result.reason == "PermissionNotAllowed"


def test_inline_policy_size_limit() -> None:
    secrets = [P + f"team-a/{'s' * 80}-{i:04d}" for i in range(120)]
    result = refusal({"permissions": {"secretArns": secrets}})
    assert result.reason == "InvalidSpec"
    assert result.message.startswith("spec.permissions: ")


# -- other refusals and caller mistakes ------------------------------------------------------


def test_namespace_not_listed_for_the_account() -> None:
    result = refusal({}, namespace="team-c")
    assert result.reason == "AccountNotAllowed"
    assert "team-c" in result.message


def test_directly_built_invalid_spec_is_refused_not_raised() -> None:
    bad = spec.RoleSpec(account_id=ACCOUNT_ID, role_name="web", path="/ecs/", tags={"aws:x": "1"})
    result = desired.build_desired(bad, account(), namespace="team-a", partition="aws", owner=OWNER)
    assert isinstance(result, model.Refusal)
    assert result.reason == "InvalidSpec"
    assert result.message.startswith("spec.tags.aws:x: ")


def test_account_entry_for_another_account_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="account entry"):
        desired.build_desired(
            role_spec(),
            account(account_id=OTHER_ACCOUNT_ID),
            namespace="team-a",
            partition="aws",
            owner=OWNER,
        )


def test_malformed_partition_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="partition"):
        desired.build_desired(
            role_spec(), account(), namespace="team-a", partition="AWS", owner=OWNER
        )


def test_refusal_reasons_are_strings_usable_as_condition_reasons() -> None:
    result = refusal({"additionalPolicyArns": [ADMIN_POLICY]})
    assert isinstance(result.reason, str)
    assert result.reason == "PolicyNotAllowed"
