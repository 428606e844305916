"""Real kubectl against the stack's API server, plus waiting for conditions."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.stack.processes import WaitTimeoutError, eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "deploy" / "crds" / "iam.ecsrole.dev_ecsexecutionroles.yaml"
KIND = "ecsexecutionroles.iam.ecsrole.dev"


class Kubectl:
    """Calls the real kubectl binary with the stack's kubeconfig."""

    def __init__(self, binary: Path | str, kubeconfig: Path) -> None:
        self.binary = str(binary)
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}"
            )
        return result

    def apply(self, manifest: Mapping[str, Any] | str, namespace: str | None = None) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(dict(manifest))
        args = ["apply", "--server-side", "--field-manager=e2e", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        self(*args, input=text)

    def get_json(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        result = self(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(f"kubectl get {kind} {name} failed: {result.stderr}")
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def install_crd(self, timeout: float = 120.0) -> None:
        self.install_crds([CRD_PATH], timeout=timeout)
        # The schema reaches /openapi/v3 (what `kubectl explain` reads) a little after
        # Established; wait for it so explain and server-side apply see the new fields.
        deadline = time.monotonic() + 60
        while self("explain", "ecsexecutionroles.status.adopted", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError("the CRD schema never reached the API server's OpenAPI")
            time.sleep(0.5)

    def install_crds(self, paths: list[Path], timeout: float = 120.0) -> None:
        """Apply CRDs and wait until each is Established (its status may not exist at first)."""
        names = []
        for path in paths:
            self("apply", "--server-side", "--force-conflicts", "-f", str(path))
            names.append(yaml.safe_load(path.read_text())["metadata"]["name"])
        for name in names:
            wait_for_condition(
                self, None, name, "Established", kind="customresourcedefinitions", timeout=timeout
            )

    def create_namespace(self, name: str) -> None:
        self("create", "namespace", name)

    def delete_namespace_nowait(self, name: str) -> None:
        # Without kube-controller-manager a namespace never finishes deleting: never wait.
        self("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def condition(resource: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    if not resource:
        return None
    for item in (resource.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


def wait_for_condition(
    kubectl: Kubectl,
    namespace: str | None,
    name: str,
    type_: str,
    status: str = "True",
    *,
    reason: str | None = None,
    kind: str = KIND,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Poll an object until condition `type_` has `status` (and `reason`); return the object.

    The one wait of the test stack, bench and dev stack. Unlike `kubectl wait` on an object
    just applied, it keeps polling while the object, its status or its conditions are not
    written yet (`kubectl wait` fails at once on `conditions: null`, as a fresh CRD has).
    `namespace` is None for cluster-scoped kinds.
    """
    last: dict[str, Any] | None = None

    def reached() -> dict[str, Any] | None:
        nonlocal last
        last = kubectl.get_json(kind, name, namespace)
        found = condition(last, type_)
        if (
            found
            and found.get("status") == status
            and (reason is None or found.get("reason") == reason)
        ):
            return last
        return None

    try:
        return eventually(reached, what=f"{kind} {name}", timeout=timeout, interval=0.25)
    except WaitTimeoutError:
        shown = json.dumps((last or {}).get("status"), indent=2) if last else "(no such object)"
        where = f"{namespace}/{name}" if namespace else name
        raise WaitTimeoutError(
            f"{kind} {where}: condition {type_}={status}"
            f"{f' ({reason})' if reason else ''} not reached in {timeout:.0f}s; status was:\n{shown}"
        ) from None
