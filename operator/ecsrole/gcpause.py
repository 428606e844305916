"""Pausing Python's cyclic garbage collector while a bulk read parses an account's roles.

A bulk read of a 5,000-role account builds a few hundred thousand short-lived objects (the
parsed pages) in a worker thread. Those allocations trigger collections of the oldest
generation, which walk every long-lived object of the process (the index, kopf's state) while
holding the GIL: stalls of the event loop of up to seconds, long enough to delay lease renewal.
None of those objects needs the cyclic collector (they are freed by reference counting when
the read returns), so the collector is off for the duration of the read.

Reads of several accounts may overlap; the collector comes back when the last one ends. So that
overlapping reads of many accounts cannot keep it off for good, a read ending a pause that has
lasted longer than MAX_PAUSE_SECONDS collects explicitly.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator

MAX_PAUSE_SECONDS = 30.0

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
