"""The operator serves EcsExecutionRoles whenever their CRD is installed: long after the operator
started (kubectl apply -k or one Argo CD wave sends the CRD and the Deployment together), and
again after the CRD is deleted and installed anew. It runs on a control plane of its own, since
deleting the CRD of the suite's shared API server would delete every other test's objects."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OperatorFactory
from tests.stack.controlplane import ControlPlane
from tests.stack.kube import KIND, Kubectl, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import wait_until
from tests.stack.resources import role_manifest

pytestmark = pytest.mark.e2e

WAITING_LINE = "waiting for CustomResourceDefinition ecsexecutionroles.iam.ecsrole.dev"
# The operator has been up this long, with no CRD, before the CRD comes (issue 15's scenario).
CRD_ARRIVES_AFTER = 10.0
# Issue 15: once the CRD is established, a resource applied is Ready within this.
READY_WITHIN = 15.0


@pytest.fixture
def bare_plane(tmp_path: Path) -> Iterator[tuple[ControlPlane, Kubectl]]:
    """A fresh API server without the CRD."""
    plane = ControlPlane(tmp_path / "controlplane").start()
    try:
        yield plane, Kubectl(plane.kubectl_path, plane.kubeconfig)
    finally:
        plane.stop()


def _lines(operator: OperatorProcess, text: str) -> list[dict[str, Any]]:
    return [line for line in operator.log_lines() if text in str(line.get("event", ""))]


def _ready_after_apply(kubectl: Kubectl, namespace: str, name: str, role: str) -> float:
    kubectl.apply(role_manifest(name, role), namespace=namespace)
    applied = time.monotonic()
    wait_for_condition(kubectl, namespace, name, "Ready", timeout=READY_WITHIN)
    return time.monotonic() - applied


def test_crd_installed_after_the_operator_and_reinstalled_is_served_each_time(
    bare_plane: tuple[ControlPlane, Kubectl],
    operator_factory: OperatorFactory,
    aws: Callable[..., Any],
) -> None:
    plane, kubectl = bare_plane
    namespace = "team-late"
    kubectl.create_namespace(namespace)
    config = dev_config("e2e-late-crd", {DEFAULT_ACCOUNT_ID: {"namespaces": [namespace]}})
    operator = operator_factory(
        config, namespaces=[namespace], kubeconfig=plane.kubeconfig, lease_namespace="default"
    )
    started = time.monotonic()
    pid = operator.child.pid

    # Until the CRD exists it says so, clearly, and keeps running.
    wait_until(
        lambda: bool(_lines(operator, WAITING_LINE)), timeout=60, what="the waiting-for-CRD line"
    )
    # Not synchronisation: the scenario is an operator that has been up for a while without it.
    time.sleep(max(0.0, CRD_ARRIVES_AFTER - (time.monotonic() - started)))
    kubectl.install_crd()
    role = f"late-{uuid.uuid4().hex[:10]}"
    took = _ready_after_apply(kubectl, namespace, "first", role)
    iam = aws("iam")
    assert iam.get_role(RoleName=role)["Role"]["RoleName"] == role
    waited = time.monotonic() - started
    assert 1 <= len(_lines(operator, WAITING_LINE)) <= 1 + waited // 60, "at most once a minute"

    # The CRD deleted: its objects go first (the operator removes their roles and finalizers).
    kubectl("delete", "crd", f"{KIND}", "--timeout=120s", timeout=150)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role)
    wait_until(
        lambda: bool(_lines(operator, "was deleted; restarting the serving")),
        timeout=90,
        what="the operator noticing the CRD is gone",
    )

    # Installed again: served again, by the same process (no crash, no restart loop).
    kubectl.install_crd()
    second = f"late-{uuid.uuid4().hex[:10]}"
    took_again = _ready_after_apply(kubectl, namespace, "second", second)
    assert iam.get_role(RoleName=second)["Role"]["RoleName"] == second
    assert operator.child.alive()
    assert operator.child.pid == pid
    print(f"Ready {took:.1f}s after apply; after re-installing the CRD {took_again:.1f}s")
