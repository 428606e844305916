"""`make bench`'s side-by-side run: ecsrole and the AWS Controllers for Kubernetes IAM controller
on the same workload, one at a time, on this machine.

    .venv/bin/python -m bench.peer [--sizes 200,1000]        (BENCH_PEER=0 make bench skips it)

Each run gets a fresh kube-apiserver (auditing every write) and a fresh moto, with one counting
proxy between the operator and moto, so one instrument counts both operators' AWS calls, and the
API server's audit log counts both operators' Kubernetes writes by user agent. The workload is
the role AWS documents for ECS task execution: the ecs-tasks trust policy and the managed policy
AmazonECSTaskExecutionRolePolicy, N roles applied at once in one account.

ACK runs as its Helm chart runs it (one worker, no leader election), built from its Go module
(hack/ack/build.sh, which also provides its CRDs), with `--reconcile-default-resync-seconds`
equal to ecsrole's drift interval, and once more at its default (10 h).
Results: bench/results/peer-<operator>-<size>[-default].json and bench/results/peer.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.stack import IMAGE_ENV, dump, process_rss_mb, quiet_for
from tests.stack.controlplane import ControlPlane
from tests.stack.faults import FaultProxy
from tests.stack.kube import Kubectl
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import REPO_ROOT, OperatorProcess, dev_config
from tests.stack.processes import ChildProcess, free_port, wait_until
from tests.stack.resources import SEED_POLICY, SEED_TRUST, role_manifest

RESULTS = Path("bench/results")
NAMESPACE = "bench"
INTERVAL_SECONDS = 60  # ecsrole's default driftCheckInterval, and ACK's resync in the like run
ACK_DEFAULT_RESYNC_SECONDS = 36000  # the ACK chart's reconcile.defaultResyncPeriod
ECSROLE_CALLS_PER_SECOND = 100
STEADY_SECONDS = 120.0
#: The creation burst is over, and the rest window begins, once the operator has gone this long
#: without a creating IAM call and without posting an Event. Neither operator does either at
#: rest (their rest is reads, and ACK's status patches on every resync, which are what the rest
#: window measures), so the wait ends for both, however long the burst's tail.
BURST_QUIET_SECONDS = 10.0
CREATING_ACTIONS = frozenset({"CreateRole", "AttachRolePolicy", "PutRolePolicy", "TagRole"})
DRIFT_CHANGES = 10
DRIFT_STAGGER_SECONDS = 6.0
DEFAULTS_DRIFT_WINDOW_SECONDS = 120.0
ACK_KIND = "roles.iam.services.k8s.aws"
ECSROLE_KIND = "ecsexecutionroles.iam.ecsrole.dev"


@dataclass(frozen=True)
class AuditWrite:
    """One write in the API server's audit log: when, by which user agent, what."""

    at: float  # wall clock, seconds
    agent: str  # the user agent's first word, e.g. "ecsrole/0.1.0" or "controller/v0.0.0"
    verb: str
    resource: str

    @property
    def key(self) -> str:
        return f"{self.agent} {self.verb} {self.resource}"

    @classmethod
    def parse(cls, event: dict[str, Any]) -> AuditWrite | None:
        """None for what no operator did: Leases, the API server's upkeep, the bench's kubectl."""
        agent = str(event.get("userAgent", ""))
        resource = str(event.get("objectRef", {}).get("resource", ""))
        if agent.startswith(("kubectl", "kube-apiserver")) or resource == "leases":
            return None
        at = datetime.datetime.fromisoformat(
            event["requestReceivedTimestamp"].replace("Z", "+00:00")
        ).timestamp()
        return cls(at, agent.split(" ", 1)[0], str(event["verb"]), resource)


class AuditedControlPlane(ControlPlane):
    """The benchmark's API server: every write by anyone in the audit log (metadata only)."""

    def _write_audit_policy(self) -> Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {
                    "level": "Metadata",
                    "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                },
                {"level": "None"},
            ],
        }
        path = self.workdir / "audit-policy.json"
        path.write_text(json.dumps(policy))
        return path


def ack_build() -> Path:
    """The folder with ACK's `controller` binary and `crds/` (hack/ack/build.sh, cached)."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "ack" / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"hack/ack/build.sh failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def ack_manifest(name: str) -> dict[str, Any]:
    """The same role as ecsrole's, as an ACK Role: trust document and managed policy."""
    return {
        "apiVersion": "iam.services.k8s.aws/v1alpha1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "name": name,
            "assumeRolePolicyDocument": json.dumps(SEED_TRUST),
            "policies": [SEED_POLICY],
        },
    }


@dataclass
class PeerStack:
    operator: str  # ecsrole | ack
    resync_seconds: int
    workdir: Path
    plane: ControlPlane
    moto: MotoServer
    proxy: FaultProxy
    kubectl: Kubectl
    process: ChildProcess
    pid: int
    stopper: Callable[[], None]
    ready_condition: str = "Ready"
    kind: str = ECSROLE_KIND
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, workdir: Path, operator: str, resync_seconds: int) -> PeerStack:
        plane = AuditedControlPlane(workdir / "controlplane").start()
        moto = MotoServer(workdir / "moto").start()
        proxy = FaultProxy(moto.url).start()
        kubectl = Kubectl(plane.kubectl_path, plane.kubeconfig)
        kubectl.create_namespace(NAMESPACE)
        aws_env = proxy.aws_env(moto.aws_env())
        if operator == "ecsrole":
            kubectl.install_crd()
            config = dev_config(
                "bench",
                {
                    DEFAULT_ACCOUNT_ID: {
                        "namespaces": [NAMESPACE],
                        "maxCallsPerSecond": ECSROLE_CALLS_PER_SECOND,
                    }
                },
                driftCheckInterval=f"{resync_seconds}s",
            )
            process = OperatorProcess(
                workdir / "operator",
                config=config,
                kubeconfig=plane.kubeconfig,
                aws_env=aws_env,
                namespaces=[NAMESPACE],
                log_level="WARNING",
                extra_env=IMAGE_ENV,
            ).start()
            assert process.child.pid is not None
            return cls(
                operator,
                resync_seconds,
                workdir,
                plane,
                moto,
                proxy,
                kubectl,
                process.child,
                process.child.pid,
                process.stop,
            )
        build = ack_build()
        kubectl("apply", "--server-side", "-f", str(build / "crds"))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{ACK_KIND}")
        kubectl.create_namespace("ack-system")
        health = free_port()
        argv = [
            str(build / "controller"),
            "--aws-region=us-east-1",
            f"--aws-endpoint-url={proxy.url}",
            f"--aws-identity-endpoint-url={proxy.url}",
            "--allow-unsafe-aws-endpoint-urls",
            "--log-level=info",
            f"--watch-namespace={NAMESPACE}",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--healthz-addr=127.0.0.1:{health}",
            f"--reconcile-default-resync-seconds={resync_seconds}",
            "--reconcile-default-max-concurrent-syncs=1",  # the chart's default
        ]
        env = {
            **aws_env,
            "KUBECONFIG": str(plane.kubeconfig),
            "ACK_SYSTEM_NAMESPACE": "ack-system",
            "HOME": str(workdir),
            "PATH": "/usr/bin:/bin",
        }
        child = ChildProcess("ack-iam-controller", argv, workdir / "ack.log", env=env).start()

        def healthy() -> bool:
            child.ensure_alive()
            url = f"http://127.0.0.1:{health}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)

        wait_until(healthy, timeout=60, what="ACK iam-controller /healthz")
        assert child.pid is not None
        return cls(
            operator,
            resync_seconds,
            workdir,
            plane,
            moto,
            proxy,
            kubectl,
            child,
            child.pid,
            child.stop,
            ready_condition="ACK.ResourceSynced",
            kind=ACK_KIND,
        )

    def manifest(self, name: str) -> dict[str, Any]:
        if self.operator == "ecsrole":
            return role_manifest(name, name, namespace=NAMESPACE)
        return ack_manifest(name)

    def apply(self, documents: Iterable[dict[str, Any]]) -> None:
        text = yaml.safe_dump_all(list(documents))
        self.kubectl("apply", "--server-side", "-f", "-", input=text, timeout=900)

    def ready_count(self) -> int:
        path = (
            'jsonpath={range .items[*]}{range .status.conditions[?(@.type=="'
            + self.ready_condition
            + '")]}{.status}{"\\n"}{end}{end}'
        )
        result = self.kubectl("get", self.kind, "-n", NAMESPACE, "-o", path, timeout=120)
        return sum(1 for line in result.stdout.split() if line == "True")

    def iam_calls(self, since: int = 0) -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self.proxy.calls(since):
            key = f"{call.service}:{call.action}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def audit_writes(self) -> Iterator[AuditWrite]:
        """The audit log's writes so far; Leases, the API server's own upkeep and the benchmark's
        kubectl left out."""
        for line in self.plane.audit_log.read_text().splitlines():
            write = AuditWrite.parse(json.loads(line))
            if write is not None:
                yield write

    def k8s_writes(self, since: float, until: float) -> dict[str, int]:
        """Writes between two wall-clock times, by user agent, verb and resource."""
        counts: dict[str, int] = {}
        for write in self.audit_writes():
            if since <= write.at < until:
                counts[write.key] = counts.get(write.key, 0) + 1
        return counts

    def burst_activity(self) -> tuple[int, int]:
        """How many creating IAM calls and Event posts the operator has made so far."""
        creating = sum(1 for c in self.proxy.calls() if c.action in CREATING_ACTIONS)
        events = sum(
            1 for w in self.audit_writes() if w.resource == "events" and w.verb == "create"
        )
        return creating, events

    def rss_mb(self) -> float:
        return round(process_rss_mb(self.pid), 1)

    def stop(self) -> None:
        self.stopper()
        self.proxy.stop()
        self.moto.stop()
        self.plane.stop()


def _attached(stack: PeerStack, role: str) -> bool:
    iam = stack.moto.client("iam")
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    return any(p["PolicyArn"] == SEED_POLICY for p in attached)


def drift_repairs(stack: PeerStack, roles: list[str], timeout: float) -> list[float | None]:
    """Detach the managed policy from each role, DRIFT_STAGGER_SECONDS apart; seconds until each
    was attached again (None: not within `timeout` of its change)."""
    iam = stack.moto.client("iam")
    changed: dict[str, float] = {}
    repaired: dict[str, float] = {}
    to_change = list(roles)
    next_change = time.monotonic()

    def waiting() -> bool:
        return bool(to_change) or any(
            time.monotonic() - changed[r] < timeout for r in roles if r not in repaired
        )

    # One poll loop: the changes go out on their stagger (pacing), the repairs are watched
    # throughout (every 0.5 s: the resolution of the figure).
    while waiting():
        if to_change and time.monotonic() >= next_change:
            role = to_change.pop(0)
            iam.detach_role_policy(RoleName=role, PolicyArn=SEED_POLICY)
            changed[role] = time.monotonic()
            next_change = changed[role] + DRIFT_STAGGER_SECONDS
        for role in changed:
            if role not in repaired and _attached(stack, role):
                repaired[role] = time.monotonic() - changed[role]
        time.sleep(0.5)
    return [
        round(repaired[r], 1) if r in repaired and repaired[r] <= timeout else None for r in roles
    ]


def _p50(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def peer_run(
    workdir: Path, operator: str, size: int, resync_seconds: int, *, drift: str | None
) -> dict[str, Any]:
    """One operator, one size: creation, rest, and (drift="interval"|"defaults") repairs."""
    stack = PeerStack.start(workdir, operator, resync_seconds)
    try:
        names = [f"peer-{i}" for i in range(size)]
        rss_idle = stack.rss_mb()
        started = time.monotonic()
        stack.apply(stack.manifest(n) for n in names)
        wait_until(lambda: stack.ready_count() >= size, timeout=3600, what="all Ready", interval=2)
        all_ready = time.monotonic() - started
        creation_calls = stack.iam_calls()
        creation_iam = sum(v for k, v in creation_calls.items() if k.startswith("iam:"))
        burst_tail = quiet_for(
            stack.burst_activity,
            seconds=BURST_QUIET_SECONDS,
            what="the operator's creating IAM calls and Event posts",
        )
        mark = stack.proxy.mark()
        rest_from = time.time()
        time.sleep(STEADY_SECONDS)
        rest_until = time.time()
        rest_calls = stack.iam_calls(mark)
        rest_iam = sum(v for k, v in rest_calls.items() if k.startswith("iam:"))
        writes = stack.k8s_writes(rest_from, rest_until)
        minutes = STEADY_SECONDS / 60
        result: dict[str, Any] = {
            "operator": operator,
            "version": "ack iam-controller v1.5.0" if operator == "ack" else "ecsrole",
            "size": size,
            "resync_seconds": resync_seconds,
            "all_ready_seconds": round(all_ready, 1),
            "burst_tail_seconds": burst_tail,
            "iam_calls_per_role_during_creation": round(creation_iam / size, 2),
            "creation_calls_by_action": creation_calls,
            "rest_window_seconds": STEADY_SECONDS,
            "iam_calls_per_role_per_minute_at_rest": round(rest_iam / size / minutes, 4),
            "rest_calls_by_action": rest_calls,
            "k8s_writes_per_minute_at_rest": round(sum(writes.values()) / minutes, 1),
            "k8s_writes_at_rest_by_agent_verb_resource": writes,
            "rss_mb_idle": rss_idle,
            "rss_mb_at_rest": stack.rss_mb(),
        }
        if drift is not None:
            victims = names[:: max(1, size // DRIFT_CHANGES)][:DRIFT_CHANGES]
            timeout = (
                DEFAULTS_DRIFT_WINDOW_SECONDS if drift == "defaults" else 3.0 * INTERVAL_SECONDS
            )
            repairs = drift_repairs(stack, victims, timeout)
            done = [r for r in repairs if r is not None]
            result["drift"] = {
                "mode": drift,
                "changes": len(victims),
                "stagger_seconds": DRIFT_STAGGER_SECONDS,
                "timeout_seconds": timeout,
                "repaired": len(done),
                "repair_seconds": repairs,
                "p50_seconds": _p50(done),
            }
        return result
    finally:
        stack.stop()


#: (operator, size, resync seconds, drift measurement, result file)
PLAN = [
    ("ecsrole", 200, INTERVAL_SECONDS, "interval", "peer-ecsrole-200.json"),
    ("ack", 200, INTERVAL_SECONDS, "interval", "peer-ack-200.json"),
    ("ack", 200, ACK_DEFAULT_RESYNC_SECONDS, "defaults", "peer-ack-200-default.json"),
    ("ecsrole", 1000, INTERVAL_SECONDS, None, "peer-ecsrole-1000.json"),
    ("ack", 1000, INTERVAL_SECONDS, None, "peer-ack-1000.json"),
]


def run(sizes: Iterable[int], only: str | None = None) -> list[dict[str, Any]]:
    results = []
    wanted = set(sizes)
    for operator, size, resync, drift, filename in PLAN:
        if size not in wanted or (only and operator != only):
            continue
        with tempfile.TemporaryDirectory(prefix=f"ecsrole-peer-{operator}-") as folder:
            result = peer_run(Path(folder), operator, size, resync, drift=drift)
        print(json.dumps({k: v for k, v in result.items() if not k.endswith("by_action")}))
        dump(RESULTS / filename, result)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer")
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--only", choices=("ecsrole", "ack"))
    args = parser.parse_args()
    run((int(s) for s in args.sizes.split(",") if s), args.only)
    from bench.report import write_peer_table

    print(write_peer_table())


if __name__ == "__main__":
    main()
