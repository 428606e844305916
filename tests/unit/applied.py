"""What a plan's operations make of a role, as a pure function on ObservedRole.

The fake IAM (fake_iam.py) stores roles and mangles documents on the way out; this is the same
write semantics without the store, so a property can start from ANY observed role (not only one
the fake created and an edit changed) and ask what the plan leaves behind. It is as strict as the
fake where a plan must be careful: a tag key that collides with another spelling, a removal of
something absent, a call on another role, more than 50 tags, an UpdateRole that omits a field
(moto resets it) all show.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from ecsrole.core import model

from .fake_iam import MAX_TAGS, IamError, validate_params


def applied(
    observed: model.ObservedRole | None, operations: Iterable[model.Operation]
) -> model.ObservedRole:
    """`observed` after `operations`, each validated against botocore's IAM model first."""
    role = observed
    for operation in operations:
        validate_params(operation)
        params = dict(operation.params)
        if operation.action == "CreateRole":
            if role is not None:
                raise IamError("EntityAlreadyExists", params["RoleName"])
            role = _created(params)
            continue
        if role is None or params["RoleName"] != role.role_name:
            raise IamError("NoSuchEntity", f"role {params['RoleName']}")
        role = _apply(role, operation.action, params)
    if role is None:
        raise IamError("NoSuchEntity", "no role, and no CreateRole")
    return role


def _created(params: dict[str, Any]) -> model.ObservedRole:
    tags = _tagged({}, params.get("Tags", ()))
    return model.ObservedRole(
        arn=f"arn:aws:iam::000000000000:role{params.get('Path', '/')}{params['RoleName']}",
        role_id="AROACREATEDBYAPPLIED",
        role_name=params["RoleName"],
        path=params.get("Path", "/"),
        trust_policy=json.loads(params["AssumeRolePolicyDocument"]),
        description=params.get("Description"),
        max_session_duration=params.get("MaxSessionDuration", 3600),
        permissions_boundary_arn=params.get("PermissionsBoundary"),
        tags=tags,
        instance_profile_names=(),
    )


def _apply(role: model.ObservedRole, action: str, params: dict[str, Any]) -> model.ObservedRole:
    replace = dataclasses.replace
    if action == "UpdateAssumeRolePolicy":
        return replace(role, trust_policy=json.loads(params["PolicyDocument"]))
    if action == "AttachRolePolicy":
        return replace(role, managed_policy_arns=role.managed_policy_arns | {params["PolicyArn"]})
    if action == "DetachRolePolicy":
        if params["PolicyArn"] not in role.managed_policy_arns:
            raise IamError("NoSuchEntity", f"policy {params['PolicyArn']} is not attached")
        return replace(role, managed_policy_arns=role.managed_policy_arns - {params["PolicyArn"]})
    if action == "PutRolePolicy":
        documents = {**role.inline_policies, params["PolicyName"]: params["PolicyDocument"]}
        return replace(role, inline_policies=documents)
    if action == "DeleteRolePolicy":
        if params["PolicyName"] not in role.inline_policies:
            raise IamError("NoSuchEntity", f"inline policy {params['PolicyName']}")
        documents = dict(role.inline_policies)
        del documents[params["PolicyName"]]
        return replace(role, inline_policies=documents)
    if action == "TagRole":
        return replace(role, tags=_tagged(role.tags, params["Tags"]))
    if action == "UntagRole":
        removed = set(params["TagKeys"])
        return replace(role, tags={k: v for k, v in role.tags.items() if k not in removed})
    if action == "UpdateRole":
        # moto's semantics: an omitted field is reset, not kept.
        return replace(
            role,
            description=params.get("Description") or "",
            max_session_duration=params.get("MaxSessionDuration") or 3600,
        )
    if action == "PutRolePermissionsBoundary":
        return replace(role, permissions_boundary_arn=params["PermissionsBoundary"])
    raise AssertionError(f"{action} is not an update a plan makes")


def _tagged(tags: Any, new: Iterable[dict[str, str]]) -> dict[str, str]:
    result = dict(tags)
    for tag in new:
        clash = next(
            (k for k in result if k.lower() == tag["Key"].lower() and k != tag["Key"]), None
        )
        if clash is not None:
            raise IamError("InvalidInput", f"tag key {tag['Key']} collides with {clash}")
        result[tag["Key"]] = tag["Value"]
    if len(result) > MAX_TAGS:
        raise IamError("LimitExceeded", "too many tags")
    return result
