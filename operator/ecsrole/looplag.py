"""Measures event-loop lag: how late the loop runs a timer it was asked to run.

Everything the operator does between Kubernetes and AWS (kopf's handlers, the sweeps, lease
renewal) shares one event loop; blocking work belongs in the worker pool. A loop kept busy by
long synchronous stretches shows up here before it shows up as a lost lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from ecsrole import metrics

# Often enough to see a stall of tens of milliseconds, rarely enough to cost nothing.
SAMPLE_INTERVAL = 0.25


async def watch(interval: float = SAMPLE_INTERVAL) -> None:
    """Observe the lag of one timer every `interval` seconds, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        metrics.event_loop_lag.observe(max(0.0, loop.time() - asked))


async def run_watched(main: Coroutine[Any, Any, int], *beside: Coroutine[Any, Any, None]) -> int:
    """Run the operator's main coroutine with the lag watcher (and `beside`) next to it; they
    are cancelled when it ends."""
    helpers = [asyncio.create_task(watch(), name="event-loop-lag")]
    helpers += [asyncio.create_task(work) for work in beside]
    try:
        return await main
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
