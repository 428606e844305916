"""The operator as users run it: the image built from the Dockerfile, on a real node (containerd,
kubelet), installed with kustomize and with Helm, then updated, killed and uninstalled.

The kustomize scenario runs first on purpose: it is the one where the CRD and the operator
arrive together (`kubectl apply --server-side -k`), before any Helm release has installed the
CRD, so the operator starts while its CRD is still being established.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import WATCHED, Release, ReleaseFactory, release_values, wait_for
from tests.stack.kube import KIND, Kubectl, condition, wait_for_condition
from tests.stack.moto import MotoServer
from tests.stack.node import Node
from tests.stack.resources import role_manifest

REPO = Path(__file__).resolve().parents[2]
OPERATOR_PROCESS = "bin/ecsrole run"
CRD_NAME = "ecsexecutionroles.iam.ecsrole.dev"


def _time(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _role(aws: Callable[..., Any], role_name: str) -> dict[str, Any] | None:
    iam = aws("iam")
    try:
        role: dict[str, Any] = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None
    return role


def _apply_role(kubectl: Kubectl, namespace: str, role_name: str, **spec: Any) -> None:
    kubectl.apply(role_manifest("example", role_name, **spec), namespace=namespace)


def _wait_ready(kubectl: Kubectl, namespace: str, timeout: float = 180) -> dict[str, Any]:
    """Ready=True for the current generation."""
    resource: dict[str, Any] = {}

    def current() -> bool:
        resource.update(kubectl.get_json(KIND, "example", namespace) or {})
        ready = condition(resource, "Ready") or {}
        generation = resource.get("metadata", {}).get("generation")
        return bool(ready.get("status") == "True" and ready.get("observedGeneration") == generation)

    wait_for(current, timeout=timeout, what=f"{namespace}/example Ready for its generation")
    return resource


def _lease(release: Release) -> dict[str, Any]:
    lease = release.kubectl.get_json("lease", release.lease_name, release.namespace) or {}
    spec: dict[str, Any] = lease.get("spec", {})
    return spec


def _single_operator_process(node: Node) -> int:
    """Zero orphans: exactly one operator process on the node, whatever was killed before."""
    found: list[int] = []

    def one() -> bool:
        found[:] = node.processes(OPERATOR_PROCESS)
        return len(found) == 1

    wait_for(one, timeout=90, what=f"exactly one operator process on the node (saw {found})")
    return found[0]


# -- kustomize ---------------------------------------------------------------------------------


@pytest.fixture
def kustomize_namespace(kubectl: Kubectl) -> Iterator[str]:
    """The namespace the overlay puts the base in (its pods and Events reported on failure)."""
    namespace = f"ecsrole-kz-{uuid.uuid4().hex[:6]}"
    WATCHED.append((kubectl, namespace))
    yield namespace
    WATCHED.remove((kubectl, namespace))


def test_kustomize_base_applies_the_crd_and_the_operator_together(
    node: Node,
    kubectl: Kubectl,
    moto: MotoServer,
    roles_namespace: str,
    aws: Callable[..., Any],
    tmp_path: Path,
    kustomize_namespace: str,
) -> None:
    values = release_values(node, moto)
    namespace = kustomize_namespace
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    config = yaml.safe_load((REPO / "tests" / "cluster" / "local-node-values.yaml").read_text())
    (overlay / "config.yaml").write_text(yaml.safe_dump(config["config"]))
    metrics, health = values["ports"]["metrics"], values["ports"]["health"]
    env = [
        *values["extraEnv"],
        {"name": "ECSROLE_METRICS_ADDRESS", "value": f"0.0.0.0:{metrics}"},
        {"name": "ECSROLE_HEALTH_ADDRESS", "value": f"0.0.0.0:{health}"},
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(REPO / "deploy" / "base", overlay)],
        "images": [
            {
                "name": "ecsrole",
                "newName": values["image"]["repository"],
                "newTag": values["image"]["tag"],
            }
        ],
        "configMapGenerator": [
            {
                "name": "ecsrole-config",
                "namespace": "ecsrole-system",
                "behavior": "replace",
                "files": ["config.yaml"],
            }
        ],
        "patches": [
            # The base's namespace enforces Pod Security "restricted", which refuses the host
            # network this node needs (the Helm scenario checks restricted admits the pod
            # otherwise); it keeps warning and auditing against restricted.
            {
                "target": {"kind": "Namespace"},
                "patch": json.dumps(
                    [
                        {
                            "op": "replace",
                            "path": "/metadata/labels/pod-security.kubernetes.io~1enforce",
                            "value": "privileged",
                        }
                    ]
                ),
            },
            {
                "target": {"kind": "Deployment", "name": "ecsrole"},
                "patch": json.dumps(
                    [
                        {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": True},
                        {
                            "op": "add",
                            "path": "/spec/template/spec/dnsPolicy",
                            "value": "ClusterFirstWithHostNet",
                        },
                        {
                            "op": "replace",
                            "path": "/spec/template/spec/containers/0/imagePullPolicy",
                            "value": "Never",
                        },
                        {
                            "op": "replace",
                            "path": "/spec/template/spec/containers/0/ports",
                            "value": [
                                {"name": "metrics", "containerPort": metrics, "protocol": "TCP"},
                                {"name": "health", "containerPort": health, "protocol": "TCP"},
                            ],
                        },
                    ]
                ),
            },
            {
                "target": {"kind": "Deployment", "name": "ecsrole"},
                "patch": yaml.safe_dump(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": "ecsrole"},
                        "spec": {
                            "template": {"spec": {"containers": [{"name": "operator", "env": env}]}}
                        },
                    }
                ),
            },
        ],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    try:
        assert kubectl.get_json("crd", CRD_NAME) is None, "the CRD must arrive with the operator"
        kubectl("apply", "--server-side", "-k", str(overlay), timeout=120)
        kubectl(
            "rollout", "status", "-n", namespace, "deployment/ecsrole", "--timeout=240s",
            timeout=260,
        )  # fmt: skip
        role_name = f"cluster-kz-{roles_namespace}"
        _apply_role(kubectl, roles_namespace, role_name)
        _wait_ready(kubectl, roles_namespace)
        assert _role(aws, role_name) is not None
    finally:
        # Everything but the CRD (which is never deleted, as docs/gitops.md says): the roles
        # stay; the role resource goes first, while the operator can still finish it.
        kubectl("delete", KIND, "example", "-n", roles_namespace, "--timeout=120s", check=False)
        rendered = kubectl("kustomize", str(overlay)).stdout
        kept = [
            d for d in yaml.safe_load_all(rendered) if d and d["kind"] != "CustomResourceDefinition"
        ]
        kubectl(
            "delete", "--ignore-not-found", "--wait=false", "-f", "-",
            input=yaml.safe_dump_all(kept), check=False,
        )  # fmt: skip


# -- Helm --------------------------------------------------------------------------------------


def test_helm_install_reconciles_the_example(
    release_factory: ReleaseFactory, roles_namespace: str, kubectl: Kubectl, aws: Callable[..., Any]
) -> None:
    release = release_factory()
    release.install()  # --wait: the Deployment's pod is Ready (its readiness probe passed)
    [pod] = release.pods()
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"

    role_name = f"cluster-example-{roles_namespace}"
    _apply_role(kubectl, roles_namespace, role_name)
    # As a user checks it: kubectl wait on the example's Ready condition.
    kubectl(
        "wait", "-n", roles_namespace, "--for=condition=Ready", f"{KIND}/example", "--timeout=180s",
        timeout=200,
    )  # fmt: skip
    role = _role(aws, role_name)
    assert role is not None
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    # /metrics answers on the pod (hostNetwork: on the node's loopback), from the leader.
    wait_for(
        lambda: f'namespace="{roles_namespace}"' in release.metrics(),
        timeout=60,
        what="the example's series on the leader's /metrics",
    )
    assert "ecsrole_leader 1.0" in release.metrics()


PROBE = r"""
import json, os
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w") as f:
            f.write("x")
        os.remove(os.path.join(path, ".probe"))
        return True
    except OSError:
        return False
status = dict(l.split(":", 1) for l in open("/proc/1/status").read().splitlines() if ":" in l)
root = [l.split() for l in open("/proc/self/mountinfo") if l.split()[4] == "/"][-1]
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "pid1_uid": status["Uid"].split(), "pid1_cmdline": open("/proc/1/cmdline").read().split("\0"),
    "no_new_privs": status["NoNewPrivs"].strip(), "cap_eff": status["CapEff"].strip(),
    "root_options": root[5].split(","),
    "writable": {p: writable(p) for p in ["/", "/tmp", "/opt/ecsrole", "/etc", "/var", "/root"]},
}))
"""


def test_the_pod_runs_as_the_readme_says(
    release_factory: ReleaseFactory, kubectl: Kubectl, helm: Path
) -> None:
    release = release_factory()
    release.install()
    [pod] = release.pods()
    result = release.exec(pod["metadata"]["name"], "python", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["uid"], seen["gid"]) == (65532, 65532)
    assert seen["pid1_uid"] == ["65532"] * 4, "the operator (pid 1) runs as 65532"
    assert seen["pid1_cmdline"][1:3] == ["/opt/ecsrole/bin/ecsrole", "run"]
    assert seen["no_new_privs"] == "1"
    assert seen["cap_eff"] == "0000000000000000"
    assert "ro" in seen["root_options"]
    assert seen["writable"] == {
        "/": False,
        "/tmp": True,  # noqa: S108 - the path inside the container
        "/opt/ecsrole": False,
        "/etc": False,
        "/var": False,
        "/root": False,
    }

    # Pod Security "restricted", enforced by the API server on a labelled namespace: the pod the
    # chart renders (without hostNetwork, which only this node needs) is admitted; the same with
    # hostNetwork is refused for exactly that.
    restricted = release_factory(
        "restricted", namespace_labels={"pod-security.kubernetes.io/enforce": "restricted"}
    )
    kubectl("create", "serviceaccount", "ecsrole", "-n", restricted.namespace)
    for host_network, admitted in ((False, True), (True, False)):
        rendered = release.helm_cmd(
            "template", "ecsrole", str(REPO / "charts" / "ecsrole"),
            "--namespace", restricted.namespace,
            "--values", str(REPO / "tests" / "cluster" / "local-node-values.yaml"),
            "--set", f"hostNetwork={str(host_network).lower()}",
            "--show-only", "templates/deployment.yaml",
        ).stdout  # fmt: skip
        template = yaml.safe_load(rendered)["spec"]["template"]
        pod_doc = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"ecsrole-{host_network}".lower(), **template["metadata"]},
            "spec": template["spec"],
        }
        outcome = kubectl(
            "create", "--dry-run=server", "-n", restricted.namespace, "-f", "-",
            input=yaml.safe_dump(pod_doc), check=False,
        )  # fmt: skip
        if admitted:
            assert outcome.returncode == 0, outcome.stderr
            assert "Warning" not in outcome.stderr, outcome.stderr
        else:
            assert outcome.returncode != 0
            assert 'violates PodSecurity "restricted' in outcome.stderr, outcome.stderr
            assert "hostNetwork=true" in outcome.stderr, outcome.stderr


def test_rolling_update_hands_the_lease_over_and_loses_no_reconcile(
    release_factory: ReleaseFactory,
    roles_namespace: str,
    kubectl: Kubectl,
    aws: Callable[..., Any],
    record_property: Callable[[str, object], None],
) -> None:
    # A long lease: a standby that had to wait for it to expire would need a minute, so a quick
    # handover shows the old pod released it on SIGTERM.
    release = release_factory()
    release.install(leaderElection={"leaseDuration": 60})
    old = release.leader_pod()
    role_name = f"cluster-roll-{roles_namespace}"
    _apply_role(kubectl, roles_namespace, role_name)
    _wait_ready(kubectl, roles_namespace)

    release.upgrade(config={"driftCheckInterval": "20s"})  # a new config rolls the pods
    # Changed while the pods roll: it must converge whichever pod sees it.
    _apply_role(kubectl, roles_namespace, role_name, description="changed during the roll")
    deleted: list[str] = []

    def old_terminating() -> bool:
        pod = kubectl.get_json("pod", old, release.namespace)
        metadata = (pod or {}).get("metadata", {})
        if metadata.get("deletionTimestamp"):
            # deletionTimestamp is the deadline (the SIGTERM plus the grace period)
            sigterm = _time(metadata["deletionTimestamp"]) - datetime.timedelta(
                seconds=metadata["deletionGracePeriodSeconds"]
            )
            deleted.append(sigterm.isoformat())
        return bool(deleted) or pod is None

    wait_for(old_terminating, timeout=180, what=f"the old pod {old} terminating")
    release.leader_pod(timeout=180, other_than=old)
    lease = _lease(release)
    assert deleted, "the old pod went before its deletion was seen"
    handover = (_time(lease["acquireTime"]) - _time(deleted[0])).total_seconds()
    record_property("rolling_update_handover_seconds", round(handover, 2))
    print(f"rolling update: the new pod led {handover:.1f}s after the old one got SIGTERM")
    assert handover < 30, f"handover took {handover:.1f}s of a 60 s lease: it was not released"

    _wait_ready(kubectl, roles_namespace)
    role = _role(aws, role_name)
    assert role is not None
    assert role["Description"] == "changed during the roll"


def test_killed_pod_is_replaced_within_the_lease_and_leaves_no_orphan(
    release_factory: ReleaseFactory,
    roles_namespace: str,
    node: Node,
    kubectl: Kubectl,
    aws: Callable[..., Any],
    record_property: Callable[[str, object], None],
) -> None:
    lease_duration = 15
    release = release_factory()
    release.install(leaderElection={"leaseDuration": lease_duration})
    first = release.leader_pod()
    role_name = f"cluster-kill-{roles_namespace}"
    _apply_role(kubectl, roles_namespace, role_name)
    _wait_ready(kubectl, roles_namespace)
    _single_operator_process(node)

    # 1. The pod deleted at once, as `kubectl delete --force` does.
    renewed = _time(_lease(release)["renewTime"])
    kubectl("delete", "pod", first, "-n", release.namespace, "--grace-period=0", "--force")
    second = release.leader_pod(timeout=180, other_than=first)
    takeover = (_time(_lease(release)["acquireTime"]) - renewed).total_seconds()
    record_property("force_delete_takeover_seconds", round(takeover, 2))
    print(f"force delete: the replacement led {takeover:.1f}s after the last renewal")
    # Released on the kubelet's SIGTERM or expired: never later than the lease plus a pod
    # start (generous: the start is slow on a loaded machine).
    assert takeover <= lease_duration + 45, takeover
    _single_operator_process(node)

    # 2. The container's process SIGKILLed on the node: nothing releases the Lease, the kubelet
    # restarts the container and the new process takes the Lease once it expires.
    [pod] = [p for p in release.pods() if p["metadata"]["name"] == second]
    container_id = pod["status"]["containerStatuses"][0]["containerID"]
    holder = _lease(release)["holderIdentity"]
    renewed = _time(_lease(release)["renewTime"])
    os.kill(node.container_pid(container_id), signal.SIGKILL)
    wait_for(
        lambda: _lease(release).get("holderIdentity") not in (None, "", holder),
        timeout=180,
        what="a new holder after the SIGKILL",
    )
    takeover = (_time(_lease(release)["acquireTime"]) - renewed).total_seconds()
    record_property("sigkill_takeover_seconds", round(takeover, 2))
    print(f"SIGKILL: the restarted process led {takeover:.1f}s after the last renewal")
    # It may not lead before the lease expired (nothing released it), and it takes it once
    # the kubelet has restarted it (its restart back-off and start: generous on a loaded machine).
    assert lease_duration - 1 <= takeover <= lease_duration + 45, takeover
    restarted = next(p for p in release.pods() if p["metadata"]["name"] == second)
    assert restarted["status"]["containerStatuses"][0]["restartCount"] >= 1
    _single_operator_process(node)

    # Still working: a change converges.
    _apply_role(kubectl, roles_namespace, role_name, description="after the kills")
    _wait_ready(kubectl, roles_namespace)
    role = _role(aws, role_name)
    assert role is not None
    assert role["Description"] == "after the kills"


def test_helm_uninstall_keeps_the_crd_and_every_role(
    release_factory: ReleaseFactory, roles_namespace: str, kubectl: Kubectl, aws: Callable[..., Any]
) -> None:
    release = release_factory()
    release.install()
    role_name = f"cluster-keep-{roles_namespace}"
    _apply_role(kubectl, roles_namespace, role_name)
    _wait_ready(kubectl, roles_namespace)

    release.uninstall()
    wait_for(lambda: release.pods() == [], timeout=120, what="the operator pod gone")
    crd = kubectl.get_json("crd", CRD_NAME)
    assert crd is not None
    assert crd["metadata"].get("deletionTimestamp") is None
    resource = kubectl.get_json(KIND, "example", roles_namespace)
    assert resource is not None
    assert resource["metadata"].get("deletionTimestamp") is None
    assert _role(aws, role_name) is not None
    assert wait_for_condition(kubectl, roles_namespace, "example", "Ready")
