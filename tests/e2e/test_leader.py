"""High availability: replicas share one Lease; only the leader writes; takeover after a crash
waits out the lease, takeover after SIGTERM is immediate; the new leader seeds from one bulk read."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import pytest
import yaml

from tests.conftest import OperatorFactory
from tests.stack.kube import Kubectl, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import eventually
from tests.stack.resources import role_manifest

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 6.0


def _leads(process: OperatorProcess) -> bool:
    try:
        with urllib.request.urlopen(process.health_url, timeout=2) as response:  # noqa: S310
            return bool(json.load(response)["leader"])
    except OSError:
        return False


def _standing_by(process: OperatorProcess) -> bool:
    """Up and answering its health endpoint, and not the leader."""
    with urllib.request.urlopen(process.health_url, timeout=2) as response:  # noqa: S310
        return not json.load(response)["leader"]


def _metric(process: OperatorProcess, metric: str, **labels: str) -> float:
    return process.metric(metric, **labels)


def _wait_leader(
    candidates: list[OperatorProcess], timeout: float
) -> tuple[OperatorProcess, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        leading = [p for p in candidates if p.child.alive() and _leads(p)]
        if leading:
            assert len(leading) == 1, "two leaders at once"
            return leading[0], time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"no leader within {timeout:.0f}s")


def _role(name: str, namespace: str | None = None) -> dict[str, Any]:
    return role_manifest(name, f"ha-{uuid.uuid4().hex[:12]}", namespace=namespace)


def test_one_leader_writes_and_a_standby_takes_over(
    operator_factory: OperatorFactory, own_namespace: str, kubectl: Kubectl
) -> None:
    config = dev_config(
        "e2e-ha", {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace]}}, driftCheckInterval="1h"
    )
    lease = f"ha-{uuid.uuid4().hex[:8]}"

    def replica() -> OperatorProcess:
        return operator_factory(
            config, namespaces=[own_namespace], lease_name=lease, lease_duration=LEASE_SECONDS
        )

    first, second = replica(), replica()
    leader, _ = _wait_leader([first, second], LEASE_SECONDS * 3)
    standby = second if leader is first else first

    kubectl.apply(_role("one"), namespace=own_namespace)
    wait_for_condition(kubectl, own_namespace, "one", "Ready", timeout=120)
    assert _metric(leader, "ecsrole_leader") == 1
    assert _metric(standby, "ecsrole_leader") == 0
    assert _metric(leader, "ecsrole_aws_api_calls_total", operation="CreateRole") == 1
    assert _metric(standby, "ecsrole_aws_api_calls_total") == 0, "a standby never calls AWS"
    assert "ecsrole_ready{" not in standby.metrics_text(), "standbys export no per-object series"

    # A crash: the standby must wait out the lease (it cannot know the leader is gone).
    leader.kill()
    killed_at = time.monotonic()
    new_leader, _ = _wait_leader([standby], LEASE_SECONDS * 5)
    takeover = time.monotonic() - killed_at
    # It waited out the lease; the upper bound is for failure only (a loaded machine is slow).
    assert LEASE_SECONDS * 0.8 <= takeover <= LEASE_SECONDS * 5, takeover

    # The new leader resumed "one" from a bulk read, not from per-role reads, and did not
    # write it again; then it serves new work.
    kubectl.apply(_role("two"), namespace=own_namespace)
    wait_for_condition(kubectl, own_namespace, "two", "Ready", timeout=120)
    # The resume of "one" runs beside "two" and may finish after it: wait for its verdict.
    eventually(
        lambda: _metric(new_leader, "ecsrole_ready", name="one") == 1,
        what='the new leader judged "one"',
    )
    assert _metric(new_leader, "ecsrole_aws_api_calls_total", operation="CreateRole") == 1
    assert (
        _metric(
            new_leader, "ecsrole_aws_api_calls_total", operation="GetAccountAuthorizationDetails"
        )
        >= 1
    )
    assert (
        _metric(new_leader, "ecsrole_aws_api_calls_total", operation="GetRole") == 1
    )  # "two" only

    # A graceful stop releases the lease: the next standby takes over at once.
    third = replica()
    # Running and answering, yet not leading: the lease is held (a process still starting would
    # also "not lead", so that alone proves nothing).
    eventually(
        lambda: _standing_by(third), what="the third replica standing by", tolerate=(OSError,)
    )
    assert _leads(new_leader)
    new_leader.stop()
    stopped_at = time.monotonic()
    # Released, as the stopped leader itself reports the API server's answer (judging it by the
    # takeover's speed alone would need a quiet machine).
    released = [
        line
        for line in new_leader.log_lines()
        if line.get("event") == "released the leader lease" and line.get("status") == 200
    ]
    assert released, "a graceful stop must release the lease"
    _wait_leader([third], LEASE_SECONDS * 5)
    print(f"takeover after a graceful stop: {time.monotonic() - stopped_at:.1f}s")


def test_a_start_with_many_existing_resources_handles_them_all(
    operator_factory: OperatorFactory, own_namespace: str, kubectl: Kubectl
) -> None:
    """More objects than the reconciles allowed in flight exist before the operator starts
    (a restart, a takeover): none may wait for another forever."""
    count = 150
    prefix = f"many-{uuid.uuid4().hex[:6]}"
    documents = [_role(f"{prefix}-{i}", own_namespace) for i in range(count)]
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(documents), timeout=120)
    config = dev_config(
        "e2e-many",
        {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace], "maxCallsPerSecond": 200}},
        driftCheckInterval="1h",
    )
    operator = operator_factory(config, namespaces=[own_namespace])
    deadline = time.monotonic() + 90
    while _metric(operator, "ecsrole_ready") < count:
        assert time.monotonic() < deadline, (
            f"{_metric(operator, 'ecsrole_ready'):.0f}/{count} Ready"
        )
        time.sleep(0.5)
