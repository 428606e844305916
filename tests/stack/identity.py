"""The operator's Kubernetes identity in the e2e tests: the Helm chart's ServiceAccount, not admin.

Every operator the tests start talks to the API server with a token of the ServiceAccount that
charts/ecsrole creates, bound to exactly the ClusterRole and Role the chart renders. So the whole
e2e suite proves that the chart's RBAC is enough, and tests/e2e/test_manifests.py proves from
the API server's audit log that it is not more than the operator uses.

E2E_OPERATOR_IDENTITY=admin runs the operators with the admin kubeconfig instead (to tell an
RBAC problem from another one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.stack import manifests
from tests.stack.kube import Kubectl

OPERATOR_NAMESPACE = "ecsrole-system"
OPERATOR_RELEASE = "ecsrole"
VALUES = manifests.REPO_ROOT / "tests" / "fixtures" / "helm" / "e2e-operator-values.yaml"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
#: Restricted Pod Security for the operator's namespace, as deploy/base/namespace.yaml sets it.
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")
}


def wanted() -> bool:
    """False when E2E_OPERATOR_IDENTITY=admin asks for the admin kubeconfig."""
    choice = os.environ.get("E2E_OPERATOR_IDENTITY", "serviceaccount").strip().lower()
    if choice not in ("serviceaccount", "admin"):
        raise ValueError(f"E2E_OPERATOR_IDENTITY must be serviceaccount or admin, not {choice!r}")
    return choice == "serviceaccount"


@dataclass(frozen=True)
class OperatorIdentity:
    """A kubeconfig holding a token of the chart's ServiceAccount."""

    kubeconfig: Path
    namespace: str
    service_account: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def ensure_namespace(kubectl: Kubectl, name: str) -> None:
    """Create (or keep) a namespace with the restricted Pod Security labels."""
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": POD_SECURITY_LABELS},
        }
    )


def rbac_documents(helm: Path) -> list[dict[str, Any]]:
    """The ServiceAccount and RBAC objects of the chart, as the e2e operators get them."""
    documents = manifests.render_chart(
        helm,
        release=OPERATOR_RELEASE,
        namespace=OPERATOR_NAMESPACE,
        values=[VALUES],
        include_crds=False,
    )
    return [doc for doc in documents if doc.get("kind") in RBAC_KINDS]


def install(kubectl: Kubectl, helm: Path, workdir: Path) -> OperatorIdentity:
    """Apply the chart's RBAC to the cluster and write a kubeconfig with a token of its SA."""
    documents = rbac_documents(helm)
    accounts = [doc for doc in documents if doc["kind"] == "ServiceAccount"]
    assert len(accounts) == 1, f"the chart should render one ServiceAccount, not {len(accounts)}"
    metadata = accounts[0]["metadata"]
    service_account, namespace = str(metadata["name"]), str(metadata["namespace"])
    ensure_namespace(kubectl, namespace)
    kubectl.apply(yaml.safe_dump_all(documents, sort_keys=False))
    token = kubectl(
        "create", "token", service_account, f"--namespace={namespace}", "--duration=24h"
    ).stdout.strip()
    assert token, "kubectl create token returned no token"
    view = json.loads(
        kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    cluster = view["clusters"][0]
    user = f"{namespace}-{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": user,
                "context": {"cluster": cluster["name"], "user": user, "namespace": namespace},
            }
        ],
        "current-context": user,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "operator-kubeconfig"
    kubeconfig.write_text(json.dumps(config, indent=2))
    kubeconfig.chmod(0o600)
    return OperatorIdentity(kubeconfig, namespace, service_account)
