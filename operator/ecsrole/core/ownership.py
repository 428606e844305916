"""Who owns a role, and which roles may never be adopted (DESIGN section 3).

Ownership needs two proofs: the ownership tags name this cluster and this very object (uid
included), AND the role id equals the one recorded in status at creation or adoption. Tags alone
are not enough: anyone with iam:TagRole could copy them onto another role and have the operator
take it over, rewrite its trust, or delete it.

Refusal messages name only the role the resource itself asked for, never another tenant's
object: a role owned by someone else is "owned by another EcsExecutionRole or cluster".
"""

from __future__ import annotations

from collections.abc import Iterable

from ecsrole.core import config, desired, iam, model, policy
from ecsrole.core.constants import RESERVED_PATH_PREFIXES as PROTECTED_PATH_PREFIXES

#: Role names AWS or AWS Organizations create for their own use, compared case-insensitively.
PROTECTED_ROLE_NAMES = ("OrganizationAccountAccessRole",)
#: Role name prefixes of IAM Identity Center (SSO) roles and of service-linked roles.
PROTECTED_ROLE_NAME_PREFIXES = ("AWSReservedSSO_", "AWSServiceRoleFor")


def ownership_tags_match(observed: model.ObservedRole, owner: model.Owner) -> bool:
    """True when the role's ownership tags name exactly this cluster and object."""
    return all(observed.tags.get(key) == value for key, value in owner.tags().items())


def ownership_tags_match_without_uid(observed: model.ObservedRole, owner: model.Owner) -> bool:
    """True when the role's cluster, namespace and name ownership tags name `owner` (uid ignored).

    For judging a manifest that has no uid yet (a file in a pull request, `ecsrole diff`): the
    role counts as this manifest's when it carries the same cluster, namespace and name. Never
    enough to write: the operator itself always needs `is_owned` (uid and role id included).
    """
    wanted = owner.tags()
    return all(
        observed.tags.get(key) == wanted[key]
        for key in (model.TAG_CLUSTER, model.TAG_NAMESPACE, model.TAG_NAME)
    )


def is_owned(
    observed: model.ObservedRole, owner: model.Owner, recorded_role_id: str | None
) -> bool:
    """True when the role is this object's: ownership tags match and the role id is recorded."""
    return (
        recorded_role_id is not None
        and observed.role_id == recorded_role_id
        and ownership_tags_match(observed, owner)
    )


def has_ownership_tags(observed: model.ObservedRole) -> bool:
    """True when any ecsrole.dev/ tag is present, i.e. some operator claims or claimed the role."""
    return any(key.lower().startswith(model.OWNERSHIP_TAG_PREFIX) for key in observed.tags)


def protection_reason(
    role_name: str,
    path: str,
    *,
    config_protected_names: Iterable[str] = (),
    caller_role_name: str | None = None,
    account_map_role_names: Iterable[str] = (),
) -> str | None:
    """Why the role must never be adopted or touched, or None. Names compare case-insensitively."""
    name = role_name.lower()
    if path.startswith(PROTECTED_PATH_PREFIXES):
        return f"its path {path} is reserved for roles AWS manages"
    if name.startswith(tuple(prefix.lower() for prefix in PROTECTED_ROLE_NAME_PREFIXES)):
        return "its name marks a role AWS manages (IAM Identity Center or service-linked)"
    if name in {protected.lower() for protected in PROTECTED_ROLE_NAMES}:
        return "it is the AWS Organizations access role"
    if caller_role_name is not None and name == caller_role_name.lower():
        return "it is the operator's own role"
    if name in {role.lower() for role in account_map_role_names}:
        return "the operator assumes it to reach an account"
    if name in {protected.lower() for protected in config_protected_names}:
        return "it is listed in the operator's protectedRoleNames"
    return None


def is_protected(
    role_name: str,
    path: str,
    *,
    config_protected_names: Iterable[str] = (),
    caller_role_name: str | None = None,
    account_map_role_names: Iterable[str] = (),
) -> bool:
    """True for roles the operator never adopts or touches (see `protection_reason`)."""
    return (
        protection_reason(
            role_name,
            path,
            config_protected_names=config_protected_names,
            caller_role_name=caller_role_name,
            account_map_role_names=account_map_role_names,
        )
        is not None
    )


def trusts_only_ecs_tasks(observed: model.ObservedRole) -> bool:
    """True when the trust policy's Allow statements name ecs-tasks.amazonaws.com and nothing else.

    Compared semantically (via `policy`), so IAM's reformatting does not matter; conditions and
    Deny statements only narrow the trust and are accepted.
    """
    principals = policy.trusted_principals(observed.trust_policy)
    return principals == frozenset({("Service", desired.ECS_TASKS_SERVICE)})


def adoption_refusal(
    observed: model.ObservedRole,
    *,
    account: config.AccountConfig,
    config_protected_names: Iterable[str],
    caller_role_name: str | None,
    account_map_role_names: Iterable[str],
    owner: model.Owner | None = None,
    expected_path: str | None = None,
) -> model.Refusal | None:
    """Why an existing role may not be adopted (AdoptionRefused), or None when it may.

    `owner`, when given, lets a role carrying this very object's ownership tags through (the
    operator crashed between creating it and recording its id); any other ownership tags mean
    the role belongs to another EcsExecutionRole or cluster. `expected_path` is spec.path: IAM
    cannot move a role, so one at another path can never match the spec.
    """
    role = observed.role_name

    def refuse(why: str) -> model.Refusal:
        return model.Refusal(model.RefusalReason.AdoptionRefused, f"role {role} {why}")

    if not account.allow_adoption:
        return refuse(
            f"exists and account {account.account_id} does not allow adoption (allowAdoption)"
        )
    reason = protection_reason(
        role,
        observed.path,
        config_protected_names=config_protected_names,
        caller_role_name=caller_role_name,
        account_map_role_names=account_map_role_names,
    )
    if reason is not None:
        return refuse(f"is protected and is never adopted: {reason}")
    if has_ownership_tags(observed) and (
        owner is None or not ownership_tags_match(observed, owner)
    ):
        return refuse("is owned by another EcsExecutionRole or cluster")
    if not iam.is_path_under(observed.path, account.role_path_prefix):
        return refuse(
            f"is at path {observed.path}, outside the account's role path prefix "
            f"{account.role_path_prefix}"
        )
    if expected_path is not None and observed.path != expected_path:
        return refuse(
            f"is at path {observed.path} but spec.path is {expected_path} (IAM cannot move a role)"
        )
    if not trusts_only_ecs_tasks(observed):
        return refuse(
            f"is not adopted because its trust policy does not name "
            f"{desired.ECS_TASKS_SERVICE} and nothing else"
        )
    return None
