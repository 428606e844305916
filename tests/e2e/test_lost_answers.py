"""End to end: objects whose finalizer patch the API server applied but never answered.

In a burst of 5,000 creations some of kopf's finalizer patches timed out after the API server
had applied them (docs/performance-analysis.md, "Failover at scale"). kopf retries such a patch, the
retry fails its resourceVersion test, and kopf then skips the object's handlers on the next
event and writes nothing, so no event follows: the object keeps the finalizer and nothing else,
for good. Here a TCP proxy between the operator and kube-apiserver (tests/stack/stall.py)
withholds the answers on the connections of the burst's first requests, so their patches are
applied and time out, every time; every object must still become Ready, each handled by kopf, once.
"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import OperatorFactory, _operator_access
from tests.stack import identity
from tests.stack.kube import Kubectl, condition, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import dev_config
from tests.stack.processes import eventually
from tests.stack.resources import role_manifest
from tests.stack.stall import StallProxy

pytestmark = pytest.mark.e2e

#: Objects applied at once, and how many of the connections they open get no answer.
BURST = 20
UNANSWERED = 8
#: kopf gives up on an unanswered request after kube.REQUEST_SECONDS (30 s) and retries it;
#: the safety net waits out kopf's pauses between attempts (sweeper.RETRY_PAUSE_SECONDS, 30 s)
#: and then nudges within a drift interval (2 s here); the rest is room for a loaded machine.
ALL_READY_WITHIN = 240.0


@pytest.fixture
def stalled_kubeconfig(
    cluster: tuple[Path, Path],
    operator_identity: identity.OperatorIdentity | None,
    tmp_path: Path,
) -> Iterator[tuple[Path, StallProxy]]:
    """The operator's kubeconfig, pointed at a StallProxy in front of the API server."""
    kubeconfig = Path(_operator_access(cluster, operator_identity)["kubeconfig"])
    document = yaml.safe_load(kubeconfig.read_text())
    (entry,) = document["clusters"]
    proxy = StallProxy(entry["cluster"]["server"]).start()
    entry["cluster"]["server"] = proxy.url
    stalled = tmp_path / "stalled.kubeconfig"
    stalled.write_text(yaml.safe_dump(document))
    try:
        yield stalled, proxy
    finally:
        proxy.stop()


def _items(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    listed = kubectl("get", "ecsexecutionroles", "-n", namespace, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(listed)["items"]
    return items


def _ready(item: dict[str, Any]) -> bool:
    found = condition(item, "Ready")
    return found is not None and found.get("status") == "True"


def test_objects_whose_finalizer_patch_was_applied_but_never_answered_become_ready(
    kubectl: Kubectl,
    operator_factory: OperatorFactory,
    own_namespace: str,
    stalled_kubeconfig: tuple[Path, StallProxy],
) -> None:
    kubeconfig, proxy = stalled_kubeconfig
    config = dev_config(
        "e2e-lost-answers",
        {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace], "maxCallsPerSecond": 100}},
        driftCheckInterval="2s",
    )
    operator = operator_factory(
        config,
        namespaces=[own_namespace],
        kubeconfig=kubeconfig,
        # No Lease: a renewal on a withheld connection would end the leadership instead.
        extra_env={"ECSROLE_LEADER_ELECTION": "false"},
    )
    prefix = f"lost-{uuid.uuid4().hex[:8]}"
    # One object first: once it is Ready, kopf's watch stream is open (and so never withheld).
    kubectl.apply(role_manifest("warm-up", f"{prefix}-warm-up"), namespace=own_namespace)
    wait_for_condition(kubectl, own_namespace, "warm-up", "Ready", "True", timeout=120)
    # Then no idle pooled connection is left (they close 2 s after their last request,
    # kube.KEEPALIVE_SECONDS; only the watch streams stay open, and send nothing): the burst's
    # first requests, each object's finalizer patch, open new connections, the withheld ones.
    eventually(lambda: proxy.requests_quiet_for() > 5, what="no idle pooled connection")

    proxy.hold(UNANSWERED)
    burst = [role_manifest(f"r{i:02d}", f"{prefix}-{i:02d}") for i in range(BURST)]
    kubectl(
        "apply",
        "-n",
        own_namespace,
        "-f",
        "-",
        input="\n---\n".join(yaml.safe_dump(document) for document in burst),
    )
    eventually(lambda: proxy.held() == UNANSWERED, what="the withheld answers", timeout=60)

    def all_ready() -> list[dict[str, Any]]:
        items = _items(kubectl, own_namespace)
        return items if len(items) == BURST + 1 and all(_ready(i) for i in items) else []

    try:
        items = eventually(
            all_ready, what="every object Ready", timeout=ALL_READY_WITHIN, interval=1
        )
    except AssertionError:
        stuck = [
            (i["metadata"]["name"], i["metadata"].get("finalizers"), i.get("status"))
            for i in _items(kubectl, own_namespace)
            if not _ready(i)
        ]
        raise AssertionError(f"objects never handled: {stuck}") from None

    # Some were kopf's lost objects, handled by kopf after a nudge, and no object was
    # reconciled twice: the nudge made kopf handle them, it handled nothing itself.
    assert operator.metric("ecsrole_unjudged_nudges_total") >= 1
    lines = operator.log_lines()
    nudged = {line.get("name") for line in lines if str(line.get("event")).endswith("nudged it")}
    assert nudged
    assert nudged <= {f"r{i:02d}" for i in range(BURST)}
    reconciled = collections.Counter(
        line.get("name") for line in lines if line.get("event") == "reconciled"
    )
    assert reconciled == {i["metadata"]["name"]: 1 for i in items}
    for item in items:
        assert item["status"]["observedGeneration"] == item["metadata"]["generation"]
