"""The operator as a user installs it: the image from the Dockerfile, the Helm chart, a real node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cluster.conftest import ReleaseFactory, wait_for
from tests.stack.kube import KIND, Kubectl
from tests.stack.resources import role_manifest


def _role_exists(aws: Callable[..., Any], role_name: str) -> bool:
    try:
        aws("iam").get_role(RoleName=role_name)
    except aws("iam").exceptions.NoSuchEntityException:
        return False
    return True


def test_helm_install_reconciles_the_example(
    release_factory: ReleaseFactory, roles_namespace: str, kubectl: Kubectl, aws: Callable[..., Any]
) -> None:
    release = release_factory()
    release.install()  # --wait: the Deployment's pod is Ready (its readiness probe passed)
    [pod] = release.pods()
    assert pod["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"

    role_name = f"cluster-example-{roles_namespace}"
    kubectl.apply(role_manifest("example", role_name), namespace=roles_namespace)
    # As a user checks it: kubectl wait on the example's Ready condition.
    kubectl(
        "wait", "-n", roles_namespace, "--for=condition=Ready", f"{KIND}/example", "--timeout=180s",
        timeout=200,
    )  # fmt: skip
    role = aws("iam").get_role(RoleName=role_name)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    # /metrics answers on the pod (hostNetwork: on the node's loopback), from the leader.
    wait_for(
        lambda: "ecsrole_ready{" in release.metrics() and "ecsrole_leader 1.0" in release.metrics(),
        timeout=60,
        what="the leader's ecsrole_ready series on /metrics",
    )
    text = release.metrics()
    assert f'namespace="{roles_namespace}"' in text
