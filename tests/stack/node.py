"""A real single-node cluster on loopback for `make test-cluster` (root only).

Beside the control plane of tests/stack/controlplane.py (here with ServiceAccount tokens and a
serving certificate valid for kubernetes.default.svc), it runs kube-controller-manager,
kube-scheduler, containerd (Debian's 1.6, with runc) and a kubelet (cgroupfs driver), all
built from the same pins. Pods use the host network; there is no pod network and no
kube-proxy, so pods reach the API server at 127.0.0.1 (KUBERNETES_SERVICE_HOST/PORT).

The kubelet changes the host: three sysctls, iptables chains, cgroups, mounts (volumes,
container root filesystems). `HostState` records them before the start, and `Node.stop`
puts every one back, kills only processes this node started (its children, and the shims
and containers that carry this node's paths or cgroups), even after a failed run.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.stack.controlplane import REPO_ROOT, ControlPlane
from tests.stack.kube import Kubectl
from tests.stack.processes import ChildProcess, free_port, pid_alive, wait_until

NODE_BUILD_SCRIPT = REPO_ROOT / "hack" / "node" / "build.sh"
IMAGE_BUILD_SCRIPT = REPO_ROOT / "hack" / "image" / "build.sh"
PAUSE_IMAGE_SCRIPT = REPO_ROOT / "hack" / "image" / "pause.sh"
#: What the kubelet writes (pkg/kubelet/cm: setupKernelTunables), restored at teardown.
KUBELET_SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
IPTABLES_TABLES = ("filter", "nat", "mangle")
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service's ClusterIP: first address of the range
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _script_output(script: Path, *args: str) -> str:
    result = subprocess.run(
        ["bash", str(script), *args], check=True, stdout=subprocess.PIPE, text=True
    )
    return result.stdout.strip().splitlines()[-1]


def node_binaries() -> Path:
    """kubelet, kube-controller-manager, kube-scheduler and pause, built once per pin."""
    return Path(_script_output(NODE_BUILD_SCRIPT))


def operator_image_archive() -> Path:
    """The operator image built from the Dockerfile (a docker-archive), built once per input."""
    return Path(_script_output(IMAGE_BUILD_SCRIPT))


def pause_image_archive(pause_binary: Path) -> tuple[Path, str]:
    """The pod sandbox image (docker-archive, reference), from the pause binary."""
    archive = Path(_script_output(PAUSE_IMAGE_SCRIPT, str(pause_binary)))
    return archive, _archive_reference(archive)


def _archive_reference(archive: Path) -> str:
    """The one image reference a docker-archive carries (its manifest.json RepoTags)."""
    listing = subprocess.run(
        ["tar", "-xOf", str(archive), "manifest.json"], check=True, capture_output=True
    )
    tags: list[str] = json.loads(listing.stdout)[0]["RepoTags"]
    return tags[0]


# --- what the host looks like before, and putting it back ----------------------------------


def _iptables(family: str) -> tuple[str, str] | None:
    binary = "ip6tables" if family == "6" else "iptables"
    save = shutil.which(f"{binary}-save")
    cmd = shutil.which(binary)
    return (save, cmd) if save and cmd else None


def _kubelets(line: str) -> bool:
    """A chain or rule the kubelet makes: every one names a KUBE-* chain. Nothing else on the
    host (other test suites run here too) is ever touched."""
    return "KUBE-" in line


def _iptables_dump(family: str, table: str) -> tuple[set[str], list[str]]:
    """(chains, rules as `-A CHAIN ...` lines) of one table that the kubelet may have made."""
    tools = _iptables(family)
    if tools is None:
        return set(), []
    result = subprocess.run([tools[0], "-t", table], capture_output=True, text=True, check=False)
    chains, rules = set(), []
    for line in result.stdout.splitlines():
        if line.startswith(":") and _kubelets(line):
            chains.add(line[1:].split()[0])
        elif line.startswith("-A ") and _kubelets(line):
            rules.append(line)
    return chains, rules


@dataclass
class HostState:
    """The host settings the node may change, as they were before it started."""

    sysctls: dict[str, str] = field(default_factory=dict)
    iptables: dict[tuple[str, str], tuple[set[str], list[str]]] = field(default_factory=dict)

    @classmethod
    def record(cls) -> HostState:
        state = cls()
        for name in KUBELET_SYSCTLS:
            state.sysctls[name] = Path("/proc/sys", name).read_text().strip()
        for family in ("4", "6"):
            for table in IPTABLES_TABLES:
                state.iptables[(family, table)] = _iptables_dump(family, table)
        return state

    def restore(self) -> list[str]:
        """Put back every sysctl and remove the iptables rules and chains added since; return
        what was changed back (for the log)."""
        undone = []
        for name, value in self.sysctls.items():
            path = Path("/proc/sys", name)
            if path.read_text().strip() != value:
                path.write_text(value)
                undone.append(f"sysctl {name}={value}")
        for (family, table), (chains, rules) in self.iptables.items():
            tools = _iptables(family)
            if tools is None:
                continue
            now_chains, now_rules = _iptables_dump(family, table)
            before = set(rules)
            # Rules first (one may jump to a new chain), newest first; then the new chains.
            for rule in reversed(now_rules):
                if rule not in before:
                    argv = shlex.split(rule)
                    subprocess.run(
                        [tools[1], "-w", "-t", table, "-D", *argv[1:]],
                        check=False,
                        capture_output=True,
                    )
                    undone.append(f"ip{family} {table}: {rule}")
            for chain in sorted(now_chains - chains):
                subprocess.run(
                    [tools[1], "-w", "-t", table, "-F", chain], check=False, capture_output=True
                )
                subprocess.run(
                    [tools[1], "-w", "-t", table, "-X", chain], check=False, capture_output=True
                )
                undone.append(f"ip{family} {table}: chain {chain}")
        return undone

    def differences(self) -> list[str]:
        """What still differs from the recorded state (empty when everything is back)."""
        found = []
        for name, value in self.sysctls.items():
            now = Path("/proc/sys", name).read_text().strip()
            if now != value:
                found.append(f"sysctl {name} is {now}, was {value}")
        for (family, table), (chains, rules) in self.iptables.items():
            now_chains, now_rules = _iptables_dump(family, table)
            found += [f"ip{family} {table}: new chain {c}" for c in sorted(now_chains - chains)]
            found += [f"ip{family} {table}: new rule {r}" for r in now_rules if r not in set(rules)]
        return found


def _mounts_under(prefix: Path) -> list[Path]:
    """Mount points at or below `prefix`, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(prefix) or point.startswith(f"{prefix}/"):
            points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def _cgroup_dirs(name: str) -> list[Path]:
    """This node's cgroup root in every mounted hierarchy (cgroup v1 and v2)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        fstype = parts[parts.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(parts[4]) / name)
    return found


def _pids_in_cgroups(roots: list[Path]) -> set[int]:
    pids: set[int] = set()
    for root in roots:
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return pids


def _pids_with_argument(text: str) -> set[int]:
    """Processes whose command line mentions `text` (this node's unique paths)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (proc / "cmdline").read_bytes():
                    pids.add(int(proc.name))
    pids.discard(os.getpid())
    return pids


# --- the node ---------------------------------------------------------------------------


class Node:
    """The control plane plus the node components, started and stopped as one."""

    def __init__(self, workdir: Path) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.name = f"ecsrole-node-{self.id}"
        self.workdir = workdir
        # Unix socket paths are limited to 108 bytes; the pytest tmp path can be longer.
        self.run_dir = Path(f"/run/ecsrole-node-{self.id}")
        self.cgroup_name = f"ecsrole-node-{self.id}"
        self.binaries = node_binaries()
        self.control_plane = ControlPlane(
            workdir / "controlplane",
            serving_names=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            serving_ips=(SERVICE_IP,),
            service_account_admission=True,
            apiserver_args=(
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
            ),
        )
        self.host_state: HostState | None = None
        self.stopped = False
        self.operator_image = ""
        self.children: list[ChildProcess] = []
        self.kubectl: Kubectl | None = None
        self.containerd_socket = self.run_dir / "containerd.sock"
        self.kubelet_dir = workdir / "kubelet"
        self.containerd_dir = workdir / "containerd"

    # -- start

    def start(self, timeout: float = 180.0) -> Node:
        self.host_state = HostState.record()
        try:
            self.run_dir.mkdir(mode=0o700)
            self.control_plane.start()
            self.kubectl = Kubectl(self.control_plane.kubectl_path, self.control_plane.kubeconfig)
            self._add_kubelet_client_certificate()
            self._start_containerd()
            self._import_images()
            self._start_controllers()
            self._start_kubelet()
            self._initialize_node(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _add_kubelet_client_certificate(self) -> None:
        """kube-apiserver's client certificate for the kubelet API (logs, exec)."""
        credentials = self.control_plane.credentials
        cert, key = credentials.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet", "system:masters"
        )
        # Restart the API server with it; etcd, port and certificates stay.
        self.control_plane.apiserver_args += (
            f"--kubelet-client-certificate={cert}",
            f"--kubelet-client-key={key}",
            f"--kubelet-certificate-authority={credentials.ca_cert}",
        )
        assert self.control_plane.apiserver is not None
        argv = [a for a in self.control_plane.apiserver.argv if not a.startswith("--kubelet-c")]
        argv += list(self.control_plane.apiserver_args[-3:])
        self.control_plane.apiserver.argv = argv
        self.control_plane.restart_apiserver()

    def _ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )

    def _start_containerd(self) -> None:
        root = self.containerd_dir
        (root / "cni").mkdir(parents=True)
        # No pod network: every test pod uses the host network. A loopback-only CNI network
        # makes the runtime report NetworkReady, which the kubelet needs to mark the node Ready.
        (root / "cni" / "10-loopback.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "loopback-only",
                    "plugins": [{"type": "loopback"}],
                }
            )
        )
        spec = self._base_runtime_spec()
        self.pause_archive, self.pause_image = pause_image_archive(self.binaries / "pause")
        config = f"""
version = 2
root = "{root / "root"}"
state = "{self.run_dir / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.run_dir / "containerd.ttrpc.sock"}"
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # The VM lacks CAP_SYS_RESOURCE: a container may not lower its OOM score below containerd's.
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root / "cni"}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      base_runtime_spec = "{spec}"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"""
        config_path = root / "config.toml"
        config_path.write_text(config)
        child = ChildProcess(
            "containerd",
            ["containerd", f"--config={config_path}"],
            self.workdir / "containerd.log",
        ).start()
        self.children.append(child)

        def ready() -> bool:
            child.ensure_alive()
            self._ctr("version", timeout=10)
            return True

        wait_until(ready, timeout=60, what="containerd")

    def _base_runtime_spec(self) -> Path:
        """containerd's default OCI spec with the rlimits the host allows: the default asks for
        limits that only CAP_SYS_RESOURCE may raise, which this VM does not have."""
        result = subprocess.run(["ctr", "oci", "spec"], capture_output=True, text=True, check=True)
        spec: dict[str, Any] = json.loads(result.stdout)
        limits = []
        for name, which in (
            ("RLIMIT_NOFILE", resource.RLIMIT_NOFILE),
            ("RLIMIT_NPROC", resource.RLIMIT_NPROC),
        ):
            soft, hard = resource.getrlimit(which)
            hard = hard if hard != resource.RLIM_INFINITY else 1048576
            limits.append({"type": name, "hard": hard, "soft": min(hard, max(soft, 1024))})
        spec["process"]["rlimits"] = limits
        spec.pop("hostname", None)
        path = self.containerd_dir / "base-spec.json"
        path.write_text(json.dumps(spec, indent=2))
        return path

    def _import_images(self) -> None:
        self._ctr("images", "import", "--no-unpack", str(self.pause_archive))
        self.image_archive = operator_image_archive()
        self.operator_image = _archive_reference(self.image_archive)
        self._ctr("images", "import", str(self.image_archive))

    def _start_controllers(self) -> None:
        plane = self.control_plane
        credentials = plane.credentials
        common = [f"--kubeconfig={plane.kubeconfig}", "--leader-elect=false", "--v=1"]
        self._spawn(
            "kube-controller-manager",
            [
                *common,
                f"--service-account-private-key-file={credentials.service_account_key}",
                f"--root-ca-file={credentials.ca_cert}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )
        self._spawn(
            "kube-scheduler", [*common, "--bind-address=127.0.0.1", f"--secure-port={free_port()}"]
        )

    def _spawn(self, name: str, args: list[str]) -> ChildProcess:
        child = ChildProcess(
            name, [str(self.binaries / name), *args], self.workdir / f"{name}.log"
        ).start()
        self.children.append(child)
        return child

    def _kubelet_kubeconfig(self) -> Path:
        cert, key = self.control_plane.credentials.issue(
            "kubelet-client", f"system:node:{self.name}", "system:nodes"
        )
        config = json.loads(self.control_plane.kubeconfig.read_text())
        config["users"] = [
            {"name": "admin", "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ]
        path = self.workdir / "kubelet.kubeconfig"
        path.write_text(json.dumps(config))
        return path

    def _start_kubelet(self) -> None:
        credentials = self.control_plane.credentials
        serving_cert, serving_key = credentials.issue(
            "kubelet-serving", self.name, "system:nodes", server=True
        )
        for folder in _cgroup_dirs(self.cgroup_name):
            folder.mkdir(exist_ok=True)
        self.kubelet_port = free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "tlsCertFile": str(serving_cert),
            "tlsPrivateKeyFile": str(serving_key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(credentials.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_name}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "podLogsDir": str(self.workdir / "pod-logs"),
            "resolvConf": "/etc/resolv.conf",
            "clusterDomain": "cluster.local",
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "evictionPressureTransitionPeriod": "5s",
            "serializeImagePulls": False,
            "shutdownGracePeriod": "0s",
            "registerNode": True,
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "localStorageCapacityIsolation": True,
        }
        config_path = self.workdir / "kubelet-config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            [
                f"--config={config_path}",
                f"--kubeconfig={self._kubelet_kubeconfig()}",
                f"--hostname-override={self.name}",
                f"--root-dir={self.kubelet_dir}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                # No cloud: the harness plays the cloud controller and sets the node's address
                # to 127.0.0.1, which the kubelet refuses as --node-ip (a loopback address).
                "--cloud-provider=external",
                "--v=1",
            ],
        )

    def _initialize_node(self, timeout: float) -> None:
        kubectl = self.kubectl
        assert kubectl is not None

        def registered() -> bool:
            self.ensure_alive()
            return kubectl.get_json("node", self.name) is not None

        wait_until(registered, timeout=timeout, what=f"node {self.name} registered")
        patch = {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.name},
                ]
            }
        }
        kubectl(
            "patch",
            "node",
            self.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(patch),
        )
        kubectl(
            "taint",
            "node",
            self.name,
            "node.cloudprovider.kubernetes.io/uninitialized-",
            check=False,
        )

        def ready() -> bool:
            self.ensure_alive()
            node = kubectl.get_json("node", self.name) or {}
            conditions = {
                c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])
            }
            taints = node.get("spec", {}).get("taints") or []
            return conditions.get("Ready") == "True" and not taints

        wait_until(ready, timeout=timeout, what=f"node {self.name} Ready and untainted")
        # The default ServiceAccount appears once the controller-manager has run.
        wait_until(
            lambda: kubectl.get_json("serviceaccount", "default", "default") is not None,
            timeout=timeout,
            what="the default ServiceAccount",
        )

    def processes(self, text: str) -> list[int]:
        """Live processes in this node's pod cgroups whose command line mentions `text`."""
        found = []
        for pid in sorted(_pids_in_cgroups(_cgroup_dirs(self.cgroup_name))):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if text.encode() in cmdline and pid_alive(pid):
                    found.append(pid)
        return found

    def container_pid(self, container_id: str) -> int:
        """The host pid of a running container's main process (containerd's task)."""
        listing = self._ctr("tasks", "ls").stdout.splitlines()[1:]
        for line in listing:
            task, pid, *_ = line.split()
            if task == container_id.removeprefix("containerd://"):
                return int(pid)
        raise AssertionError(f"no running task for container {container_id}")

    def ensure_alive(self) -> None:
        for child in self.children:
            child.ensure_alive()

    def logs(self) -> str:
        """The tails of every component's log (printed when a scenario fails)."""
        parts = []
        for child in self.children:
            lines = [line for line in child.log_tail(200).splitlines() if "FLAG:" not in line]
            parts.append(f"--- {child.name} ---\n" + "\n".join(lines[-25:]))
        return "\n".join(parts)

    # -- stop

    def stop(self) -> list[str]:
        """Stop everything and put the host back; return what was undone (for the log).
        Safe to call again (the session finalizer and atexit may both do)."""
        undone: list[str] = []
        if self.stopped:
            return undone
        self.stopped = True
        kubelet = next((c for c in self.children if c.name == "kubelet"), None)
        if kubelet is not None:
            kubelet.stop(timeout=10)
        # Containers and shims: by this node's cgroups and paths, never by program name.
        cgroups = _cgroup_dirs(self.cgroup_name)
        for pid in _pids_in_cgroups(cgroups) | _pids_with_argument(str(self.run_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                undone.append(f"killed pid {pid}")
        for child in reversed(self.children):
            child.stop(timeout=10)
        self.control_plane.stop()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            left = _pids_in_cgroups(cgroups) | _pids_with_argument(str(self.run_dir))
            if not any(pid_alive(pid) for pid in left):
                break
            time.sleep(0.2)
        for prefix in (self.kubelet_dir, self.containerd_dir, self.run_dir, self.workdir):
            for point in _mounts_under(prefix):
                subprocess.run(["umount", "--lazy", str(point)], check=False, capture_output=True)
                undone.append(f"unmounted {point}")
        for root in cgroups:
            if root.is_dir():
                for folder in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if folder.is_dir():
                        with contextlib.suppress(OSError):
                            folder.rmdir()
                with contextlib.suppress(OSError):
                    root.rmdir()
                    undone.append(f"removed cgroup {root}")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.host_state is not None:
            undone += self.host_state.restore()
        return undone

    def leftovers(self) -> list[str]:
        """Whatever of this node is still on the host (empty after a clean stop)."""
        found = []
        found += [
            f"process {pid}" for pid in _pids_with_argument(str(self.run_dir)) if pid_alive(pid)
        ]
        found += [
            f"process {pid}" for pid in _pids_with_argument(str(self.workdir)) if pid_alive(pid)
        ]
        found += [
            f"mount {p}" for prefix in (self.workdir, self.run_dir) for p in _mounts_under(prefix)
        ]
        found += [f"cgroup {p}" for p in _cgroup_dirs(self.cgroup_name) if p.exists()]
        if self.host_state is not None:
            found += self.host_state.differences()
        return found


@contextlib.contextmanager
def running_node(workdir: Path) -> Iterator[Node]:
    node = Node(workdir).start()
    try:
        yield node
    finally:
        node.stop()
