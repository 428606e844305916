"""The benchmark stack: control plane, moto and the operator, plus the probes the figures need.

Everything runs on this machine (127.0.0.1). Resources are spread over ten accounts that the
operator reaches through moto's AssumeRole, as a central operator reaches real accounts.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import time
import urllib.request
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.stack.controlplane import ControlPlane
from tests.stack.kube import Kubectl
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config, metric_value
from tests.stack.processes import eventually
from tests.stack.resources import role_manifest

NAMESPACE = "bench"
ACCOUNTS = tuple(f"1000000000{i:02d}" for i in range(10))
CALLS_PER_SECOND = 100  # per account
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The container image's malloc settings (Dockerfile), so the figures are those of the image.
IMAGE_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MALLOC_TRIM_THRESHOLD_": "65536",
}


metric = metric_value


def quiet_for(
    sample: Callable[[], Hashable],
    *,
    seconds: float,
    what: str,
    timeout: float = 900.0,
    interval: float = 1.0,
) -> float:
    """Seconds until `sample()` (a count of some activity) has not changed for `seconds`.

    How a figure waits for a burst's tail to end: on an observable, so a slow machine only
    makes the wait longer, never the figure wrong. Polled with the stack's one poll.
    """
    started = time.monotonic()
    value, since = sample(), started  # the last value, and when it was first seen

    def quiet() -> bool:
        nonlocal value, since
        now, current = time.monotonic(), sample()
        if current != value:
            value, since = current, now
        return now - since >= seconds

    eventually(
        quiet,
        what=f"{seconds:.0f} s without a change of {what}",
        timeout=timeout,
        interval=interval,
    )
    return round(time.monotonic() - started, 1)


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def operator_process(
    workdir: Path,
    config: Mapping[str, Any],
    plane: ControlPlane,
    moto: MotoServer,
    lease_name: str | None = None,
) -> OperatorProcess:
    return OperatorProcess(
        workdir,
        config=config,
        kubeconfig=plane.kubeconfig,
        aws_env=moto.aws_env(),
        namespaces=[NAMESPACE],
        log_level="WARNING",
        extra_env=IMAGE_ENV,
        lease_name=lease_name,
    )


def manifest(index: int, prefix: str, **spec: Any) -> dict[str, Any]:
    """Resource `index` of a run: its own account of ACCOUNTS, round robin."""
    name = f"{prefix}-{index}"
    account = ACCOUNTS[index % len(ACCOUNTS)]
    return role_manifest(name, name, namespace=NAMESPACE, account_id=account, **spec)


@dataclass
class Stack:
    workdir: Path
    plane: ControlPlane
    moto: MotoServer
    operator: OperatorProcess
    kubectl: Kubectl

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        sweep_mode: str = "bulk",
        interval: str = "30s",
        events_queue: bool = False,
        rates: Mapping[str, float] | None = None,
        lease_name: str | None = None,
        settle_window: str | None = None,
    ) -> Stack:
        """`rates`: the accounts and their maxCallsPerSecond (default: ACCOUNTS at
        CALLS_PER_SECOND); `lease_name`: a Lease a second replica can share; `settle_window`:
        the operator's settleWindow (default 15 s; "0s" suits moto, which is consistent)."""
        plane = ControlPlane(workdir / "controlplane").start()
        moto = MotoServer(workdir / "moto").start()
        kubectl = Kubectl(plane.kubectl_path, plane.kubeconfig)
        kubectl.install_crd()
        kubectl.create_namespace(NAMESPACE)
        extra: dict[str, Any] = {"driftCheckInterval": interval}
        if settle_window is not None:
            extra["settleWindow"] = settle_window
        if events_queue:
            sqs = moto.client("sqs")
            extra["events"] = {"sqsQueueUrl": sqs.create_queue(QueueName="bench")["QueueUrl"]}
        accounts = {
            account: {
                "roleArn": f"arn:aws:iam::{account}:role/ecsrole-bench",
                "namespaces": [NAMESPACE],
                "sweepMode": sweep_mode,
                "maxCallsPerSecond": rate,
            }
            for account, rate in (rates or dict.fromkeys(ACCOUNTS, CALLS_PER_SECOND)).items()
        }
        config = dev_config("bench", accounts, **extra)
        operator = operator_process(workdir / "operator", config, plane, moto, lease_name).start()
        return cls(workdir, plane, moto, operator, kubectl)

    def replica(self, name: str, lease_name: str) -> OperatorProcess:
        """Another operator process with the same configuration, sharing `lease_name`."""
        config = yaml.safe_load(self.operator.config_path.read_text())
        return operator_process(self.workdir / name, config, self.plane, self.moto, lease_name)

    def aws(self, service: str, account: str = DEFAULT_ACCOUNT_ID) -> Any:
        return self.moto.client(service, account)

    def apply(self, documents: Iterable[Mapping[str, Any]]) -> None:
        docs = [dict(d) for d in documents]
        # kubectl sends one request per object: 5,000 of them beside a busy operator took
        # longer than 600 s on a loaded machine.
        timeout = max(600.0, 0.5 * len(docs))
        self.kubectl(
            "apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs), timeout=timeout
        )

    def metrics(self) -> str:
        return self.operator.metrics_text()

    def ready_count(self) -> float:
        return metric(self.metrics(), "ecsrole_ready")

    def wait_ready(self, count: int, timeout: float) -> float:
        """Seconds until the operator reports `count` resources Ready (its own gauge)."""
        started = time.monotonic()
        while self.ready_count() < count:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.ready_count():.0f}/{count} Ready after {timeout:.0f}s")
            time.sleep(0.5)
        return time.monotonic() - started

    def is_ready(self, name: str) -> bool:
        result = self.kubectl(
            "get",
            "ecsexecutionroles",
            name,
            "-n",
            NAMESPACE,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            check=False,
        )
        return result.stdout.strip() == "True"

    def apiserver_metrics(self) -> str:
        credentials = self.plane.credentials
        context = ssl.create_default_context(cafile=str(credentials.ca_cert))
        context.load_cert_chain(str(credentials.admin_cert), str(credentials.admin_key))
        with urllib.request.urlopen(f"{self.plane.url}/metrics", context=context, timeout=10) as r:  # noqa: S310
            return str(r.read().decode())

    def usage(self) -> dict[str, float]:
        """Operator and moto: CPU seconds so far and resident memory now."""
        operator_pid = self.operator.child.pid
        assert self.moto.child is not None
        moto_pid = self.moto.child.pid
        return {
            "operator_cpu_s": process_cpu_seconds(operator_pid),
            "operator_rss_mb": process_rss_mb(operator_pid),
            "moto_cpu_s": process_cpu_seconds(moto_pid),
        }

    def stop(self) -> None:
        self.operator.stop()
        self.moto.stop()
        self.plane.stop()


def api_requests(text: str) -> dict[str, float]:
    """apiserver_request_total by verb/resource/subresource, watches excluded."""
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(
            part.split("=", 1) for part in line[line.index("{") + 1 : line.rindex("}")].split(",")
        )
        verb = labels.get("verb", "").strip('"')
        if verb in ("WATCH", "CONNECT"):
            continue
        key = "/".join(
            x
            for x in (
                verb,
                labels.get("resource", "").strip('"'),
                labels.get("subresource", "").strip('"'),
            )
            if x
        )
        counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def dump(path: Path, data: Any) -> None:
    """Write a result, dated (UTC) so the report can say when each figure was measured."""
    if isinstance(data, dict) and "measured_on" not in data:
        data = {**data, "measured_on": datetime.datetime.now(datetime.UTC).date().isoformat()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
