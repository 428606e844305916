"""Fixtures of `make test-cluster`: a real single-node cluster (tests/stack/node.py), the operator
image built from the Dockerfile, Helm releases of charts/ecsrole, and moto.

Everything here is marked `cluster` and left out of the plain `make test` (it needs root). A
failing test gets the operator pods' logs, the namespace's Events and the tails of the node's
component logs in its report. The node is stopped, and the host checked to be as it was, when
the session ends, also when it ends early (SIGTERM, Ctrl-C, a failed start).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from tests.stack.kube import Kubectl
from tests.stack.moto import MotoServer
from tests.stack.node import Node
from tests.stack.processes import free_port, wait_until

HERE = Path(__file__).parent
CHART = HERE.parents[1] / "charts" / "ecsrole"
LOCAL_VALUES = HERE / "local-node-values.yaml"
#: Namespaces whose pods and Events a failing test reports.
WATCHED: list[tuple[Kubectl, str]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.cluster)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the fixtures' finalizers


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The single-node cluster; after the session, nothing of it is left on the host."""
    if os.geteuid() != 0:
        pytest.fail("make test-cluster needs root: it runs containerd and a kubelet")
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    cluster_node = Node(tmp_path_factory.mktemp("node"))
    atexit.register(cluster_node.stop)  # the last resort, should the finalizer not run
    cluster_node.start()
    try:
        yield cluster_node
    finally:
        cluster_node.stop()
        atexit.unregister(cluster_node.stop)
        signal.signal(signal.SIGTERM, previous)
        left = cluster_node.leftovers()
        assert not left, f"the node left these on the host: {left}"


@pytest.fixture(scope="session")
def cluster(node: Node) -> tuple[Path, Path]:
    """The node's control plane stands in for the e2e suite's (kubeconfig, kubectl)."""
    return node.control_plane.kubeconfig, node.control_plane.kubectl_path


@pytest.fixture(scope="session")
def kubectl(node: Node) -> Kubectl:
    assert node.kubectl is not None
    return node.kubectl


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when in ("call", "setup"):
        for client, namespace in WATCHED:
            report.sections.append(
                (f"pods and events of {namespace}", _describe(client, namespace))
            )
        cluster_node = item.funcargs.get("node") if hasattr(item, "funcargs") else None
        if isinstance(cluster_node, Node):
            report.sections.append(("node component logs", cluster_node.logs()))
    return report


def _describe(kubectl: Kubectl, namespace: str) -> str:
    parts = []
    for args in (
        ("get", "pods,leases", "-o", "wide", "-n", namespace),
        ("get", "events", "--sort-by=.lastTimestamp", "-n", namespace),
        (
            "logs",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/name=ecsrole",
            "--all-containers",
            "--prefix",
            "--tail=150",
            "--max-log-requests=10",
        ),
        (
            "logs",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/name=ecsrole",
            "--all-containers",
            "--prefix",
            "--tail=50",
            "--previous",
        ),
    ):
        result = kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
    return "\n".join(parts)


@dataclass
class Release:
    """One Helm release of charts/ecsrole on the node, and what the tests ask of it."""

    name: str
    namespace: str
    kubectl: Kubectl
    helm: Path
    values: dict[str, Any]
    workdir: Path
    role_namespaces: list[str] = field(default_factory=list)

    @property
    def metrics_port(self) -> int:
        return int(self.values["ports"]["metrics"])

    @property
    def lease_name(self) -> str:
        return str(self.values.get("leaderElection", {}).get("leaseName", "ecsrole-leader"))

    def helm_cmd(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.helm), f"--kubeconfig={self.kubectl.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
        return result

    def _values_file(self, overrides: Mapping[str, Any]) -> Path:
        self.values = _merge(self.values, overrides)
        path = self.workdir / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(self.values))
        return path

    def install(self, **overrides: Any) -> None:
        self.helm_cmd(
            "install", self.name, str(CHART), "--namespace", self.namespace,
            "--values", str(LOCAL_VALUES), "--values", str(self._values_file(overrides)),
            "--wait", "--timeout=4m",
        )  # fmt: skip

    def upgrade(self, **overrides: Any) -> None:
        """`helm upgrade` with changed values; returns once Helm has applied them (no --wait)."""
        self.helm_cmd(
            "upgrade", self.name, str(CHART), "--namespace", self.namespace,
            "--values", str(LOCAL_VALUES), "--values", str(self._values_file(overrides)),
        )  # fmt: skip

    def uninstall(self) -> None:
        self.helm_cmd("uninstall", self.name, "--namespace", self.namespace, "--wait")

    def pods(self) -> list[dict[str, Any]]:
        result = self.kubectl(
            "get",
            "pods",
            "-n",
            self.namespace,
            "-l",
            "app.kubernetes.io/name=ecsrole",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
        return items

    def lease_holder(self) -> str:
        lease = self.kubectl.get_json("lease", self.lease_name, self.namespace) or {}
        return str(lease.get("spec", {}).get("holderIdentity") or "")

    def leader_pod(self, timeout: float = 120, *, other_than: str = "") -> str:
        """The name of the pod holding the Lease, once one (other than `other_than`) does."""
        names: list[str] = []

        def led() -> bool:
            holder = self.lease_holder()
            names[:] = [
                p["metadata"]["name"]
                for p in self.pods()
                if holder.startswith(f"{p['metadata']['name']}_")
                and p["metadata"]["name"] != other_than
            ]
            return bool(names)

        wait_until(led, timeout=timeout, what=f"a leader pod in {self.namespace}")
        return names[0]

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())

    def exec(self, pod: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "exec", "-n", self.namespace, pod, "-c", "operator", "--", *argv, check=False
        )


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def release_values(node: Node, moto: MotoServer) -> dict[str, Any]:
    """What changes per run: the image built from the Dockerfile, free ports on the node, and
    the addresses of the API server (no kube-proxy) and moto, as standard environment."""
    repository, tag = node.operator_image.rsplit(":", 1)
    api_port = node.control_plane.url.rsplit(":", 1)[1]
    env = {
        # client-go's in-cluster convention; the operator logs in here (handlers._in_cluster_info).
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": api_port,
        **moto.aws_env(),
    }
    return {
        "image": {"repository": repository, "tag": tag},
        "ports": {"metrics": free_port(), "health": free_port()},
        "extraEnv": [{"name": k, "value": v} for k, v in env.items()],
    }


ReleaseFactory = Callable[..., Release]


@pytest.fixture
def release_factory(
    node: Node, kubectl: Kubectl, helm: Path, moto: MotoServer, tmp_path: Path
) -> Iterator[ReleaseFactory]:
    """Releases in fresh namespaces, uninstalled after the test; their pods and Events are
    reported when it fails."""
    made: list[Release] = []

    def make(name: str = "ecsrole", namespace_labels: Mapping[str, str] | None = None) -> Release:
        namespace = f"ecsrole-{uuid.uuid4().hex[:8]}"
        kubectl.create_namespace(namespace)
        if namespace_labels:
            kubectl(
                "label", "namespace", namespace, *[f"{k}={v}" for k, v in namespace_labels.items()]
            )
        WATCHED.append((kubectl, namespace))
        release = Release(name, namespace, kubectl, helm, release_values(node, moto), tmp_path)
        made.append(release)
        return release

    yield make
    for release in made:
        release.helm_cmd("uninstall", release.name, "-n", release.namespace, "--ignore-not-found")
        kubectl.delete_namespace_nowait(release.namespace)
        WATCHED.remove((kubectl, release.namespace))


@pytest.fixture
def roles_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace the local values let the operator manage roles in (roles-*)."""
    name = f"roles-{uuid.uuid4().hex[:8]}"
    kubectl.create_namespace(name)
    WATCHED.append((kubectl, name))
    yield name
    WATCHED.remove((kubectl, name))
    kubectl.delete_namespace_nowait(name)


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> float:
    """Poll `check` until it is truthy; return the seconds it took."""
    started = time.monotonic()
    wait_until(lambda: bool(check()), timeout=timeout, what=what, interval=0.1)
    return time.monotonic() - started
