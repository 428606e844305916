"""The benchmarks wait for a burst's tail on an observable (`bench.stack.quiet_for`), not a fixed
sleep: the wait lasts until the activity count stops changing, however long the tail, and the
audit log's writes are attributed to the operator that made them."""

from __future__ import annotations

import time

import pytest
from bench.peer import AuditWrite
from bench.stack import quiet_for

from tests.stack.processes import WaitTimeoutError

pytestmark = pytest.mark.unit


def test_the_wait_ends_only_after_the_count_stopped_changing_for_the_quiet_period() -> None:
    started = time.monotonic()
    last_change_at: list[float] = []

    def count() -> int:
        # The "burst" goes on for 0.3 s: the count changes at every poll until then.
        elapsed = time.monotonic() - started
        if elapsed < 0.3:
            last_change_at.append(elapsed)
            return len(last_change_at)
        return len(last_change_at)

    waited = quiet_for(count, seconds=0.2, what="a count", interval=0.01)

    assert last_change_at, "the sample never changed: the test proves nothing"
    # Not before the last change plus the quiet period (a loaded machine only adds to it).
    assert time.monotonic() - started >= last_change_at[-1] + 0.2
    assert waited >= 0.2


def test_a_count_that_never_settles_is_a_timeout_naming_what_was_awaited() -> None:
    counter = iter(range(1_000_000))
    with pytest.raises(WaitTimeoutError, match="without a change of the operator's Events"):
        quiet_for(
            lambda: next(counter),
            seconds=0.2,
            what="the operator's Events",
            timeout=0.3,
            interval=0.01,
        )


def _event(agent: str, verb: str, resource: str) -> dict[str, object]:
    return {
        "userAgent": agent,
        "verb": verb,
        "objectRef": {"resource": resource},
        "requestReceivedTimestamp": "2026-12-06T02:00:00.250000Z",
    }


def test_audit_writes_are_the_operators_own() -> None:
    write = AuditWrite.parse(_event("ecsrole/0.1.0 (linux) kopf", "create", "events"))
    assert write == AuditWrite(1796522400.25, "ecsrole/0.1.0", "create", "events")
    assert write.key == "ecsrole/0.1.0 create events"
    # Lease renewals, the API server's own upkeep and the benchmark's kubectl are nobody's rest.
    assert AuditWrite.parse(_event("ecsrole/0.1.0", "update", "leases")) is None
    assert AuditWrite.parse(_event("kube-apiserver/v1.34.4", "update", "endpoints")) is None
    assert AuditWrite.parse(_event("kubectl/v1.34.4", "create", "ecsexecutionroles")) is None
