"""Who may act on a role name, when several EcsExecutionRoles name it (DESIGN section 3).

Pure: plain data in, a decision out. The kopf glue (handlers.py) keeps one `Claim` per resource
in an index and asks `is_conflicting` and `to_wake`; unit and model tests call the same
functions.

The rules:

- Only a resource that passes the account and namespace checks claims a role (`claim_of`): a
  resource refused there (AccountNotAllowed) or whose spec never parses (InvalidSpec) claims
  nothing, so no tenant can block a name it may not use.
- Claims are keyed by account and role name, the name compared regardless of case (IAM's own
  rule).
- Of the valid claims on one key, the first by `rank` wins: a claim that has recorded its role
  (status.roleId) before any that has not, then the oldest creationTimestamp, then the
  smallest uid. The recorded id goes first because creationTimestamp has one-second resolution
  and the index may see a newer object before an older one: a resource created in the same
  second as the holder, or listed late, must not take the name from a holder whose role works
  (it could not take the role anyway: the role's ownership tags name the holder).
- A claim is dropped when its resource goes (the deletion finished) or stops being valid; the
  next claim then wins. `to_wake` names that one when it is still waiting on the old ranking,
  so the shell re-evaluates it at once, instead of polling conflicts at rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ecsrole.core import config, model
from ecsrole.core.spec import SpecError, parse_spec

#: Ready reasons of a resource that is waiting on another claim: ConflictingResource, or
#: RoleExistsNotOwned from before the holder's id was seen (it claimed while the holder's
#: status had not reached the index). A holder's own RoleExistsNotOwned waits for a human.
CONFLICTING = model.ReadyReason.ConflictingResource
ROLE_EXISTS_NOT_OWNED = model.ReadyReason.RoleExistsNotOwned


@dataclass(frozen=True, slots=True)
class Claim:
    """One resource's claim on an account and role name.

    `created` is the creationTimestamp as the API server writes it (RFC 3339 in UTC, seconds),
    which sorts as it reads. `holds` is True once the resource recorded a role id. `waiting`
    is True when its last outcome was decided by another claim (see `is_waiting`).
    """

    account_id: str
    role_key: str
    uid: str
    created: str
    holds: bool
    waiting: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.account_id, self.role_key)


def key_of(spec: Mapping[str, Any]) -> tuple[str, str]:
    """The claim key a spec names, valid or not: account id and lower-cased role name."""
    return (str(spec.get("accountId", "")), str(spec.get("roleName", "")).lower())


def account_for(
    operator_config: config.OperatorConfig, namespace: str, account_id: str
) -> config.AccountConfig | None:
    """The account's entry when it lists `namespace`; else None (AccountNotAllowed).

    The one account and namespace check: the reconciler refuses on it before any AWS call, and
    `claim_of` lets only resources that pass it claim.
    """
    account = operator_config.account(account_id)
    if account is None or not account.allows_namespace(namespace):
        return None
    return account


def _ready_reason(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("reason", ""))
    return None


def is_waiting(status: Mapping[str, Any]) -> bool:
    """True when the last outcome came from the ranking, so a new ranking may change it."""
    reason = _ready_reason(status)
    if reason == CONFLICTING:
        return True
    return reason == ROLE_EXISTS_NOT_OWNED and not status.get("roleId")


def claim_of(
    operator_config: config.OperatorConfig,
    *,
    namespace: str,
    uid: str,
    created: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
) -> Claim | None:
    """The resource's claim, or None when it may not claim at all (refused or invalid).

    A resource being deleted still claims until it is gone: its deletion may still be removing
    the role, and a successor must not find it half-deleted.
    """
    try:
        parsed = parse_spec(spec)
    except SpecError:
        return None
    if account_for(operator_config, namespace, parsed.account_id) is None:
        return None
    return Claim(
        account_id=parsed.account_id,
        role_key=parsed.role_name.lower(),
        uid=uid,
        created=created,
        holds=bool(status.get("roleId")),
        waiting=is_waiting(status),
    )


def rank(claim: Claim) -> tuple[bool, str, str]:
    """Sort key: holders first, then the oldest, then the smallest uid (see the module doc)."""
    return (not claim.holds, claim.created, claim.uid)


def winner(claims: Iterable[Claim]) -> Claim | None:
    """The claim that may act on the role, or None when nobody validly claims it."""
    return min(claims, key=rank, default=None)


def is_conflicting(claims: Iterable[Claim], uid: str) -> bool:
    """True when another valid claim on the same key ranks before `uid`'s."""
    first = winner(claims)
    return first is not None and first.uid != uid


def to_wake(claims: Iterable[Claim]) -> Claim | None:
    """The winner, when its last outcome still reflects an older ranking; else None.

    Called whenever anything on the key changed (a claim appeared, changed or went). The winner
    is woken at most until its outcome changes: it is then no longer waiting, so a conflict at
    rest costs no Kubernetes write and no AWS call.
    """
    first = winner(claims)
    return first if first is not None and first.waiting else None


def conflict_message(role_name: str, account_id: str) -> str:
    """ConflictingResource's message: true, and naming no other tenant's object."""
    return (
        f"another EcsExecutionRole has an earlier claim on role {role_name} in account "
        f"{account_id} (it recorded the role first, or is older); this one does nothing until "
        "that claim goes (the other resource is deleted or no longer allowed for the account), "
        "then it proceeds by itself"
    )
