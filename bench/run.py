"""`make bench`: scale, latency, IAM cost, detection, memory and API load of the operator.

    .venv/bin/python -m bench.run [--sizes 100,1000,5000] [--quick]

For each size N it starts a fresh local stack (kube-apiserver, moto, the operator as a process
with ten accounts reached through AssumeRole), then measures:
- time until all N are Ready after one `kubectl apply` of all of them (roles per second);
- apply-to-Ready latency of single resources on the loaded operator (p50, p95);
- at steady state, over one minute: IAM calls per role per sweep, operator RSS and CPU,
  Kubernetes API requests per minute (watches excluded) and status writes per minute;
- drift detection (change to repair, Enforce) through the sweep and through CloudTrail events;
- perRole sweep cost for the smaller sizes.
Results go to bench/results/<N>.json, docs/performance.md and docs/performance.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, get_args

from bench.stack import (
    ACCOUNTS,
    CALLS_PER_SECOND,
    Stack,
    api_requests,
    delta,
    dump,
    manifest,
    metric,
    quiet_for,
)
from ecsrole.core.model import IamAction
from tests.stack.resources import SEED_POLICY

RESULTS = Path("bench/results")
STEADY_SECONDS = 60.0
# The operator's default settle window (15 s) after its own IAM writes, and a second more.
SETTLE_SECONDS = 16.0
IAM_WRITES = get_args(IamAction)  # every write the operator makes to IAM


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p95": round(percentile(values, 0.95), 3),
        "max": round(max(values), 3) if values else float("nan"),
        "n": len(values),
    }


def cloudtrail_event(account: str, role: str) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(
        {
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.iam",
            "account": account,
            "time": now,
            "detail": {
                "eventName": "DetachRolePolicy",
                "eventTime": now,
                "recipientAccountId": account,
                "requestParameters": {"roleName": role, "policyArn": SEED_POLICY},
                "userIdentity": {"arn": f"arn:aws:sts::{account}:assumed-role/Admin/bench"},
            },
        }
    )


def single_latencies(stack: Stack, count: int) -> list[float]:
    latencies = []
    for index in range(count):
        document = manifest(index, f"single-{uuid.uuid4().hex[:6]}")
        name = document["metadata"]["name"]
        started = time.monotonic()
        stack.apply([document])
        while not stack.is_ready(name):
            if time.monotonic() - started > 60:
                raise TimeoutError(f"{name} not Ready")
            time.sleep(0.05)
        latencies.append(time.monotonic() - started)
    return latencies


def repair_latencies(stack: Stack, names: list[str], *, via_events: bool) -> list[float]:
    """Detach the seed policy from each role out of band; time until the operator put it back."""
    by_account: dict[str, list[str]] = {}
    for name in names:
        account = ACCOUNTS[int(name.rsplit("-", 1)[1]) % len(ACCOUNTS)]
        by_account.setdefault(account, []).append(name)
    clients = {account: stack.aws("iam", account) for account in by_account}
    queue = None
    sqs = None
    if via_events:
        sqs = stack.aws("sqs")
        queue = sqs.get_queue_url(QueueName="bench")["QueueUrl"]
    changed: dict[str, float] = {}
    for account, roles in by_account.items():
        for role in roles:
            clients[account].detach_role_policy(RoleName=role, PolicyArn=SEED_POLICY)
            changed[role] = time.monotonic()
            if sqs is not None:
                sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail_event(account, role))
    latencies: dict[str, float] = {}
    deadline = time.monotonic() + 180
    while len(latencies) < len(changed) and time.monotonic() < deadline:
        for account, roles in by_account.items():
            for role in roles:
                if role in latencies:
                    continue
                attached = clients[account].list_attached_role_policies(RoleName=role)
                if any(p["PolicyArn"] == SEED_POLICY for p in attached["AttachedPolicies"]):
                    latencies[role] = time.monotonic() - changed[role]
        time.sleep(0.2)
    return list(latencies.values())


def wait_quiet(stack: Stack) -> float:
    """Seconds until the apiserver sees no writes for 10 s: the tail of the creation burst is over.

    Lease renewals (the leader's background load) and the apiserver's own endpoint writes do not
    count.
    """

    def writes() -> float:
        counts = api_requests(stack.apiserver_metrics())
        return sum(
            v
            for k, v in counts.items()
            if k.startswith(("POST/", "PUT/", "PATCH/", "DELETE/"))
            and not k.endswith(("/leases", "/endpoints"))
        )

    return quiet_for(writes, seconds=10.0, what="the apiserver's writes")


def wait_settled(stack: Stack) -> float:
    """Seconds until the operator's settle window has passed after its last IAM write, so a
    sweep judges every aspect again (no write for SETTLE_SECONDS)."""

    def iam_writes() -> float:
        text = stack.metrics()
        return sum(metric(text, "ecsrole_aws_api_calls_total", operation=op) for op in IAM_WRITES)

    return quiet_for(iam_writes, seconds=SETTLE_SECONDS, what="the operator's IAM writes")


def steady_state(stack: Stack, roles: int, seconds: float) -> dict[str, Any]:
    before_metrics, before_api, before_usage = (
        stack.metrics(),
        api_requests(stack.apiserver_metrics()),
        stack.usage(),
    )
    time.sleep(seconds)
    after_metrics, after_api, after_usage = (
        stack.metrics(),
        api_requests(stack.apiserver_metrics()),
        stack.usage(),
    )
    calls = metric(after_metrics, "ecsrole_aws_api_calls_total", service="iam") - metric(
        before_metrics, "ecsrole_aws_api_calls_total", service="iam"
    )
    sweeps = metric(after_metrics, "ecsrole_drift_sweep_duration_seconds_count") - metric(
        before_metrics, "ecsrole_drift_sweep_duration_seconds_count"
    )
    per_account = roles / len(ACCOUNTS)
    minutes = seconds / 60
    requests = delta(after_api, before_api)
    return {
        "seconds": seconds,
        "iam_calls": calls,
        "account_sweeps": sweeps,
        "iam_calls_per_role_per_sweep": round(calls / (per_account * sweeps), 4)
        if sweeps
        else None,
        "operator_rss_mb": round(after_usage["operator_rss_mb"], 1),
        "operator_cpu_percent": round(
            100 * (after_usage["operator_cpu_s"] - before_usage["operator_cpu_s"]) / seconds, 2
        ),
        "api_requests_per_minute": round(sum(requests.values()) / minutes, 1),
        "api_requests_by_kind_per_minute": {
            k: round(v / minutes, 1) for k, v in sorted(requests.items())
        },
        "status_writes_per_minute": round(
            sum(v for k, v in requests.items() if k.endswith("ecsexecutionroles/status")) / minutes,
            2,
        ),
        "drift_events": metric(after_metrics, "ecsrole_drift_events_total")
        - metric(before_metrics, "ecsrole_drift_events_total"),
    }


def scale_run(
    size: int, workdir: Path, *, drift_samples: int, single_samples: int
) -> dict[str, Any]:
    stack = Stack.start(workdir, interval="30s", events_queue=True)
    try:
        prefix = f"r{uuid.uuid4().hex[:5]}"
        usage0 = stack.usage()
        apply_started = time.monotonic()
        stack.apply(manifest(i, prefix) for i in range(size))
        applied = time.monotonic() - apply_started
        ready_seconds = stack.wait_ready(size, timeout=120 + size * 0.2) + applied
        usage1 = stack.usage()
        result: dict[str, Any] = {
            "size": size,
            "machine": machine(),  # the report names the machine the figures came from
            "accounts": len(ACCOUNTS),
            "max_calls_per_second_per_account": CALLS_PER_SECOND,
            "all_ready_seconds": round(ready_seconds, 1),
            "roles_per_second": round(size / ready_seconds, 1),
            "creation_cpu_seconds": {
                "operator": round(usage1["operator_cpu_s"] - usage0["operator_cpu_s"], 1),
                "moto": round(usage1["moto_cpu_s"] - usage0["moto_cpu_s"], 1),
            },
        }
        result["single_apply_to_ready_seconds"] = summary(single_latencies(stack, single_samples))
        wait_settled(stack)
        result["quiet_after_seconds"] = wait_quiet(stack)
        result["steady_state"] = steady_state(stack, size + single_samples, STEADY_SECONDS)
        sample = [f"{prefix}-{i}" for i in range(0, size, max(1, size // drift_samples))][
            :drift_samples
        ]
        half = len(sample) // 2
        result["drift_detection_seconds"] = {
            "event": summary(repair_latencies(stack, sample[:half], via_events=True)),
            "sweep": summary(repair_latencies(stack, sample[half:], via_events=False)),
            "sweep_interval_seconds": 30,
        }
        return result
    finally:
        stack.stop()


def per_role_cost(size: int, workdir: Path) -> dict[str, Any]:
    stack = Stack.start(workdir, sweep_mode="perRole", interval="10s")
    try:
        prefix = f"p{uuid.uuid4().hex[:5]}"
        stack.apply(manifest(i, prefix) for i in range(size))
        stack.wait_ready(size, timeout=120 + size * 0.2)
        wait_settled(stack)
        steady = steady_state(stack, size, 30.0)
        return {
            "size": size,
            "mode": "perRole",
            "iam_calls_per_role_per_sweep": steady["iam_calls_per_role_per_sweep"],
        }
    finally:
        stack.stop()


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        int(line.split()[1]) // 1024 // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--per-role-sizes", default="100,1000")
    parser.add_argument("--drift-samples", type=int, default=20)
    parser.add_argument("--single-samples", type=int, default=20)
    args = parser.parse_args()
    command = (
        "make bench"
        if args.sizes == "100,1000,5000"
        else f"python -m bench.run --sizes {args.sizes}"
    )
    runs = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="ecsrole-bench-") as folder:
            result = scale_run(
                size,
                Path(folder),
                drift_samples=args.drift_samples,
                single_samples=args.single_samples,
            )
        print(json.dumps(result), flush=True)
        dump(RESULTS / f"scale-{size}.json", result)
        runs.append(result)
    per_role = []
    for size in (int(s) for s in args.per_role_sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="ecsrole-bench-") as folder:
            cost = per_role_cost(size, Path(folder))
        print(json.dumps(cost), flush=True)
        dump(RESULTS / f"per-role-{size}.json", cost)
        per_role.append(cost)
    from bench.report import write_report

    write_report(runs, per_role, machine(), command)


if __name__ == "__main__":
    main()
