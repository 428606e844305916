"""The operator's shared state (OperatorContext) on a fake clock: the settle window after its own
writes (`settleWindow`), the cached caller identity, the per-object locks and the worker pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ecsrole import config as config_loader
from ecsrole.aws.clients import AccountAccess, AccountClients
from ecsrole.context import IDENTITY_TTL_SECONDS, OperatorContext
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.model import Aspect
from tests.unit.fakes import Clock

pytestmark = pytest.mark.unit

A, B = "111111111111", "222222222222"
TRUST, TAGS, MANAGED = Aspect.TrustPolicy, Aspect.Tags, Aspect.ManagedPolicy


class FakeSts:
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.calls = 0

    def get_caller_identity(self) -> dict[str, str]:
        self.calls += 1
        return {
            "Account": self.account_id,
            "Arn": f"arn:aws:sts::{self.account_id}:assumed-role/ecsrole/session-{self.calls}",
            "UserId": f"AROA{self.calls}",
        }


class FakeClients:
    """Stands in for ClientFactory: one fake STS per account (IAM is not needed here)."""

    def __init__(self) -> None:
        self.sts: dict[str, FakeSts] = {}

    def for_account(self, access: AccountAccess) -> AccountClients:
        sts = self.sts.setdefault(access.account_id, FakeSts(access.account_id))
        return AccountClients(access=access, iam=None, sts=sts, limiter=None)  # type: ignore[arg-type]

    def limiter(self, account_id: str) -> None:
        return None  # no rate limit here: these tests count STS calls


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aws")
    yield executor
    executor.shutdown(wait=True)


def context(
    pool: ThreadPoolExecutor, clock: Clock, *, settle_window: float = 15.0
) -> tuple[OperatorContext, FakeClients]:
    clients = FakeClients()
    config = OperatorConfig(
        cluster_name="c",
        settle_window=settle_window,
        accounts={A: AccountConfig(A), B: AccountConfig(B)},
    )
    return OperatorContext(config=config, clients=clients, pool=pool, clock=clock), clients  # type: ignore[arg-type]


# -- the settle window -----------------------------------------------------------------------------

V1 = ("uid-1", 1)  # the spec (uid, generation) the operator's writes carried out


def test_only_writes_for_the_spec_being_judged_settle(pool: ThreadPoolExecutor) -> None:
    """After a spec change (or another object with the role's name) nothing hides the role."""
    ctx, _ = context(pool, Clock(), settle_window=15)
    ctx.record_writes(A, "web-exec", [TRUST, TAGS], V1)
    assert ctx.settling(A, "web-exec", V1) == {TRUST, TAGS}
    assert ctx.settling(A, "web-exec", ("uid-1", 2)) == frozenset()  # a newer generation
    assert ctx.settling(A, "web-exec", ("uid-2", 1)) == frozenset()  # another object
    ctx.record_writes(A, "web-exec", [TAGS], ("uid-1", 2))  # generation 2 repaired the tags
    assert ctx.settling(A, "web-exec", ("uid-1", 2)) == {TAGS}
    assert ctx.settling(A, "web-exec", V1) == {TRUST}


def test_an_aspect_the_operator_wrote_settles_for_the_window_then_is_judged_again(
    pool: ThreadPoolExecutor,
) -> None:
    clock = Clock()
    ctx, _ = context(pool, clock, settle_window=15)
    ctx.record_writes(A, "web-exec", [TRUST, MANAGED], V1)
    assert ctx.settling(A, "web-exec", V1) == {TRUST, MANAGED}
    clock.now += 15  # the window's last instant still settles
    assert ctx.settling(A, "web-exec", V1) == {TRUST, MANAGED}
    clock.now += 0.01
    assert ctx.settling(A, "web-exec", V1) == frozenset()


def test_each_aspect_settles_from_its_own_last_write(pool: ThreadPoolExecutor) -> None:
    clock = Clock()
    ctx, _ = context(pool, clock, settle_window=15)
    ctx.record_writes(A, "web-exec", [TRUST, TAGS], V1)
    clock.now += 10
    ctx.record_writes(A, "web-exec", [TAGS], V1)  # written again: its window starts over
    clock.now += 10
    assert ctx.settling(A, "web-exec", V1) == {TAGS}
    clock.now += 6
    assert ctx.settling(A, "web-exec", V1) == frozenset()


def test_settling_is_per_account_and_role_name_in_any_letter_case(
    pool: ThreadPoolExecutor,
) -> None:
    ctx, _ = context(pool, Clock())
    ctx.record_writes(A, "Web-Exec", [TRUST], V1)
    assert ctx.settling(A, "web-exec", V1) == {TRUST}  # IAM role names ignore case
    assert ctx.settling(A, "WEB-EXEC", V1) == {TRUST}
    assert ctx.settling(B, "web-exec", V1) == frozenset()
    assert ctx.settling(A, "other", V1) == frozenset()


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("30s", 30.0), ("2m", 120.0)])
def test_the_window_is_the_configured_settle_window(
    text: str, seconds: float, pool: ThreadPoolExecutor
) -> None:
    config = config_loader.parse_config(
        {"clusterName": "c", "accounts": {A: {}}, "settleWindow": text}
    )
    clock = Clock()
    ctx = OperatorContext(config=config, clients=FakeClients(), pool=pool, clock=clock)  # type: ignore[arg-type]
    ctx.record_writes(A, "web-exec", [TRUST], V1)
    clock.now += seconds
    assert ctx.settling(A, "web-exec", V1) == {TRUST}
    clock.now += 0.001
    assert ctx.settling(A, "web-exec", V1) == frozenset()


def test_the_default_window_is_fifteen_seconds() -> None:
    assert config_loader.parse_config({"clusterName": "c", "accounts": {}}).settle_window == 15


def test_a_settled_role_leaves_no_record_behind(pool: ThreadPoolExecutor) -> None:
    """Thousands of roles are written at a start; their records must not stay for ever."""
    clock = Clock()
    ctx, _ = context(pool, clock)
    for index in range(100):
        ctx.record_writes(A, f"role-{index}", [TRUST], V1)
    clock.now += 16
    for index in range(100):
        assert ctx.settling(A, f"role-{index}", V1) == frozenset()
    assert ctx._writes == {}


# -- the caller identity ---------------------------------------------------------------------------


def test_the_caller_identity_is_asked_once_per_account_until_it_expires(
    pool: ThreadPoolExecutor,
) -> None:
    clock = Clock()
    ctx, clients = context(pool, clock)
    first = ctx.caller_identity(AccountConfig(A))
    assert first.account_id == A
    clock.now += IDENTITY_TTL_SECONDS - 1
    assert ctx.caller_identity(AccountConfig(A)) == first
    assert clients.sts[A].calls == 1
    assert ctx.caller_identity(AccountConfig(B)).account_id == B  # its own entry
    clock.now += 2
    renewed = ctx.caller_identity(AccountConfig(A))  # a repointed roleArn is noticed
    assert renewed != first
    assert clients.sts[A].calls == 2


def test_a_burst_of_first_reconciles_asks_sts_once(pool: ThreadPoolExecutor) -> None:
    ctx, clients = context(pool, Clock())
    gate = threading.Barrier(8)

    def ask() -> str:
        gate.wait(30)
        return ctx.caller_identity(AccountConfig(A)).arn

    with ThreadPoolExecutor(max_workers=8) as burst:
        arns = set(burst.map(lambda _: ask(), range(8)))
    assert len(arns) == 1
    assert clients.sts[A].calls == 1


# -- locks, memory and the worker pool -------------------------------------------------------------


def test_one_lock_per_object_until_it_is_forgotten(pool: ThreadPoolExecutor) -> None:
    ctx, _ = context(pool, Clock())
    lock = ctx.lock_for("uid-1")
    assert ctx.lock_for("uid-1") is lock
    assert ctx.lock_for("uid-2") is not lock
    ctx.mark_in_sync("uid-1")
    assert ctx.last_in_sync("uid-1") is not None
    ctx.forget("uid-1")
    assert ctx.lock_for("uid-1") is not lock
    assert ctx.last_in_sync("uid-1") is None


def test_kopfs_per_object_copy_of_the_memo_shares_the_state(pool: ThreadPoolExecutor) -> None:
    import copy

    ctx, _ = context(pool, Clock())
    assert copy.copy(ctx) is ctx


def test_blocking_work_runs_in_the_pool_with_the_callers_log_fields(
    pool: ThreadPoolExecutor,
) -> None:
    ctx, _ = context(pool, Clock())
    field: contextvars.ContextVar[str] = contextvars.ContextVar("field", default="unset")

    async def work() -> tuple[str, str]:
        field.set("bound in the handler")

        def blocking() -> tuple[str, str]:
            return threading.current_thread().name, field.get()

        return await ctx.in_worker(blocking)

    thread, value = asyncio.run(work())
    assert thread.startswith("aws")
    assert value == "bound in the handler"


def test_warming_creates_every_accounts_clients_without_calling_aws(
    pool: ThreadPoolExecutor,
) -> None:
    """A standby builds its clients while it waits for the lease, not on the loop at takeover."""
    ctx, clients = context(pool, Clock())
    ctx.warm_clients()
    assert set(clients.sts) == {A, B}
    assert all(sts.calls == 0 for sts in clients.sts.values())
