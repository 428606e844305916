"""The CRD gate: EcsExecutionRoles are served whenever their CRD is, however late it comes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from structlog.testing import capture_logs

from ecsrole.crdgate import CrdGate, CrdState
from ecsrole.kube import KubeError

pytestmark = pytest.mark.unit

READY = CrdState(uid="uid-1", established=True, served=True)
RECREATED = CrdState(uid="uid-2", established=True, served=True)
ABSENT = CrdState(uid=None)
NOT_ESTABLISHED = CrdState(uid="uid-1")
NOT_IN_DISCOVERY = CrdState(uid="uid-1", established=True, served=False)
TERMINATING = CrdState(uid="uid-1", established=True, terminating=True)


class ScriptedProbe:
    """Answers from a script of states (or errors); the last one repeats."""

    def __init__(self, script: Iterable[CrdState | KubeError]) -> None:
        self.script = list(script)
        self.reads = 0

    async def state(self) -> CrdState:
        self.reads += 1
        step = self.script[0] if len(self.script) == 1 else self.script.pop(0)
        if isinstance(step, KubeError):
            raise step
        return step


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0  # every look at the clock is ten seconds later
        return self.now


class Kopf:
    """Stands in for kopf's run: records each start, returns when `until` is set."""

    def __init__(self, *, stop_after: int | None = None, fail: bool = False) -> None:
        self.runs = 0
        self.stop_after = stop_after
        self.fail = fail

    async def __call__(self, until: asyncio.Event) -> None:
        self.runs += 1
        if self.fail:
            raise RuntimeError("kopf crashed")
        if self.stop_after is not None and self.runs >= self.stop_after:
            return  # as kopf does on SIGTERM: it stops by itself
        await until.wait()


def gate(probe: ScriptedProbe, clock: FakeClock | None = None) -> CrdGate:
    return CrdGate(
        probe, clock=clock or FakeClock(), wait_poll=0.001, serving_poll=0.001, waiting_log_every=60
    )


async def run_until(gate_: CrdGate, kopf: Kopf, done: asyncio.Event | None = None) -> None:
    stop = done or asyncio.Event()
    await asyncio.wait_for(gate_.run(kopf, stop), timeout=10)


def waiting_lines(logs: list[dict[str, object]]) -> list[str]:
    return [str(line["event"]) for line in logs if "waiting for" in str(line["event"])]


def test_serving_starts_only_once_the_crd_is_established_and_in_discovery() -> None:
    probe = ScriptedProbe([ABSENT, ABSENT, NOT_ESTABLISHED, NOT_IN_DISCOVERY, READY])
    kopf = Kopf(stop_after=1)

    with capture_logs() as logs:
        asyncio.run(run_until(gate(probe), kopf))

    assert kopf.runs == 1
    assert probe.reads == 5  # it did not start before discovery listed the resource
    lines = waiting_lines(logs)
    assert lines, "nothing said why nothing is served"
    assert "ecsexecutionroles.iam.ecsrole.dev" in lines[0]
    assert "not installed" in lines[0]


def test_the_waiting_line_is_logged_at_start_then_at_most_once_a_minute() -> None:
    # The fake clock moves 10 s per look: 30 looks are 300 s, so at most 5 lines plus the first.
    probe = ScriptedProbe([ABSENT] * 30 + [READY])
    kopf = Kopf(stop_after=1)

    with capture_logs() as logs:
        asyncio.run(run_until(gate(probe), kopf))

    assert 1 <= len(waiting_lines(logs)) <= 6
    assert kopf.runs == 1


def test_an_unreadable_api_server_is_waited_out_not_a_crash() -> None:
    probe = ScriptedProbe([KubeError(0, "connection refused"), KubeError(403, "forbidden"), READY])
    kopf = Kopf(stop_after=1)

    with capture_logs() as logs:
        asyncio.run(run_until(gate(probe), kopf))

    assert kopf.runs == 1
    assert "cannot be read" in waiting_lines(logs)[0]


def test_a_deleted_crd_stops_serving_and_its_return_starts_it_again() -> None:
    probe = ScriptedProbe([READY, READY, ABSENT, ABSENT, READY])
    kopf = Kopf(stop_after=2)

    with capture_logs() as logs:
        asyncio.run(run_until(gate(probe), kopf))

    assert kopf.runs == 2
    assert any("was deleted" in str(line["event"]) for line in logs)


def test_a_crd_replaced_between_two_looks_restarts_serving() -> None:
    probe = ScriptedProbe([READY, READY, RECREATED])
    kopf = Kopf(stop_after=2)

    with capture_logs() as logs:
        asyncio.run(run_until(gate(probe), kopf))

    assert kopf.runs == 2
    assert any("was re-created" in str(line["event"]) for line in logs)


def test_the_same_crd_keeps_being_served_without_restarts() -> None:
    probe = ScriptedProbe([READY] * 20)
    kopf = Kopf()
    stop = asyncio.Event()

    async def scenario() -> None:
        running = asyncio.create_task(gate(probe).run(kopf, stop))
        while probe.reads < 20:
            await asyncio.sleep(0.001)
        assert kopf.runs == 1  # never restarted while its CRD stayed
        stop.set()
        await asyncio.wait_for(running, timeout=10)

    asyncio.run(scenario())


def test_a_brief_api_outage_while_serving_does_not_restart_kopf() -> None:
    outage = [KubeError(0, "connection refused")] * 5
    probe = ScriptedProbe([READY, *outage, READY, READY, READY])
    kopf = Kopf()
    stop = asyncio.Event()

    async def scenario() -> None:
        running = asyncio.create_task(gate(probe).run(kopf, stop))
        while probe.reads < 9:
            await asyncio.sleep(0.001)
        stop.set()
        await asyncio.wait_for(running, timeout=10)

    asyncio.run(scenario())
    assert kopf.runs == 1


def test_stop_ends_a_wait_for_a_crd_that_never_comes() -> None:
    probe = ScriptedProbe([ABSENT])
    kopf = Kopf()
    stop = asyncio.Event()

    async def scenario() -> None:
        running = asyncio.create_task(gate(probe).run(kopf, stop))
        while probe.reads < 3:
            await asyncio.sleep(0.001)
        stop.set()
        await asyncio.wait_for(running, timeout=10)

    asyncio.run(scenario())
    assert kopf.runs == 0


def test_stop_while_serving_stops_kopf_and_the_gate() -> None:
    probe = ScriptedProbe([READY])
    kopf = Kopf()
    stop = asyncio.Event()

    async def scenario() -> None:
        running = asyncio.create_task(gate(probe).run(kopf, stop))
        while kopf.runs == 0:
            await asyncio.sleep(0.001)
        stop.set()
        await asyncio.wait_for(running, timeout=10)

    asyncio.run(scenario())
    assert kopf.runs == 1


def test_a_crash_in_kopf_ends_the_operator_rather_than_serving_nothing() -> None:
    probe = ScriptedProbe([READY])

    with pytest.raises(RuntimeError, match="kopf crashed"):
        asyncio.run(run_until(gate(probe), Kopf(fail=True)))


def test_a_terminating_crd_gets_its_deletions_finished_at_every_look_then_is_waited_for() -> None:
    probe = ScriptedProbe([READY, TERMINATING, TERMINATING, ABSENT, READY])
    kopf = Kopf(stop_after=2)
    passes: list[int] = []

    async def finalize() -> None:
        passes.append(kopf.runs)

    asyncio.run(asyncio.wait_for(gate(probe).run(kopf, asyncio.Event(), finalize), timeout=10))

    assert passes == [1, 1]  # while the first run's CRD terminated, and only then
    assert kopf.runs == 2  # served again once it came back


def test_a_crd_found_terminating_at_start_is_finalized_and_not_served() -> None:
    probe = ScriptedProbe([TERMINATING, TERMINATING, ABSENT, READY])
    kopf = Kopf(stop_after=1)
    passes: list[int] = []

    async def finalize() -> None:
        passes.append(kopf.runs)

    asyncio.run(asyncio.wait_for(gate(probe).run(kopf, asyncio.Event(), finalize), timeout=10))

    assert passes == [0, 0]
    assert kopf.runs == 1
