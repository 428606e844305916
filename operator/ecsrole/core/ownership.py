"""Who owns a role, and which roles may never be adopted (DESIGN section 3).

Ownership needs two proofs: the ownership tags name this cluster and this very object (uid
included), AND the role id equals the one recorded in status at creation or adoption. Tags alone
are not enough: anyone with iam:TagRole could copy them onto another role and have the operator
take it over, rewrite its trust, or delete it.

One rule decides at reconcile and at deletion (`standing`): a resource that has recorded a role
id accepts that role and no other, whatever another role's tags say; only while no id is
recorded may a role carrying this object's tags be taken as the one it created just before a
crash.

Refusal messages name only the role the resource itself asked for, never another tenant's
object: a role owned by someone else is "owned by another EcsExecutionRole or cluster".
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from enum import StrEnum

from ecsrole.core import config, desired, iam, model, policy
from ecsrole.core.constants import RESERVED_PATH_PREFIXES as PROTECTED_PATH_PREFIXES

#: Role names AWS or AWS Organizations create for their own use, compared case-insensitively.
PROTECTED_ROLE_NAMES = ("OrganizationAccountAccessRole",)
#: Role name prefixes of IAM Identity Center (SSO) roles and of service-linked roles.
PROTECTED_ROLE_NAME_PREFIXES = ("AWSReservedSSO_", "AWSServiceRoleFor")
#: How far a role's CreateDate may precede its resource's creationTimestamp (clock skew between
#: the API server and IAM) and still count as created by this resource before a crash.
CREATE_CLOCK_SKEW = datetime.timedelta(seconds=30)


class Standing(StrEnum):
    """What an existing role with the resource's role name is to that resource."""

    #: Its id is the recorded one and its ownership tags name this object: act on it.
    OWNED = "Owned"
    #: No id recorded yet, and the role is the one this object created just before a crash.
    CREATED_BEFORE_CRASH = "CreatedBeforeCrash"
    #: An id is recorded and this is not that role, or its ownership tags no longer name this
    #: object: never written to, never deleted (RoleExistsNotOwned).
    NOT_THE_RECORDED_ROLE = "NotTheRecordedRole"
    #: No id recorded and not created by this object: adopt it (when allowed) or refuse.
    UNCLAIMED = "Unclaimed"

    @property
    def is_ours(self) -> bool:
        return self in (Standing.OWNED, Standing.CREATED_BEFORE_CRASH)


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


def created_before_crash(
    observed: model.ObservedRole,
    owner: model.Owner,
    *,
    resource_created: datetime.datetime | None,
    path: str,
) -> bool:
    """CreateRole, then a crash before status.roleId was written: the role carries this object's
    ownership tags (its uid among them), sits at the spec's path, and is no older than the
    object. Only meaningful while no id is recorded (see `standing`)."""
    if observed.path != path or not ownership_tags_match(observed, owner):
        return False
    created = observed.create_date
    if resource_created is None or not isinstance(created, datetime.datetime):
        return False
    return created >= resource_created - CREATE_CLOCK_SKEW


class Proof(StrEnum):
    """What ownership is judged on."""

    #: The operator: the ownership tags, uid included, and the recorded role id.
    TAGS_AND_RECORDED_ID = "TagsAndRecordedId"
    #: `ecsrole diff` on a manifest never applied: it has no uid and no status yet, so its
    #: role is the one whose cluster, namespace and name tags name it. Never enough to write.
    TAGS_WITHOUT_UID = "TagsWithoutUid"


def standing(
    observed: model.ObservedRole,
    owner: model.Owner,
    recorded_role_id: str | None,
    *,
    resource_created: datetime.datetime | None,
    path: str,
    proof: Proof = Proof.TAGS_AND_RECORDED_ID,
) -> Standing:
    """The one ownership rule, used before any write, at deletion and by `ecsrole diff`.

    A recorded id is authoritative: once a resource recorded its role, a role of the same name
    with another id (deleted and re-created by hand, ownership tags copied or not) is never its
    own, and neither is its own role once its ownership tags name someone else. The
    crash-recovery claim applies only while no id is recorded.
    """
    if proof == Proof.TAGS_WITHOUT_UID:
        owned = ownership_tags_match_without_uid(observed, owner)
        return Standing.OWNED if owned else Standing.UNCLAIMED
    if recorded_role_id:
        if is_owned(observed, owner, recorded_role_id):
            return Standing.OWNED
        return Standing.NOT_THE_RECORDED_ROLE
    if created_before_crash(observed, owner, resource_created=resource_created, path=path):
        return Standing.CREATED_BEFORE_CRASH
    return Standing.UNCLAIMED


def not_the_recorded_role_message(
    observed: model.ObservedRole, recorded_role_id: str, account_id: str
) -> str:
    """RoleExistsNotOwned's message for a resource whose recorded role was replaced or retagged."""
    role = observed.role_name
    if observed.role_id != recorded_role_id:
        return (
            f"role {role} in account {account_id} has id {observed.role_id}, not the id "
            f"{recorded_role_id} this resource recorded: it was deleted and re-created outside "
            "the operator, so nothing is written to it and deleting this resource leaves it "
            "alone. Delete that role to have it reported missing (and re-created under "
            "driftPolicy Enforce), or delete this resource"
        )
    return (
        f"the ownership tags (ecsrole.dev/*) of role {role} in account {account_id} no longer "
        "name this resource: they were changed outside the operator, so nothing is written to "
        "the role and deleting this resource leaves it alone. Put this resource's ownership "
        "tags back, or delete this resource"
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
        return model.Refusal(model.ReadyReason.AdoptionRefused, f"role {role} {why}")

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
