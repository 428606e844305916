"""The Seeder: after a start or takeover kopf resumes every object at once; one bulk read per
account answers all of them (instead of three or more IAM calls per role), for a while only.
Fake IAM adapter, fake clock, a real worker pool.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ecsrole.aws.errors import AwsCallError, FailureKind
from ecsrole.context import OperatorContext
from ecsrole.core.config import AccountConfig, OperatorConfig, SweepMode
from ecsrole.core.model import ObservedRole
from ecsrole.reconciler import Resource
from ecsrole.sweeper import SEED_SECONDS, Seeder
from tests.unit import factories
from tests.unit.fakes import Clock

pytestmark = pytest.mark.unit

BULK, PER_ROLE, UNLISTED = "111111111111", "222222222222", "333333333333"


def observed(name: str) -> ObservedRole:
    return factories.observed_from(factories.desired_role(roleName=name))


class BulkReads:
    """read_roles_bulk of every account, counted; the first read waits for `release`."""

    def __init__(self, roles: dict[str, ObservedRole] | AwsCallError) -> None:
        self.roles = roles
        self.reads: list[tuple[str, str]] = []
        self.release = threading.Event()

    def adapter(self, account: AccountConfig) -> Any:
        reads = self

        class Adapter:
            def read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
                reads.reads.append((account.account_id, path_prefix))
                assert reads.release.wait(30)
                if isinstance(reads.roles, AwsCallError):
                    raise reads.roles
                return reads.roles

        return Adapter()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=4)
    yield executor
    executor.shutdown(wait=True)


def seeder(
    pool: ThreadPoolExecutor, clock: Clock, reads: BulkReads, monkeypatch: pytest.MonkeyPatch
) -> Seeder:
    config = OperatorConfig(
        cluster_name="prod-eu-1",
        accounts={
            BULK: AccountConfig(BULK, role_path_prefix="/ecs/"),
            PER_ROLE: AccountConfig(PER_ROLE, sweep_mode=SweepMode.PER_ROLE),
        },
    )
    context = OperatorContext(config=config, clients=None, pool=pool, clock=clock)  # type: ignore[arg-type]
    monkeypatch.setattr(context, "adapter", reads.adapter)
    return Seeder(context)


def resource(
    role_name: str,
    *,
    account_id: str = BULK,
    role_id: str | None = "AROAEXAMPLEID",
    generation: int = 1,
    observed_generation: int = 1,
    deleting: bool = False,
) -> Resource:
    status: dict[str, Any] = {"observedGeneration": observed_generation}
    if role_id:
        status["roleId"] = role_id
    return Resource(
        namespace="team-a",
        name=role_name,
        uid=f"uid-{role_name}",
        generation=generation,
        created=None,
        spec={"accountId": account_id, "roleName": role_name},
        annotations={},
        status=status,
        deleting=deleting,
    )


def test_one_bulk_read_answers_every_resumed_resource_of_an_account(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    roles = {"web-exec": observed("web-exec"), "api-exec": observed("api-exec")}
    reads = BulkReads(roles)
    seeds = seeder(pool, Clock(), reads, monkeypatch)

    async def resume_all() -> list[Any]:
        waiting = [
            asyncio.ensure_future(seeds.observation(resource(name)))
            for name in ("web-exec", "API-Exec", "gone-exec")
        ]
        await asyncio.sleep(0)  # let them start: whenever they do, they share the one read
        reads.release.set()
        return await asyncio.wait_for(asyncio.gather(*waiting), timeout=30)

    web, api, gone = asyncio.run(resume_all())
    assert reads.reads == [(BULK, "/ecs/")]
    assert (web.role, web.source) == (roles["web-exec"], "sweep")
    assert api.role == roles["api-exec"]  # role names compared in any letter case
    assert gone is not None
    assert gone.role is None  # read, and missing: the reconcile decides (RoleMissing)


@pytest.mark.parametrize(
    "unseeded",
    [
        resource("web-exec", role_id=None),  # never created or adopted: reads itself
        resource("web-exec", generation=2),  # spec work pending: the handler's job
        resource("web-exec", deleting=True),
        resource("web-exec", account_id=PER_ROLE),  # perRole accounts never bulk-read
        resource("web-exec", account_id=UNLISTED),  # zero AWS calls for unlisted accounts
    ],
    ids=["no-role-id", "generation-behind", "deleting", "per-role-account", "unlisted-account"],
)
def test_resources_that_are_not_seeded_cause_no_read(
    unseeded: Resource, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = BulkReads({})
    reads.release.set()
    assert asyncio.run(seeder(pool, Clock(), reads, monkeypatch).observation(unseeded)) is None
    assert reads.reads == []


def test_a_failed_bulk_read_lets_each_resource_read_its_own_role(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    denied = AwsCallError(
        FailureKind.ACCESS_DENIED, "GetAccountAuthorizationDetails", "AccessDenied", "no"
    )
    reads = BulkReads(denied)
    reads.release.set()
    seeds = seeder(pool, Clock(), reads, monkeypatch)

    async def resume() -> list[Any]:
        return [await seeds.observation(resource(n)) for n in ("web-exec", "api-exec")]

    assert asyncio.run(resume()) == [None, None]
    assert reads.reads == [(BULK, "/ecs/")]  # the failure is not retried per resource


def test_seeding_ends_after_the_start_and_the_read_is_let_go(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    reads = BulkReads({"web-exec": observed("web-exec")})
    reads.release.set()
    seeds = seeder(pool, clock, reads, monkeypatch)
    first = asyncio.run(seeds.observation(resource("web-exec")))
    assert first is not None
    clock.now += SEED_SECONDS - 1
    assert asyncio.run(seeds.observation(resource("web-exec"))) == first  # the same read
    clock.now += 2
    assert asyncio.run(seeds.observation(resource("web-exec"))) is None
    assert seeds._reads == {}  # every role of the account is not kept for the whole term
    assert reads.reads == [(BULK, "/ecs/")]


def test_the_seed_read_age_is_kept_for_the_sweeps_and_forgotten_when_it_failed(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    reads = BulkReads({"web-exec": observed("web-exec")})
    reads.release.set()
    seeds = seeder(pool, clock, reads, monkeypatch)
    assert seeds.read_age(BULK) is None
    asyncio.run(seeds.observation(resource("web-exec")))
    clock.now += SEED_SECONDS + 5
    assert seeds.read_age(BULK) == SEED_SECONDS + 5  # past the seed window, still known

    denied = AwsCallError(
        FailureKind.ACCESS_DENIED, "GetAccountAuthorizationDetails", "AccessDenied", "no"
    )
    failing = BulkReads(denied)
    failing.release.set()
    seeds = seeder(pool, Clock(), failing, monkeypatch)
    assert asyncio.run(seeds.observation(resource("web-exec"))) is None
    assert seeds.read_age(BULK) is None  # the sweep must read the account itself


def test_a_read_begun_when_kopf_lists_an_object_answers_its_resume_later(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf lists and indexes every object before the first resume: the read goes first, and
    only for accounts with an object to seed."""
    reads = BulkReads({"web-exec": observed("web-exec")})
    seeds = seeder(pool, Clock(), reads, monkeypatch)

    async def take_over() -> Any:
        seeds.expect(resource("web-exec"))
        seeds.expect(resource("api-exec"))  # the same account: the same read
        seeds.expect(resource("new-exec", role_id=None))  # nothing to seed
        seeds.expect(resource("other-exec", account_id=PER_ROLE))  # never bulk-read
        await asyncio.sleep(0)
        reads.release.set()
        return await asyncio.wait_for(seeds.observation(resource("web-exec")), timeout=30)

    seeded = asyncio.run(take_over())
    assert seeded.role == observed("web-exec")
    assert reads.reads == [(BULK, "/ecs/")]


def test_no_read_begins_after_the_seed_window(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    reads = BulkReads({})
    seeds = seeder(pool, clock, reads, monkeypatch)
    clock.now += SEED_SECONDS + 1
    assert not seeds.seeding()
    seeds.expect(resource("web-exec"))  # no loop needed: nothing is started
    assert reads.reads == []
