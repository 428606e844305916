"""How long a matching namespace created now waits before the operator serves it.

`python -m bench.nspickup --mode MODE --iterations N` starts a control plane, moto and one
operator that serves the namespaces `pickup-*` (a glob, as the e2e suite's shared operator
serves `shared-*`), running as the chart's ServiceAccount, through a TCP proxy that can cut it
off the API server. Then, N times: it creates a namespace `pickup-<hex>` and one
EcsExecutionRole in it, and records the seconds from the namespace's creation to the first
status the operator writes (observedGeneration >= 1). Older namespaces are deleted with
--wait=false, as the e2e fixtures do (they never finish deleting: no controller manager).

MODE decides what happens just before each namespace is created:

- `steady`: nothing (the operator has been running for a while);
- `startup`: the operator is restarted and the namespace created as soon as /healthz answers
  (what the e2e suite does with its session's shared operator and first namespace);
- `restart`: kube-apiserver is restarted (its watch cache forgets every resource version, so
  the operator's watches end with 410 Gone and list again) and the namespace is created as soon
  as it is ready: a race with the operator's relisting;
- `cut`: the proxy cuts the operator off, kube-apiserver is restarted, the namespace and its
  resource are created, and only then is the operator let back: its namespace watch can only
  restart with a new listing that already holds the namespace (forced, no race).

A namespace not served within --timeout is then deleted (the deletion is a MODIFIED event of
the namespace), and the seconds until it is served after that are recorded too. The operator
log says when each namespace's watch started and when the namespace watch restarted.
Results: bench/results/nspickup-<mode>[-<label>].json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.stack import identity, manifests
from tests.stack.controlplane import ControlPlane
from tests.stack.kube import Kubectl
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import WaitTimeoutError, eventually
from tests.stack.resources import role_manifest
from tests.stack.tcpproxy import TcpProxy, kubeconfig_through

RESULTS = Path(__file__).resolve().parent / "results"
PREFIX = "pickup-"
KIND = "ecsexecutionroles.iam.ecsrole.dev"
MODES = ("steady", "startup", "restart", "cut")


def first_status(kubectl: Kubectl, namespace: str, name: str) -> bool:
    """True once the operator has written a status (the CRD's default is observedGeneration 0)."""
    body = kubectl.get_json(KIND, name, namespace) or {}
    return int((body.get("status") or {}).get("observedGeneration") or 0) >= 1


def log_times(log: Path, needle: str) -> list[float]:
    """Epoch seconds of the operator's JSON log lines whose message contains `needle`."""
    times = []
    for raw in log.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if needle in str(line.get("event", "")) and "timestamp" in line:
            stamp = datetime.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
            times.append(stamp.timestamp())
    return times


class Bench:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.plane = ControlPlane(workdir / "controlplane").start()
        self.moto = MotoServer(workdir / "moto").start()
        self.kubectl = Kubectl(self.plane.kubectl_path, self.plane.kubeconfig)
        self.kubectl.install_crd()
        who = identity.install(self.kubectl, manifests.helm_binary(), workdir / "identity")
        port = int(self.plane.url.rsplit(":", 1)[1])
        self.proxy = TcpProxy("127.0.0.1", port).start()
        self.kubeconfig = kubeconfig_through(self.proxy, who.kubeconfig, workdir / "kubeconfig")
        self.lease_namespace = who.namespace
        self.logs: list[Path] = []
        self.operator = self.new_operator()
        self.namespaces: list[str] = []

    def new_operator(self) -> OperatorProcess:
        """An operator with a lease of its own, so that a successor never waits for the lease
        of one stopped right after its start (a SIGTERM during the lease acquisition used to be
        lost, and the process kept its lease until it was killed)."""
        accounts = {DEFAULT_ACCOUNT_ID: {"namespaces": [f"{PREFIX}*"]}}
        operator = OperatorProcess(
            self.workdir / f"operator-{len(self.logs)}",
            config=dev_config("nspickup", accounts),
            kubeconfig=self.kubeconfig,
            aws_env=self.moto.aws_env(),
            namespaces=[f"{PREFIX}*"],
            lease_namespace=self.lease_namespace,
            lease_duration=300.0,  # the `cut` mode keeps it off the API server for a while
        )
        self.logs.append(operator.log_path)
        return operator.start()

    def close(self) -> None:
        self.operator.stop()
        self.proxy.stop()
        self.moto.stop()
        self.plane.stop()

    def before(self, mode: str) -> None:
        if mode == "startup":
            self.operator.stop()
            self.operator = self.new_operator()
        elif mode == "restart":
            self.plane.restart_apiserver()

    def served_within(self, namespace: str, *, since: float) -> float | None:
        """Seconds from `since` until the operator wrote the resource's first status in
        `namespace`; None when it did not within the timeout."""
        try:
            eventually(
                lambda: first_status(self.kubectl, namespace, "web"),
                what=f"the first status in {namespace}",
                timeout=self.args.timeout,
                interval=0.25,
            )
        except WaitTimeoutError:
            return None
        return round(time.time() - since, 2)

    def iteration(self, index: int, mode: str) -> dict[str, Any]:
        name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
        if mode == "cut":
            self.proxy.cut()
            self.plane.restart_apiserver()
        else:
            self.before(mode)
        created = time.time()
        self.kubectl.create_namespace(name)
        self.kubectl.apply(role_manifest("web", f"nspickup-{name}", namespace=name))
        if mode == "cut":
            self.proxy.restore()
        self.namespaces.append(name)
        record: dict[str, Any] = {"index": index, "namespace": name, "created": created}
        record["served_after"] = self.served_within(name, since=created)
        if record["served_after"] is None:
            # Not served: does the namespace's own change (its deletion) get it served?
            deleted = time.time()
            self.kubectl.delete_namespace_nowait(name)
            record["served_after_deletion"] = self.served_within(name, since=deleted)
        starts = log_times(self.operator.log_path, f"in '{name}'")
        record["watch_started_after"] = round(min(starts) - created, 2) if starts else None
        for old in self.namespaces[:-2]:
            self.kubectl.delete_namespace_nowait(old)
        self.namespaces = self.namespaces[-2:]
        print(json.dumps(record), flush=True)
        return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=MODES, default="steady")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds per namespace")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between iterations")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--label", default="", help="added to the results file's name")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nspickup-"))
    bench = Bench(workdir, args)
    records = []
    try:
        for index in range(args.iterations):
            records.append(bench.iteration(index, args.mode))
            time.sleep(args.pause)  # pacing only, not synchronisation
    finally:
        bench.close()
    served = [r["served_after"] for r in records if r["served_after"] is not None]
    summary = {
        "mode": args.mode,
        "iterations": len(records),
        "missed": sum(r["served_after"] is None for r in records),
        "served_median": statistics.median(served) if served else None,
        "served_max": max(served) if served else None,
        "namespace_watch_restarts": sum(
            len(log_times(log, "Restarting the watch-stream for namespaces")) for log in bench.logs
        ),
        "operator_logs": [str(log) for log in bench.logs],
        "audit_log": str(bench.plane.audit_log),
        "records": records,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"nspickup-{args.mode}{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "records"}, indent=2))


if __name__ == "__main__":
    main()
