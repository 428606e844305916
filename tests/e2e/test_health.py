"""GitOps health of live EcsExecutionRoles in every state, judged by the tools' own code.

kstatus (sigs.k8s.io/cli-utils), Flux's kstatus fork (`wait: true`), Flux's CEL evaluator with
docs/gitops.md's `healthCheckExprs`, and docs/gitops.md's Argo CD Lua in gopher-lua (set up as
Argo CD sets it up) run through hack/health's helper on objects read from the real API server,
written by the real operator process against moto. Every state of the README's status table is
reached for real: refusals from the configuration, drift and a deleted role made in moto,
throttling from the fault proxy, an unobserved generation and a pending deletion by stopping
the operator, a blocked deletion by restarting it without the account.

The table in docs/gitops.md is the measured one: the test fails when it differs, and
ECSROLE_UPDATE_DOCS=1 rewrites it (and docs/gitops-health.json) from this run's measurements.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import (
    CROSS_ACCOUNT_ID,
    MISMATCHED_ACCOUNT_ID,
    NO_ADOPTION_ACCOUNT_ID,
    UNLISTED_NAMESPACE_ACCOUNT_ID,
    OperatorFactory,
)
from tests.stack import health, manifests
from tests.stack.faults import FaultProxy
from tests.stack.kube import KIND, Kubectl, condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import WaitTimeoutError, eventually
from tests.stack.resources import SEED_TRUST
from tests.stack.resources import role_manifest as manifest

pytestmark = pytest.mark.e2e

Aws = Callable[..., Any]
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
BOUNDARY_ACCOUNT_ID = "555555555555"
PAUSED = "ecsrole.dev/paused"
ABANDON = "ecsrole.dev/abandon"

# Each state: what the tools must say (kstatus, Flux wait, Flux CEL, Argo CD).
IN_PROGRESS = ("InProgress", "InProgress", "InProgress", "Progressing")
CURRENT = ("Current", "Current", "Current", "Healthy")
FAILED = ("Failed", "Failed", "Failed", "Degraded")
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    health.STATE_JUST_CREATED: IN_PROGRESS,
    "Ready": CURRENT,
    "InvalidSpec": FAILED,
    "AccountNotAllowed": FAILED,
    "AccountMismatch": FAILED,
    "RoleExistsNotOwned": FAILED,
    "AdoptionRefused": FAILED,
    "ConflictingResource": FAILED,
    "PolicyNotAllowed": FAILED,
    "PermissionNotAllowed": FAILED,
    "Report, drifted": CURRENT,
    "Report, role missing": FAILED,
    "Paused": ("InProgress", "InProgress", "InProgress", "Suspended"),
    "Generation not yet observed": IN_PROGRESS,
    "Throttled, creating": IN_PROGRESS,
    "Throttled, update pending": IN_PROGRESS,
    "AccessDenied, update pending": FAILED,
    # Setting deletionTimestamp bumps a custom resource's generation: unobserved until handled.
    "Deleting": ("Terminating", "Terminating", "InProgress", "Progressing"),
    "DeletionBlocked": ("Terminating", "Terminating", "Failed", "Progressing"),
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    found = kubectl.get_json(KIND, name, namespace)
    assert found is not None, f"{namespace}/{name} is gone"
    return found


def _poll(
    kubectl: Kubectl,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """The object once `check` holds on it (the machine is loaded: generous deadline)."""

    seen: list[dict[str, Any] | None] = [None]

    def reached() -> dict[str, Any] | None:
        seen[0] = kubectl.get_json(KIND, name, namespace)
        return seen[0] if seen[0] is not None and check(seen[0]) else None

    try:
        found = eventually(reached, what=what, timeout=timeout, interval=0.25)
    except WaitTimeoutError as error:
        shown = json.dumps((seen[0] or {}).get("status"), indent=2)
        raise WaitTimeoutError(f"{namespace}/{name}: {error}; status:\n{shown}") from None
    assert found is not None  # eventually returns only a truthy value
    return found


def _judged(reason: str, *, current: bool = True) -> Callable[[dict[str, Any]], bool]:
    """Ready has `reason` (True for Reconciled), judged on the current generation."""

    def check(resource: dict[str, Any]) -> bool:
        ready = condition(resource, "Ready") or {}
        generation = resource["metadata"]["generation"]
        return (
            ready.get("reason") == reason
            and ready.get("status") == ("True" if reason == "Reconciled" else "False")
            and (not current or ready.get("observedGeneration") == generation)
            and resource.get("status", {}).get("observedGeneration") == generation
        )

    return check


def _synced(reason: str) -> Callable[[dict[str, Any]], bool]:
    def check(resource: dict[str, Any]) -> bool:
        synced = condition(resource, "Synced") or {}
        return (
            synced.get("reason") == reason
            and synced.get("observedGeneration") == resource["metadata"]["generation"]
        )

    return check


@dataclass
class Measurements:
    """What the tools said about each state, and the object they said it about."""

    judgements: dict[str, health.Judgement]
    objects: dict[str, dict[str, Any]]

    def record(self, state: str, resource: dict[str, Any]) -> None:
        self.objects[state] = resource
        self.judgements[state] = health.judge(resource)


def _patch_spec(kubectl: Kubectl, namespace: str, name: str, **spec: Any) -> None:
    kubectl("patch", KIND, name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec}))


def _create_by_hand(iam: Any, role_name: str) -> None:
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(SEED_TRUST))


def _measure_shared(kubectl: Kubectl, namespace: str, aws: Aws, measured: Measurements) -> None:
    """First version, Ready, and every refusal, from the shared operator."""
    # First version: the create response itself, before any operator could have judged it.
    first = manifest("ready", unique("e2e-health"), namespace=namespace)
    created = json.loads(
        kubectl("create", "-o", "json", "-f", "-", input=yaml.safe_dump(first)).stdout
    )
    measured.record(health.STATE_JUST_CREATED, created)

    names: dict[str, dict[str, Any]] = {}
    iam = aws("iam")
    taken = unique("e2e-health-taken")
    _create_by_hand(iam, taken)
    refused_adoption = unique("e2e-health-adopt")
    _create_by_hand(aws("iam", account_id=NO_ADOPTION_ACCOUNT_ID), refused_adoption)
    shared_role = unique("e2e-health-twin")
    secret = f"arn:aws:secretsmanager:us-east-1:{CROSS_ACCOUNT_ID}:secret:other/db-AbCdEf"
    names["AccountNotAllowed"] = manifest(
        "unlisted",
        unique("e2e-health"),
        namespace=namespace,
        account_id=UNLISTED_NAMESPACE_ACCOUNT_ID,
    )
    names["AccountMismatch"] = manifest(
        "mismatch", unique("e2e-health"), namespace=namespace, account_id=MISMATCHED_ACCOUNT_ID
    )
    names["RoleExistsNotOwned"] = manifest("taken", taken, namespace=namespace)
    names["AdoptionRefused"] = manifest(
        "adopt",
        refused_adoption,
        namespace=namespace,
        account_id=NO_ADOPTION_ACCOUNT_ID,
        adopt=True,
    )
    names["PolicyNotAllowed"] = manifest(
        "policy", unique("e2e-health"), namespace=namespace, additionalPolicyArns=[ADMIN_POLICY]
    )
    names["PermissionNotAllowed"] = manifest(
        "permission",
        unique("e2e-health"),
        namespace=namespace,
        account_id=CROSS_ACCOUNT_ID,
        path="/ecs/",
        permissions={"secretArns": [secret]},
    )
    kubectl.apply(manifest("twin-a", shared_role, namespace=namespace))
    _poll(kubectl, namespace, "twin-a", _judged("Reconciled"), "twin-a Ready")
    names["ConflictingResource"] = manifest("twin-b", shared_role, namespace=namespace)
    for document in names.values():
        kubectl.apply(document)

    ready = _poll(kubectl, namespace, "ready", _judged("Reconciled"), "Ready")
    measured.record("Ready", ready)
    for state, document in names.items():
        name = document["metadata"]["name"]
        resource = _poll(kubectl, namespace, name, _judged(state), f"Ready=False/{state}")
        measured.record(state, resource)


def _measure_own(
    kubectl: Kubectl,
    namespace: str,
    aws: Aws,
    moto: MotoServer,
    operator_factory: OperatorFactory,
    measured: Measurements,
) -> None:
    """Report mode, paused, throttling, an unobserved generation, deleting, DeletionBlocked:
    an operator of the test's own, reaching moto through a fault proxy of its own."""
    iam = aws("iam")
    cluster = unique("e2e-health")
    proxy = FaultProxy(moto.url).start()
    try:
        accounts = {
            DEFAULT_ACCOUNT_ID: {"namespaces": [namespace]},
            # The CRD cannot know the account's configured boundary: a spec naming another one
            # passes the API server and is InvalidSpec for the operator.
            BOUNDARY_ACCOUNT_ID: {
                "roleArn": f"arn:aws:iam::{BOUNDARY_ACCOUNT_ID}:role/ecsrole-operator",
                "namespaces": [namespace],
                "permissionsBoundaryArn": f"arn:aws:iam::{BOUNDARY_ACCOUNT_ID}:policy/boundary",
            },
        }
        operator = operator_factory(
            dev_config(cluster, accounts, driftCheckInterval="2s"),
            namespaces=[namespace],
            aws_env=proxy.aws_env(moto.aws_env()),
        )
        kubectl.apply(
            manifest(
                "invalid",
                unique("e2e-health-invalid"),
                namespace=namespace,
                account_id=BOUNDARY_ACCOUNT_ID,
                permissionsBoundaryArn=f"arn:aws:iam::{BOUNDARY_ACCOUNT_ID}:policy/another",
            )
        )
        roles = {
            name: unique(f"e2e-health-{name}")
            for name in ("report-drift", "report-missing", "paused", "gen", "del", "update")
        }
        for name, role_name in roles.items():
            report = {"driftPolicy": "Report"} if name.startswith("report") else {}
            kubectl.apply(manifest(name, role_name, namespace=namespace, **report))
        for name in roles:
            _poll(kubectl, namespace, name, _judged("Reconciled"), f"{name} Ready")
        measured.record(
            "InvalidSpec",
            _poll(kubectl, namespace, "invalid", _judged("InvalidSpec"), "Ready=False/InvalidSpec"),
        )

        iam.attach_role_policy(RoleName=roles["report-drift"], PolicyArn=ADMIN_POLICY)
        drifted = _poll(
            kubectl,
            namespace,
            "report-drift",
            lambda r: (condition(r, "Drifted") or {}).get("reason") == "ManagedPolicy",
            "Drifted=True/ManagedPolicy",
        )
        measured.record("Report, drifted", drifted)

        for attached in iam.list_attached_role_policies(RoleName=roles["report-missing"])[
            "AttachedPolicies"
        ]:
            iam.detach_role_policy(
                RoleName=roles["report-missing"], PolicyArn=attached["PolicyArn"]
            )
        iam.delete_role(RoleName=roles["report-missing"])
        missing = _poll(kubectl, namespace, "report-missing", _judged("RoleMissing"), "RoleMissing")
        measured.record("Report, role missing", missing)

        kubectl("annotate", "--overwrite", KIND, "paused", "-n", namespace, f"{PAUSED}=true")
        measured.record(
            "Paused", _poll(kubectl, namespace, "paused", _judged("Paused"), "Ready=False/Paused")
        )

        proxy.set_rates(throttle=1.0)
        kubectl.apply(manifest("new", unique("e2e-health-new"), namespace=namespace))
        _patch_spec(kubectl, namespace, "update", description="changed while throttled")
        measured.record(
            "Throttled, creating",
            _poll(kubectl, namespace, "new", _synced("Throttled"), "new Synced=False/Throttled"),
        )
        measured.record(
            "Throttled, update pending",
            _poll(
                kubectl, namespace, "update", _synced("Throttled"), "update Synced=False/Throttled"
            ),
        )
        proxy.clear()
        for name in ("new", "update"):  # and they recover by themselves
            _poll(kubectl, namespace, name, _judged("Reconciled"), f"{name} Ready after throttling")

        proxy.set_rates(deny=1.0)
        _patch_spec(kubectl, namespace, "update", description="changed while denied")
        measured.record(
            "AccessDenied, update pending",
            _poll(
                kubectl, namespace, "update", _synced("AccessDenied"), "Synced=False/AccessDenied"
            ),
        )
        proxy.clear()

        operator.stop()
        _patch_spec(kubectl, namespace, "gen", description="changed while the operator is down")
        measured.record("Generation not yet observed", _get(kubectl, namespace, "gen"))
        kubectl("delete", KIND, "del", "-n", namespace, "--wait=false")
        measured.record("Deleting", _get(kubectl, namespace, "del"))

        # Restarted with a configuration that no longer lists the namespace for the account.
        operator_factory(
            dev_config(cluster, {DEFAULT_ACCOUNT_ID: {"namespaces": ["someone-else"]}}),
            namespaces=[namespace],
            aws_env=moto.aws_env(),
        )
        blocked = _poll(
            kubectl, namespace, "del", _judged("DeletionBlocked"), "Ready=False/DeletionBlocked"
        )
        measured.record("DeletionBlocked", blocked)
        # What the Stalled message says to do works: the resource goes, the role stays.
        kubectl("annotate", "--overwrite", KIND, "del", "-n", namespace, f"{ABANDON}=true")
        eventually(
            lambda: kubectl.get_json(KIND, "del", namespace) is None,
            what="the abandoned resource released",
            timeout=60,
        )
        assert iam.get_role(RoleName=roles["del"])["Role"]["RoleName"] == roles["del"]
    finally:
        proxy.stop()


@pytest.fixture
def measured(
    kubectl: Kubectl,
    namespace: str,
    own_namespace: str,
    shared_operator: OperatorProcess,
    aws: Aws,
    moto: MotoServer,
    operator_factory: OperatorFactory,
) -> Measurements:
    result = Measurements({}, {})
    _measure_shared(kubectl, namespace, aws, result)
    _measure_own(kubectl, own_namespace, aws, moto, operator_factory, result)
    return result


def _conditions(resource: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c.get("message", ""))
        for c in resource.get("status", {}).get("conditions", [])
    }


def test_every_state_reads_as_documented_in_kstatus_flux_and_argo(
    measured: Measurements,
) -> None:
    assert set(measured.judgements) == set(EXPECTED), "a state of the status table was not reached"
    said = {
        state: (j.kstatus.status, j.flux_wait.status, j.flux_cel.status, j.argo.status)
        for state, j in measured.judgements.items()
    }
    wrong = {state: said[state] for state in EXPECTED if said[state] != EXPECTED[state]}
    assert wrong == {}, (
        f"(kstatus, Flux wait, Flux CEL, Argo CD) per state: {json.dumps(said, indent=1)}"
    )
    errors = {
        state: [v.error for v in (j.kstatus, j.flux_wait, j.flux_cel, j.argo) if v.error]
        for state, j in measured.judgements.items()
    }
    assert {state: e for state, e in errors.items() if e} == {}

    conditions = {state: _conditions(resource) for state, resource in measured.objects.items()}
    # A human is needed exactly where the tools say Failed: Stalled=True with what to do.
    for state, (_, _, flux_cel, _) in EXPECTED.items():
        stalled = conditions[state].get("Stalled", ("False", "", ""))
        assert (stalled[0] == "True") == (flux_cel == "Failed"), (state, stalled)
        if stalled[0] == "True":
            assert stalled[2], f"{state}: Stalled=True without a message"
            assert conditions[state]["Reconciling"][0] == "False", state
    assert "driftPolicy" in conditions["Report, role missing"]["Stalled"][2]
    assert ABANDON in conditions["DeletionBlocked"]["Stalled"][2]
    assert conditions["AccessDenied, update pending"]["Stalled"][1] == "AccessDenied"
    assert "docs/iam-policy.json" in conditions["AccessDenied, update pending"]["Stalled"][2]
    # Report mode: Ready=True, and its message does not contradict Drifted=True.
    ready, drifted = (
        conditions["Report, drifted"]["Ready"],
        conditions["Report, drifted"]["Drifted"],
    )
    assert (ready[0], drifted[0]) == ("True", "True")
    assert "matches" not in ready[2]
    assert "Drift reported: ManagedPolicy" in measured.judgements["Report, drifted"].argo.message
    # A paused resource is Suspended in Argo CD only; kstatus has no such status.
    assert measured.judgements["Paused"].argo.message.startswith("Paused: ")

    results = health.results_document(measured.judgements, measured.objects)
    if os.environ.get("ECSROLE_UPDATE_DOCS") == "1":
        health.write_results(results)
    assert health.table_in_doc() == health.render_table(results), (
        "docs/gitops.md's health table is not the measured one: rerun this test with "
        "ECSROLE_UPDATE_DOCS=1"
    )


def test_first_version_is_in_progress_on_every_create_path(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess
) -> None:
    """kubectl create, client-side apply and server-side apply: the API server's own answer
    (the object's first version) reads InProgress everywhere; the operator then makes it Ready."""
    commands = {
        "create": ("create", "-o", "json", "-f", "-"),
        "apply": ("apply", "-o", "json", "-f", "-"),
        "server-side-apply": (
            "apply",
            "--server-side",
            "--field-manager=e2e",
            "-o",
            "json",
            "-f",
            "-",
        ),
    }
    for name, command in commands.items():
        document = manifest(name, unique("e2e-health-path"), namespace=namespace)
        first = json.loads(kubectl(*command, input=yaml.safe_dump(document)).stdout)
        assert first["status"] == {"observedGeneration": 0}, name
        judgement = health.judge(first)
        assert (
            judgement.kstatus.status,
            judgement.flux_wait.status,
            judgement.flux_cel.status,
            judgement.argo.status,
        ) == IN_PROGRESS, name
    for name in commands:
        ready = _poll(kubectl, namespace, name, _judged("Reconciled"), f"{name} Ready")
        assert health.judge(ready).kstatus.status == "Current"


def test_every_packaging_of_the_crd_carries_the_status_default(
    kubectl: Kubectl, helm: Path
) -> None:
    """The Helm chart and the kustomize base install the same CRD, default included (the
    chart's copy is generated from deploy/crds, `make manifests`; the base includes it)."""
    rendered = {
        "helm": manifests.render_chart(
            helm, values=[manifests.CHART / "ci" / "minimal-values.yaml"], include_crds=True
        ),
        "kustomize": manifests.load_documents(
            kubectl("kustomize", str(manifests.KUSTOMIZE_BASE)).stdout
        ),
    }
    for packaging, documents in rendered.items():
        crds = [d for d in documents if d.get("kind") == "CustomResourceDefinition"]
        assert len(crds) == 1, packaging
        version = crds[0]["spec"]["versions"][0]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["default"] == {"observedGeneration": 0}, packaging


# -- failing fast in CI ---------------------------------------------------------------------------


def _recipe(
    kubectl: Kubectl, namespace: str, name: str, timeout: str
) -> subprocess.CompletedProcess[str]:
    """docs/gitops.md's fail-fast wait, as a CI step runs it (a real shell, real kubectl)."""
    script = health.documented_wait_recipe().format(
        kubectl=f"{kubectl.binary} --kubeconfig={kubectl.kubeconfig}",
        namespace=namespace,
        name=name,
        timeout=timeout,
    )
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=600, check=False
    )


def test_the_documented_wait_fails_fast_on_a_refusal_and_passes_on_ready(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess
) -> None:
    kubectl.apply(
        manifest(
            "refused",
            unique("e2e-health-wait"),
            namespace=namespace,
            account_id=UNLISTED_NAMESPACE_ACCOUNT_ID,
        )
    )
    kubectl.apply(manifest("ok", unique("e2e-health-wait"), namespace=namespace))
    timeout = 300.0
    started = time.monotonic()
    refused = _recipe(kubectl, namespace, "refused", f"{timeout:.0f}s")
    took = time.monotonic() - started
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert took < timeout / 2, f"the fail-fast wait took {took:.0f}s of its {timeout:.0f}s"
    assert "AccountNotAllowed" in refused.stdout + refused.stderr

    ok = _recipe(kubectl, namespace, "ok", f"{timeout:.0f}s")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The plain wait keeps working as documented.
    kubectl("wait", "-n", namespace, "--for=condition=Ready", f"{KIND}/ok", "--timeout=60s")


def test_the_old_recipe_ran_its_whole_timeout_on_a_refusal(
    kubectl: Kubectl, namespace: str, shared_operator: OperatorProcess
) -> None:
    """Why the recipe changed: waiting for Stalled=false on a refused object cannot end early."""
    kubectl.apply(
        manifest(
            "refused",
            unique("e2e-health-old"),
            namespace=namespace,
            account_id=UNLISTED_NAMESPACE_ACCOUNT_ID,
        )
    )
    _poll(kubectl, namespace, "refused", _judged("AccountNotAllowed"), "AccountNotAllowed")
    result = kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Stalled=false",
        f"{KIND}/refused",
        "--timeout=5s",
        check=False,
    )
    assert result.returncode != 0
    assert "timed out" in result.stderr
