"""Small builders shared by the unit tests: one valid baseline, overridden per test."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecsrole.core import config, desired, model, policy, spec

ACCOUNT_ID = "111111111111"
OTHER_ACCOUNT_ID = "999999999999"
NAMESPACE = "team-a"
REGION = "us-east-1"
SEED_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
READONLY_POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
BOUNDARY = f"arn:aws:iam::{ACCOUNT_ID}:policy/ecs-boundary"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:team-a/db-AbCdEf"
PARAMETER = f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/team-a/db/host"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ECS_SOURCE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:*"

OWNER = model.Owner(cluster="prod-eu-1", namespace=NAMESPACE, name="web", uid="uid-1234")


def account(**overrides: Any) -> config.AccountConfig:
    """An account that lets team-a manage roles under /ecs/ and read its own secrets."""
    values: dict[str, Any] = {
        "account_id": ACCOUNT_ID,
        "namespaces": (NAMESPACE, "team-b-*"),
        "role_path_prefix": "/ecs/",
        "allowed_policy_arns": (READONLY_POLICY, f"arn:aws:iam::{ACCOUNT_ID}:policy/team-a/*"),
        "allowed_resource_patterns": {
            NAMESPACE: (
                f"arn:aws:secretsmanager:*:{ACCOUNT_ID}:secret:team-a/*",
                f"arn:aws:ssm:*:{ACCOUNT_ID}:parameter/team-a/*",
                f"arn:aws:kms:*:{ACCOUNT_ID}:key/*",
            ),
            "team-b-*": (f"arn:aws:secretsmanager:*:{ACCOUNT_ID}:secret:team-b/*",),
        },
    }
    values.update(overrides)
    return config.AccountConfig(**values)


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """A minimal valid spec (camelCase, as the API server stores it)."""
    values: dict[str, Any] = {"accountId": ACCOUNT_ID, "roleName": "web-exec", "path": "/ecs/"}
    values.update(overrides)
    return values


def role_spec(**overrides: Any) -> spec.RoleSpec:
    return spec.parse_spec(spec_dict(**overrides))


def build(
    spec_overrides: Mapping[str, Any] | None = None,
    *,
    account_config: config.AccountConfig | None = None,
    namespace: str = NAMESPACE,
    partition: str = "aws",
) -> model.DesiredRole | model.Refusal:
    return desired.build_desired(
        role_spec(**(spec_overrides or {})),
        account_config or account(),
        namespace=namespace,
        partition=partition,
        owner=OWNER,
    )


def desired_role(**spec_overrides: Any) -> model.DesiredRole:
    result = build(spec_overrides)
    assert isinstance(result, model.DesiredRole), result
    return result


def observed_from(role: model.DesiredRole, **overrides: Any) -> model.ObservedRole:
    """The observed role that exactly matches `role`, as IAM would report it after creation."""
    values: dict[str, Any] = {
        "arn": role.arn,
        "role_id": "AROAEXAMPLEID",
        "role_name": role.role_name,
        "path": role.path,
        "description": role.description or None,
        "max_session_duration": role.max_session_duration,
        "permissions_boundary_arn": role.permissions_boundary_arn,
        "trust_policy": policy.dumps(role.trust_policy),
        "managed_policy_arns": role.managed_policy_arns,
        "inline_policies": {name: policy.dumps(doc) for name, doc in role.inline_policies.items()},
        "tags": dict(role.tags),
        "instance_profile_names": (),
    }
    values.update(overrides)
    return model.ObservedRole(**values)


def seed_trust(**statement_overrides: Any) -> dict[str, Any]:
    """DESIGN section 1's trust policy, optionally with statement elements replaced."""
    statement: dict[str, Any] = {
        "Sid": "",
        "Effect": "Allow",
        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    statement.update(statement_overrides)
    return {"Version": "2012-10-17", "Statement": [statement]}
