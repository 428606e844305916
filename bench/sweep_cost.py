"""Steady-state IAM calls per role per sweep, bulk vs perRole, on the local stack.

    .venv/bin/python -m bench.sweep_cost --roles 200 --sweeps 5

Starts its own control plane, moto server and operator (sweep interval 2 s), creates N
EcsExecutionRoles in one account, waits until all are Ready and the operator's own writes have
settled, then counts `ecsrole_aws_api_calls_total` over a number of sweeps (read from
`ecsrole_drift_sweep_duration_seconds_count`). Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.stack.controlplane import ControlPlane
from tests.stack.kube import KIND, Kubectl
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config

NAMESPACE = "bench"


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def all_ready(kubectl: Kubectl, expected: int) -> bool:
    items = json.loads(kubectl("get", KIND, "-n", NAMESPACE, "-o", "json").stdout)["items"]
    ready = sum(
        1
        for item in items
        for c in item.get("status", {}).get("conditions", [])
        if c["type"] == "Ready" and c["status"] == "True"
    )
    return ready == expected


def measure(mode: str, roles: int, sweeps: int, workdir: Path) -> dict[str, Any]:
    plane = ControlPlane(workdir / "cp").start()
    moto = MotoServer(workdir / "moto").start()
    operator: OperatorProcess | None = None
    try:
        kubectl = Kubectl(plane.kubectl_path, plane.kubeconfig)
        kubectl.install_crd()
        kubectl.create_namespace(NAMESPACE)
        config = dev_config(
            "bench",
            {
                DEFAULT_ACCOUNT_ID: {
                    "namespaces": [NAMESPACE],
                    "sweepMode": mode,
                    "maxCallsPerSecond": 1000,
                }
            },
            driftCheckInterval="2s",
        )
        operator = OperatorProcess(
            workdir / f"operator-{mode}",
            config=config,
            kubeconfig=plane.kubeconfig,
            aws_env=moto.aws_env(),
            namespaces=[NAMESPACE],
            log_level="WARNING",
        ).start()
        prefix = uuid.uuid4().hex[:6]
        documents = [
            {
                "apiVersion": "iam.ecsrole.dev/v1alpha1",
                "kind": "EcsExecutionRole",
                "metadata": {"name": f"r{i}", "namespace": NAMESPACE},
                "spec": {"accountId": DEFAULT_ACCOUNT_ID, "roleName": f"bench-{prefix}-{i}"},
            }
            for i in range(roles)
        ]
        kubectl(
            "apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(documents), timeout=300
        )
        started = time.monotonic()
        while not all_ready(kubectl, roles):
            if time.monotonic() - started > 600:
                raise TimeoutError("not all Ready")
            time.sleep(1)
        time.sleep(17)  # past the settle window of the operator's own writes
        before = operator.metrics_text()
        calls0 = metric(before, "ecsrole_aws_api_calls_total")
        sweeps0 = metric(before, "ecsrole_drift_sweep_duration_seconds_count")
        while (
            metric(operator.metrics_text(), "ecsrole_drift_sweep_duration_seconds_count")
            < sweeps0 + sweeps
        ):
            time.sleep(0.5)
        after = operator.metrics_text()
        calls = metric(after, "ecsrole_aws_api_calls_total") - calls0
        done = metric(after, "ecsrole_drift_sweep_duration_seconds_count") - sweeps0
        by_operation = {
            line.split('operation="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in after.splitlines()
            if line.startswith("ecsrole_aws_api_calls_total{")
        }
        return {
            "mode": mode,
            "roles": roles,
            "sweeps": done,
            "iam_calls": calls,
            "calls_per_role_per_sweep": round(calls / (roles * done), 4),
            "drift_events": metric(after, "ecsrole_drift_events_total"),
            "calls_by_operation_since_start": by_operation,
        }
    finally:
        if operator is not None:
            operator.stop()
        moto.stop()
        plane.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--roles", type=int, default=200)
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--modes", default="bulk,perRole")
    parser.add_argument("--output", default="bench/results/sweep_cost.json")
    args = parser.parse_args()
    results = []
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix="ecsrole-bench-") as folder:
            result = measure(mode, args.roles, args.sweeps, Path(folder))
        print(json.dumps(result))
        results.append(result)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
