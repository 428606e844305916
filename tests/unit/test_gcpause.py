"""The cyclic collector is off while bulk reads run, back on after the last, and a pause that
overlapping reads keep alive for too long still collects."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from ecsrole import gcpause

pytestmark = pytest.mark.unit


def test_the_collector_is_off_during_a_read_and_on_after() -> None:
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        assert gcpause.holders() == 1
    assert gc.isenabled()
    assert gcpause.holders() == 0


def test_overlapping_reads_keep_it_off_until_the_last_ends() -> None:
    first, second = gcpause.paused(), gcpause.paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_failed_read_turns_it_back_on() -> None:
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("AccessDenied")
    assert gc.isenabled()


def test_a_long_overlapping_pause_collects_cyclic_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(1) or 0)
    outer = gcpause.paused(lambda: now[0])
    outer.__enter__()
    with gcpause.paused(lambda: now[0]):
        now[0] += gcpause.MAX_PAUSE_SECONDS + 1
    assert collected == [1]  # the overlapping read ended a pause older than the bound
    outer.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_switched_off_by_someone_else_stays_off() -> None:
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


class _Node:
    """A container in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_checkpoint_collects_the_young_garbage_and_freezes_the_survivors() -> None:
    gc.unfreeze()
    try:
        kept = [_Node() for _ in range(100)]
        garbage = [weakref.ref(_Node()) for _ in range(50)]  # each alive only in its own cycle
        frozen_before = gc.get_freeze_count()
        gcpause.checkpoint()
        assert all(ref() is None for ref in garbage)
        assert gc.get_freeze_count() >= frozen_before + len(kept)
    finally:
        gc.unfreeze()


def test_cycles_among_the_frozen_wait_for_the_full_checkpoint() -> None:
    gc.unfreeze()
    try:
        survivor = _Node()
        ref = weakref.ref(survivor)
        gcpause.checkpoint()
        del survivor  # now garbage, but frozen: a plain checkpoint does not walk it
        gcpause.checkpoint()
        assert ref() is not None
        gcpause.checkpoint(full=True)
        assert ref() is None
    finally:
        gc.unfreeze()


def test_the_freezer_checkpoints_on_its_interval_and_fully_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    checkpoints: list[bool] = []

    def record(*, full: bool = False) -> None:
        checkpoints.append(full)
        now[0] += 10.0  # each interval: ten seconds of the fake clock

    monkeypatch.setattr(gcpause, "checkpoint", record)

    async def run() -> None:
        task = asyncio.create_task(
            gcpause.keep_frozen(every=0.001, full_every=25.0, clock=lambda: now[0])
        )
        deadline = time.monotonic() + 30
        while len(checkpoints) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert checkpoints[:6] == [False, False, False, True, False, False]


def test_survivors_of_a_collection_of_the_oldest_generation_are_frozen_within_the_block() -> None:
    gc.unfreeze()
    try:
        with gcpause.freeze_after_full():
            kept = [_Node() for _ in range(100)]
            garbage = [weakref.ref(_Node()) for _ in range(50)]
            frozen_before = gc.get_freeze_count()
            gc.collect(1)  # a younger generation: nothing is frozen
            assert gc.get_freeze_count() == frozen_before
            gc.collect(2)
            assert all(ref() is None for ref in garbage)
            assert gc.get_freeze_count() >= frozen_before + len(kept)
        gc.unfreeze()
        gc.collect(2)  # after the block a collection freezes nothing
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
