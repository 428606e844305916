"""Drift sweeps and CloudTrail re-reads (Sweeper) with a fake IAM adapter and a fake Kubernetes
client that stores status patches back into the index, as the API server and kopf's index do.

The Reconciler behind them is the real one. What a user relies on: a sweep reads each account
once (bulk) or the listed roles (perRole); drift is repaired under Enforce and reported; a
sweep that finds nothing new writes nothing to Kubernetes; an event re-reads just the named
role, unless the operator made the change itself; a failing sweep is retried later and never
ends the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from structlog.testing import capture_logs

from ecsrole import metrics, sweeper
from ecsrole.aws.errors import AwsCallError, FailureKind
from ecsrole.core import desired, model
from ecsrole.core import spec as spec_module
from ecsrole.core.cloudtrail import RoleChange
from ecsrole.core.config import OperatorConfig, SweepMode
from ecsrole.core.model import Aspect, ObservedRole, Operation
from ecsrole.kube import KubeError
from ecsrole.reconciler import Resource
from ecsrole.sweeper import Sweeper
from tests.unit import factories
from tests.unit.fakes import Clock, FakeContext

pytestmark = pytest.mark.unit

ACCOUNT_ID = factories.ACCOUNT_ID
PER_ROLE_ACCOUNT = "444444444444"
DEADLINE = 30.0


class FakeIam:
    """The adapter's reads and writes over an in-memory set of roles (keyed by lower name)."""

    def __init__(self) -> None:
        self.roles: dict[str, ObservedRole] = {}
        self.calls: list[tuple[str, Any]] = []
        self.applied: list[Operation] = []
        #: Raised by the next reads, one each, in order.
        self.fail_reads: list[Exception] = []

    def _read(self, call: str, argument: Any) -> None:
        self.calls.append((call, argument))
        if self.fail_reads:
            raise self.fail_reads.pop(0)

    def read_role(self, role_name: str, **_: Any) -> ObservedRole | None:
        self._read("read_role", role_name)
        return self.roles.get(role_name.lower())

    def read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
        self._read("read_roles_bulk", path_prefix)
        return dict(self.roles)

    def read_roles_each(self, path_prefix: str, names: Iterable[str]) -> dict[str, ObservedRole]:
        names = sorted(names)
        self._read("read_roles_each", (path_prefix, names))
        return {n.lower(): self.roles[n.lower()] for n in names if n.lower() in self.roles}

    def apply(self, operations: Iterable[Operation]) -> None:
        operations = list(operations)
        self.applied.extend(operations)
        for op in operations:  # just enough IAM for a repair to stick
            if op.action == "DetachRolePolicy":
                name = str(op.params["RoleName"]).lower()
                role = self.roles[name]
                self.roles[name] = dataclasses.replace(
                    role, managed_policy_arns=role.managed_policy_arns - {op.params["PolicyArn"]}
                )

    def reads(self) -> list[str]:
        return [call for call, _ in self.calls]


class Index(dict[str, list[Resource]]):
    """kopf's resource index: each account's resources, and each resource under its uid key."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key.startswith("uid:"):
            found = [r for rs in self.values() for r in rs if sweeper.uid_key(r.uid) == key]
            return found or default
        return super().get(key, default)


class FakeKube:
    """Status patches land in the index (as kopf's index would see them); events are kept."""

    def __init__(self, index: dict[str, list[Resource]]) -> None:
        self.index = index
        self.patches: list[tuple[str, Mapping[str, Any]]] = []
        self.events: list[tuple[str, str]] = []
        self.fail: KubeError | None = None

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail
        self.patches.append((name, status))
        for resources in self.index.values():
            for i, resource in enumerate(resources):
                if (resource.namespace, resource.name) == (namespace, name):
                    merged = {**resource.status, **status}
                    resources[i] = dataclasses.replace(resource, status=merged)

    async def post_event(self, *, name: str, reason: str, **_: Any) -> None:
        self.events.append((name, reason))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True)


class World:
    def __init__(self, pool: ThreadPoolExecutor, *, interval: float = 60.0) -> None:
        self.iam = FakeIam()
        self.index = Index({ACCOUNT_ID: [], PER_ROLE_ACCOUNT: []})
        config = OperatorConfig(
            cluster_name=factories.OWNER.cluster,
            drift_check_interval=interval,
            accounts={
                ACCOUNT_ID: factories.account(),
                PER_ROLE_ACCOUNT: factories.account(
                    account_id=PER_ROLE_ACCOUNT, sweep_mode=SweepMode.PER_ROLE
                ),
            },
        )
        self.context = FakeContext(config=config, clients=None, pool=pool)  # type: ignore[arg-type]
        self.context.fake = self.iam
        self.context.resources = self.index
        self.kube = FakeKube(self.index)
        self.sweeper = Sweeper(self.context, self.kube)  # type: ignore[arg-type]

    def managed(
        self, name: str, *, account_id: str = ACCOUNT_ID, drift_policy: str = "Enforce"
    ) -> Resource:
        """A resource whose role the operator created, recorded in its status, in sync in IAM."""
        owner = model.Owner(factories.OWNER.cluster, factories.NAMESPACE, name, f"uid-{name}")
        spec = factories.spec_dict(
            accountId=account_id, roleName=f"{name}-exec", driftPolicy=drift_policy
        )
        role = desired.build_desired(
            spec_module.parse_spec(spec),
            self.context.config.accounts[account_id],
            namespace=factories.NAMESPACE,
            partition="aws",
            owner=owner,
        )
        assert isinstance(role, model.DesiredRole)
        self.iam.roles[role.role_name.lower()] = factories.observed_from(
            role, role_id=f"AROA{name.upper()}"
        )
        resource = Resource(
            namespace=factories.NAMESPACE,
            name=name,
            uid=owner.uid,
            generation=1,
            created=None,
            spec=spec,
            annotations={},
            status={"roleId": f"AROA{name.upper()}", "observedGeneration": 1},
        )
        self.index[account_id].append(resource)
        return resource

    def attach_by_hand(self, resource: Resource, arn: str = factories.ADMIN_POLICY) -> None:
        name = str(resource.spec["roleName"]).lower()
        role = self.iam.roles[name]
        self.iam.roles[name] = dataclasses.replace(
            role, managed_policy_arns=role.managed_policy_arns | {arn}
        )

    def sweep(self, account_id: str = ACCOUNT_ID) -> int:
        account = self.context.config.accounts[account_id]
        return asyncio.run(self.sweeper.sweep_account(account))

    def status(self, name: str) -> Mapping[str, Any]:
        (resource,) = [r for rs in self.index.values() for r in rs if r.name == name]
        return resource.status

    def condition(self, name: str, type_: str) -> Mapping[str, Any]:
        (condition,) = [c for c in self.status(name)["conditions"] if c["type"] == type_]
        return condition


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# -- sweeps --------------------------------------------------------------------------------------


def test_a_bulk_sweep_reads_the_account_once_and_a_quiet_second_sweep_writes_nothing(
    pool: ThreadPoolExecutor,
) -> None:
    world = World(pool)
    world.managed("web")
    world.managed("api")
    assert world.sweep() == 2
    assert world.iam.reads() == ["read_roles_bulk"]
    assert world.iam.calls[0][1] == "/ecs/"
    assert world.condition("web", "Ready")["status"] == "True"
    assert world.condition("api", "Drifted")["status"] == "False"
    written = len(world.kube.patches)

    assert world.sweep() == 2
    assert len(world.kube.patches) == written  # nothing new: not one Kubernetes write
    assert world.kube.events == []
    assert world.iam.applied == []
    assert sample("ecsrole_managed_roles", account_id=ACCOUNT_ID) == 2


def test_a_sweep_repairs_drift_under_enforce_and_says_so(pool: ThreadPoolExecutor) -> None:
    world = World(pool)
    web = world.managed("web")
    world.attach_by_hand(web)
    detected = sample("ecsrole_drift_events_total", account_id=ACCOUNT_ID, aspect="ManagedPolicy")
    assert world.sweep() == 1
    assert [(op.action, op.params["PolicyArn"]) for op in world.iam.applied] == [
        ("DetachRolePolicy", factories.ADMIN_POLICY)
    ]
    assert ("web", "DriftDetected") in world.kube.events
    assert ("web", "DriftRepaired") in world.kube.events
    assert (
        sample("ecsrole_drift_events_total", account_id=ACCOUNT_ID, aspect="ManagedPolicy")
        == detected + 1
    )
    assert world.condition("web", "Drifted")["status"] == "False"  # repaired at once


def test_a_sweep_only_reports_drift_under_report(pool: ThreadPoolExecutor) -> None:
    world = World(pool)
    web = world.managed("web", drift_policy="Report")
    world.attach_by_hand(web)
    world.sweep()
    assert world.iam.applied == []
    assert world.condition("web", "Drifted")["reason"] == Aspect.ManagedPolicy.value
    assert world.condition("web", "Ready")["status"] == "True"  # the role is still usable
    assert [reason for _, reason in world.kube.events] == ["DriftDetected"]
    events = len(world.kube.events)
    world.sweep()  # still drifted, nothing new: no second event, no status write
    assert len(world.kube.events) == events


def test_a_per_role_account_reads_only_the_roles_it_manages(pool: ThreadPoolExecutor) -> None:
    world = World(pool)
    world.managed("web", account_id=PER_ROLE_ACCOUNT)
    world.managed("api", account_id=PER_ROLE_ACCOUNT)
    assert world.sweep(PER_ROLE_ACCOUNT) == 2
    assert world.iam.calls == [("read_roles_each", ("/ecs/", ["api-exec", "web-exec"]))]


def test_resources_without_a_recorded_role_or_with_pending_work_are_not_swept(
    pool: ThreadPoolExecutor,
) -> None:
    world = World(pool)
    web = world.managed("web")
    world.index[ACCOUNT_ID] = [
        dataclasses.replace(web, status={"observedGeneration": 1}),  # never created
        dataclasses.replace(web, name="b", generation=2),  # spec changed: the handler's job
        dataclasses.replace(web, name="c", deleting=True),
    ]
    assert world.sweep() == 0
    assert world.iam.calls == []  # no AWS call at all
    assert sample("ecsrole_drift_sweep_last_success_timestamp_seconds", account_id=ACCOUNT_ID) > 0


def test_a_status_write_that_fails_is_logged_and_the_sweep_goes_on(
    pool: ThreadPoolExecutor,
) -> None:
    world = World(pool)
    world.attach_by_hand(world.managed("web"))
    world.attach_by_hand(world.managed("api"))
    world.kube.fail = KubeError(503, "etcdserver: leader changed")
    with capture_logs() as logs:
        assert world.sweep() == 2
    failures = [line for line in logs if line["event"] == "could not write the sweep's outcome"]
    assert len(failures) == 2
    assert len(world.iam.applied) == 2  # both repaired all the same


# -- CloudTrail events -------------------------------------------------------------------------------


def change(role_name: str, actor: str, account_id: str = ACCOUNT_ID) -> RoleChange:
    return RoleChange(
        account_id=account_id,
        role_name=role_name,
        event_name="AttachRolePolicy",
        event_time=time.time() - 5,
        actor_arn=actor,
        issuer_arn="",
    )


ALICE = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Admin/alice"


def test_an_event_re_reads_just_the_named_role_and_repairs_it(pool: ThreadPoolExecutor) -> None:
    world = World(pool)
    web = world.managed("web")
    world.managed("api")
    world.attach_by_hand(web)
    latency = sample("ecsrole_drift_detection_latency_seconds_count", source="event")
    assert asyncio.run(world.sweeper.on_role_change(change("WEB-EXEC", ALICE)))
    assert world.iam.calls == [("read_role", "web-exec")]
    assert [op.action for op in world.iam.applied] == ["DetachRolePolicy"]
    assert sample("ecsrole_drift_detection_latency_seconds_count", source="event") == latency + 1


def test_the_operators_own_changes_and_unknown_accounts_cause_no_read(
    pool: ThreadPoolExecutor,
) -> None:
    world = World(pool)
    world.managed("web")
    own = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/ecsrole-operator/another-session"
    assert asyncio.run(world.sweeper.on_role_change(change("web-exec", own)))
    assert asyncio.run(world.sweeper.on_role_change(change("web-exec", ALICE, "999999999999")))
    assert asyncio.run(world.sweeper.on_role_change(change("unmanaged-exec", ALICE)))
    assert world.iam.calls == []


# -- the loop ------------------------------------------------------------------------------------------


def test_each_account_is_swept_over_and_over_and_a_failing_sweep_is_retried(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeper, "FAILED_SWEEP_EXTRA_DELAY", 0.0)
    world = World(pool, interval=0.01)
    world.managed("web")
    world.iam.fail_reads = [
        AwsCallError(
            FailureKind.THROTTLED, "GetAccountAuthorizationDetails", "Throttling", "slow down"
        ),
        RuntimeError("a bug in a sweep"),
    ]

    async def run_loops() -> list[str]:
        stop = asyncio.Event()
        tasks = world.sweeper.start(stop)
        names = sorted(task.get_name() for task in tasks)
        while not world.kube.patches:  # the third sweep succeeds: the loop survived both
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=DEADLINE)
        return names

    with capture_logs() as logs:
        names = asyncio.run(asyncio.wait_for(run_loops(), timeout=DEADLINE))
    assert names == [f"sweep-{ACCOUNT_ID}", f"sweep-{PER_ROLE_ACCOUNT}", "unjudged"]
    failed = [line["event"] for line in logs if line["log_level"] in ("warning", "error")]
    assert failed == ["drift sweep failed", "drift sweep crashed"]
    assert world.iam.reads()[:3] == ["read_roles_bulk"] * 3  # then maybe more: it loops
    assert world.condition("web", "Ready")["status"] == "True"


def test_no_sweep_reads_an_account_while_its_seed_read_is_fresh(pool: ThreadPoolExecutor) -> None:
    """After a start or takeover the resumed objects are judged against the Seeder's bulk read;
    the account's first sweep comes one interval after that read, not a second read at once."""
    world = World(pool, interval=0.05)
    world.managed("web")
    world.managed("api", account_id=PER_ROLE_ACCOUNT)
    clock = Clock()
    world.context.clock = clock
    seeds = sweeper.Seeder(world.context)
    seeds._read_at[ACCOUNT_ID] = clock()  # the seed read of the bulk account just began
    world.context.seeds = seeds

    def swept(call: str) -> int:
        return world.iam.reads().count(call)

    async def run_loops() -> tuple[int, int]:
        stop = asyncio.Event()
        tasks = world.sweeper.start(stop)
        try:
            while swept("read_roles_each") < 3:  # the other account is swept over and over
                await asyncio.sleep(0.01)
            seeded_account_reads = swept("read_roles_bulk")
            clock.now += 0.05  # one interval after the seed read
            while swept("read_roles_bulk") == 0:
                await asyncio.sleep(0.01)
            return seeded_account_reads, swept("read_roles_bulk")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=DEADLINE)

    before, after = asyncio.run(asyncio.wait_for(run_loops(), timeout=DEADLINE))
    assert before == 0
    assert after >= 1
