"""An in-memory IAM that applies plan operations and reads roles back the way IAM does.

It is stricter than moto where the operator must be careful (UpdateRole resets an omitted field,
as moto does; tag keys collide regardless of case; removals of absent things say NoSuchEntity;
DeleteRole refuses while policies or instance profiles remain), every call's parameters are
validated against botocore's IAM model, and every document read back is mangled the way IAM
mangles documents (URL-encoded, reordered, scalarised, `Sid: ""` dropped, ...).
"""

from __future__ import annotations

import copy
import datetime
import json
import random
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name
from botocore.session import get_session
from botocore.validate import ParamValidator

from ecsrole.core import model

_IAM_MODEL = get_session().get_service_model("iam")
MAX_TAGS = 50
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class IamError(Exception):
    """An IAM error response, by code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def validate_params(operation: model.Operation) -> None:
    """Fail unless boto3 would accept `operation.params` for `operation.action`."""
    assert operation.method_name == xform_name(operation.action)
    shape = _IAM_MODEL.operation_model(operation.action).input_shape
    assert shape is not None
    report = ParamValidator().validate(dict(operation.params), shape)
    assert not report.has_errors(), report.generate_report()


@dataclass
class StoredRole:
    name: str
    path: str
    role_id: str
    trust: dict[str, Any]
    description: str | None = None
    max_session_duration: int = 3600
    boundary: str | None = None
    managed: set[str] = field(default_factory=set)
    inline: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    instance_profiles: list[str] = field(default_factory=list)
    create_date: datetime.datetime = EPOCH


def _tag_collision(tags: dict[str, str], key: str) -> str | None:
    return next((k for k in tags if k.lower() == key.lower() and k != key), None)


class FakeIam:
    """One account's roles. `rng` drives how documents are mangled on the way out; `clock`
    gives each new role its CreateDate."""

    def __init__(
        self,
        account_id: str,
        partition: str,
        rng: random.Random | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.account_id = account_id
        self.partition = partition
        self.rng = rng or random.Random(0)
        self.clock = clock or (lambda: EPOCH)
        self.roles: dict[str, StoredRole] = {}
        self.calls: list[model.Operation] = []
        self._next_id = 1

    # -- the write API the operator uses ---------------------------------------------------

    def apply(self, operations: Iterable[model.Operation]) -> None:
        for operation in operations:
            self.call(operation)

    def call(self, operation: model.Operation) -> None:
        validate_params(operation)
        self.calls.append(operation)
        getattr(self, f"_{operation.method_name}")(**operation.params)

    def _role(self, name: str) -> StoredRole:
        role = self.roles.get(name.lower())
        if role is None:
            raise IamError("NoSuchEntity", f"role {name}")
        return role

    def _create_role(
        self,
        RoleName: str,  # noqa: N803 - IAM's parameter names
        AssumeRolePolicyDocument: str,  # noqa: N803
        Path: str = "/",  # noqa: N803
        Description: str | None = None,  # noqa: N803
        MaxSessionDuration: int = 3600,  # noqa: N803
        PermissionsBoundary: str | None = None,  # noqa: N803
        Tags: list[dict[str, str]] | None = None,  # noqa: N803
    ) -> None:
        if RoleName.lower() in self.roles:
            raise IamError("EntityAlreadyExists", RoleName)
        tags: dict[str, str] = {}
        for tag in Tags or []:
            if any(k.lower() == tag["Key"].lower() for k in tags):
                raise IamError("InvalidInput", f"duplicate tag key {tag['Key']}")
            tags[tag["Key"]] = tag["Value"]
        if len(tags) > MAX_TAGS:
            raise IamError("LimitExceeded", "too many tags")
        self.roles[RoleName.lower()] = StoredRole(
            name=RoleName,
            path=Path,
            role_id=f"AROA{self._next_id:016d}",
            trust=json.loads(AssumeRolePolicyDocument),
            description=Description,
            max_session_duration=MaxSessionDuration,
            boundary=PermissionsBoundary,
            tags=tags,
            create_date=self.clock(),
        )
        self._next_id += 1

    def new_role_id(self) -> str:
        """A fresh id, as IAM gives one to every role ever created (never reused)."""
        self._next_id += 1
        return f"AROA{self._next_id - 1:016d}"

    def _update_assume_role_policy(self, RoleName: str, PolicyDocument: str) -> None:  # noqa: N803
        self._role(RoleName).trust = json.loads(PolicyDocument)

    def _attach_role_policy(self, RoleName: str, PolicyArn: str) -> None:  # noqa: N803
        self._role(RoleName).managed.add(PolicyArn)

    def _detach_role_policy(self, RoleName: str, PolicyArn: str) -> None:  # noqa: N803
        role = self._role(RoleName)
        if PolicyArn not in role.managed:
            raise IamError("NoSuchEntity", f"policy {PolicyArn} is not attached")
        role.managed.remove(PolicyArn)

    def _put_role_policy(self, RoleName: str, PolicyName: str, PolicyDocument: str) -> None:  # noqa: N803
        self._role(RoleName).inline[PolicyName] = json.loads(PolicyDocument)

    def _delete_role_policy(self, RoleName: str, PolicyName: str) -> None:  # noqa: N803
        role = self._role(RoleName)
        if PolicyName not in role.inline:
            raise IamError("NoSuchEntity", f"inline policy {PolicyName}")
        del role.inline[PolicyName]

    def _tag_role(self, RoleName: str, Tags: list[dict[str, str]]) -> None:  # noqa: N803
        role = self._role(RoleName)
        for tag in Tags:
            clash = _tag_collision(role.tags, tag["Key"])
            if clash is not None:
                # Real IAM's behaviour here is murky; a plan must never rely on it.
                raise IamError("InvalidInput", f"tag key {tag['Key']} collides with {clash}")
            role.tags[tag["Key"]] = tag["Value"]
        if len(role.tags) > MAX_TAGS:
            raise IamError("LimitExceeded", "too many tags")

    def _untag_role(self, RoleName: str, TagKeys: list[str]) -> None:  # noqa: N803
        role = self._role(RoleName)
        for key in TagKeys:
            role.tags.pop(key, None)

    def _update_role(
        self,
        RoleName: str,  # noqa: N803
        Description: str | None = None,  # noqa: N803
        MaxSessionDuration: int | None = None,  # noqa: N803
    ) -> None:
        # moto's semantics: an omitted field is reset, not kept.
        role = self._role(RoleName)
        role.description = Description
        role.max_session_duration = MaxSessionDuration or 3600

    def _put_role_permissions_boundary(self, RoleName: str, PermissionsBoundary: str) -> None:  # noqa: N803
        self._role(RoleName).boundary = PermissionsBoundary

    def _remove_role_from_instance_profile(
        self,
        InstanceProfileName: str,  # noqa: N803
        RoleName: str,  # noqa: N803
    ) -> None:
        role = self._role(RoleName)
        if InstanceProfileName not in role.instance_profiles:
            raise IamError("NoSuchEntity", f"instance profile {InstanceProfileName}")
        role.instance_profiles.remove(InstanceProfileName)

    def _delete_role(self, RoleName: str) -> None:  # noqa: N803
        role = self._role(RoleName)
        if role.managed or role.inline or role.instance_profiles:
            raise IamError("DeleteConflict", f"role {RoleName} still has policies or profiles")
        del self.roles[RoleName.lower()]

    # -- reads, as IAM formats them ---------------------------------------------------------

    def observe(self, role_name: str) -> model.ObservedRole | None:
        role = self.roles.get(role_name.lower())
        if role is None:
            return None
        return model.ObservedRole.from_iam(
            {
                "Arn": f"arn:{self.partition}:iam::{self.account_id}:role{role.path}{role.name}",
                "RoleId": role.role_id,
                "RoleName": role.name,
                "Path": role.path,
                "CreateDate": role.create_date,
                # IAM omits Description when empty.
                **({"Description": role.description} if role.description else {}),
                "MaxSessionDuration": role.max_session_duration,
                **(
                    {"PermissionsBoundary": {"PermissionsBoundaryArn": role.boundary}}
                    if role.boundary
                    else {}
                ),
                "AssumeRolePolicyDocument": iam_format(role.trust, self.rng),
                "Tags": [{"Key": k, "Value": v} for k, v in role.tags.items()],
            },
            managed_policy_arns=sorted(role.managed),
            inline_policies={name: iam_format(doc, self.rng) for name, doc in role.inline.items()},
            instance_profile_names=list(role.instance_profiles),
        )


def iam_format(document: dict[str, Any], rng: random.Random) -> str | dict[str, Any]:
    """`document` as IAM may hand it back: an equivalent, reshaped, often URL-encoded form."""
    reshaped = reshape(document, rng)
    choice = rng.randrange(3)
    if choice == 0:
        return reshaped
    text = json.dumps(reshaped, separators=(",", ":") if rng.random() < 0.5 else (", ", ": "))
    return text if choice == 1 else urllib.parse.quote(text, safe="")


_SET_VALUED = ("Action", "NotAction", "Resource", "NotResource")


def _shuffled_dict(items: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    keys = list(items)
    rng.shuffle(keys)
    return {key: items[key] for key in keys}


def _reshape_values(value: Any, rng: random.Random) -> Any:
    """A scalar or list of scalars, shown as IAM might: scalarised, listified, reordered."""
    values = list(value) if isinstance(value, list) else [value]
    rng.shuffle(values)
    if len(values) == 1 and rng.random() < 0.6:
        return values[0]
    return values


def _flip_case(text: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def reshape(document: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Apply IAM's meaning-preserving transformations at random."""
    document = copy.deepcopy(document)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    new_statements = []
    for statement in statements:
        statement = dict(statement)
        if statement.get("Sid") == "" and rng.random() < 0.5:
            del statement["Sid"]
        for key in _SET_VALUED:
            if key in statement:
                statement[key] = _reshape_values(statement[key], rng)
        for key in ("Principal", "NotPrincipal"):
            principal = statement.get(key)
            if isinstance(principal, dict):
                reshaped = {}
                for principal_type, values in principal.items():
                    shown = _reshape_values(values, rng)
                    if principal_type == "AWS":
                        shown = _rewrite_account_principals(shown)
                    reshaped[principal_type] = shown
                statement[key] = _shuffled_dict(reshaped, rng)
        if isinstance(statement.get("Condition"), dict):
            statement["Condition"] = _shuffled_dict(
                {
                    _flip_case(operator, rng): _shuffled_dict(
                        {
                            _flip_case(key, rng): _reshape_values(values, rng)
                            for key, values in block.items()
                        },
                        rng,
                    )
                    for operator, block in statement["Condition"].items()
                },
                rng,
            )
        new_statements.append(_shuffled_dict(statement, rng))
    rng.shuffle(new_statements)
    document["Statement"] = (
        new_statements[0] if len(new_statements) == 1 and rng.random() < 0.3 else new_statements
    )
    if "Version" not in document:
        document["Version"] = "2012-10-17"
    return _shuffled_dict(document, rng)


def _rewrite_account_principals(values: Any) -> Any:
    """IAM stores a bare account id principal as that account's root ARN."""

    def rewrite(value: str) -> str:
        return f"arn:aws:iam::{value}:root" if value.isdigit() and len(value) == 12 else value

    return [rewrite(v) for v in values] if isinstance(values, list) else rewrite(values)
