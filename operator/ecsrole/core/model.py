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


# -- deltas: what repairs one drifted aspect -----------------------------------------------------
#
# `diff` computes each once; `plan` turns it into IAM calls without comparing anything again.


@dataclass(frozen=True)
class TrustDelta:
    """The declared trust policy: UpdateAssumeRolePolicy replaces the whole document."""

    document: PolicyDocument = field(hash=False)


@dataclass(frozen=True)
class ManagedPolicyDelta:
    """Managed policy ARNs to detach (attached but not declared) and to attach, each sorted."""

    detach: tuple[str, ...] = ()
    attach: tuple[str, ...] = ()


@dataclass(frozen=True)
class InlinePolicyDelta:
    """Inline policies to delete (present, not declared), and declared documents to put.

    Puts come in two kinds because the plan orders them differently: `replace` restores a
    declared policy whose content drifted (usually a narrowing, so it runs with the restrictive
    calls), `add` puts back a declared policy that is missing (a widening, run last).
    """

    delete: tuple[str, ...] = ()
    replace: Mapping[str, PolicyDocument] = field(default_factory=dict, hash=False)
    add: Mapping[str, PolicyDocument] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class BoundaryDelta:
    """The boundary to put, or None when one is set but none is declared.

    The operator's IAM policy has no DeleteRolePermissionsBoundary (DESIGN section 3), so an
    undeclared boundary stays reported drift that a human resolves.
    """

    put: str | None


@dataclass(frozen=True)
class TagDelta:
    """What separates observed tags from desired ones, keys compared case-insensitively.

    Ignored tag keys are already left out. `to_remove` holds observed spellings: tags not
    declared, plus declared keys present in another letter case (IAM keeps tag keys unique
    regardless of case, so the old spelling has to go before the declared one can be set).
    `to_set` holds desired tags that are missing, differ in value or in key case.
    """

    missing: tuple[str, ...] = ()
    changed: tuple[tuple[str, str, str], ...] = ()  # (key, observed value, desired value)
    recased: tuple[tuple[str, str], ...] = ()  # (observed key, desired key)
    extra: tuple[str, ...] = ()
    to_set: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def to_remove(self) -> tuple[str, ...]:
        return tuple(sorted({*self.extra, *(observed for observed, _ in self.recased)}))

    def __bool__(self) -> bool:
        return bool(self.missing or self.changed or self.recased or self.extra)


@dataclass(frozen=True)
class RoleFieldsDelta:
    """The declared description and max session duration, both, whichever of them drifted.

    UpdateRole resets a field it is not sent (moto does; sending both is harmless on AWS), so
    the one call that repairs either field always carries both.
    """

    description: str
    max_session_duration: int


@dataclass(frozen=True)
class RoleMissingDelta:
    """The role to create: all of it, as declared."""

    role: DesiredRole


Delta = (
    TrustDelta
    | ManagedPolicyDelta
    | InlinePolicyDelta
    | BoundaryDelta
    | TagDelta
    | RoleFieldsDelta
    | RoleMissingDelta
)

_DELTA_TYPES: Mapping[Aspect, type[Delta]] = {
    Aspect.TrustPolicy: TrustDelta,
    Aspect.ManagedPolicy: ManagedPolicyDelta,
    Aspect.InlinePolicy: InlinePolicyDelta,
    Aspect.PermissionsBoundary: BoundaryDelta,
    Aspect.Tags: TagDelta,
    Aspect.Description: RoleFieldsDelta,
    Aspect.MaxSessionDuration: RoleFieldsDelta,
    Aspect.RoleMissing: RoleMissingDelta,
}


@dataclass(frozen=True)
class Drift:
    """One aspect that differs, with a sentence a platform engineer understands, and its delta.

    Messages describe only this role (never another tenant's objects or configuration), because
    they land in the resource's status where its namespace's users read them. The status, the
    metrics and the Events read `aspect` and `message`; `plan.plan_update` reads `delta`.
    `delta` is None only for a drift that is reported and never planned (a recorded role found
    gone, which is recreated by `plan.plan_create` once its record is dropped).
    """

    aspect: Aspect
    message: str
    delta: Delta | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.delta is not None and not isinstance(self.delta, _DELTA_TYPES[self.aspect]):
            raise TypeError(
                f"a {self.aspect} drift carries a {_DELTA_TYPES[self.aspect].__name__}, "
                f"not a {type(self.delta).__name__}"
            )


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
