"""A typed view of an EcsExecutionRole's spec, validated without trusting the CRD.

The CRD's schema and CEL rules refuse most bad input at the API server, but the operator must
not rely on that: the installed CRD may be older than the operator, or schema validation may be
off (a dev cluster, a restore from backup). So everything the spec alone decides is checked here
again, and failures name the field the way `kubectl explain` spells it (`spec.trust.sourceArns[1]`).
What depends on the account's configuration or the caller's partition is `desired`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from ecsrole.core import constants, iam

#: Tags a spec may declare: IAM's limit minus the operator's ownership tags.
MAX_DECLARED_TAGS = iam.MAX_TAGS_PER_ROLE - len(constants.OWNERSHIP_TAG_KEYS)
#: IAM's hard limit of managed policies per role (the default quota is 10, raisable to 20),
#: minus the always-attached AmazonECSTaskExecutionRolePolicy.
MAX_ADDITIONAL_POLICIES = 19


class DriftPolicy(StrEnum):
    """What to do about drift: put the role back, or only report it."""

    Enforce = "Enforce"
    Report = "Report"


class DeletionPolicy(StrEnum):
    """What deleting the resource does to the role."""

    Delete = "Delete"
    Retain = "Retain"


class SpecError(ValueError):
    """A spec the operator refuses (Ready=False/InvalidSpec); `field` is the full field path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TrustSpec:
    """Optional confused-deputy conditions on the trust policy."""

    source_accounts: tuple[str, ...] = ()
    source_arns: tuple[str, ...] = ()


@dataclass(frozen=True)
class PermissionsSpec:
    """Optional extras AWS documents for execution roles, rendered into one inline policy."""

    secret_arns: tuple[str, ...] = ()
    parameter_arns: tuple[str, ...] = ()
    kms_key_arns: tuple[str, ...] = ()
    create_log_groups: bool = False

    @property
    def declared(self) -> bool:
        """True when any extra is declared, i.e. the inline policy must exist."""
        return bool(
            self.secret_arns or self.parameter_arns or self.kms_key_arns or self.create_log_groups
        )


@dataclass(frozen=True)
class RoleSpec:
    """The spec of an EcsExecutionRole, with DESIGN section 2's defaults applied.

    `deletion_policy` stays None when unset because its default depends on history (Delete for
    roles the operator created, Retain for adopted ones), which only the shell knows.
    """

    account_id: str
    role_name: str
    path: str = "/"
    description: str = ""
    max_session_duration: int = iam.MIN_SESSION_DURATION
    permissions_boundary_arn: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    trust: TrustSpec = TrustSpec()
    permissions: PermissionsSpec = PermissionsSpec()
    additional_policy_arns: tuple[str, ...] = ()
    drift_policy: DriftPolicy = DriftPolicy.Enforce
    deletion_policy: DeletionPolicy | None = None
    adopt: bool = False


_SPEC_KEYS = frozenset(
    {
        "accountId",
        "roleName",
        "path",
        "description",
        "maxSessionDuration",
        "permissionsBoundaryArn",
        "tags",
        "trust",
        "permissions",
        "additionalPolicyArns",
        "driftPolicy",
        "deletionPolicy",
        "adopt",
    }
)
_TRUST_KEYS = frozenset({"sourceAccounts", "sourceArns"})
_PERMISSIONS_KEYS = frozenset({"secretArns", "parameterArns", "kmsKeyArns", "createLogGroups"})


def parse_spec(spec: Mapping[str, Any]) -> RoleSpec:
    """Parse and validate a spec dict (camelCase, as the API server stores it).

    Raises SpecError for the first problem found. Absent and null fields take their defaults;
    unknown fields are refused, because silently ignoring a field the user believes in (say, a
    trust rule from a newer CRD) could leave a role wider than intended.
    """
    if not isinstance(spec, Mapping):
        raise SpecError("spec", "must be an object")
    _refuse_unknown(spec, _SPEC_KEYS, "spec")
    trust = _mapping(spec, "trust", "spec.trust")
    _refuse_unknown(trust, _TRUST_KEYS, "spec.trust")
    permissions = _mapping(spec, "permissions", "spec.permissions")
    _refuse_unknown(permissions, _PERMISSIONS_KEYS, "spec.permissions")

    role_spec = RoleSpec(
        account_id=_required_str(spec, "accountId", "spec.accountId"),
        role_name=_required_str(spec, "roleName", "spec.roleName"),
        path=_with_default(_optional_str(spec, "path", "spec.path"), "/"),
        description=_optional_str(spec, "description", "spec.description") or "",
        max_session_duration=_int(
            spec, "maxSessionDuration", "spec.maxSessionDuration", iam.MIN_SESSION_DURATION
        ),
        permissions_boundary_arn=_optional_str(
            spec, "permissionsBoundaryArn", "spec.permissionsBoundaryArn"
        ),
        tags=_tags(spec.get("tags")),
        trust=TrustSpec(
            source_accounts=_str_list(trust, "sourceAccounts", "spec.trust.sourceAccounts"),
            source_arns=_str_list(trust, "sourceArns", "spec.trust.sourceArns"),
        ),
        permissions=PermissionsSpec(
            secret_arns=_str_list(permissions, "secretArns", "spec.permissions.secretArns"),
            parameter_arns=_str_list(
                permissions, "parameterArns", "spec.permissions.parameterArns"
            ),
            kms_key_arns=_str_list(permissions, "kmsKeyArns", "spec.permissions.kmsKeyArns"),
            create_log_groups=_bool(
                permissions, "createLogGroups", "spec.permissions.createLogGroups"
            ),
        ),
        additional_policy_arns=_str_list(spec, "additionalPolicyArns", "spec.additionalPolicyArns"),
        drift_policy=_enum(spec, "driftPolicy", DriftPolicy) or DriftPolicy.Enforce,
        deletion_policy=_enum(spec, "deletionPolicy", DeletionPolicy),
        adopt=_bool(spec, "adopt", "spec.adopt"),
    )
    check(role_spec)
    return role_spec


def check(role_spec: RoleSpec) -> None:
    """Raise SpecError unless every value is one IAM and DESIGN section 2 accept.

    Separate from parsing so that `desired.build_desired` can re-check a RoleSpec that was
    built directly rather than parsed.
    """
    if not iam.is_account_id(role_spec.account_id):
        raise SpecError("spec.accountId", "must be exactly 12 digits")
    _problem("spec.roleName", iam.role_name_problem(role_spec.role_name))
    _problem("spec.path", iam.path_problem(role_spec.path))
    _problem("spec.description", iam.description_problem(role_spec.description))
    if not iam.MIN_SESSION_DURATION <= role_spec.max_session_duration <= iam.MAX_SESSION_DURATION:
        raise SpecError(
            "spec.maxSessionDuration",
            f"must be between {iam.MIN_SESSION_DURATION} and {iam.MAX_SESSION_DURATION} seconds",
        )
    if role_spec.permissions_boundary_arn is not None:
        parsed = iam.parse_policy_arn(role_spec.permissions_boundary_arn)
        if isinstance(parsed, str):
            raise SpecError("spec.permissionsBoundaryArn", parsed)
    check_tags(role_spec.tags)
    for index, account in enumerate(role_spec.trust.source_accounts):
        if not iam.is_account_id(account):
            raise SpecError(f"spec.trust.sourceAccounts[{index}]", "must be exactly 12 digits")
    arn_lists = (
        ("spec.trust.sourceArns", role_spec.trust.source_arns),
        ("spec.permissions.secretArns", role_spec.permissions.secret_arns),
        ("spec.permissions.parameterArns", role_spec.permissions.parameter_arns),
        ("spec.permissions.kmsKeyArns", role_spec.permissions.kms_key_arns),
    )
    for path, arns in arn_lists:
        for index, arn in enumerate(arns):
            if iam.parse_arn(arn) is None:
                raise SpecError(f"{path}[{index}]", f"{arn!r} is not an ARN")
    if len(set(role_spec.additional_policy_arns)) > MAX_ADDITIONAL_POLICIES:
        raise SpecError(
            "spec.additionalPolicyArns",
            f"at most {MAX_ADDITIONAL_POLICIES} policies (IAM attaches at most 20 per role, "
            "one of them AmazonECSTaskExecutionRolePolicy)",
        )
    for index, arn in enumerate(role_spec.additional_policy_arns):
        parsed = iam.parse_policy_arn(arn)
        if isinstance(parsed, str):
            raise SpecError(f"spec.additionalPolicyArns[{index}]", parsed)


def check_tags(tags: Mapping[str, str]) -> None:
    """Raise SpecError unless `tags` can be declared: IAM's rules plus the reserved prefixes."""
    if len(tags) > MAX_DECLARED_TAGS:
        raise SpecError(
            "spec.tags",
            f"at most {MAX_DECLARED_TAGS} tags (IAM allows {iam.MAX_TAGS_PER_ROLE} per role and "
            f"the operator writes {len(constants.OWNERSHIP_TAG_KEYS)} ownership tags)",
        )
    seen: dict[str, str] = {}
    for key, value in tags.items():
        path = f"spec.tags.{key}"
        if not isinstance(key, str) or not isinstance(value, str):
            raise SpecError(path, "tag keys and values must be strings")
        _problem(path, iam.tag_key_problem(key))
        if iam.is_reserved_tag_key(key):
            raise SpecError(
                path, "keys starting with aws: or ecsrole.dev/ (in any case) are reserved"
            )
        _problem(path, iam.tag_value_problem(value))
        folded = key.lower()
        if folded in seen:
            raise SpecError(
                path,
                f"duplicates tag {seen[folded]!r}: IAM tag keys are unique regardless of case",
            )
        seen[folded] = key


# -- parsing helpers ---------------------------------------------------------------------------


def _problem(path: str, problem: str | None) -> None:
    if problem is not None:
        raise SpecError(path, problem)


def _refuse_unknown(mapping: Mapping[str, Any], known: frozenset[str], path: str) -> None:
    for key in mapping:
        if key not in known:
            raise SpecError(f"{path}.{key}", f"unknown field (known: {', '.join(sorted(known))})")


def _mapping(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(path, "must be an object")
    return value


def _optional_str(parent: Mapping[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise SpecError(path, "must be a string")
    return value


def _with_default(value: str | None, default: str) -> str:
    # Only an absent or null value takes the default; an explicit "" is checked as given.
    return default if value is None else value


def _bool(parent: Mapping[str, Any], key: str, path: str) -> bool:
    value = parent.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SpecError(path, "must be true or false")
    return value


def _int(parent: Mapping[str, Any], key: str, path: str, default: int) -> int:
    value = parent.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, "must be an integer")
    return value


def _required_str(parent: Mapping[str, Any], key: str, path: str) -> str:
    value = parent.get(key)
    if value is None:
        raise SpecError(path, "is required")
    if not isinstance(value, str):
        raise SpecError(path, "must be a string")
    return value


def _str_list(parent: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = parent.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise SpecError(path, "must be a list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise SpecError(f"{path}[{index}]", "must be a non-empty string")
    return tuple(value)


def _tags(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError("spec.tags", "must be a map of tag keys to values")
    return dict(value)


_E = TypeVar("_E", bound=StrEnum)


def _enum(parent: Mapping[str, Any], key: str, enum: type[_E]) -> _E | None:
    value = parent.get(key)
    if value is None:
        return None
    for member in enum:
        if value == member.value:
            return member
    allowed = " or ".join(member.value for member in enum)
    raise SpecError(f"spec.{key}", f"must be {allowed} (got {value!r})")
