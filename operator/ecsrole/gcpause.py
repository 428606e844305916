"""Keeping Python's cyclic garbage collector from stalling the event loop.

Two measures. First, the collector pauses while a bulk read parses an account's roles.

A bulk read of a 5,000-role account builds a few hundred thousand short-lived objects (the
parsed pages) in a worker thread. Those allocations trigger collections of the oldest
generation, which walk every long-lived object of the process (the index, kopf's state) while
holding the GIL: stalls of the event loop of up to seconds, long enough to delay lease renewal.
None of those objects needs the cyclic collector (they are freed by reference counting when
the read returns), so the collector is off for the duration of the read.

Reads of several accounts may overlap; the collector comes back when the last one ends. So that
overlapping reads of many accounts cannot keep it off for good, a read ending a pause that has
lasted longer than MAX_PAUSE_SECONDS collects explicitly.

Second, what has lived a while is frozen (`gc.freeze`, every FREEZE_SECONDS): a collection of
the oldest generation walks every object the collector tracks, and at 5,000 resources (kopf's
state, the index, the modules and AWS models) that took 0.5-1.4 s with the GIL held, on the
event loop's thread, every few seconds during a burst. Frozen objects are skipped by
collections; those that die by reference count (nearly all) are still freed at once. Cyclic
garbage among them waits for the next full collection, which unfreezes everything and collects
it all, once every FULL_COLLECTION_SECONDS.

Ten seconds is long in a burst, so the survivors of every collection of the oldest generation
are frozen as well, the automatic ones included (`freeze_after_full`). Without that, a takeover
of 5,000 objects made four such collections in five seconds, each walking everything allocated
since the last checkpoint, and so each longer than the one before (0.41, 0.51, 0.60, 0.69 s):
the allocation counts that trigger them compare the new objects with the last walk's
survivors, which after a freeze are few. Frozen after each walk, every collection walks only
what came after the one before.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator

MAX_PAUSE_SECONDS = 30.0
FREEZE_SECONDS = 10.0
FULL_COLLECTION_SECONDS = 3600.0

_lock = threading.Lock()
_holders = 0
_paused_since = 0.0
_was_enabled = True


@contextlib.contextmanager
def paused(clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """The cyclic collector off for the block (reference counting still frees everything)."""
    global _holders, _paused_since, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            _paused_since = clock()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                if _was_enabled:
                    gc.enable()
            elif clock() - _paused_since > MAX_PAUSE_SECONDS:
                gc.collect()
                _paused_since = clock()


def holders() -> int:
    """Reads holding the collector off now (for tests)."""
    with _lock:
        return _holders


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """A `gc.callbacks` hook: after a collection of the oldest generation, freeze what survived."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


@contextlib.contextmanager
def freeze_after_full() -> Iterator[None]:
    """Within the block, every collection of the oldest generation freezes its survivors."""
    gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(_freeze_survivors)


def checkpoint(*, full: bool = False) -> None:
    """Collect what is not frozen, then freeze the survivors; `full` collects the frozen too."""
    if full:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


async def keep_frozen(
    every: float = FREEZE_SECONDS,
    full_every: float = FULL_COLLECTION_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Checkpoint every `every` seconds, fully every `full_every`, until cancelled; meanwhile
    every collection of the oldest generation freezes its survivors (`freeze_after_full`).

    Each checkpoint walks only what was allocated since the last one, so it costs little; the
    full one walks everything, once in a long while.
    """
    last_full = clock()
    with freeze_after_full():
        while True:
            await asyncio.sleep(every)
            full = clock() - last_full >= full_every
            checkpoint(full=full)
            if full:
                last_full = clock()
