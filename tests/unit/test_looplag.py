"""ecsrole_event_loop_lag_seconds sees a loop that is blocked (only a lower bound is asserted:
a loaded machine makes the lag longer, never shorter)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ecsrole import looplag, metrics

pytestmark = pytest.mark.unit


def _observations_above(bound: float) -> float:
    """How many lag observations so far were longer than `bound` (a bucket bound)."""
    total = metrics.REGISTRY.get_sample_value("ecsrole_event_loop_lag_seconds_count") or 0.0
    at_most = metrics.REGISTRY.get_sample_value(
        "ecsrole_event_loop_lag_seconds_bucket", {"le": str(float(bound))}
    )
    return total - (at_most or 0.0)


def test_a_blocked_loop_is_observed_as_lag_and_the_watcher_stops_with_the_operator() -> None:
    before = _observations_above(0.1)

    async def operator_main() -> int:
        await asyncio.sleep(0)  # the watcher starts and sets its first timer (due in 0.25 s)
        # A synchronous stretch on the loop, the thing the metric is for: the watcher's timer
        # runs 0.4 s after it was set at the earliest, at least 0.15 s late.
        time.sleep(0.4)
        deadline = time.monotonic() + 30
        while _observations_above(0.1) < before + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # poll the observable: the watcher runs meanwhile
        return 7

    async def main() -> tuple[int, int]:
        code = await looplag.run_watched(operator_main())
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return code, len(others)

    assert asyncio.run(main()) == (7, 0)
    assert _observations_above(0.1) >= before + 1
