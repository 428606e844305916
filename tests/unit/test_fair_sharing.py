"""Fair sharing across accounts: the per-account token bucket (on a fake clock) and the worker
shares that keep a slow account's backlog from holding every AWS worker."""

from __future__ import annotations

import asyncio

import pytest

from ecsrole.aws.clients import RateLimiter
from ecsrole.shares import WorkerShares

pytestmark = pytest.mark.unit


class FakeClock:
    """Monotonic time that moves only when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _limiter(rate: float, clock: FakeClock, burst: float | None = None) -> RateLimiter:
    return RateLimiter(rate, burst, clock=clock, sleep=clock.sleep)


def test_a_full_bucket_hands_out_its_burst_without_waiting() -> None:
    clock = FakeClock()
    limiter = _limiter(10, clock)
    for _ in range(10):
        limiter.acquire()
    assert clock.slept == []
    assert limiter.delay() == pytest.approx(0.1)


def test_one_call_a_second_means_one_attempt_a_second() -> None:
    clock = FakeClock()
    limiter = _limiter(1, clock)
    started = clock.now
    for _ in range(5):
        limiter.acquire()
    # The first token was in the bucket; each further one took a second to refill.
    assert clock.now - started == pytest.approx(4.0)


def test_tokens_refill_with_time_up_to_the_burst_only() -> None:
    clock = FakeClock()
    limiter = _limiter(2, clock, burst=3)
    for _ in range(3):
        limiter.acquire()
    clock.now += 3600  # an idle hour refills 3 tokens, not 7,200
    for _ in range(3):
        assert limiter.try_acquire() == 0
    assert limiter.try_acquire() == pytest.approx(0.5)


def test_delay_and_try_acquire_tell_the_wait_without_taking_a_token() -> None:
    clock = FakeClock()
    limiter = _limiter(4, clock, burst=1)
    assert limiter.try_acquire() == 0
    assert limiter.delay() == pytest.approx(0.25)
    assert limiter.try_acquire() == pytest.approx(0.25)  # refused, nothing taken
    clock.now += 0.25
    assert limiter.delay() == 0
    assert limiter.delay() == 0  # looking does not take it
    assert limiter.try_acquire() == 0


def test_wait_available_waits_on_the_event_loop_until_a_token_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    limiter = _limiter(1, clock)
    limiter.acquire()
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    async def main() -> None:
        monkeypatch.setattr(asyncio, "sleep", fake_sleep)
        await limiter.wait_available()

    asyncio.run(main())
    assert waits == [pytest.approx(1.0)]
    assert clock.slept == []  # no thread slept
    assert limiter.try_acquire() == 0  # waiting left the token for the worker to take


def test_an_account_alone_gets_half_the_workers() -> None:
    shares = WorkerShares(16)

    async def main() -> int:
        async with contextlib_turns(shares, "slow", 20) as granted:
            return granted

    assert asyncio.run(main()) == 8


def test_a_slow_account_never_holds_the_turn_another_account_needs() -> None:
    """300 pending reconciles of one account; a second account's work starts at once."""
    shares = WorkerShares(16)
    log: list[str] = []

    async def main() -> None:
        release = asyncio.Event()

        async def slow_work() -> None:
            async with shares.turn("slow"):
                log.append("slow")
                await release.wait()

        backlog = [asyncio.create_task(slow_work()) for _ in range(300)]
        await _settle()
        assert shares.running("slow") == 8
        assert shares.waiting("slow") == 292

        async with shares.turn("fast"):
            log.append("fast")
        # Nothing of the slow account's backlog had to finish first.
        assert log.count("slow") == 8
        release.set()
        await asyncio.gather(*backlog)

    asyncio.run(main())
    assert log.count("slow") == 300


def test_busy_accounts_share_the_pool_and_never_hold_more_than_it() -> None:
    shares = WorkerShares(16)
    holding: dict[str, list[asyncio.Event]] = {a: [] for a in "abcd"}

    async def work(account_id: str) -> None:
        done = asyncio.Event()
        async with shares.turn(account_id):
            assert sum(shares.running(a) for a in "abcd") <= 16
            holding[account_id].append(done)
            await done.wait()
            holding[account_id].remove(done)

    def finish(account_id: str, count: int) -> None:
        for done in holding[account_id][:count]:
            done.set()

    async def main() -> None:
        tasks = [asyncio.create_task(work(a)) for a in "ab" for _ in range(40)]
        await _settle()
        assert [shares.running(a) for a in "ab"] == [8, 8]
        tasks += [asyncio.create_task(work(a)) for a in "cd" for _ in range(40)]
        await _settle()
        # Nothing is taken away from running work: c and d wait for free workers.
        assert [shares.running(a) for a in "abcd"] == [8, 8, 0, 0]
        finish("a", 4)
        await _settle()
        assert [shares.running(a) for a in "abcd"] == [4, 8, 2, 2]
        finish("b", 4)
        await _settle()
        assert [shares.running(a) for a in "abcd"] == [4, 4, 4, 4]
        while not all(task.done() for task in tasks):
            for account_id in "abcd":
                finish(account_id, 1)
            await _settle()
            assert all(shares.running(a) <= 4 for a in "abcd" if shares.waiting(a))
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert shares.share() == 8  # everything done: an account alone gets half again


def test_waiters_of_several_accounts_are_served_in_turn() -> None:
    shares = WorkerShares(2)  # two busy accounts: one turn each
    order: list[str] = []

    async def main() -> None:
        gates = {a: asyncio.Event() for a in "ab"}

        async def work(account_id: str) -> None:
            async with shares.turn(account_id):
                order.append(account_id)
                await gates[account_id].wait()

        tasks = [asyncio.create_task(work(a)) for a in ("a", "a", "a", "b", "b", "b")]
        await _settle()
        assert order == ["a", "b"]
        gates["a"].set()  # a's work is fast now, b's still blocked
        await _settle()
        assert order == ["a", "b", "a", "a"]  # a goes on within its own share only
        gates["b"].set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == ["a", "b", "a", "a", "b", "b"]


def test_a_cancelled_waiter_gives_up_its_place_and_leaks_no_turn() -> None:
    shares = WorkerShares(2)

    async def main() -> None:
        hold = asyncio.Event()

        async def holder() -> None:
            async with shares.turn("a"):
                await hold.wait()

        first = asyncio.create_task(holder())
        await _settle()
        waiter = asyncio.create_task(holder())
        await _settle()
        assert shares.waiting("a") == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert shares.waiting("a") == 0
        hold.set()
        await first
        assert shares.running("a") == 0

    asyncio.run(main())


async def _settle() -> None:
    """Let every runnable task run until it blocks (a bounded number of loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


class contextlib_turns:  # noqa: N801 - reads like the context manager it is
    """Start `count` holders of turns for one account; yields how many were granted."""

    def __init__(self, shares: WorkerShares, account_id: str, count: int) -> None:
        self.shares, self.account_id, self.count = shares, account_id, count
        self.release = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def _hold(self) -> None:
        async with self.shares.turn(self.account_id):
            await self.release.wait()

    async def __aenter__(self) -> int:
        self.tasks = [asyncio.create_task(self._hold()) for _ in range(self.count)]
        await _settle()
        return self.shares.running(self.account_id)

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await asyncio.gather(*self.tasks)
