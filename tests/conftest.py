"""Fixtures: a real control plane, a real moto server, and the operator as a real process.

Session-scoped: the control plane (or USE_EXISTING_CLUSTER=true with the current KUBECONFIG),
the moto server, and one shared operator watching the `shared-*` namespaces. Tests that need
their own configuration start their own operator on their own namespace (`operator_factory`),
so two operators never handle the same object. Isolation in moto is by account id and by
unique role names; namespaces are fresh per test and never waited on when deleted (there is
no kube-controller-manager to finish the deletion).

Every operator runs with a token of the Helm chart's ServiceAccount, bound to exactly the RBAC
the chart renders (tests/stack/identity.py), so the whole suite proves that RBAC is enough;
E2E_OPERATOR_IDENTITY=admin uses the admin kubeconfig instead.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.scenarios import KubeApi, Stack
from tests.stack import identity, manifests
from tests.stack.controlplane import ControlPlane, control_plane_binaries
from tests.stack.faults import FaultProxy
from tests.stack.kube import Kubectl
from tests.stack.moto import ACCESS_KEY_ID, DEFAULT_ACCOUNT_ID, SECRET_ACCESS_KEY, MotoServer
from tests.stack.operator import OperatorProcess, dev_config

SHARED_NAMESPACE_PREFIX = "shared-"
SHARED_NAMESPACES = [f"{SHARED_NAMESPACE_PREFIX}*"]
# Accounts of the shared operator. moto's AssumeRole hands out credentials for the account in
# the role ARN, so roleArn entries are real cross-account access as the operator does it.
CROSS_ACCOUNT_ID = "111111111111"
NO_ADOPTION_ACCOUNT_ID = "222222222222"
UNLISTED_NAMESPACE_ACCOUNT_ID = "333333333333"
MISMATCHED_ACCOUNT_ID = "444444444444"
ALLOWED_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess"
SHARED_ACCOUNTS: dict[str, dict[str, Any]] = {
    DEFAULT_ACCOUNT_ID: {
        "namespaces": SHARED_NAMESPACES,
        "allowAdoption": True,
        "allowedPolicyArns": [ALLOWED_POLICY_ARN],
        "allowedResourcePatterns": {
            "shared-*": [
                f"arn:aws:secretsmanager:*:{DEFAULT_ACCOUNT_ID}:secret:*",
                f"arn:aws:ssm:*:{DEFAULT_ACCOUNT_ID}:parameter/*",
                f"arn:aws:kms:*:{DEFAULT_ACCOUNT_ID}:key/*",
            ]
        },
        "ignoredTagKeys": ["org:cost-center"],
    },
    CROSS_ACCOUNT_ID: {
        "roleArn": f"arn:aws:iam::{CROSS_ACCOUNT_ID}:role/ecsrole-operator",
        "externalId": "e2e-external-id",
        "namespaces": SHARED_NAMESPACES,
        "rolePathPrefix": "/ecs/",
    },
    NO_ADOPTION_ACCOUNT_ID: {
        "roleArn": f"arn:aws:iam::{NO_ADOPTION_ACCOUNT_ID}:role/ecsrole-operator",
        "namespaces": SHARED_NAMESPACES,
        "allowAdoption": False,
    },
    UNLISTED_NAMESPACE_ACCOUNT_ID: {
        "roleArn": f"arn:aws:iam::{UNLISTED_NAMESPACE_ACCOUNT_ID}:role/ecsrole-operator",
        "namespaces": ["team-that-does-not-exist"],
    },
    # Misconfigured on purpose: no roleArn, so the operator's own credentials (moto's default
    # account) are used, and they are not this account's.
    MISMATCHED_ACCOUNT_ID: {"namespaces": SHARED_NAMESPACES},
}


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


_control_plane: list[ControlPlane] = []


@pytest.fixture(scope="session")
def cluster(stack_dir: Path) -> Iterator[tuple[Path, Path]]:
    """(kubeconfig, kubectl binary) of a real API server."""
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        kubectl_bin = shutil.which("kubectl") or str(control_plane_binaries() / "kubectl")
        yield kubeconfig, Path(kubectl_bin)
        return
    plane = ControlPlane(stack_dir / "controlplane").start()
    _control_plane.append(plane)
    try:
        yield plane.kubeconfig, plane.kubectl_path
    finally:
        _control_plane.remove(plane)
        plane.stop()


@pytest.fixture(scope="session")
def control_plane(cluster: tuple[Path, Path]) -> ControlPlane:
    """The session's own control plane, for tests that restart kube-apiserver."""
    if not _control_plane:
        raise RuntimeError(
            "restarting kube-apiserver needs the suite's own control plane, "
            "not USE_EXISTING_CLUSTER=true"
        )
    return _control_plane[0]


@pytest.fixture(scope="session")
def audit_log(cluster: tuple[Path, Path], stack_dir: Path) -> Path | None:
    """The API server's audit log of service-account requests (None on an existing cluster)."""
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        return None
    return ControlPlane(stack_dir / "controlplane", binaries=cluster[1].parent).audit_log


@pytest.fixture(scope="session")
def kubectl(cluster: tuple[Path, Path]) -> Kubectl:
    """Real kubectl against the test cluster, with the CRD from deploy/crds installed."""
    kubeconfig, binary = cluster
    client = Kubectl(binary, kubeconfig)
    client.install_crd()
    return client


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary built from hack/helm/go.mod (cached like the control plane)."""
    return manifests.helm_binary()


@pytest.fixture(scope="session")
def operator_identity(
    kubectl: Kubectl, helm: Path, stack_dir: Path
) -> identity.OperatorIdentity | None:
    """The chart's ServiceAccount and RBAC, installed; every operator the tests start uses it.

    None (admin credentials) only when E2E_OPERATOR_IDENTITY=admin asks for it.
    """
    if not identity.wanted():
        return None
    return identity.install(kubectl, helm, stack_dir / "operator-identity")


def _operator_access(
    cluster: tuple[Path, Path], operator_identity: identity.OperatorIdentity | None
) -> dict[str, Any]:
    """OperatorProcess arguments: the ServiceAccount's kubeconfig, and its namespace for leases."""
    if operator_identity is None:
        return {"kubeconfig": cluster[0]}
    return {
        "kubeconfig": operator_identity.kubeconfig,
        "lease_namespace": operator_identity.namespace,
    }


def fresh_namespace(kubectl: Kubectl, prefix: str) -> Iterator[str]:
    """A namespace named `prefix` + a random suffix for one test; deleted (not waited for) after."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    kubectl.create_namespace(name)
    yield name
    kubectl.delete_namespace_nowait(name)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace watched by the shared operator."""
    yield from fresh_namespace(kubectl, SHARED_NAMESPACE_PREFIX)


@pytest.fixture
def own_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace that only a test's own operator watches."""
    yield from fresh_namespace(kubectl, "own-")


@pytest.fixture
def second_own_namespace(kubectl: Kubectl) -> Iterator[str]:
    """Another such namespace: a second tenant, or a second run beside the first."""
    yield from fresh_namespace(kubectl, "own-b-")


@pytest.fixture(scope="session")
def moto(stack_dir: Path) -> Iterator[MotoServer]:
    server = MotoServer(stack_dir / "moto").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws(moto: MotoServer) -> Callable[..., Any]:
    """boto3 clients against moto; `aws("iam", account_id=...)` assumes into that account."""
    return moto.client


@pytest.fixture(scope="session")
def fault_proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    """The fault proxy (tests/stack/faults.py) in front of moto; no faults until a test sets rates."""
    proxy = FaultProxy(moto.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


_running: list[tuple[OperatorProcess, int]] = []


OperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def operator_factory(
    cluster: tuple[Path, Path],
    moto: MotoServer,
    kubectl: Kubectl,
    operator_identity: identity.OperatorIdentity | None,
    tmp_path: Path,
) -> Iterator[OperatorFactory]:
    """Start `ecsrole run` with a given configuration, watching given namespaces."""
    started: list[OperatorProcess] = []
    numbering = threading.Lock()  # scenarios may start operators from two threads

    def start(
        config: Mapping[str, Any],
        *,
        namespaces: Sequence[str],
        aws_env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> OperatorProcess:
        with numbering:
            process = OperatorProcess(
                tmp_path / f"operator-{len(started)}",
                config=config,
                aws_env=aws_env if aws_env is not None else moto.aws_env(),
                namespaces=namespaces,
                **{**_operator_access(cluster, operator_identity), **kwargs},
            )
            started.append(process)
            _running.append((process, 0))
        OPERATOR_LOGS.add(process.log_path)
        return process.start()

    yield start
    for process in started:
        process.stop()
        _running.remove(next(r for r in _running if r[0] is process))


@pytest.fixture(scope="session")
def shared_operator(
    cluster: tuple[Path, Path],
    moto: MotoServer,
    kubectl: Kubectl,
    operator_identity: identity.OperatorIdentity | None,
    stack_dir: Path,
) -> Iterator[OperatorProcess]:
    """One operator for the `shared-*` namespaces, configured like `make dev`."""
    config = dev_config("e2e-shared", SHARED_ACCOUNTS)
    process = OperatorProcess(
        stack_dir / "shared-operator",
        config=config,
        aws_env=moto.aws_env(),
        namespaces=SHARED_NAMESPACES,
        **_operator_access(cluster, operator_identity),
    )
    _running.append((process, 0))
    OPERATOR_LOGS.add(process.log_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def _remember_log_offsets() -> None:
    """Note where each running operator's log stands, so a failure shows only its own lines."""
    for index, (process, _) in enumerate(_running):
        size = process.log_path.stat().st_size if process.log_path.exists() else 0
        _running[index] = (process, size)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when in ("call", "setup"):
        for process, offset in _running:
            if not process.log_path.exists():
                continue
            with process.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            tail = "\n".join(text.splitlines()[-200:])
            report.sections.append((f"operator log ({process.workdir.name})", tail))
    return report


@pytest.fixture
def chaos_stack(
    cluster: tuple[Path, Path],
    aws: Callable[..., Any],
    fault_proxy: FaultProxy,
    moto: MotoServer,
    operator_factory: OperatorFactory,
) -> Iterator[Stack]:
    """What the reliability scenarios (tests/chaos/scenarios.py) drive: operators reach AWS only
    through the fault proxy; the proxy's rates are reset after each test."""
    fault_proxy.clear()
    yield _proxied_stack(cluster, aws, fault_proxy, moto, operator_factory)
    fault_proxy.clear()


@pytest.fixture
def clean_stack(
    cluster: tuple[Path, Path],
    aws: Callable[..., Any],
    moto: MotoServer,
    operator_factory: OperatorFactory,
) -> Iterator[Stack]:
    """Like `chaos_stack`, through a proxy of its own that never injects a fault: a no-fault
    reference run beside a faulted one, each proxy counting only its own operator's calls."""
    proxy = FaultProxy(moto.url).start()
    try:
        yield _proxied_stack(cluster, aws, proxy, moto, operator_factory)
    finally:
        proxy.stop()


def _proxied_stack(
    cluster: tuple[Path, Path],
    aws: Callable[..., Any],
    proxy: FaultProxy,
    moto: MotoServer,
    operator_factory: OperatorFactory,
) -> Stack:
    def start(config: Mapping[str, Any], **kwargs: Any) -> OperatorProcess:
        return operator_factory(config, aws_env=proxy.aws_env(moto.aws_env()), **kwargs)

    return Stack(api=KubeApi(cluster[0]), aws=aws, proxy=proxy, start_operator=start)


# -- scenario 7: no credential in any operator log of the run ----------------------------------

#: Every operator log the session produced (each operator runs at DEBUG).
OPERATOR_LOGS: set[Path] = set()
#: Key material handed to operators beyond moto's default keys (tests add what they create).
EXTRA_SECRETS: set[str] = set()
KEY_ID_PATTERN = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
MOTO_SESSION_TOKEN_PREFIX = "FQoGZXIvYXdz"  # noqa: S105 - what moto session tokens start with


def secrets_in_log(text: str) -> list[str]:
    """Key material found in one log's text (described, never echoed whole)."""
    found = []
    for secret in (SECRET_ACCESS_KEY, ACCESS_KEY_ID, MOTO_SESSION_TOKEN_PREFIX, *EXTRA_SECRETS):
        if secret and secret in text:
            found.append(f"a known credential starting {secret[:4]}...")
    found.extend(f"access key id {m.group(0)[:4]}..." for m in KEY_ID_PATTERN.finditer(text))
    return found


def scan_operator_logs(paths: Iterable[Path] | None = None) -> dict[Path, list[str]]:
    """{log: findings} for every operator log (of the session) that holds key material."""
    leaks: dict[Path, list[str]] = {}
    for path in sorted(paths if paths is not None else OPERATOR_LOGS):
        if not path.exists():
            continue
        findings = secrets_in_log(path.read_text(errors="replace"))
        if findings:
            leaks[path] = findings
    return leaks


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any operator log of this session holds an access key, secret key or
    session token (scenario 7 of issue 8): the check covers every operator every test started."""
    if not OPERATOR_LOGS:
        return
    leaks = scan_operator_logs()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        lines = [f"{path}: {', '.join(sorted(set(found)))}" for path, found in leaks.items()]
        message = "credentials found in operator logs:\n  " + "\n  ".join(lines)
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(
            f"scanned {len(OPERATOR_LOGS)} operator logs (DEBUG): no credentials found"
        )
