"""Leader election on a Lease, against a fake API server that keeps one Lease with real
compare-and-swap semantics (resourceVersion), and a fake clock that only moves when told.

What a user relies on: one replica leads; a standby takes over a silent leader after one lease
duration measured on its OWN clock (never the holder's timestamps); two standbys racing for an
expired lease cannot both win; a leader that cannot renew within the renew deadline stops; a
leader that is told to stop releases the lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from ecsrole import metrics
from ecsrole.kube import KubeError
from ecsrole.leader import LeaderElector, LeaseSettings
from tests.unit.fakes import Clock

pytestmark = pytest.mark.unit

NAMESPACE, NAME = "ecsrole-system", "ecsrole-leader"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{NAME}"
COLLECTION = LEASE_PATH.rsplit("/", 1)[0]
#: Short real waits between attempts (the loops wait on an asyncio.Event with this timeout);
#: every decision is taken on the fake clock, so a slow machine changes nothing.
RETRY = 0.001


class FakeLeaseApi:
    """One Lease as the API server keeps it: POST creates (409 when it exists), PUT replaces only
    when the body's resourceVersion is the stored one (409 otherwise)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.requests: list[tuple[str, str, Any]] = []
        #: Called (and awaited) before each request is answered; may raise KubeError or let
        #: another replica act in between.
        self.before: Callable[[str], Awaitable[None] | None] | None = None
        #: Status to answer GETs and PUTs with instead (a failing or forbidding API server).
        self.fail_gets_with: int | None = None
        self.fail_puts_with: int | None = None

    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"].get("holderIdentity")

    def _store(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.lease = stored
        return copy.deepcopy(stored)

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        self.requests.append((method, path, copy.deepcopy(body)))
        if self.before is not None:
            hooked = self.before(method)
            if inspect.isawaitable(hooked):
                await hooked
        if method == "GET" and path == LEASE_PATH:
            if self.fail_gets_with is not None:
                return self.fail_gets_with, {"kind": "Status", "reason": "Forbidden"}
            if self.lease is None:
                return 404, {"kind": "Status", "reason": "NotFound"}
            return 200, copy.deepcopy(self.lease)
        if method == "POST" and path == COLLECTION:
            if self.lease is not None:
                return 409, {"kind": "Status", "reason": "AlreadyExists"}
            assert body is not None
            return 201, self._store(body)
        if method == "PUT" and path == LEASE_PATH:
            if self.fail_puts_with is not None:
                return self.fail_puts_with, {"kind": "Status"}
            assert body is not None
            assert self.lease is not None
            sent = body.get("metadata", {}).get("resourceVersion")
            if sent != self.lease["metadata"]["resourceVersion"]:
                return 409, {"kind": "Status", "reason": "Conflict"}
            return 200, self._store(body)
        return 404, None

    def writes(self) -> list[str]:
        return [method for method, _, _ in self.requests if method != "GET"]


def settings(
    identity: str, *, duration: float = 15.0, deadline: float = 10.0, retry: float = RETRY
) -> LeaseSettings:
    return LeaseSettings(
        namespace=NAMESPACE,
        name=NAME,
        identity=identity,
        lease_duration=duration,
        renew_deadline=deadline,
        retry_period=retry,
    )


def elector(api: FakeLeaseApi, identity: str, clock: Clock, **kwargs: float) -> LeaderElector:
    return LeaderElector(api, settings(identity, **kwargs), clock=clock)  # type: ignore[arg-type]


def attempt(candidate: LeaderElector) -> bool:
    return asyncio.run(candidate.try_acquire_or_renew())


# -- acquiring -----------------------------------------------------------------------------------


def test_the_first_replica_creates_the_lease_and_holds_it() -> None:
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    assert api.writes() == ["POST"]
    assert api.lease is not None
    spec = api.lease["spec"]
    assert spec["holderIdentity"] == "a"
    assert (spec["leaseDurationSeconds"], spec["leaseTransitions"]) == (15, 0)
    assert spec["acquireTime"] == spec["renewTime"]


def test_the_leader_renews_keeping_its_acquire_time_and_transitions() -> None:
    api, clock = FakeLeaseApi(), Clock()
    leader = elector(api, "a", clock)
    assert attempt(leader)
    assert api.lease is not None
    acquired = api.lease["spec"]["acquireTime"]
    for _ in range(3):
        clock.now += 5
        assert attempt(leader)
    assert api.writes() == ["POST", "PUT", "PUT", "PUT"]
    assert api.lease["spec"]["acquireTime"] == acquired
    assert api.lease["spec"]["leaseTransitions"] == 0
    assert api.lease["metadata"]["resourceVersion"] == "4"


def test_a_standby_waits_while_the_holder_keeps_renewing() -> None:
    api, clock = FakeLeaseApi(), Clock()
    leader, standby = elector(api, "a", clock), elector(api, "b", clock)
    assert attempt(leader)
    for _ in range(10):  # 100 s in all: far beyond one lease duration, but never silent for it
        clock.now += 10
        assert not attempt(standby)
        assert attempt(leader)
    assert api.holder() == "a"
    assert api.writes().count("PUT") == 10  # the standby never wrote


def test_a_standby_takes_over_only_after_a_full_lease_duration_of_silence_on_its_own_clock() -> (
    None
):
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))  # then "a" dies: the record stops changing
    standby = elector(api, "b", clock)
    assert not attempt(standby)  # first sight of the record: the silence starts now
    clock.now += 14.9
    assert not attempt(standby)
    clock.now += 0.2
    assert attempt(standby)
    assert api.lease is not None
    assert api.holder() == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1


def test_a_standby_wakes_at_the_expiry_it_expects_rather_than_a_retry_period_later() -> None:
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    standby = elector(api, "b", clock, retry=2.0)
    assert standby.next_attempt_in() == 2.0  # nothing seen yet
    assert not attempt(standby)  # the silence starts now: it expires in 15 s
    assert standby.next_attempt_in() == 2.0
    clock.now += 14.0
    assert not attempt(standby)
    wait = standby.next_attempt_in()
    assert 1.0 < wait < 1.1  # not 2 s: the lease expires in 1 s by the standby's clock
    clock.now += wait
    assert attempt(standby)
    assert api.holder() == "b"


def test_a_standby_that_could_not_take_an_expired_lease_waits_a_retry_period() -> None:
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    standby = elector(api, "b", clock, retry=2.0)
    assert not attempt(standby)
    clock.now += 16.0
    api.fail_puts_with = 409
    assert not attempt(standby)
    assert standby.next_attempt_in() == 2.0


@pytest.mark.parametrize(
    "renew_time", ["2000-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z"]
)
def test_the_holders_timestamps_are_never_trusted(renew_time: str) -> None:
    """A holder whose clock is far behind (or ahead) neither loses nor keeps the lease by it."""
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    assert api.lease is not None
    api.lease["spec"]["renewTime"] = renew_time
    standby = elector(api, "b", clock)
    assert not attempt(standby)  # a renewTime in 2000 is not "expired" for a standby
    clock.now += 16
    assert attempt(standby)  # nor does one in 2999 keep a silent holder in place


def test_two_standbys_racing_for_an_expired_lease_cannot_both_win() -> None:
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    b, c = elector(api, "b", clock), elector(api, "c", clock)
    assert not attempt(b)
    assert not attempt(c)
    clock.now += 16
    # c reads the expired lease, then b's takeover lands before c's write: c's PUT carries the
    # resourceVersion it read, so the API server refuses it.
    gets = 0

    async def b_wins_between_c_read_and_write(method: str) -> None:
        nonlocal gets
        if method == "GET":
            gets += 1
        elif method == "PUT" and gets == 1:
            api.before = None
            assert await b.try_acquire_or_renew()

    api.before = b_wins_between_c_read_and_write
    assert not attempt(c)
    assert api.holder() == "b"
    puts = [body for method, _, body in api.requests if method == "PUT"]
    assert [p["spec"]["holderIdentity"] for p in puts] == ["c", "b"]  # c tried, and lost
    assert puts[0]["metadata"]["resourceVersion"] == "1"


def test_a_lease_created_by_another_replica_first_is_not_taken() -> None:
    api, clock = FakeLeaseApi(), Clock()
    b = elector(api, "b", clock)

    async def a_creates_it_first(method: str) -> None:
        if method == "POST":
            api.before = None
            assert await elector(api, "a", clock).try_acquire_or_renew()

    api.before = a_creates_it_first
    assert not attempt(b)
    assert api.holder() == "a"


def test_an_unreadable_lease_is_an_error_not_a_takeover() -> None:
    api, clock = FakeLeaseApi(), Clock()
    api.fail_gets_with = 403  # RBAC without get on leases
    with pytest.raises(KubeError, match="403: reading lease ecsrole-leader"):
        attempt(elector(api, "a", clock))
    assert api.writes() == []


def test_acquire_waits_until_the_lease_is_free_then_leads() -> None:
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    standby = elector(api, "b", clock)
    reads = 0

    def time_passes_and_reads_fail_once(method: str) -> None:
        nonlocal reads
        if method == "GET":
            reads += 1
            clock.now += 4
            if reads == 2:
                raise KubeError(0, "API server unreachable")  # logged; the next attempt follows

    api.before = time_passes_and_reads_fail_once
    assert asyncio.run(asyncio.wait_for(standby.acquire(asyncio.Event()), timeout=30))
    assert standby.is_leader
    assert api.holder() == "b"
    assert reads >= 5  # 4 s per look: silent for 15 s only from the fifth look on
    assert metrics.leader._value.get() == 1


def test_acquire_gives_up_when_told_to_stop_while_standing_by() -> None:
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    standby = elector(api, "b", clock)

    async def stand_by_then_stop() -> bool:
        stop = asyncio.Event()
        api.before = lambda method: stop.set()  # SIGTERM arrives during the first look
        return await asyncio.wait_for(standby.acquire(stop), timeout=30)

    assert not asyncio.run(stand_by_then_stop())
    assert not standby.is_leader
    assert api.holder() == "a"


# -- keeping and losing -----------------------------------------------------------------------------


def lead(api: FakeLeaseApi, clock: Clock, **kwargs: float) -> LeaderElector:
    leader = elector(api, "a", clock, **kwargs)
    assert asyncio.run(leader.acquire(asyncio.Event()))
    return leader


def test_the_leader_stops_when_it_cannot_renew_within_the_renew_deadline() -> None:
    api, clock = FakeLeaseApi(), Clock()
    leader = lead(api, clock)
    api.fail_puts_with = 500
    failed: list[float] = []

    def each_attempt_takes_three_seconds(method: str) -> None:
        if method == "PUT":
            clock.now += 3
            failed.append(clock.now)

    api.before = each_attempt_takes_three_seconds
    asyncio.run(asyncio.wait_for(leader.keep(asyncio.Event()), timeout=30))
    assert not leader.is_leader
    assert metrics.leader._value.get() == 0
    assert len(failed) == 4  # 3, 6, 9 s: within the 10 s deadline; 12 s: past it, so it stops


def test_failed_renewals_shorter_than_the_deadline_are_survived() -> None:
    api, clock = FakeLeaseApi(), Clock()
    leader = lead(api, clock)
    stop = asyncio.Event()
    answers = iter(["fail", "unreachable", "fail", "ok", "fail", "fail", "fail", "ok", "stop"])

    def flaky(method: str) -> None:
        if method != "PUT":
            return
        clock.now += 3  # three failures in a row: 9 s without a renewal, inside the 10 s
        answer = next(answers)
        api.fail_puts_with = 500 if answer == "fail" else None
        if answer == "unreachable":
            raise KubeError(0, "connection refused")
        if answer == "stop":
            stop.set()

    api.before = flaky
    asyncio.run(asyncio.wait_for(leader.keep(stop), timeout=30))
    assert leader.is_leader
    assert api.holder() == "a"


def test_stop_then_release_hands_the_lease_over_at_once() -> None:
    api, clock = FakeLeaseApi(), Clock()
    leader = lead(api, clock)
    standby = elector(api, "b", clock)
    assert not attempt(standby)

    async def sigterm() -> None:
        stop = asyncio.Event()
        keeping = asyncio.create_task(leader.keep(stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(keeping, timeout=30)
        await leader.release()

    asyncio.run(sigterm())
    assert api.lease is not None
    assert api.holder() is None
    assert api.lease["spec"]["leaseDurationSeconds"] == 1
    assert not leader.is_leader
    assert metrics.leader._value.get() == 0
    assert attempt(standby)  # no lease duration to wait out: the clock has not moved
    assert api.holder() == "b"


def test_release_writes_nothing_for_a_standby() -> None:
    api, clock = FakeLeaseApi(), Clock()
    assert attempt(elector(api, "a", clock))
    standby = elector(api, "b", clock)
    assert not attempt(standby)
    asyncio.run(standby.release())
    assert api.writes() == ["POST"]
    assert api.holder() == "a"


def test_a_failed_release_is_logged_not_raised() -> None:
    api, clock = FakeLeaseApi(), Clock()
    leader = lead(api, clock)

    def unreachable(method: str) -> None:
        raise KubeError(0, "connection refused")

    api.before = unreachable
    asyncio.run(leader.release())  # the process is ending anyway: the lease then expires
    assert not leader.is_leader
    assert api.holder() == "a"


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 10), (15, 10, 0), (5, 10, 2)]
)
def test_lease_timings_must_be_ordered(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period > 0"):
        LeaseSettings(NAMESPACE, NAME, "a", duration, deadline, retry)
