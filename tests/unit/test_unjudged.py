"""Sweeper.nudge_unjudged, the safety net for objects kopf left unhandled, with a fake clock, a
fake index, a fake request gate and a fake Kubernetes client (no network).

What a user relies on: an object whose generation no attempt judged, and that kopf has left
alone for a drift interval, gets one annotation write so kopf handles it, logged and counted;
a judged object is never written to (nothing at rest); an object a handler, a sweep or a
request of kopf's is working on is left alone, and so is everything while requests queue at
kopf's gate; a nudge that does not help is repeated less and less often.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from structlog.testing import capture_logs

from ecsrole import metrics, sweeper
from ecsrole.core.config import OperatorConfig
from ecsrole.core.constants import PLURAL
from ecsrole.kube import KubeError
from ecsrole.reconciler import Resource
from ecsrole.sweeper import NUDGE_ANNOTATION, Sweeper, unjudged
from tests.unit import factories
from tests.unit.fakes import Clock, FakeContext

pytestmark = pytest.mark.unit

ACCOUNT_ID = factories.ACCOUNT_ID
INTERVAL = 60.0


class FakeGate:
    """kube.RequestGate as the sweeper sees it."""

    def __init__(self) -> None:
        self.waiting = 0
        self.busy: set[tuple[str, str, str]] = set()
        #: (namespace, plural, name) -> seconds since an attempt about it failed
        self.failed_ago: dict[tuple[str, str, str], float] = {}

    def outstanding(self, namespace: str, plural: str, name: str) -> bool:
        return (namespace, plural, name) in self.busy

    def failed_within(self, namespace: str, plural: str, name: str, seconds: float) -> bool:
        ago = self.failed_ago.get((namespace, plural, name))
        return ago is not None and ago < seconds


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, Mapping[str, Any]]] = []
        self.fail: KubeError | None = None

    async def patch_object(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail
        self.patches.append((name, patch))

    def nudged(self) -> list[str]:
        return [name for name, _ in self.patches]


class World:
    def __init__(self, pool: ThreadPoolExecutor) -> None:
        config = OperatorConfig(
            cluster_name=factories.OWNER.cluster,
            drift_check_interval=INTERVAL,
            accounts={ACCOUNT_ID: factories.account()},
        )
        self.clock = Clock()
        self.context = FakeContext(config=config, clients=None, pool=pool, clock=self.clock)  # type: ignore[arg-type]
        self.index: dict[str, list[Resource]] = {}
        self.context.resources = self.index
        self.gate = FakeGate()
        self.context.kopf_requests = self.gate
        self.kube = FakeKube()
        self.sweeper = Sweeper(self.context, self.kube)  # type: ignore[arg-type]

    def add(
        self, name: str, *, judged: bool, generation: int = 1, deleting: bool = False
    ) -> Resource:
        """An object kopf has just indexed (as its index function reports)."""
        resource = Resource(
            namespace=factories.NAMESPACE,
            name=name,
            uid=f"uid-{name}",
            generation=generation,
            created=None,
            spec=factories.spec_dict(roleName=f"{name}-exec"),
            annotations={},
            status={"observedGeneration": generation if judged else 0},
            deleting=deleting,
        )
        self.index[sweeper.account_key(ACCOUNT_ID)] = [
            *(
                r
                for r in self.index.get(sweeper.account_key(ACCOUNT_ID), [])
                if r.uid != resource.uid
            ),
            resource,
        ]
        self.index[sweeper.uid_key(resource.uid)] = [resource]
        self.context.kopf_saw(resource.uid)
        return resource

    def later(self, seconds: float) -> list[str]:
        """Move the clock, run one pass, and return the names nudged so far."""
        self.clock.now += seconds
        asyncio.run(self.sweeper.nudge_unjudged())
        return self.kube.nudged()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def world(pool: ThreadPoolExecutor) -> World:
    return World(pool)


def nudges() -> float:
    return metrics.REGISTRY.get_sample_value("ecsrole_unjudged_nudges_total") or 0.0


def test_an_object_kopf_left_unhandled_is_nudged_once_a_drift_interval_has_passed(
    world: World,
) -> None:
    world.add("lost", judged=False)
    before = nudges()
    assert world.later(INTERVAL - 1) == []  # kopf may still be about to handle it
    with capture_logs() as logs:
        assert world.later(1) == ["lost"]
    (patch,) = [p for _, p in world.kube.patches]
    assert list(patch["metadata"]["annotations"]) == [NUDGE_ANNOTATION]
    assert nudges() == before + 1
    (line,) = [line for line in logs if line["log_level"] == "warning"]
    assert line["event"].endswith("nudged it")
    assert (line["generation"], line["quiet_seconds"]) == (1, INTERVAL)


def test_judged_and_deleted_objects_are_never_written_to(world: World) -> None:
    world.add("ready", judged=True)
    world.add("going", judged=False, deleting=True)
    assert world.later(100 * INTERVAL) == []
    assert world.later(100 * INTERVAL) == []


def test_kopf_working_on_the_object_puts_the_nudge_off(world: World) -> None:
    world.add("busy", judged=False)
    world.clock.now += INTERVAL
    world.context.kopf_saw("uid-busy")  # kopf processed another event of it
    assert world.later(INTERVAL / 2) == []
    assert world.later(INTERVAL / 2) == ["busy"]


def test_no_nudge_while_a_handler_or_a_request_works_on_the_object_or_a_burst_queues(
    world: World,
) -> None:
    world.add("lost", judged=False)

    async def while_locked() -> int:
        async with world.context.lock_for("uid-lost"):  # a handler or a sweep has it
            return await world.sweeper.nudge_unjudged()

    world.clock.now += INTERVAL
    assert asyncio.run(while_locked()) == 0
    world.gate.busy.add((factories.NAMESPACE, PLURAL, "lost"))  # kopf is patching it
    assert world.later(0) == []
    world.gate.busy.clear()
    world.gate.waiting = 3  # a burst is draining through kopf's gate
    assert world.later(0) == []
    world.gate.waiting = 0
    assert world.later(0) == ["lost"]


def test_no_nudge_while_kopf_may_still_retry_a_failed_request_about_the_object(
    world: World,
) -> None:
    world.add("lost", judged=False)
    world.clock.now += INTERVAL
    key = (factories.NAMESPACE, PLURAL, "lost")
    world.gate.failed_ago[key] = INTERVAL - 1  # within the wait: kopf may be pausing
    assert world.later(0) == []
    world.gate.failed_ago[key] = INTERVAL
    assert world.later(0) == ["lost"]


def test_after_a_failed_request_kopfs_longest_pause_is_waited_out_even_with_a_short_interval(
    world: World,
) -> None:
    world.context.config = dataclasses.replace(world.context.config, drift_check_interval=2.0)
    world.add("lost", judged=False)
    world.clock.now += 2
    key = (factories.NAMESPACE, PLURAL, "lost")
    world.gate.failed_ago[key] = 21.5  # kopf pauses up to 21 s between two attempts
    assert world.later(0) == []
    world.gate.failed_ago[key] = sweeper.RETRY_PAUSE_SECONDS
    assert world.later(0) == ["lost"]


def test_a_nudge_that_did_not_help_is_repeated_less_and_less_often(world: World) -> None:
    world.add("stubborn", judged=False)
    assert world.later(INTERVAL) == ["stubborn"]
    assert world.later(INTERVAL) == ["stubborn"]  # not yet: twice the interval now
    assert world.later(INTERVAL) == ["stubborn"] * 2
    assert world.later(3 * INTERVAL) == ["stubborn"] * 2  # four intervals now
    assert world.later(INTERVAL) == ["stubborn"] * 3


def test_once_judged_a_later_generation_gets_the_full_patience_again(world: World) -> None:
    world.add("web", judged=False)
    assert world.later(INTERVAL) == ["web"]
    world.add("web", judged=True)  # kopf handled it after the nudge
    assert world.later(INTERVAL) == ["web"]
    world.add("web", judged=False, generation=2)  # a spec change kopf then lost
    assert world.later(INTERVAL) == ["web", "web"]


def test_a_failed_nudge_is_logged_not_counted_and_tried_again(world: World) -> None:
    world.add("lost", judged=False)
    world.kube.fail = KubeError(0, "the API server is away")
    before = nudges()
    with capture_logs() as logs:
        assert world.later(INTERVAL) == []
    assert [line["event"] for line in logs] == ["could not nudge an unhandled object"]
    assert nudges() == before
    world.kube.fail = None
    assert world.later(0) == ["lost"]


def test_nothing_is_nudged_while_kopf_is_not_serving(world: World) -> None:
    world.add("lost", judged=False)
    world.context.resources = None  # the CRD went away: kopf stopped, its index with it
    assert world.later(INTERVAL) == []


def test_unjudged_means_no_verdict_for_the_current_generation_and_not_deleting() -> None:
    def resource(status: dict[str, Any], generation: int = 2, deleting: bool = False) -> Resource:
        return Resource("ns", "web", "uid", generation, None, {}, {}, status, deleting)

    assert unjudged(resource({}))
    assert unjudged(resource({"observedGeneration": 1}))
    assert not unjudged(resource({"observedGeneration": 2}))
    assert not unjudged(resource({}, deleting=True))
