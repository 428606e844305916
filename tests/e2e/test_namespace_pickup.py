"""A namespace matching the operator's --namespace glob is served within seconds whenever it is
created, also while the operator's namespace watch is down: the watch then comes back with a
new listing, and kopf (1.45.2) skipped the namespaces a listing brings, so such a namespace was
served only once it changed again (its deletion, in the e2e suite's fixtures).

The watch restart is forced, not waited for: a TCP proxy cuts the operator off the API server,
kube-apiserver is restarted (its watch cache forgets every resource version, so the watch can
only come back with 410 Gone and a new listing), the namespace and its resource are created,
and only then is the operator let back. On a control plane of its own: the restart would
otherwise cost the suite's shared operator its lease."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OperatorFactory
from tests.stack import identity
from tests.stack.controlplane import ControlPlane
from tests.stack.kube import Kubectl, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import eventually
from tests.stack.resources import role_manifest
from tests.stack.tcpproxy import TcpProxy, kubeconfig_through

pytestmark = pytest.mark.e2e

# kopf's debug line when its namespace watch ends with 410 Gone and lists again.
NAMESPACE_WATCH_RESTARTED = "Restarting the watch-stream for namespaces.v1 cluster-wide"
# From the operator's return until the namespace's resource is Ready. Its reconnection after the
# cut alone may take kopf's retry backoff (up to 21 s); the rest is room for a loaded machine.
SERVED_WITHIN = 90.0


@pytest.fixture
def own_plane(tmp_path: Path) -> Iterator[tuple[ControlPlane, Kubectl]]:
    """A control plane of this test's own, with the CRD."""
    plane = ControlPlane(tmp_path / "controlplane").start()
    try:
        kubectl = Kubectl(plane.kubectl_path, plane.kubeconfig)
        kubectl.install_crd()
        yield plane, kubectl
    finally:
        plane.stop()


@pytest.fixture
def proxy(own_plane: tuple[ControlPlane, Kubectl]) -> Iterator[TcpProxy]:
    """The operator's only way to its API server."""
    plane, _ = own_plane
    proxy = TcpProxy("127.0.0.1", int(plane.url.rsplit(":", 1)[1])).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _restarts(operator: OperatorProcess) -> int:
    return sum(NAMESPACE_WATCH_RESTARTED in str(line.get("event")) for line in operator.log_lines())


def _create(kubectl: Kubectl, namespace: str) -> None:
    kubectl.create_namespace(namespace)
    kubectl.apply(role_manifest("web", f"e2e-{namespace}"), namespace=namespace)


def test_a_namespace_created_while_the_namespace_watch_is_down_is_served_when_it_lists_again(
    own_plane: tuple[ControlPlane, Kubectl],
    proxy: TcpProxy,
    operator_factory: OperatorFactory,
    helm: Path,
    tmp_path: Path,
) -> None:
    plane, kubectl = own_plane
    who = identity.install(kubectl, helm, tmp_path / "identity") if identity.wanted() else None
    source = who.kubeconfig if who is not None else plane.kubeconfig
    glob = f"late{uuid.uuid4().hex[:6]}-*"
    config = dev_config("e2e-late-namespace", {DEFAULT_ACCOUNT_ID: {"namespaces": [glob]}})
    operator = operator_factory(
        config,
        namespaces=[glob],
        kubeconfig=kubeconfig_through(proxy, source, tmp_path / "through-proxy"),
        lease_namespace=who.namespace if who is not None else "default",
        lease_duration=600.0,  # the cut must not cost it the lease: that is another test
    )

    # A namespace made while everything is up is served: the namespace watch is established.
    first = glob.replace("*", "first")
    _create(kubectl, first)
    wait_for_condition(kubectl, first, "web", "Ready", timeout=120)
    restarts = _restarts(operator)

    proxy.cut()
    # A write the operator cannot see: the restarted API server's watch cache then begins after
    # every resource version the operator holds, so its watches can only come back with 410.
    kubectl("create", "configmap", "unseen", f"--namespace={first}")
    plane.restart_apiserver()
    late = glob.replace("*", "late")
    _create(kubectl, late)
    proxy.restore()

    # The watch came back the only way it could, by listing again: otherwise this tests nothing.
    eventually(
        lambda: _restarts(operator) > restarts,
        what="the operator's namespace watch restarting with a new listing (410 Gone)",
        timeout=SERVED_WITHIN,
        interval=0.5,
    )
    wait_for_condition(kubectl, late, "web", "Ready", timeout=SERVED_WITHIN)
    operator.child.ensure_alive()
