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
from typing import Any, TypeVar

from ecsrole.core import constants, model, policy

Aspect = model.Aspect
Operation = model.Operation
_MANAGED = frozenset({Aspect.ManagedPolicy})
_INLINE = frozenset({Aspect.InlinePolicy})
_TAGS = frozenset({Aspect.Tags})


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
        *_attach(desired.role_name, desired.managed_policy_arns),
        *_put_inline(desired.role_name, desired.inline_policies),
    )


def plan_update(role_name: str, drifts: Iterable[model.Drift]) -> tuple[model.Operation, ...]:
    """The calls that repair exactly the drifted aspects, from their deltas, restrictive first.

    `role_name` is the role's name as IAM spells it (the observed one). Only aspects named in
    `drifts` are touched (so a Report-only aspect, or one in its settle window, can be left out
    by leaving it out of `drifts`), and only as their deltas say: nothing is compared again, and
    ignored tag keys, which `diff` leaves out of every delta, are never touched. A RoleMissing
    drift is repaired by `plan_create`. Order:

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

    Every operation names all the aspects it repairs (`Operation.aspects`). An undeclared
    boundary (`BoundaryDelta.put` None) is never removed: no DeleteRolePermissionsBoundary.
    """
    drifts = _with_deltas(drifts)
    missing = _delta(drifts, model.RoleMissingDelta)
    if missing is not None:
        return plan_create(missing.role)
    managed = _delta(drifts, model.ManagedPolicyDelta) or model.ManagedPolicyDelta()
    inline = _delta(drifts, model.InlinePolicyDelta) or model.InlinePolicyDelta()
    tags = _delta(drifts, model.TagDelta) or model.TagDelta()
    restrictive = (
        *_put_boundary(role_name, _delta(drifts, model.BoundaryDelta)),
        *_update_trust(role_name, _delta(drifts, model.TrustDelta)),
        *_detach(role_name, managed.detach),
        *_delete_inline(role_name, inline.delete),
        *_put_inline(role_name, inline.replace),
        *_untag(role_name, tags.to_remove),
    )
    additive = (
        *_attach(role_name, managed.attach),
        *_put_inline(role_name, inline.add),
        *_tag(role_name, tags.to_set),
        *_update_role(role_name, drifts),
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


_D = TypeVar("_D", bound=model.Delta)


def _with_deltas(drifts: Iterable[model.Drift]) -> tuple[model.Drift, ...]:
    """`drifts`, unless one carries no delta (a drift built only to be reported)."""
    drifts = tuple(drifts)
    undelta = [drift.aspect.value for drift in drifts if drift.delta is None]
    if undelta:
        raise ValueError(f"cannot plan drifts without a delta: {', '.join(undelta)}")
    return drifts


def _delta(drifts: Sequence[model.Drift], kind: type[_D]) -> _D | None:
    """The first delta of type `kind` among `drifts` (diff gives one drift per aspect)."""
    return next((drift.delta for drift in drifts if isinstance(drift.delta, kind)), None)


def _put_boundary(role: str, delta: model.BoundaryDelta | None) -> tuple[model.Operation, ...]:
    if delta is None or delta.put is None:
        return ()
    return (
        Operation(
            "PutRolePermissionsBoundary",
            {"RoleName": role, "PermissionsBoundary": delta.put},
            frozenset({Aspect.PermissionsBoundary}),
        ),
    )


def _update_trust(role: str, delta: model.TrustDelta | None) -> tuple[model.Operation, ...]:
    if delta is None:
        return ()
    return (
        Operation(
            "UpdateAssumeRolePolicy",
            {"RoleName": role, "PolicyDocument": policy.dumps(delta.document)},
            frozenset({Aspect.TrustPolicy}),
        ),
    )


def _attach(role: str, arns: Iterable[str]) -> tuple[model.Operation, ...]:
    return tuple(
        Operation("AttachRolePolicy", {"RoleName": role, "PolicyArn": arn}, _MANAGED)
        for arn in sorted(arns)
    )


def _detach(role: str, arns: Iterable[str]) -> tuple[model.Operation, ...]:
    return tuple(
        Operation("DetachRolePolicy", {"RoleName": role, "PolicyArn": arn}, _MANAGED)
        for arn in sorted(arns)
    )


def _put_inline(
    role: str, documents: Mapping[str, Mapping[str, Any]]
) -> tuple[model.Operation, ...]:
    return tuple(
        Operation(
            "PutRolePolicy",
            {"RoleName": role, "PolicyName": name, "PolicyDocument": policy.dumps(document)},
            _INLINE,
        )
        for name, document in sorted(documents.items())
    )


def _delete_inline(role: str, names: Iterable[str]) -> tuple[model.Operation, ...]:
    return tuple(
        Operation("DeleteRolePolicy", {"RoleName": role, "PolicyName": name}, _INLINE)
        for name in sorted(names)
    )


def _untag(role: str, keys: Sequence[str]) -> tuple[model.Operation, ...]:
    if not keys:
        return ()
    return (Operation("UntagRole", {"RoleName": role, "TagKeys": list(keys)}, _TAGS),)


def _tag(role: str, tags: Mapping[str, str]) -> tuple[model.Operation, ...]:
    if not tags:
        return ()
    return (Operation("TagRole", {"RoleName": role, "Tags": _tag_list(tags)}, _TAGS),)


def _update_role(role: str, drifts: Sequence[model.Drift]) -> tuple[model.Operation, ...]:
    """One UpdateRole sending both fields; it names whichever of the two aspects drifted."""
    fields = _delta(drifts, model.RoleFieldsDelta)
    if fields is None:
        return ()
    repaired = frozenset(d.aspect for d in drifts if isinstance(d.delta, model.RoleFieldsDelta))
    return (
        Operation(
            "UpdateRole",
            {
                "RoleName": role,
                "Description": fields.description,
                "MaxSessionDuration": fields.max_session_duration,
            },
            repaired,
        ),
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
