"""The operator as a real process (`ecsrole run`), as users run it."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.stack.processes import ChildProcess, free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


def metric_value(text: str, metric: str, **labels: str) -> float:
    """Sum of the samples of `metric` in Prometheus text whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((metric + "{", metric + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ecsrole_executable() -> str:
    """The `ecsrole` console script of the project's virtual environment."""
    venv_script = REPO_ROOT / ".venv" / "bin" / "ecsrole"
    if venv_script.exists():
        return str(venv_script)
    found = shutil.which("ecsrole")
    if not found:
        raise FileNotFoundError("no `ecsrole` command: run `make install` (uv sync) first")
    return found


def dev_config(
    cluster_name: str, accounts: Mapping[str, Mapping[str, Any]], **extra: Any
) -> dict[str, Any]:
    """An operator configuration document (DESIGN section 3)."""
    return {"clusterName": cluster_name, "region": "us-east-1", **extra, "accounts": dict(accounts)}


class OperatorProcess:
    """`ecsrole run` with its own config file, metrics and health ports, and log file."""

    def __init__(
        self,
        workdir: Path,
        *,
        config: Mapping[str, Any],
        kubeconfig: Path,
        aws_env: Mapping[str, str],
        namespaces: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        metrics_port: int | None = None,
        health_port: int | None = None,
        log_level: str = "DEBUG",
        lease_name: str | None = None,
        lease_duration: float = 15.0,
        lease_namespace: str = "default",
        selector: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.lease_namespace = lease_namespace
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.metrics_port = metrics_port or free_port()
        self.health_port = health_port or free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.health_url = f"http://127.0.0.1:{self.health_port}/healthz"
        argv = [
            ecsrole_executable(),
            "run",
            f"--config={self.config_path}",
            f"--metrics-address=127.0.0.1:{self.metrics_port}",
            f"--health-address=127.0.0.1:{self.health_port}",
            "--log-format=json",
            f"--log-level={log_level}",
            # Each operator its own lease unless a test makes replicas compete for one; a shard
            # (`selector`) derives its Lease from the selector unless a name is given.
            *(
                [f"--lease-name={lease_name or 'ecsrole-' + uuid.uuid4().hex[:10]}"]
                if lease_name or not selector
                else []
            ),
            *([f"--selector={selector}"] if selector else []),
            # In-cluster this is the pod's own namespace, where the chart's Role grants leases.
            f"--lease-namespace={lease_namespace}",
            f"--lease-duration={lease_duration}",
            *(f"--namespace={ns}" for ns in namespaces),
        ]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECSROLE_"))},
            **aws_env,
            "KUBECONFIG": str(kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.child = ChildProcess("ecsrole", argv, workdir / "operator.log", env=env)

    @property
    def log_path(self) -> Path:
        return self.child.log_path

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        self.child.start()
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def healthy() -> bool:
            self.child.ensure_alive()
            with urllib.request.urlopen(self.health_url, timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)

        wait_until(healthy, timeout=timeout, what=f"operator liveness at {self.health_url}")

    def metric(self, metric: str, **labels: str) -> float:
        """One metric from the operator's /metrics, summed over matching series."""
        return metric_value(self.metrics_text(), metric, **labels)

    def sweeps(self) -> float:
        """Drift sweeps completed so far, over all accounts (the operator's own counter)."""
        return self.metric("ecsrole_drift_sweep_duration_seconds_count")

    def wait_sweeps(self, count: int, timeout: float = 120.0) -> None:
        """Wait until `count` more sweeps have completed: every role was looked at again."""
        target = self.sweeps() + count
        wait_until(lambda: self.sweeps() >= target, timeout=timeout, what=f"{count} more sweeps")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:  # noqa: S310
            return str(response.read().decode())

    def log_lines(self) -> list[dict[str, Any]]:
        """The operator's JSON log lines (non-JSON lines, e.g. a traceback, are kept as text)."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"event": raw, "_raw": True})
        return lines

    def stop(self) -> None:
        self.child.stop()

    def kill(self) -> None:
        self.child.kill()
