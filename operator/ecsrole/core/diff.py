"""Desired vs observed -> drift, the heart of the operator.

One computed list of drifts drives the update, the status, the metrics and the events (ACK's
delta), so everything that decides "is this different" lives here: each Drift carries its typed
delta (`model.TagDelta`, `model.ManagedPolicyDelta`, ...), computed once, with the ignored tag
keys applied once, and its message is written from that delta. `plan` turns the deltas into IAM
calls without comparing anything again.

The declared state is complete: a managed policy attached, an inline policy added or trust
widened outside the spec is drift, because privilege creep is the drift that matters most.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from ecsrole.core import model, policy

Aspect = model.Aspect

#: Fixed order of the drifts `diff` returns. The first drift becomes the Drifted condition's
#: reason, so a missing role comes first, then the privilege-relevant aspects (who may assume
#: the role, then what it may do, then its ceiling), then the cosmetic ones.
SEVERITY: tuple[model.Aspect, ...] = (
    Aspect.RoleMissing,
    Aspect.TrustPolicy,
    Aspect.ManagedPolicy,
    Aspect.InlinePolicy,
    Aspect.PermissionsBoundary,
    Aspect.Tags,
    Aspect.Description,
    Aspect.MaxSessionDuration,
)

#: How many items one drift message lists before it says "and N more".
_MESSAGE_LIMIT = 5
#: How much of a description a drift message quotes.
_QUOTE_LIMIT = 60


def diff(
    desired: model.DesiredRole,
    observed: model.ObservedRole | None,
    *,
    ignore_aspects: Collection[model.Aspect] = (),
) -> tuple[model.Drift, ...]:
    """Every aspect in which `observed` differs from `desired`, one Drift per aspect, by SEVERITY.

    Tags whose keys are in `desired.ignored_tag_keys` (the account's, lower-cased by
    build_desired) are never drift, and no delta mentions them. `ignore_aspects` skips aspects, e.g. the one the
    operator just wrote, during IAM's settle window, so that a stale read is not reported as
    drift.
    """
    if observed is None:
        if Aspect.RoleMissing in ignore_aspects:
            return ()
        return (
            model.Drift(
                Aspect.RoleMissing,
                f"role {desired.role_name} does not exist in account {desired.account_id}",
                model.RoleMissingDelta(desired),
            ),
        )
    ignored = frozenset(key.lower() for key in desired.ignored_tag_keys)
    checks: Mapping[model.Aspect, Callable[[], model.Drift | None]] = {
        Aspect.TrustPolicy: lambda: _trust_drift(desired, observed),
        Aspect.ManagedPolicy: lambda: _managed_policy_drift(desired, observed),
        Aspect.InlinePolicy: lambda: _inline_policy_drift(desired, observed),
        Aspect.PermissionsBoundary: lambda: _boundary_drift(desired, observed),
        Aspect.Tags: lambda: _tags_drift(tag_delta(desired.tags, observed.tags, ignored)),
        Aspect.Description: lambda: _description_drift(desired, observed),
        Aspect.MaxSessionDuration: lambda: _max_session_drift(desired, observed),
    }
    drifts = []
    for aspect in SEVERITY:
        check = checks.get(aspect)
        if check is None or aspect in ignore_aspects:
            continue
        drift = check()
        if drift is not None:
            drifts.append(drift)
    return tuple(drifts)


# -- deltas, one per aspect --------------------------------------------------------------------


def trust_delta(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.TrustDelta | None:
    """The declared trust policy, unless the observed one is semantically the same."""
    if policy.equivalent(desired.trust_policy, observed.trust_policy):
        return None
    return model.TrustDelta(desired.trust_policy)


def managed_policy_delta(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.ManagedPolicyDelta | None:
    """Managed policies attached but not declared, and declared but not attached, sorted."""
    detach = sorted(observed.managed_policy_arns - desired.managed_policy_arns)
    attach = sorted(desired.managed_policy_arns - observed.managed_policy_arns)
    if not (detach or attach):
        return None
    return model.ManagedPolicyDelta(detach=tuple(detach), attach=tuple(attach))


def inline_policy_delta(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.InlinePolicyDelta | None:
    """Inline policies present but not declared, declared but changed, declared but missing."""
    delete = sorted(observed.inline_policies.keys() - desired.inline_policies.keys())
    replace = {
        name: document
        for name, document in sorted(desired.inline_policies.items())
        if name in observed.inline_policies
        and not policy.equivalent(document, observed.inline_policies[name])
    }
    add = {
        name: document
        for name, document in sorted(desired.inline_policies.items())
        if name not in observed.inline_policies
    }
    if not (delete or replace or add):
        return None
    return model.InlinePolicyDelta(delete=tuple(delete), replace=replace, add=add)


def boundary_delta(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.BoundaryDelta | None:
    """The declared boundary when the observed one differs; `put` is None for an undeclared one.

    A boundary is only ever set or replaced, never removed (see `model.BoundaryDelta`).
    """
    if desired.permissions_boundary_arn == observed.permissions_boundary_arn:
        return None
    return model.BoundaryDelta(put=desired.permissions_boundary_arn)


def tag_delta(
    desired: Mapping[str, str], observed: Mapping[str, str], ignored: Collection[str] = ()
) -> model.TagDelta:
    """Compare tags by case-insensitive key; keys in `ignored` (lower-cased) are left out."""
    ignored = {key.lower() for key in ignored}
    want = {
        key.lower(): (key, value) for key, value in desired.items() if key.lower() not in ignored
    }
    have = {
        key.lower(): (key, value) for key, value in observed.items() if key.lower() not in ignored
    }
    missing: list[str] = []
    changed: list[tuple[str, str, str]] = []
    recased: list[tuple[str, str]] = []
    to_set: dict[str, str] = {}
    for folded, (key, value) in sorted(want.items()):
        if folded not in have:
            missing.append(key)
            to_set[key] = value
            continue
        observed_key, observed_value = have[folded]
        if observed_key != key:
            recased.append((observed_key, key))
            to_set[key] = value
        if observed_value != value:
            changed.append((key, observed_value, value))
            to_set[key] = value
    extra = sorted(key for folded, (key, _) in have.items() if folded not in want)
    return model.TagDelta(
        missing=tuple(missing),
        changed=tuple(changed),
        recased=tuple(recased),
        extra=tuple(extra),
        to_set=to_set,
    )


def role_fields_delta(desired: model.DesiredRole) -> model.RoleFieldsDelta:
    """What UpdateRole sends when either field drifted: both declared values."""
    return model.RoleFieldsDelta(desired.description, desired.max_session_duration)


# -- per-aspect drifts, each message written from its delta -------------------------------------


def _summarize(parts: list[str]) -> str:
    hidden = len(parts) - _MESSAGE_LIMIT
    shown = "; ".join(parts[:_MESSAGE_LIMIT])
    return f"{shown}; and {hidden} more" if hidden > 0 else shown


def _quote(text: str) -> str:
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 1] + "…"
    return f'"{text}"'


def _trust_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> model.Drift | None:
    delta = trust_delta(desired, observed)
    if delta is None:
        return None
    message = "trust policy " + policy.describe_difference(delta.document, observed.trust_policy)
    return model.Drift(Aspect.TrustPolicy, message, delta)


def _managed_policy_drift(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.Drift | None:
    delta = managed_policy_delta(desired, observed)
    if delta is None:
        return None
    parts = [f"managed policy {arn} is attached but not declared" for arn in delta.detach]
    parts += [f"managed policy {arn} is declared but not attached" for arn in delta.attach]
    return model.Drift(Aspect.ManagedPolicy, _summarize(parts), delta)


def _inline_policy_drift(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.Drift | None:
    delta = inline_policy_delta(desired, observed)
    if delta is None:
        return None
    parts = [f"inline policy {name} is present but not declared" for name in delta.delete]
    parts += [f"inline policy {name} is declared but missing" for name in delta.add]
    parts += [
        f"inline policy {name} "
        + policy.describe_difference(document, observed.inline_policies[name])
        for name, document in delta.replace.items()
    ]
    return model.Drift(Aspect.InlinePolicy, _summarize(parts), delta)


def _boundary_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> model.Drift | None:
    delta = boundary_delta(desired, observed)
    if delta is None:
        return None
    wanted, actual = delta.put, observed.permissions_boundary_arn
    if wanted is None:
        message = (
            f"permissions boundary {actual} is set but not declared "
            "(the operator never removes a boundary; remove it by hand)"
        )
    elif actual is None:
        message = f"permissions boundary {wanted} is declared but not set"
    else:
        message = f"permissions boundary is {actual} but {wanted} is declared"
    return model.Drift(Aspect.PermissionsBoundary, message, delta)


def _tags_drift(delta: model.TagDelta) -> model.Drift | None:
    if not delta:
        return None
    parts = [f"tag {key} is declared but missing" for key in delta.missing]
    parts += [f"tag {observed} should be spelled {key}" for observed, key in delta.recased]
    parts += [
        f"tag {key} is {_quote(actual)} but {_quote(wanted)} is declared"
        for key, actual, wanted in delta.changed
    ]
    parts += [f"tag {key} is present but not declared" for key in delta.extra]
    return model.Drift(Aspect.Tags, _summarize(parts), delta)


def _description_drift(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.Drift | None:
    if desired.description == observed.description:
        return None
    delta = role_fields_delta(desired)
    wanted, actual = delta.description, observed.description
    if not actual:
        message = f"description is empty but {_quote(wanted)} is declared"
    elif not wanted:
        message = f"description is {_quote(actual)} but none is declared"
    else:
        message = f"description is {_quote(actual)} but {_quote(wanted)} is declared"
    return model.Drift(Aspect.Description, message, delta)


def _max_session_drift(
    desired: model.DesiredRole, observed: model.ObservedRole
) -> model.Drift | None:
    if desired.max_session_duration == observed.max_session_duration:
        return None
    delta = role_fields_delta(desired)
    message = (
        f"max session duration is {observed.max_session_duration} s but "
        f"{delta.max_session_duration} s is declared"
    )
    return model.Drift(Aspect.MaxSessionDuration, message, delta)
