"""`make bench`'s many-account scenarios: fair sharing, event-loop lag in a large sweep, failover.

    .venv/bin/python -m bench.fleet [--only fairness,loop_lag,failover] [--size N] [--gc-log FILE]

- fairness: one account limited to 1 call/s with 300 pending creations; meanwhile another
  account's new resources and drift repairs (CloudTrail event path), timed one after the other
  for as long as the slow account's backlog lasts in the window. Target: each within 5 s.
- loop_lag: 5,000 roles in one account; ecsrole_event_loop_lag_seconds over two of its sweeps.
  Target: p99 under 50 ms.
- failover: 5,000 resources over 10 accounts, two replicas sharing a Lease; SIGKILL the leader
  and time until the standby has resumed every object, with the IAM calls that costs.
  Targets: within 30 s, at most 2 calls per account.
`--size` replaces the 5,000 of loop_lag and failover (a quicker look, say at 1,000); `--gc-log`
makes the operators log their long garbage collections there (bench/gc_hook).
Results: bench/results/fairness.json, loop-lag-<size>.json, failover-<size>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stack import (
    ACCOUNTS,
    IMAGE_ENV,
    NAMESPACE,
    Stack,
    api_requests,
    delta,
    dump,
    metric,
    process_rss_mb,
)
from tests.stack.operator import OperatorProcess
from tests.stack.processes import WaitTimeoutError, eventually
from tests.stack.resources import SEED_POLICY, role_manifest

RESULTS = Path("bench/results")
SLOW_ACCOUNT, FAST_ACCOUNT = ACCOUNTS[0], ACCOUNTS[1]
FAIRNESS_BACKLOG = 300
FAIRNESS_WINDOW_SECONDS = 150.0
FAIR_TARGET_SECONDS = 5.0
SAMPLE_TIMEOUT = 60.0
LAG_SIZE = 5000
LAG_TARGET_SECONDS = 0.050
FAILOVER_SIZE = 5000
FAILOVER_LEASE_SECONDS = 15.0


def _wait(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """The test stack's one poll (`eventually`), returning the seconds it took; an operator too
    busy to answer its metrics within 5 s (OSError) is "not yet"."""
    started = time.monotonic()
    eventually(check, what=what, timeout=timeout, interval=interval, tolerate=(OSError,))
    return time.monotonic() - started


def _timed(check: Callable[[], bool], timeout: float, since: float | None = None) -> float | None:
    """Seconds from `since` (default now) until `check` holds; None when not within `timeout`."""
    started = time.monotonic() if since is None else since
    remaining = timeout - (time.monotonic() - started)
    try:
        eventually(check, what="a timed sample", timeout=max(0.0, remaining), interval=0.05)
    except WaitTimeoutError:
        return None
    return round(time.monotonic() - started, 3)


def _ready_names(stack: Stack) -> set[str]:
    """Names of the resources the operator reports Ready (its ecsrole_ready series)."""
    names = set()
    for line in stack.metrics().splitlines():
        if line.startswith("ecsrole_ready{") and line.endswith(" 1.0"):
            names.add(line.split('name="', 1)[1].split('"', 1)[0])
    return names


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "p50": round(_percentile(values, 0.5), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def fairness(workdir: Path) -> dict[str, Any]:
    stack = Stack.start(
        workdir,
        interval="30s",
        events_queue=True,
        rates={SLOW_ACCOUNT: 1.0, FAST_ACCOUNT: 100.0},
        # moto is consistent: the first repairs are judged at once, like the later ones, with
        # no settle window after the creations to wait out.
        settle_window="0s",
    )
    try:
        iam_fast = stack.aws("iam", FAST_ACCOUNT)
        sqs = stack.aws("sqs")
        queue = sqs.get_queue_url(QueueName="bench")["QueueUrl"]
        from bench.run import cloudtrail_event

        # A few fast-account roles to repair later, Ready before the slow backlog arrives.
        repairable = [f"fast-fix-{i}" for i in range(10)]
        stack.apply(
            role_manifest(n, n, namespace=NAMESPACE, account_id=FAST_ACCOUNT) for n in repairable
        )
        _wait(lambda: set(repairable) <= _ready_names(stack), 120, "the repairable roles")

        slow_names = [f"slow-{i}" for i in range(FAIRNESS_BACKLOG)]
        stack.apply(
            role_manifest(n, n, namespace=NAMESPACE, account_id=SLOW_ACCOUNT) for n in slow_names
        )
        started = time.monotonic()
        creations: list[dict[str, float]] = []
        repairs: list[dict[str, float]] = []
        slow_ready_at_end = 0
        index = 0
        while time.monotonic() - started < FAIRNESS_WINDOW_SECONDS:
            slow_pending = FAIRNESS_BACKLOG - len(set(slow_names) & _ready_names(stack))
            # A new resource in the fast account.
            name = f"fast-new-{index}"
            applied = time.monotonic()
            stack.apply([role_manifest(name, name, namespace=NAMESPACE, account_id=FAST_ACCOUNT)])
            creations.append(
                {
                    "at": round(applied - started, 1),
                    "seconds": _timed(
                        lambda name=name: stack.is_ready(name), SAMPLE_TIMEOUT, since=applied
                    ),
                    "slow_pending": slow_pending,
                }
            )
            # A drift repair in the fast account (CloudTrail event path).
            role = repairable[index % len(repairable)]
            iam_fast.detach_role_policy(RoleName=role, PolicyArn=SEED_POLICY)
            changed = time.monotonic()
            sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail_event(FAST_ACCOUNT, role))

            def repaired(role: str = role) -> bool:
                attached = iam_fast.list_attached_role_policies(RoleName=role)
                return any(p["PolicyArn"] == SEED_POLICY for p in attached["AttachedPolicies"])

            repairs.append(
                {
                    "at": round(changed - started, 1),
                    "seconds": _timed(repaired, SAMPLE_TIMEOUT, since=changed),
                    "slow_pending": slow_pending,
                }
            )
            index += 1
            time.sleep(3)  # pacing, not synchronisation: one out-of-band change every 3 s
        slow_ready_at_end = len(set(slow_names) & _ready_names(stack))
        window = time.monotonic() - started
        # A sample that timed out counts as its timeout (a lower bound of its latency).
        creation_seconds = [c["seconds"] or SAMPLE_TIMEOUT for c in creations]
        repair_seconds = [r["seconds"] or SAMPLE_TIMEOUT for r in repairs]
        return {
            "slow_account": {
                "max_calls_per_second": 1.0,
                "pending_creations_at_start": FAIRNESS_BACKLOG,
                "ready_after_window": slow_ready_at_end,
                "window_seconds": round(window, 1),
            },
            "aws_workers": 16,
            "fast_account_new_resource_seconds": _summary(creation_seconds),
            "fast_account_drift_repair_seconds": _summary(repair_seconds),
            "target_seconds": FAIR_TARGET_SECONDS,
            "met": bool(creations)
            and max(creation_seconds + repair_seconds) <= FAIR_TARGET_SECONDS
            and min(c["slow_pending"] for c in creations) > 0,
            "timed_out": sum(1 for x in (*creations, *repairs) if x["seconds"] is None),
            "sample_timeout_seconds": SAMPLE_TIMEOUT,
            "samples": {"creations": creations, "repairs": repairs},
        }
    finally:
        stack.stop()


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of an unlabelled histogram, by upper bound."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(
                line.rsplit(" ", 1)[1]
            )
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile q of the observations between two scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if total and count >= q * total:
            return bound
    return float("nan")


def loop_lag(workdir: Path, size: int = LAG_SIZE) -> dict[str, Any]:
    account = ACCOUNTS[0]
    stack = Stack.start(workdir, interval="30s", rates={account: 1000.0})
    try:
        names = [f"lag-{i}" for i in range(size)]
        stack.apply(role_manifest(n, n, namespace=NAMESPACE, account_id=account) for n in names)
        ready = stack.wait_ready(size, timeout=1800)
        from bench.run import wait_quiet

        quiet = wait_quiet(stack)
        before = stack.metrics()
        sweeps_before = metric(before, "ecsrole_drift_sweep_duration_seconds_count")
        _wait(
            lambda: (
                metric(stack.metrics(), "ecsrole_drift_sweep_duration_seconds_count")
                >= sweeps_before + 2
            ),
            180,
            "two sweeps",
            interval=1,
        )
        after = stack.metrics()
        lag_before = histogram(before, "ecsrole_event_loop_lag_seconds")
        lag_after = histogram(after, "ecsrole_event_loop_lag_seconds")
        sweeps = metric(after, "ecsrole_drift_sweep_duration_seconds_count") - sweeps_before
        sweep_seconds = (
            metric(after, "ecsrole_drift_sweep_duration_seconds_sum")
            - metric(before, "ecsrole_drift_sweep_duration_seconds_sum")
        ) / sweeps
        p99 = histogram_quantile(lag_before, lag_after, 0.99)
        return {
            "roles_in_one_account": size,
            "all_ready_seconds": round(ready, 1),
            "quiet_after_seconds": quiet,
            "sweeps": sweeps,
            "sweep_seconds_mean": round(sweep_seconds, 2),
            "event_loop_lag_p99_seconds_at_most": p99,
            "event_loop_lag_p50_seconds_at_most": histogram_quantile(lag_before, lag_after, 0.5),
            "event_loop_lag_samples": lag_after[float("inf")] - lag_before.get(float("inf"), 0),
            "event_loop_lag_buckets": {
                str(b): lag_after[b] - lag_before.get(b, 0.0) for b in sorted(lag_after)
            },
            "target_seconds": LAG_TARGET_SECONDS,
            "met": p99 <= LAG_TARGET_SECONDS,
            "operator_rss_mb": round(stack.usage()["operator_rss_mb"], 1),
        }
    finally:
        stack.stop()


def _leads(process: OperatorProcess) -> bool:
    try:
        return metric(process.metrics_text(), "ecsrole_leader") == 1
    except OSError:
        return False


def failover(workdir: Path, size: int = FAILOVER_SIZE) -> dict[str, Any]:
    lease = f"bench-{uuid.uuid4().hex[:8]}"
    stack = Stack.start(workdir, interval="30s", lease_name=lease)
    standby = stack.replica("standby", lease).start()
    try:
        names = [f"fo-{i}" for i in range(size)]
        stack.apply(
            role_manifest(n, n, namespace=NAMESPACE, account_id=ACCOUNTS[i % len(ACCOUNTS)])
            for i, n in enumerate(names)
        )
        created = stack.wait_ready(size, timeout=1800)
        from bench.run import wait_quiet

        wait_quiet(stack)
        assert not _leads(standby)
        # The creation burst: kopf's API requests that timed out, and the objects the leader's
        # safety net had to nudge because kopf had left them unhandled (ecsrole.sweeper).
        leader_log = stack.operator.log_path.read_text(errors="replace")
        creation = {
            "seconds_until_all_ready_after_apply": round(created, 1),
            "kopf_request_timeouts": leader_log.count("-> TimeoutError"),
            "unjudged_nudges": metric(stack.metrics(), "ecsrole_unjudged_nudges_total"),
        }
        requests_before = api_requests(stack.apiserver_metrics())
        stack.operator.kill()
        killed = time.monotonic()
        took_over = _wait(lambda: _leads(standby), 120, "the standby to lead")
        # How many objects the standby has resumed, second by second (the figure's shape, and
        # where a stuck takeover stops).
        progress: list[tuple[float, float]] = []

        def resumed_all() -> bool:
            ready = metric(standby.metrics_text(), "ecsrole_ready")
            progress.append((round(time.monotonic() - killed, 1), ready))
            return ready >= size

        resumed = _wait(resumed_all, 600, "every object resumed", interval=1.0)
        kube_requests = delta(api_requests(stack.apiserver_metrics()), requests_before)
        # The standby's IAM calls since it started: all of them are the takeover's.
        text = standby.metrics_text()
        by_operation: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("ecsrole_aws_api_calls_total{"):
                operation = line.split('operation="', 1)[1].split('"', 1)[0]
                service = line.split('service="', 1)[1].split('"', 1)[0]
                key = f"{service}:{operation}"
                by_operation[key] = by_operation.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        iam_calls = sum(v for k, v in by_operation.items() if k.startswith("iam:"))
        sts_calls = sum(v for k, v in by_operation.items() if k.startswith("sts:"))
        return {
            "resources": size,
            "accounts": len(ACCOUNTS),
            "creation": creation,
            "lease_duration_seconds": FAILOVER_LEASE_SECONDS,
            "seconds_until_standby_leads": round(took_over, 1),
            "seconds_until_every_object_resumed": round(time.monotonic() - killed, 1),
            "resume_seconds_after_takeover": round(resumed, 1),
            "iam_calls": iam_calls,
            "iam_calls_per_account": round(iam_calls / len(ACCOUNTS), 1),
            "sts_calls": sts_calls,
            "calls_by_operation": by_operation,
            "standby_rss_mb": round(process_rss_mb(standby.child.pid), 1),
            "kubernetes_requests_during_takeover": kube_requests,
            "resumed_by_second": progress,
            "targets": {"resumed_within_seconds": 30, "iam_calls_per_account_at_most": 2},
        }
    finally:
        standby.stop()
        stack.stop()


SCENARIOS: dict[str, tuple[Callable[..., dict[str, Any]], str]] = {
    "fairness": (fairness, "fairness.json"),
    "loop_lag": (loop_lag, "loop-lag-{size}.json"),
    "failover": (failover, "failover-{size}.json"),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet")
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument(
        "--size", type=int, help="resources of loop_lag and failover (default 5,000 each)"
    )
    parser.add_argument(
        "--operator-code",
        metavar="DIR",
        help="run the operator from this checkout's operator/ folder instead (an A/B of a "
        "change: the results get the suffix -baseline)",
    )
    parser.add_argument("--gc-log", metavar="FILE", help="the operators' long collections")
    args = parser.parse_args()
    suffix = ""
    if args.gc_log:
        hook = Path(__file__).resolve().parent / "gc_hook"
        IMAGE_ENV.update(PYTHONPATH=str(hook), ECSROLE_GC_LOG=str(Path(args.gc_log).resolve()))
    if args.operator_code:
        code = str(Path(args.operator_code).resolve() / "operator")
        IMAGE_ENV["PYTHONPATH"] = os.pathsep.join(filter(None, (code, IMAGE_ENV.get("PYTHONPATH"))))
        suffix = "-baseline"
    for name in args.only.split(","):
        scenario, filename = SCENARIOS[name]
        sized = name != "fairness"
        size = args.size or (LAG_SIZE if name == "loop_lag" else FAILOVER_SIZE)
        filename = filename.format(size=size).replace(".json", f"{suffix}.json")
        with tempfile.TemporaryDirectory(prefix=f"ecsrole-{name}-") as folder:
            result = scenario(Path(folder), size) if sized else scenario(Path(folder))
        brief = {k: v for k, v in result.items() if k not in ("samples", "resumed_by_second")}
        print(json.dumps({name: brief}), flush=True)
        dump(RESULTS / filename, result)


if __name__ == "__main__":
    main()
