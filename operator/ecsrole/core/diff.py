"""Desired vs observed -> drift, the heart of the operator.

One computed list of drifts drives the update, the status, the metrics and the events (ACK's
delta), so everything that decides "is this different" lives here, including the per-aspect
deltas (`tag_delta`, `extra_managed_policies`, ...) that `plan` turns into IAM calls.

The declared state is complete: a managed policy attached, an inline policy added or trust
widened outside the spec is drift, because privilege creep is the drift that matters most.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

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
    ignored_tag_keys: Iterable[str] = (),
    ignore_aspects: Collection[model.Aspect] = (),
) -> tuple[model.Drift, ...]:
    """Every aspect in which `observed` differs from `desired`, one Drift per aspect, by SEVERITY.

    `ignored_tag_keys` adds to `desired.ignored_tag_keys` (case-insensitive): such tags are
    never drift. `ignore_aspects` skips aspects, e.g. the one the operator just wrote, during
    IAM's settle window, so that a stale read is not reported as drift.
    """
    if observed is None:
        if Aspect.RoleMissing in ignore_aspects:
            return ()
        return (
            model.Drift(
                Aspect.RoleMissing,
                f"role {desired.role_name} does not exist in account {desired.account_id}",
            ),
        )
    ignored = _ignored(desired, ignored_tag_keys)
    checks = {
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
        message = check()
        if message is not None:
            drifts.append(model.Drift(aspect, message))
    return tuple(drifts)


# -- deltas, shared with plan ------------------------------------------------------------------


@dataclass(frozen=True)
class TagDelta:
    """What separates observed tags from desired ones, keys compared case-insensitively.

    `to_remove` holds observed spellings: tags not declared, plus declared keys present in
    another letter case (IAM keeps tag keys unique regardless of case, so the old spelling has
    to go before the declared one can be set). `to_set` holds desired tags that are missing,
    differ in value or in key case.
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


def tag_delta(
    desired: Mapping[str, str], observed: Mapping[str, str], ignored: Collection[str] = ()
) -> TagDelta:
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
    return TagDelta(
        missing=tuple(missing),
        changed=tuple(changed),
        recased=tuple(recased),
        extra=tuple(extra),
        to_set=to_set,
    )


def extra_managed_policies(desired: model.DesiredRole, observed: model.ObservedRole) -> list[str]:
    """Managed policies attached but not declared, sorted."""
    return sorted(observed.managed_policy_arns - desired.managed_policy_arns)


def missing_managed_policies(desired: model.DesiredRole, observed: model.ObservedRole) -> list[str]:
    """Managed policies declared but not attached, sorted."""
    return sorted(desired.managed_policy_arns - observed.managed_policy_arns)


def extra_inline_policies(desired: model.DesiredRole, observed: model.ObservedRole) -> list[str]:
    """Inline policy names present but not declared, sorted."""
    return sorted(observed.inline_policies.keys() - desired.inline_policies.keys())


def missing_inline_policies(desired: model.DesiredRole, observed: model.ObservedRole) -> list[str]:
    """Declared inline policy names that are absent, sorted."""
    return sorted(desired.inline_policies.keys() - observed.inline_policies.keys())


def changed_inline_policies(desired: model.DesiredRole, observed: model.ObservedRole) -> list[str]:
    """Declared inline policies present with a semantically different document, sorted."""
    return sorted(
        name
        for name, document in desired.inline_policies.items()
        if name in observed.inline_policies
        and not policy.equivalent(document, observed.inline_policies[name])
    )


def boundary_to_put(desired: model.DesiredRole, observed: model.ObservedRole) -> str | None:
    """The boundary to put, or None: one is only ever set or replaced, never removed.

    The operator's IAM policy has no DeleteRolePermissionsBoundary (DESIGN section 3), so an
    undeclared boundary stays reported drift that a human resolves.
    """
    wanted = desired.permissions_boundary_arn
    if wanted is not None and observed.permissions_boundary_arn != wanted:
        return wanted
    return None


# -- per-aspect messages -----------------------------------------------------------------------


def _ignored(desired: model.DesiredRole, extra: Iterable[str]) -> frozenset[str]:
    return frozenset(key.lower() for key in (*desired.ignored_tag_keys, *extra))


def _summarize(parts: list[str]) -> str:
    hidden = len(parts) - _MESSAGE_LIMIT
    shown = "; ".join(parts[:_MESSAGE_LIMIT])
    return f"{shown}; and {hidden} more" if hidden > 0 else shown


def _quote(text: str) -> str:
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 1] + "…"
    return f'"{text}"'


def _trust_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> str | None:
    if policy.equivalent(desired.trust_policy, observed.trust_policy):
        return None
    return "trust policy " + policy.describe_difference(desired.trust_policy, observed.trust_policy)


def _managed_policy_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> str | None:
    parts = [
        f"managed policy {arn} is attached but not declared"
        for arn in extra_managed_policies(desired, observed)
    ] + [
        f"managed policy {arn} is declared but not attached"
        for arn in missing_managed_policies(desired, observed)
    ]
    return _summarize(parts) if parts else None


def _inline_policy_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> str | None:
    parts = [
        f"inline policy {name} is present but not declared"
        for name in extra_inline_policies(desired, observed)
    ]
    parts += [
        f"inline policy {name} is declared but missing"
        for name in missing_inline_policies(desired, observed)
    ]
    parts += [
        f"inline policy {name} "
        + policy.describe_difference(desired.inline_policies[name], observed.inline_policies[name])
        for name in changed_inline_policies(desired, observed)
    ]
    return _summarize(parts) if parts else None


def _boundary_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> str | None:
    wanted, actual = desired.permissions_boundary_arn, observed.permissions_boundary_arn
    if wanted == actual:
        return None
    if wanted is None:
        return (
            f"permissions boundary {actual} is set but not declared "
            "(the operator never removes a boundary; remove it by hand)"
        )
    if actual is None:
        return f"permissions boundary {wanted} is declared but not set"
    return f"permissions boundary is {actual} but {wanted} is declared"


def _tags_drift(delta: TagDelta) -> str | None:
    if not delta:
        return None
    parts = [f"tag {key} is declared but missing" for key in delta.missing]
    parts += [f"tag {observed} should be spelled {key}" for observed, key in delta.recased]
    parts += [
        f"tag {key} is {_quote(actual)} but {_quote(wanted)} is declared"
        for key, actual, wanted in delta.changed
    ]
    parts += [f"tag {key} is present but not declared" for key in delta.extra]
    return _summarize(parts)


def _description_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> str | None:
    if desired.description == observed.description:
        return None
    if not observed.description:
        return f"description is empty but {_quote(desired.description)} is declared"
    if not desired.description:
        return f"description is {_quote(observed.description)} but none is declared"
    return f"description is {_quote(observed.description)} but {_quote(desired.description)} is declared"


def _max_session_drift(desired: model.DesiredRole, observed: model.ObservedRole) -> str | None:
    if desired.max_session_duration == observed.max_session_duration:
        return None
    return (
        f"max session duration is {observed.max_session_duration} s but "
        f"{desired.max_session_duration} s is declared"
    )
