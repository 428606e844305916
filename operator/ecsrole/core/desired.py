"""Spec + account configuration -> the role that must exist, or why it must not.

This is where tenancy is enforced: whatever a namespace's users write in a spec, the role built
here can only be assumed by ECS tasks, only carries the seed policy plus policies the account
allows, and only reads secrets, parameters and keys the namespace's `allowedResourcePatterns`
grant. Refusal messages name the offending field and value, never the patterns of the account
(which may belong to other tenants).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ecsrole.core import config, iam, model, policy, spec

ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"
INLINE_POLICY_NAME = "ecsrole-permissions"
#: IAM's limit on a trust policy (the default quota is 2048, raisable to 4096), not counting
#: whitespace. Many sourceArns can exceed it; refusing here beats LimitExceeded mid-plan.
MAX_TRUST_POLICY_LENGTH = 4096
#: IAM's limit on the aggregate size of a role's inline policies, not counting whitespace.
MAX_INLINE_POLICIES_LENGTH = 10240

_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]+")
#: Secrets Manager appends "-" and six random characters to a secret's ARN; this suffix is the
#: documented way to name a secret in a policy without knowing them.
_ARN_SUFFIX_WILDCARD = "-??????"
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-/]+")
_KMS_KEY_ID = re.compile(r"[A-Za-z0-9-]+")
_SOURCE_ARN_REGION = re.compile(r"[a-z0-9*?-]+")


def execution_role_policy_arn(partition: str) -> str:
    """The AWS managed policy every execution role carries, in `partition`."""
    return f"arn:{partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def log_group_resource(partition: str, account_id: str) -> str:
    """The resource logs:CreateLogGroup is granted on: any log group in any region of the account.

    The awslogs driver creates the group named in a task definition, which the role cannot know
    in advance; creating a log group grants no access to existing ones, and scoping to the
    account keeps the grant from reaching anywhere else.
    """
    return f"arn:{partition}:logs:*:{account_id}:log-group:*"


def trust_policy(
    source_accounts: Iterable[str] = (), source_arns: Iterable[str] = ()
) -> dict[str, Any]:
    """DESIGN section 1's trust policy, plus the confused-deputy conditions when declared."""
    statement: dict[str, Any] = {
        "Sid": "",
        "Effect": "Allow",
        "Principal": {"Service": ECS_TASKS_SERVICE},
        "Action": "sts:AssumeRole",
    }
    condition: dict[str, Any] = {}
    if accounts := sorted(set(source_accounts)):
        condition["StringEquals"] = {"aws:SourceAccount": accounts}
    if arns := sorted(set(source_arns)):
        condition["ArnLike"] = {"aws:SourceArn": arns}
    if condition:
        statement["Condition"] = condition
    return {"Version": policy.DEFAULT_VERSION, "Statement": [statement]}


def permissions_policy(
    permissions: spec.PermissionsSpec, *, partition: str, account_id: str
) -> dict[str, Any] | None:
    """The `ecsrole-permissions` inline policy, or None when no extra is declared."""
    grants = (
        ("ReadSecrets", "secretsmanager:GetSecretValue", permissions.secret_arns),
        ("ReadParameters", "ssm:GetParameters", permissions.parameter_arns),
        ("DecryptWithKeys", "kms:Decrypt", permissions.kms_key_arns),
        (
            "CreateLogGroups",
            "logs:CreateLogGroup",
            (log_group_resource(partition, account_id),) if permissions.create_log_groups else (),
        ),
    )
    statements = [
        {"Sid": sid, "Effect": "Allow", "Action": [action], "Resource": sorted(set(resources))}
        for sid, action, resources in grants
        if resources
    ]
    if not statements:
        return None
    return {"Version": policy.DEFAULT_VERSION, "Statement": statements}


def build_desired(
    role_spec: spec.RoleSpec,
    account: config.AccountConfig,
    *,
    namespace: str,
    partition: str,
    owner: model.Owner,
) -> model.DesiredRole | model.Refusal:
    """The role `role_spec` declares in `account`, or the first reason to refuse it.

    `partition` is the partition of the account's caller identity: every ARN built or accepted
    here must be in it. Raises ValueError only for the caller's mistakes (an account entry for
    another account, a malformed partition), which no spec can cause.
    """
    if account.account_id != role_spec.account_id:
        raise ValueError(
            f"account entry {account.account_id} passed for spec.accountId {role_spec.account_id}"
        )
    if not iam.is_partition(partition):
        raise ValueError(f"not an AWS partition: {partition!r}")
    try:
        return _build(role_spec, account, namespace=namespace, partition=partition, owner=owner)
    except _RefusedError as refused:
        return refused.refusal


class _RefusedError(Exception):
    """Carries a Refusal out of the nested checks, so each check reads as one line."""

    def __init__(self, reason: model.ReadyReason, field: str, message: str) -> None:
        super().__init__(message)
        self.refusal = model.Refusal(reason=reason, message=f"{field}: {message}", field=field)


def _invalid(field: str, message: str) -> _RefusedError:
    return _RefusedError(model.ReadyReason.InvalidSpec, field, message)


def _build(
    role_spec: spec.RoleSpec,
    account: config.AccountConfig,
    *,
    namespace: str,
    partition: str,
    owner: model.Owner,
) -> model.DesiredRole:
    try:
        spec.check(role_spec)
    except spec.SpecError as error:
        raise _invalid(error.field, error.message) from None
    if not account.allows_namespace(namespace):
        raise _RefusedError(
            model.ReadyReason.AccountNotAllowed,
            "spec.accountId",
            f"namespace {namespace} may not manage roles in account {account.account_id}",
        )
    if not iam.is_path_under(role_spec.path, account.role_path_prefix):
        raise _invalid(
            "spec.path",
            f"{role_spec.path} must sit under the account's role path prefix "
            f"{account.role_path_prefix}",
        )
    account_id = role_spec.account_id
    trust = trust_policy(
        _source_accounts(role_spec.trust.source_accounts, account_id),
        _source_arns(role_spec.trust.source_arns, partition=partition, account_id=account_id),
    )
    if _policy_length(trust) > MAX_TRUST_POLICY_LENGTH:
        raise _invalid(
            "spec.trust",
            f"the trust policy would exceed IAM's {MAX_TRUST_POLICY_LENGTH} characters; "
            "use fewer or broader sourceArns",
        )
    managed = frozenset(
        {execution_role_policy_arn(partition)}
        | _additional_policies(role_spec.additional_policy_arns, account, partition=partition)
    )
    _check_permissions(role_spec, account, namespace=namespace, partition=partition)
    inline: dict[str, dict[str, Any]] = {}
    document = permissions_policy(role_spec.permissions, partition=partition, account_id=account_id)
    if document is not None:
        if _policy_length(document) > MAX_INLINE_POLICIES_LENGTH:
            raise _invalid(
                "spec.permissions",
                f"the permissions would exceed IAM's {MAX_INLINE_POLICIES_LENGTH} characters of "
                "inline policy per role; use fewer ARNs",
            )
        inline[INLINE_POLICY_NAME] = document
    return model.DesiredRole(
        account_id=account_id,
        partition=partition,
        role_name=role_spec.role_name,
        path=role_spec.path,
        description=role_spec.description,
        max_session_duration=role_spec.max_session_duration,
        permissions_boundary_arn=_boundary(role_spec, account, partition=partition),
        trust_policy=trust,
        managed_policy_arns=managed,
        inline_policies=inline,
        tags={**role_spec.tags, **owner.tags()},
        ignored_tag_keys=frozenset(key.lower() for key in account.ignored_tag_keys),
    )


def _policy_length(document: dict[str, Any]) -> int:
    return sum(1 for char in policy.dumps(document) if not char.isspace())


def _source_accounts(accounts: Sequence[str], account_id: str) -> tuple[str, ...]:
    for index, source_account in enumerate(accounts):
        if source_account != account_id:
            raise _invalid(
                f"spec.trust.sourceAccounts[{index}]",
                f"must be the role's own account {account_id} (ECS tasks of other accounts "
                "cannot be trusted)",
            )
    return tuple(accounts)


def _source_arns(arns: Sequence[str], *, partition: str, account_id: str) -> tuple[str, ...]:
    for index, text in enumerate(arns):
        field = f"spec.trust.sourceArns[{index}]"
        arn = iam.parse_arn(text)
        if arn is None:
            raise _invalid(field, f"{text!r} is not an ARN")
        if arn.partition != partition:
            raise _invalid(field, f"{text} is not in the account's partition {partition}")
        if arn.service != "ecs":
            raise _invalid(field, f"{text} is not an ECS ARN (arn:{partition}:ecs:...)")
        if arn.account != account_id:
            raise _invalid(
                field, f"{text} must be in the role's own account {account_id}, without wildcards"
            )
        if _SOURCE_ARN_REGION.fullmatch(arn.region) is None:
            raise _invalid(field, f"{text} has no valid region (a region name or a wildcard)")
    return tuple(arns)


def _additional_policies(
    arns: Sequence[str], account: config.AccountConfig, *, partition: str
) -> frozenset[str]:
    seed = execution_role_policy_arn(partition)
    for index, arn in enumerate(arns):
        field = f"spec.additionalPolicyArns[{index}]"
        parsed = iam.parse_policy_arn(arn)
        if isinstance(parsed, str):
            raise _invalid(field, parsed)
        if parsed.partition != partition:
            raise _invalid(field, f"{arn} is not in the account's partition {partition}")
        if parsed.account not in ("aws", account.account_id):
            raise _invalid(
                field,
                f"{arn} must be an AWS managed policy or a policy of account {account.account_id}",
            )
        if arn != seed and not account.policy_allowed(arn):
            raise _RefusedError(
                model.ReadyReason.PolicyNotAllowed,
                field,
                f"{arn} is not allowed in account {account.account_id} (allowedPolicyArns)",
            )
    return frozenset(arns)


def _boundary(
    role_spec: spec.RoleSpec, account: config.AccountConfig, *, partition: str
) -> str | None:
    declared = role_spec.permissions_boundary_arn
    required = account.permissions_boundary_arn
    if required is not None:
        if declared is not None and declared != required:
            raise _invalid(
                "spec.permissionsBoundaryArn",
                f"must be {required}, the boundary configured for account {account.account_id} "
                "(or be omitted)",
            )
        return required
    if declared is not None:
        parsed = iam.parse_policy_arn(declared)
        if isinstance(parsed, str):
            raise _invalid("spec.permissionsBoundaryArn", parsed)
        if parsed.partition != partition:
            raise _invalid(
                "spec.permissionsBoundaryArn",
                f"{declared} is not in the account's partition {partition}",
            )
        if parsed.account not in ("aws", account.account_id):
            raise _invalid(
                "spec.permissionsBoundaryArn",
                f"{declared} must be an AWS managed policy or a policy of account "
                f"{account.account_id}",
            )
    return declared


# -- permissions extras ------------------------------------------------------------------------


def _check_permissions(
    role_spec: spec.RoleSpec, account: config.AccountConfig, *, namespace: str, partition: str
) -> None:
    patterns = account.resource_patterns_for(namespace)
    permissions = role_spec.permissions
    for field, service, arns in (
        ("spec.permissions.secretArns", "secretsmanager", permissions.secret_arns),
        ("spec.permissions.parameterArns", "ssm", permissions.parameter_arns),
        ("spec.permissions.kmsKeyArns", "kms", permissions.kms_key_arns),
    ):
        for index, arn in enumerate(arns):
            _check_resource_arn(
                arn,
                field=f"{field}[{index}]",
                service=service,
                partition=partition,
                account_id=role_spec.account_id,
                patterns=patterns,
                namespace=namespace,
            )


def _check_resource_arn(
    text: str,
    *,
    field: str,
    service: str,
    partition: str,
    account_id: str,
    patterns: Sequence[str],
    namespace: str,
) -> None:
    """One ARN of the permissions extras: shape, then tenancy, then the namespace's patterns."""
    not_allowed = model.ReadyReason.PermissionNotAllowed
    arn = iam.parse_arn(text)
    if arn is None:
        raise _invalid(field, f"{text!r} is not an ARN")
    if arn.service != service:
        raise _invalid(field, f"{text} is not a {service} ARN")
    if arn.partition != partition:
        raise _RefusedError(
            not_allowed, field, f"{text} is not in the account's partition {partition}"
        )
    if arn.account != account_id:
        raise _RefusedError(not_allowed, field, f"{text} is not in the role's account {account_id}")
    if _has_wildcard(arn, service):
        raise _RefusedError(
            not_allowed,
            field,
            f"{text} contains a wildcard (only a Secrets Manager ARN's -?????? suffix may)",
        )
    if not iam.is_region(arn.region):
        raise _invalid(field, f"{text} must name a region")
    problem = _resource_shape_problem(service, arn.resource)
    if problem is not None:
        raise _invalid(field, f"{text} {problem}")
    if not any(_matches(text, pattern) for pattern in patterns):
        raise _RefusedError(
            not_allowed,
            field,
            f"{text} is not allowed for namespace {namespace} "
            f"(no allowedResourcePatterns entry of account {account_id} matches it)",
        )


def _has_wildcard(arn: iam.Arn, service: str) -> bool:
    resource = arn.resource
    if service == "secretsmanager" and resource.endswith(_ARN_SUFFIX_WILDCARD):
        resource = resource[: -len(_ARN_SUFFIX_WILDCARD)]
    return any(char in "*?" for part in (arn.region, resource) for char in part)


def _resource_shape_problem(service: str, resource: str) -> str | None:
    kind, _, name = resource.partition("/" if service != "secretsmanager" else ":")
    if service == "secretsmanager":
        if kind != "secret":
            return "must name a secret (...:secret:<name>)"
        if name.endswith(_ARN_SUFFIX_WILDCARD):
            name = name[: -len(_ARN_SUFFIX_WILDCARD)]
        if _SECRET_NAME.fullmatch(name) is None:
            return "has an invalid secret name"
    elif service == "ssm":
        if (
            kind != "parameter"
            or _PARAMETER_NAME.fullmatch(name) is None
            or name.startswith("/")
            or "//" in name
        ):
            return "must name a parameter (...:parameter/<name>, without a leading slash)"
    elif service == "kms":
        if kind == "alias":
            return (
                "is a KMS alias; kms:Decrypt is authorised on the key, so give the key ARN "
                "(...:key/<key-id>)"
            )
        if kind != "key" or _KMS_KEY_ID.fullmatch(name) is None:
            return "must name a KMS key (...:key/<key-id>)"
    return None


def _matches(arn: str, pattern: str) -> bool:
    # fnmatchcase: IAM-like * and ?, case-sensitive like ARNs, no platform case folding.
    return fnmatch.fnmatchcase(arn, pattern)
