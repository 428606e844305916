"""`make dev`, `make dev-up`, `make dev-down`: the local stack a newcomer runs.

State lives in `.dev/` (git-ignored; ECSROLE_DEV_DIR chooses another folder): pids and ports in `state.json`, logs, the kubeconfig, the
operator's config, and `env` (shell exports for kubectl and boto3/the AWS CLI). `up` is
idempotent: it starts only what is not running, so it also restarts a killed operator.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.stack.controlplane import ControlPlane, control_plane_binaries
from tests.stack.kube import Kubectl, wait_for_condition
from tests.stack.manifests import helm_binary
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import pid_alive, terminate_group, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_DIR = Path(os.environ.get("ECSROLE_DEV_DIR") or REPO_ROOT / ".dev")
STATE_PATH = DEV_DIR / "state.json"
# The operator's two fixed dev ports (everything else takes a free port), and the variables
# that choose others.
PORTS = {"metrics": ("ECSROLE_DEV_METRICS_PORT", 8080), "health": ("ECSROLE_DEV_HEALTH_PORT", 8081)}
EXAMPLE = REPO_ROOT / "examples" / "ecsexecutionrole-minimal.yaml"
EXAMPLE_NAMESPACE = "default"


def _load_state() -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(STATE_PATH.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return state


def _save_state(state: dict[str, Any]) -> None:
    DEV_DIR.mkdir(exist_ok=True)
    STATE_PATH.write_text(json.dumps(state, indent=2))


def _alive(state: dict[str, Any], *names: str) -> bool:
    return all(state.get(name) and pid_alive(int(state[name])) for name in names)


def _say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


class DevError(Exception):
    """Something the newcomer must fix before the stack can start; one line says what."""


def _port(which: str) -> int:
    variable, default = PORTS[which]
    value = os.environ.get(variable, "").strip() or str(default)
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise DevError(f"{variable}={value!r} is not a TCP port number (1-65535)")
    return int(value)


def _address(which: str) -> str:
    return f"127.0.0.1:{_port(which)}"


def check_ports() -> None:
    """Fail at once, naming the port and its variable, when a fixed dev port is taken.

    Run before anything starts: otherwise the operator cannot bind it and `up` waits for a
    liveness endpoint that never answers.
    """
    for which, (variable, _) in PORTS.items():
        port = _port(which)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise DevError(
                    f"port 127.0.0.1:{port} (the operator's {which} endpoint) is already in use; "
                    f"stop what listens there, or choose another port: {variable}=<port> make dev"
                ) from None


def _ensure_control_plane(state: dict[str, Any]) -> tuple[Kubectl, bool]:
    """The running control plane, or a fresh one; True when it was (re)started."""
    binaries = control_plane_binaries()
    kubeconfig = DEV_DIR / "controlplane" / "kubeconfig"
    if _alive(state, "etcd", "apiserver") and kubeconfig.exists():
        kubectl = Kubectl(binaries / "kubectl", kubeconfig)
        if kubectl("get", "--raw", "/readyz", check=False).returncode == 0:
            _say(f"control plane already running at {state['apiserver_url']}")
            return kubectl, False
    for name in ("apiserver", "etcd"):
        if state.get(name):
            terminate_group(int(state[name]))
    shutil.rmtree(DEV_DIR / "controlplane", ignore_errors=True)
    _say("starting etcd and kube-apiserver")
    plane = ControlPlane(DEV_DIR / "controlplane", binaries).start()
    assert plane.etcd is not None
    assert plane.apiserver is not None
    state.update(etcd=plane.etcd.pid, apiserver=plane.apiserver.pid, apiserver_url=plane.url)
    _save_state(state)
    return Kubectl(plane.kubectl_path, plane.kubeconfig), True


def _ensure_moto(state: dict[str, Any]) -> tuple[MotoServer, bool]:
    """The running moto server, or a fresh one; True when it was (re)started."""
    if _alive(state, "moto"):
        _say(f"moto already running on port {state['moto_port']}")
        return MotoServer(DEV_DIR / "moto", port=int(state["moto_port"])), False
    _say("starting the moto server (IAM, STS, SQS)")
    server = MotoServer(DEV_DIR / "moto", port=state.get("moto_port")).start()
    assert server.child is not None
    state.update(moto=server.child.pid, moto_port=server.port)
    _save_state(state)
    return server, True


def _operator(kubectl: Kubectl, moto: MotoServer, log_format: str) -> OperatorProcess:
    config = dev_config("dev", {DEFAULT_ACCOUNT_ID: {"namespaces": ["*"]}})
    process = OperatorProcess(
        DEV_DIR / "operator",
        config=config,
        kubeconfig=kubectl.kubeconfig,
        aws_env=moto.aws_env(),
        metrics_port=_port("metrics"),
        health_port=_port("health"),
        log_level="INFO",
    )
    if log_format == "console":
        process.child.argv = [a for a in process.child.argv if not a.startswith("--log-format")]
        process.child.argv.append("--log-format=console")
    return process


def _write_env(kubectl: Kubectl, moto: MotoServer) -> Path:
    exports = {
        "KUBECONFIG": str(kubectl.kubeconfig),
        "PATH": f"{Path(kubectl.binary).parent}:{helm_binary().parent}:{REPO_ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
        **moto.aws_env(),
        "ECSROLE_METRICS_URL": f"http://{_address('metrics')}/metrics",
    }
    exports.pop("AWS_CONFIG_FILE", None)
    exports.pop("AWS_SHARED_CREDENTIALS_FILE", None)
    env_path = DEV_DIR / "env"
    env_path.write_text("".join(f"export {k}='{v}'\n" for k, v in exports.items()))
    return env_path


def _apply_examples(kubectl: Kubectl) -> None:
    """Install the CRD, apply the example and wait until the operator made it Ready."""
    kubectl.install_crd()
    kubectl.apply(EXAMPLE.read_text(), namespace=EXAMPLE_NAMESPACE)
    name = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    wait_for_condition(kubectl, EXAMPLE_NAMESPACE, name, "Ready", timeout=120)


def up() -> int:
    """Start what is not running and return once the operator is healthy."""
    state = _load_state()
    if not _alive(state, "operator"):
        check_ports()
    kubectl, plane_restarted = _ensure_control_plane(state)
    moto, moto_restarted = _ensure_moto(state)
    operator = _operator(kubectl, moto, "json")
    if (plane_restarted or moto_restarted) and state.get("operator"):
        # It was talking to processes that are gone; start it against the new ones.
        terminate_group(int(state.pop("operator")))
    if _alive(state, "operator"):
        _say(f"operator already running (pid {state['operator']})")
    else:
        _say("starting the operator")
        operator.start()
        state["operator"] = operator.child.pid
        _save_state(state)
    (DEV_DIR / "operator.pid").write_text(f"{state['operator']}\n")
    operator.wait_healthy()
    _apply_examples(kubectl)
    env_path = _write_env(kubectl, moto)
    _say("ready. Try:")
    print(
        f"  source {env_path.relative_to(REPO_ROOT)}\n  kubectl get ecsexecutionroles -A\n"
        f"  curl -s $ECSROLE_METRICS_URL | grep ^ecsrole_\n  operator log: .dev/operator/operator.log"
    )
    return 0


def down() -> int:
    """Stop everything `up` started; leave no process behind."""
    state = _load_state()
    for name in ("operator", "moto", "apiserver", "etcd"):
        if state.get(name):
            terminate_group(int(state[name]))
            _say(f"stopped {name}")
    STATE_PATH.unlink(missing_ok=True)
    (DEV_DIR / "operator.pid").unlink(missing_ok=True)
    return 0


def foreground() -> int:
    """`make dev`: the stack, with the operator's log on this terminal; Ctrl-C stops it all."""
    state = _load_state()
    if state.get("operator"):
        terminate_group(int(state.pop("operator")))
    check_ports()
    kubectl, _ = _ensure_control_plane(state)
    moto, _ = _ensure_moto(state)
    kubectl.install_crd()
    env_path = _write_env(kubectl, moto)
    operator = _operator(kubectl, moto, "console")
    argv = list(operator.child.argv)
    env = operator.child.env
    _say(
        f"in another terminal: source {env_path.relative_to(REPO_ROOT)} && kubectl get ecsexecutionroles -A"
    )
    process = subprocess.Popen(argv, env=dict(env) if env else None)
    state["operator"] = process.pid
    _save_state(state)
    (DEV_DIR / "operator.pid").write_text(f"{process.pid}\n")
    try:
        wait_until(lambda: _healthy(operator), timeout=60, what="operator liveness")
        _apply_examples(kubectl)
        _say("example applied; Ctrl-C stops everything")
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    finally:
        down()
    return 0


def _healthy(operator: OperatorProcess) -> bool:
    import urllib.request

    with urllib.request.urlopen(operator.health_url, timeout=2) as response:  # noqa: S310
        return bool(response.status == 200)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack.dev")
    parser.add_argument("command", choices=("up", "down", "run"))
    command = parser.parse_args().command
    try:
        if command == "up":
            return up()
        if command == "down":
            return down()
        return foreground()
    except DevError as error:
        print(f"[dev] error: {error}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
