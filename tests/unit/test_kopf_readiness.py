"""kopf's readiness bookkeeping at start (handlers._wake_only_on_change): waiters are woken only
when the toggle set's state changes, so N objects cost N wake-ups, not N^2, and every waiter is
still released exactly when the set turns on."""

from __future__ import annotations

import asyncio

import pytest
from kopf._cogs.aiokits import aiotoggles

from ecsrole import handlers
from tests.unit.fakes import WakeUps

pytestmark = pytest.mark.unit


def test_the_pinned_kopf_is_patched() -> None:
    # Fails on a kopf upgrade: re-check its readiness bookkeeping, then move KOPF_CHECKED.
    assert handlers._wake_only_on_change()
    assert aiotoggles.ToggleSet.make_toggle is handlers._make_toggle
    assert aiotoggles.ToggleSet.drop_toggle is handlers._drop_toggle


def test_objects_arriving_one_by_one_wake_the_waiters_once_not_once_each() -> None:
    """As kopf starts: a blocker, then each object's own toggle, dropped by its worker, which
    then waits for the whole set."""

    async def start(objects: int) -> tuple[int, list[bool]]:
        ready = aiotoggles.ToggleSet(all)
        wakeups = WakeUps(ready._condition)
        blocker = await ready.make_toggle(False, name="listing")
        released: list[bool] = []

        async def worker(own: aiotoggles.Toggle) -> None:
            await ready.drop_toggle(own)
            await ready.wait_for(True)
            released.append(True)

        workers = []
        for i in range(objects):
            own = await ready.make_toggle(False, name=f"object-{i}")
            workers.append(asyncio.create_task(worker(own)))
            await asyncio.sleep(0)  # the loop runs between arrivals, as with a real listing
        await asyncio.sleep(0)
        assert released == []  # nobody runs before the listing is done
        await ready.drop_toggle(blocker)
        await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
        return wakeups.count, released

    wakeups, released = asyncio.run(start(300))
    assert len(released) == 300
    assert wakeups == 2  # off with the first toggle, on after the last (kopf: 601 times)


def test_a_toggles_own_waiters_and_turning_toggles_behave_as_before() -> None:
    async def run() -> bool:
        ready = aiotoggles.ToggleSet(all)
        first = await ready.make_toggle(False, name="first")
        second = await ready.make_toggle(True, name="second")
        waiting_for_set = asyncio.create_task(ready.wait_for(True))
        waiting_for_first = asyncio.create_task(first.wait_for(True))
        await asyncio.sleep(0)
        await first.turn_to(True)  # turning a toggle still wakes its waiters and the set's
        await asyncio.wait_for(asyncio.gather(waiting_for_set, waiting_for_first), timeout=30)
        await ready.drop_toggle(second)
        off = await ready.make_toggle(False, name="late")
        assert ready.is_off()
        waiting = asyncio.create_task(ready.wait_for(True))
        await asyncio.sleep(0)
        await ready.drop_toggle(off)
        await asyncio.wait_for(waiting, timeout=30)
        return ready.is_on()

    assert asyncio.run(run())
