"""Claims (core.claims) and the one ownership rule (core.ownership.standing), DESIGN section 3."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ecsrole.aws.iam import CallerIdentity
from ecsrole.context import OperatorContext
from ecsrole.core import claims, ownership
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.model import ObservedRole, Operation
from ecsrole.reconciler import Reconciler, Resource

from . import factories

pytestmark = pytest.mark.unit

ACCOUNT = factories.ACCOUNT_ID
CONFIG = OperatorConfig(
    cluster_name=factories.OWNER.cluster, accounts={ACCOUNT: factories.account()}
)
CREATED = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def claim(
    *,
    namespace: str = factories.NAMESPACE,
    uid: str = "uid-1",
    created: str = "2026-01-01T12:00:00Z",
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> claims.Claim | None:
    return claims.claim_of(
        CONFIG,
        namespace=namespace,
        uid=uid,
        created=created,
        spec=factories.spec_dict(**spec),
        status=status or {},
    )


def ready(reason: str, **status: Any) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "False", "reason": reason}], **status}


# -- who claims ------------------------------------------------------------------------------


def test_only_a_resource_that_passes_the_account_and_namespace_checks_claims() -> None:
    assert claim() is not None
    assert claim(namespace="rogue") is None  # AccountNotAllowed claims nothing
    assert claim(accountId=factories.OTHER_ACCOUNT_ID) is None  # an unlisted account
    assert claim(maxSessionDuration="long") is None  # InvalidSpec


def test_claims_are_keyed_by_account_and_role_name_in_any_case() -> None:
    upper, lower = claim(roleName="WEB-exec"), claim(roleName="web-exec")
    assert upper is not None
    assert lower is not None
    assert upper.key == lower.key == claims.key_of({"accountId": ACCOUNT, "roleName": "Web-Exec"})


# -- who wins --------------------------------------------------------------------------------


def test_the_oldest_claim_wins_then_the_smallest_uid() -> None:
    old = claim(uid="b", created="2026-01-01T12:00:00Z")
    new = claim(uid="a", created="2026-01-01T12:00:01Z")
    same_second = claim(uid="a", created="2026-01-01T12:00:00Z")
    assert claims.winner([new, old]) == old  # type: ignore[list-item]
    assert claims.winner([old, same_second]) == same_second  # type: ignore[list-item]


def test_a_claim_that_recorded_its_role_outranks_older_ones() -> None:
    """creationTimestamp has 1 s resolution and the index may list a newer object first: a
    holder whose role works must not lose the name to a same-second or late-listed claim."""
    holder = claim(uid="z", created="2026-01-01T12:00:05Z", status={"roleId": "AROA1"})
    older = claim(uid="a", created="2026-01-01T12:00:00Z")
    claimants: list[claims.Claim] = [older, holder]  # type: ignore[list-item]
    assert claims.winner(claimants) == holder
    assert claims.is_conflicting(claimants, "a")
    assert not claims.is_conflicting(claimants, "z")


def test_nobody_conflicts_with_no_valid_claim() -> None:
    assert claims.winner([]) is None
    assert not claims.is_conflicting([], "uid-1")


# -- take-over -------------------------------------------------------------------------------


def test_the_winner_is_woken_only_while_its_outcome_came_from_an_older_ranking() -> None:
    waiting = claim(uid="a", status=ready("ConflictingResource"))
    assert claims.to_wake([waiting]) == waiting  # type: ignore[list-item]
    assert claims.to_wake([claim(uid="a", status={})]) is None  # its own handler runs
    # RoleExistsNotOwned before the holder's id reached the index: waiting on the ranking.
    assert claims.to_wake([claim(uid="a", status=ready("RoleExistsNotOwned"))]) is not None
    # A holder's RoleExistsNotOwned (its role was replaced) waits for a human, not a claim.
    holder = claim(uid="a", status=ready("RoleExistsNotOwned", roleId="AROA1"))
    assert claims.to_wake([holder]) is None  # type: ignore[list-item]


def test_a_loser_is_not_woken_while_the_winner_claims() -> None:
    winner = claim(uid="a", created="2026-01-01T12:00:00Z", status={"roleId": "AROA1"})
    loser = claim(uid="b", created="2026-01-01T12:00:09Z", status=ready("ConflictingResource"))
    assert claims.to_wake([winner, loser]) is None  # type: ignore[list-item]
    assert claims.to_wake([loser]) == loser  # type: ignore[list-item]


def test_the_conflict_message_names_no_other_object() -> None:
    message = claims.conflict_message("web-exec", ACCOUNT)
    assert "web-exec" in message
    assert ACCOUNT in message
    assert "namespace" not in message.lower().replace("no longer allowed", "")


# -- the one ownership rule -----------------------------------------------------------------


def role(**overrides: Any) -> ObservedRole:
    values: dict[str, Any] = {"role_id": "AROARECORDED", "create_date": CREATED}
    values.update(overrides)
    return factories.observed_from(factories.desired_role(), **values)


def standing(observed: ObservedRole, recorded: str | None) -> ownership.Standing:
    return ownership.standing(
        observed, factories.OWNER, recorded, resource_created=CREATED, path="/ecs/"
    )


def test_the_recorded_role_is_owned() -> None:
    assert standing(role(), "AROARECORDED") is ownership.Standing.OWNED


def test_a_recorded_id_is_authoritative_whatever_the_tags_say() -> None:
    impostor = role(role_id="AROAIMPOSTOR", create_date=CREATED + datetime.timedelta(hours=1))
    assert ownership.ownership_tags_match(impostor, factories.OWNER)
    assert standing(impostor, "AROARECORDED") is ownership.Standing.NOT_THE_RECORDED_ROLE
    retagged = role(tags={**factories.OWNER.tags(), "ecsrole.dev/uid": "someone-else"})
    assert standing(retagged, "AROARECORDED") is ownership.Standing.NOT_THE_RECORDED_ROLE


def test_the_crash_recovery_claim_applies_only_while_no_id_is_recorded() -> None:
    created_before_crash = role(role_id="AROANEW", create_date=CREATED)
    assert standing(created_before_crash, None) is ownership.Standing.CREATED_BEFORE_CRASH
    older = role(create_date=CREATED - datetime.timedelta(minutes=5))
    assert standing(older, None) is ownership.Standing.UNCLAIMED
    assert standing(role(tags={"team": "a"}), None) is ownership.Standing.UNCLAIMED


# -- through the Reconciler ------------------------------------------------------------------


class _Adapter:
    def __init__(self, observed: ObservedRole | None) -> None:
        self.observed = observed
        self.applied: list[Operation] = []

    def read_role(self, role_name: str, **_: Any) -> ObservedRole | None:
        return self.observed

    def apply(self, operations: Iterable[Operation]) -> dict[str, Any] | None:
        self.applied.extend(operations)
        return {"Arn": "arn:aws:iam::111111111111:role/ecs/web-exec", "RoleId": "AROANEW"}


class _Context(OperatorContext):
    fake: _Adapter

    def adapter(self, account: AccountConfig) -> Any:
        return self.fake

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        return CallerIdentity(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:role/ecsrole", "AROAOP")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown()


def _reconciler(pool: ThreadPoolExecutor, observed: ObservedRole | None) -> Reconciler:
    context = _Context(config=CONFIG, clients=None, pool=pool)  # type: ignore[arg-type]
    context.fake = _Adapter(observed)
    return Reconciler(context)


def _resource(**status: Any) -> Resource:
    return Resource(
        namespace=factories.NAMESPACE,
        name=factories.OWNER.name,
        uid=factories.OWNER.uid,
        generation=1,
        created=CREATED,
        spec=factories.spec_dict(),
        annotations={},
        status={"observedGeneration": 1, **status},
    )


def test_an_impostor_with_copied_tags_is_refused_with_no_write_and_left_at_deletion(
    pool: ThreadPoolExecutor,
) -> None:
    impostor = role(role_id="AROAIMPOSTOR", create_date=CREATED + datetime.timedelta(hours=1))
    reconciler = _reconciler(pool, impostor)
    result = reconciler.reconcile(_resource(roleId="AROARECORDED"), conflicting=False)
    assert result.outcome.ready_reason == "RoleExistsNotOwned"
    assert result.outcome.stalled
    assert result.outcome.role_id is None  # the record stays
    assert "AROAIMPOSTOR" in result.outcome.ready_message
    deleted = reconciler.delete(_resource(roleId="AROARECORDED"))
    assert deleted.done
    assert reconciler.context.fake.applied == []  # type: ignore[attr-defined]


def test_a_vanished_recorded_role_is_recreated_after_its_record_is_dropped(
    pool: ThreadPoolExecutor,
) -> None:
    reconciler = _reconciler(pool, None)
    first = reconciler.reconcile(_resource(roleId="AROARECORDED"), conflicting=False)
    assert first.outcome.ready_reason == "RoleMissing"
    assert first.outcome.extra["roleId"] is None  # dropped from status
    assert not first.done
    assert reconciler.context.fake.applied == []  # type: ignore[attr-defined]
    second = reconciler.reconcile(
        _resource(drift=[{"aspect": "RoleMissing", "message": "gone"}]), conflicting=False
    )
    assert second.done
    assert second.outcome.role_id == "AROANEW"
    assert [e.reason for e in second.events] == ["Recreated", "DriftRepaired"]
    assert reconciler.context.fake.applied[0].action == "CreateRole"  # type: ignore[attr-defined]
