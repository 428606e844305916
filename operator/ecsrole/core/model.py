"""The values the core passes around: desired and observed roles, drift, refusals, operations.

They are frozen dataclasses so that one computed result (ACK's delta) can feed the update, the
status, the metrics and the events without any of them changing it for the others.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ecsrole.core import constants, policy

# core/ownership.py still reads the tag keys as model.*; they are defined in core/constants.py.
from ecsrole.core.constants import OWNERSHIP_TAG_PREFIX as OWNERSHIP_TAG_PREFIX
from ecsrole.core.constants import TAG_CLUSTER as TAG_CLUSTER
from ecsrole.core.constants import TAG_NAME as TAG_NAME
from ecsrole.core.constants import TAG_NAMESPACE as TAG_NAMESPACE

PolicyDocument = dict[str, Any]


class Aspect(StrEnum):
    """One comparable part of a role.

    Values equal the names because they are used verbatim as condition reasons and metric
    labels, which are a public contract (DESIGN sections 2 and 5).
    """

    TrustPolicy = "TrustPolicy"
    ManagedPolicy = "ManagedPolicy"
    InlinePolicy = "InlinePolicy"
    Tags = "Tags"
    Description = "Description"
    MaxSessionDuration = "MaxSessionDuration"
    PermissionsBoundary = "PermissionsBoundary"
    RoleMissing = "RoleMissing"


def ordered(aspects: Iterable[Aspect]) -> tuple[Aspect, ...]:
    """`aspects` in declaration order, so reports and metrics list them the same way each time."""
    wanted = set(aspects)
    return tuple(aspect for aspect in Aspect if aspect in wanted)


class ReadyReason(StrEnum):
    """The reasons of the Ready condition (DESIGN section 2): a public contract, so values equal
    the names. Reconciled is Ready=True; every other one is Ready=False."""

    Reconciled = "Reconciled"
    Creating = "Creating"
    InvalidSpec = "InvalidSpec"
    AccountNotAllowed = "AccountNotAllowed"
    AccountMismatch = "AccountMismatch"
    RoleExistsNotOwned = "RoleExistsNotOwned"
    AdoptionRefused = "AdoptionRefused"
    ConflictingResource = "ConflictingResource"
    PolicyNotAllowed = "PolicyNotAllowed"
    PermissionNotAllowed = "PermissionNotAllowed"
    Paused = "Paused"
    Deleting = "Deleting"
    DeletionBlocked = "DeletionBlocked"
    RoleMissing = "RoleMissing"


class SyncedReason(StrEnum):
    """The reasons of the Synced condition: did the last attempt succeed, and if not, why."""

    ReconcileSuccess = "ReconcileSuccess"
    AccessDenied = "AccessDenied"
    Throttled = "Throttled"
    AwsError = "AwsError"


@dataclass(frozen=True)
class Owner:
    """The EcsExecutionRole a role belongs to, as recorded in the role's ownership tags."""

    cluster: str
    namespace: str
    name: str
    uid: str

    def tags(self) -> dict[str, str]:
        """The ownership tags, passed inside CreateRole so a crash leaves no untagged role."""
        return {
            constants.TAG_CLUSTER: self.cluster,
            constants.TAG_NAMESPACE: self.namespace,
            constants.TAG_NAME: self.name,
            constants.TAG_UID: self.uid,
        }


@dataclass(frozen=True)
class DesiredRole:
    """The role as it must exist in IAM: the complete declared state, nothing implied.

    `ignored_tag_keys` (lower-cased) carries the account's organisation-managed tag keys along
    with the declaration, so that no diff or plan can forget to leave them alone.
    """

    account_id: str
    partition: str
    role_name: str
    path: str
    description: str
    max_session_duration: int
    permissions_boundary_arn: str | None
    trust_policy: PolicyDocument = field(hash=False)
    managed_policy_arns: frozenset[str]
    inline_policies: Mapping[str, PolicyDocument] = field(hash=False)
    tags: Mapping[str, str] = field(hash=False)
    ignored_tag_keys: frozenset[str] = frozenset()

    @property
    def arn(self) -> str:
        """The role's ARN, which IAM derives from partition, account, path and name."""
        return f"arn:{self.partition}:iam::{self.account_id}:role{self.path}{self.role_name}"


@dataclass(frozen=True, init=False)
class ObservedRole:
    """The role as IAM reported it.

    Policy documents may be handed over exactly as IAM returns them (URL-encoded JSON text) or
    already decoded; they are stored decoded, but otherwise untouched: semantic comparison is
    the job of `policy`, not of the constructor. `instance_profile_names` is None when the read
    did not list them (only deletion needs them).
    """

    arn: str
    role_id: str
    role_name: str
    path: str
    description: str
    max_session_duration: int
    permissions_boundary_arn: str | None
    trust_policy: PolicyDocument = field(hash=False)
    managed_policy_arns: frozenset[str]
    inline_policies: Mapping[str, PolicyDocument] = field(hash=False)
    tags: Mapping[str, str] = field(hash=False)
    instance_profile_names: tuple[str, ...] | None
    create_date: datetime.datetime | None

    def __init__(
        self,
        *,
        arn: str,
        role_id: str,
        role_name: str,
        path: str,
        trust_policy: str | Mapping[str, Any],
        description: str | None = None,
        max_session_duration: int = 3600,
        permissions_boundary_arn: str | None = None,
        managed_policy_arns: Iterable[str] = (),
        inline_policies: Mapping[str, str | Mapping[str, Any]] | None = None,
        tags: Mapping[str, str] | None = None,
        instance_profile_names: Iterable[str] | None = None,
        create_date: datetime.datetime | None = None,
    ) -> None:
        values: dict[str, object] = {
            "arn": arn,
            "role_id": role_id,
            "role_name": role_name,
            "path": path,
            # IAM omits Description when it is empty; both mean "no description".
            "description": description or "",
            "max_session_duration": max_session_duration,
            "permissions_boundary_arn": permissions_boundary_arn or None,
            "trust_policy": policy.decode(trust_policy),
            "managed_policy_arns": frozenset(managed_policy_arns),
            "inline_policies": {
                name: policy.decode(document) for name, document in (inline_policies or {}).items()
            },
            "tags": dict(tags or {}),
            "instance_profile_names": (
                None if instance_profile_names is None else tuple(instance_profile_names)
            ),
            "create_date": create_date,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_iam(
        cls,
        role: Mapping[str, Any],
        *,
        managed_policy_arns: Iterable[str],
        inline_policies: Mapping[str, str | Mapping[str, Any]],
        instance_profile_names: Iterable[str] | None = None,
    ) -> ObservedRole:
        """Build from a GetRole `Role` (or a merged ListRoles/GAAD role) as boto3 returns it."""
        boundary = role.get("PermissionsBoundary") or {}
        return cls(
            arn=role["Arn"],
            role_id=role["RoleId"],
            role_name=role["RoleName"],
            path=role["Path"],
            description=role.get("Description"),
            max_session_duration=role.get("MaxSessionDuration", 3600),
            permissions_boundary_arn=boundary.get("PermissionsBoundaryArn"),
            trust_policy=role["AssumeRolePolicyDocument"],
            managed_policy_arns=managed_policy_arns,
            inline_policies=inline_policies,
            tags={tag["Key"]: tag["Value"] for tag in role.get("Tags", ())},
            instance_profile_names=instance_profile_names,
            create_date=role.get("CreateDate"),
        )


@dataclass(frozen=True)
class Drift:
    """One aspect that differs, with a sentence a platform engineer understands.

    Messages describe only this role (never another tenant's objects or configuration), because
    they land in the resource's status where its namespace's users read them.
    """

    aspect: Aspect
    message: str


@dataclass(frozen=True)
class Refusal:
    """Why the operator will not act for a resource.

    `message` is the whole sentence the Ready condition shows; when a spec field is to blame it
    starts with that field's path, and `field` names it, so a tool can act on the field (the
    importer leaves it out) without reading it back out of the text.
    """

    reason: ReadyReason
    message: str
    field: str | None = None


IamAction = Literal[
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
]

#: Operations whose NoSuchEntity answer means "already done": they remove something, and a
#: repeated plan (after a crash, or from a stale read) may find it already gone.
_REMOVALS = frozenset(
    {"DetachRolePolicy", "DeleteRolePolicy", "RemoveRoleFromInstanceProfile", "DeleteRole"}
)


@dataclass(frozen=True)
class Operation:
    """One IAM API call: `params` are exactly the request parameters boto3 takes.

    Every operation is a write (reads are the adapter's business, not a plan's), which is what
    the paused annotation and the AccountMismatch guard key on. `aspects` names every drifted
    aspect the call repairs (one UpdateRole repairs Description and MaxSessionDuration at once;
    empty for deletion and release): the status, the drift gauge and the remediation metric
    count an aspect as repaired only when an applied operation names it.
    """

    action: IamAction
    params: Mapping[str, Any] = field(hash=False)
    aspects: frozenset[Aspect] = frozenset()

    @property
    def method_name(self) -> str:
        """The boto3 client method, e.g. "attach_role_policy" for AttachRolePolicy."""
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in self.action).lstrip("_")

    @property
    def absent_target_means_done(self) -> bool:
        """True when NoSuchEntity from this call means the wanted state already holds."""
        return self.action in _REMOVALS
