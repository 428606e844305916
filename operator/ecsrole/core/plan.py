"""Drift -> ordered, idempotent IAM calls.

Plans are computed from a fresh observation every time, so repeating one after a crash only
repeats what is still needed; removals that find their target gone are done (see
`Operation.absent_target_means_done`). Within a plan, restrictive calls run before additive ones:
if the plan stops half-way (throttling, a crash, AccessDenied), the role is left narrower than
both the old and the new state, never wider.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ecsrole.core import constants, diff, model, policy

Aspect = model.Aspect
Operation = model.Operation


def plan_create(desired: model.DesiredRole) -> tuple[model.Operation, ...]:
    """Create the role complete: tags (ownership included) inside CreateRole, then policies.

    Tags travel inside CreateRole so that a crash right after it leaves a role that is already
    recognisably ours, never an untagged orphan.
    """
    create: dict[str, Any] = {
        "Path": desired.path,
        "RoleName": desired.role_name,
        "AssumeRolePolicyDocument": policy.dumps(desired.trust_policy),
        "MaxSessionDuration": desired.max_session_duration,
        "Tags": _tag_list(desired.tags),
    }
    if desired.description:
        create["Description"] = desired.description
    if desired.permissions_boundary_arn is not None:
        create["PermissionsBoundary"] = desired.permissions_boundary_arn
    return (
        Operation("CreateRole", create, frozenset({Aspect.RoleMissing})),
        *(_attach(desired.role_name, arn) for arn in sorted(desired.managed_policy_arns)),
        *(
            _put_inline(desired.role_name, name, document)
            for name, document in sorted(desired.inline_policies.items())
        ),
    )


def plan_update(
    desired: model.DesiredRole,
    observed: model.ObservedRole | None,
    drifts: Iterable[model.Drift],
    *,
    ignored_tag_keys: Iterable[str] = (),
) -> tuple[model.Operation, ...]:
    """The calls that repair exactly the drifted aspects, restrictive ones first.

    Only aspects named in `drifts` are touched (so a Report-only aspect, or one in its settle
    window, can be left out by leaving it out of `drifts`). Order:

    1. PutRolePermissionsBoundary: a boundary caps everything else;
    2. UpdateAssumeRolePolicy: who may assume the role;
    3. DetachRolePolicy and DeleteRolePolicy for undeclared policies;
    4. PutRolePolicy for declared inline policies whose content drifted (back to the declared,
       usually narrower, document);
    5. UntagRole (tags can feed ABAC conditions; also frees a key spelled in another case);
    6. AttachRolePolicy and PutRolePolicy for missing policies, TagRole;
    7. UpdateRole with Description and MaxSessionDuration together (UpdateRole resets an omitted
       field in moto, and sending both is harmless on AWS); it names both aspects when both
       drifted, so neither is left reported as drift after it succeeds.

    Every operation names all the aspects it repairs (`Operation.aspects`).

    An undeclared boundary is never removed (no DeleteRolePermissionsBoundary permission), and
    tags whose keys are ignored (desired's or `ignored_tag_keys`) are never touched.
    """
    aspects = {drift.aspect for drift in drifts}
    if observed is None or Aspect.RoleMissing in aspects:
        return plan_create(desired)
    role = observed.role_name
    restrictive: list[model.Operation] = []
    additive: list[model.Operation] = []

    if Aspect.PermissionsBoundary in aspects:
        boundary = diff.boundary_to_put(desired, observed)
        if boundary is not None:
            restrictive.append(
                Operation(
                    "PutRolePermissionsBoundary",
                    {"RoleName": role, "PermissionsBoundary": boundary},
                    frozenset({Aspect.PermissionsBoundary}),
                )
            )
    if Aspect.TrustPolicy in aspects:
        restrictive.append(
            Operation(
                "UpdateAssumeRolePolicy",
                {"RoleName": role, "PolicyDocument": policy.dumps(desired.trust_policy)},
                frozenset({Aspect.TrustPolicy}),
            )
        )
    if Aspect.ManagedPolicy in aspects:
        restrictive.extend(
            Operation(
                "DetachRolePolicy",
                {"RoleName": role, "PolicyArn": arn},
                frozenset({Aspect.ManagedPolicy}),
            )
            for arn in diff.extra_managed_policies(desired, observed)
        )
        additive.extend(
            _attach(role, arn) for arn in diff.missing_managed_policies(desired, observed)
        )
    if Aspect.InlinePolicy in aspects:
        restrictive.extend(
            Operation(
                "DeleteRolePolicy",
                {"RoleName": role, "PolicyName": name},
                frozenset({Aspect.InlinePolicy}),
            )
            for name in diff.extra_inline_policies(desired, observed)
        )
        restrictive.extend(
            _put_inline(role, name, desired.inline_policies[name])
            for name in diff.changed_inline_policies(desired, observed)
        )
        additive.extend(
            _put_inline(role, name, desired.inline_policies[name])
            for name in diff.missing_inline_policies(desired, observed)
        )
    if Aspect.Tags in aspects:
        ignored = {key.lower() for key in (*desired.ignored_tag_keys, *ignored_tag_keys)}
        delta = diff.tag_delta(desired.tags, observed.tags, ignored)
        if delta.to_remove:
            restrictive.append(
                Operation(
                    "UntagRole",
                    {"RoleName": role, "TagKeys": list(delta.to_remove)},
                    frozenset({Aspect.Tags}),
                )
            )
        if delta.to_set:
            additive.append(
                Operation(
                    "TagRole",
                    {"RoleName": role, "Tags": _tag_list(delta.to_set)},
                    frozenset({Aspect.Tags}),
                )
            )
    role_fields = aspects & {Aspect.Description, Aspect.MaxSessionDuration}
    if role_fields:
        additive.append(
            Operation(
                "UpdateRole",
                {
                    "RoleName": role,
                    "Description": desired.description,
                    "MaxSessionDuration": desired.max_session_duration,
                },
                # One call sets both fields, so it repairs whichever of the two drifted.
                frozenset(role_fields),
            )
        )
    return (*restrictive, *additive)


def plan_delete(observed: model.ObservedRole) -> tuple[model.Operation, ...]:
    """Everything DeleteRole needs first, then DeleteRole (the order IAM enforces).

    Needs `observed.instance_profile_names`: IAM refuses to delete a role still in an instance
    profile, so a delete planned without knowing them would fail half-way.
    """
    if observed.instance_profile_names is None:
        raise ValueError("plan_delete needs the role's instance profiles; list them first")
    role = observed.role_name
    return (
        *(
            Operation("DetachRolePolicy", {"RoleName": role, "PolicyArn": arn})
            for arn in sorted(observed.managed_policy_arns)
        ),
        *(
            Operation("DeleteRolePolicy", {"RoleName": role, "PolicyName": name})
            for name in sorted(observed.inline_policies)
        ),
        *(
            Operation(
                "RemoveRoleFromInstanceProfile",
                {"InstanceProfileName": profile, "RoleName": role},
            )
            for profile in sorted(observed.instance_profile_names)
        ),
        Operation("DeleteRole", {"RoleName": role}),
    )


def plan_release(observed: model.ObservedRole) -> tuple[model.Operation, ...]:
    """Retain: drop only the ownership tags (in the spelling found), leave the role as it is."""
    owned = {key.lower() for key in constants.OWNERSHIP_TAG_KEYS}
    keys = sorted(key for key in observed.tags if key.lower() in owned)
    if not keys:
        return ()
    return (Operation("UntagRole", {"RoleName": observed.role_name, "TagKeys": keys}),)


def plan_tag_owner(observed: model.ObservedRole, owner: model.Owner) -> tuple[model.Operation, ...]:
    """Adoption: make the role carry exactly `owner`'s ownership tags.

    Ownership keys in another letter case, or unknown ones under ecsrole.dev/, are removed
    first (IAM keeps tag keys unique regardless of case); the caller has already refused roles
    that carry another owner's tags (`ownership.adoption_refusal`).
    """
    wanted = owner.tags()
    stale = sorted(
        key
        for key in observed.tags
        if key.lower().startswith(constants.OWNERSHIP_TAG_PREFIX) and key not in wanted
    )
    missing = {key: value for key, value in wanted.items() if observed.tags.get(key) != value}
    operations = []
    if stale:
        operations.append(
            Operation(
                "UntagRole",
                {"RoleName": observed.role_name, "TagKeys": stale},
                frozenset({Aspect.Tags}),
            )
        )
    if missing:
        operations.append(
            Operation(
                "TagRole",
                {"RoleName": observed.role_name, "Tags": _tag_list(missing)},
                frozenset({Aspect.Tags}),
            )
        )
    return tuple(operations)


def _attach(role: str, arn: str) -> model.Operation:
    return Operation(
        "AttachRolePolicy", {"RoleName": role, "PolicyArn": arn}, frozenset({Aspect.ManagedPolicy})
    )


def _put_inline(role: str, name: str, document: Mapping[str, Any]) -> model.Operation:
    return Operation(
        "PutRolePolicy",
        {"RoleName": role, "PolicyName": name, "PolicyDocument": policy.dumps(document)},
        frozenset({Aspect.InlinePolicy}),
    )


def _tag_list(tags: Mapping[str, str]) -> Sequence[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def after_tag_owner(observed: model.ObservedRole, owner: model.Owner) -> model.ObservedRole:
    """The role as `plan_tag_owner`'s calls leave it, so a diff right after adoption does not
    see the ownership tags it just wrote as drift."""
    wanted = owner.tags()
    tags = {
        key: value
        for key, value in observed.tags.items()
        if not (key.lower().startswith(constants.OWNERSHIP_TAG_PREFIX) and key not in wanted)
    }
    tags.update(wanted)
    return dataclasses.replace(observed, tags=tags)
