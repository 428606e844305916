"""A real Kubernetes control plane (etcd + kube-apiserver) on 127.0.0.1, started the way envtest does.

The binaries come from `hack/controlplane/build.sh` (built from the official Go modules at a
pinned release and cached outside the checkout), or from KUBEBUILDER_ASSETS when set.
Certificates and credentials are generated per start: a CA, a serving certificate for
127.0.0.1, an admin client certificate in system:masters, and a service-account signing key.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.stack.processes import ChildProcess, free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"


def control_plane_binaries() -> Path:
    """Folder with etcd, kube-apiserver and kubectl, building them once per pin if needed."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    *,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    ca: bool = False,
    server: bool = False,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = (
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
            if server
            else (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in dns_names]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


@dataclass
class Credentials:
    """Files the API server and its clients need, generated fresh for each start."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    ca_key: Path = Path()

    @classmethod
    def generate(
        cls,
        folder: Path,
        *,
        dns_names: tuple[str, ...] = ("localhost",),
        ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> Credentials:
        folder.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = _name("ecsrole-test-ca")
        ca = _certificate(ca_name, ca_key, issuer=ca_name, issuer_key=ca_key, ca=True)
        serving_key = _key()
        serving = _certificate(
            _name("kube-apiserver"),
            serving_key,
            issuer=ca_name,
            issuer_key=ca_key,
            server=True,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        admin_key = _key()
        admin = _certificate(
            _name("admin", "system:masters"), admin_key, issuer=ca_name, issuer_key=ca_key
        )
        files = cls(
            ca_cert=folder / "ca.crt",
            serving_cert=folder / "apiserver.crt",
            serving_key=folder / "apiserver.key",
            admin_cert=folder / "admin.crt",
            admin_key=folder / "admin.key",
            service_account_key=folder / "sa.key",
        )
        files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
        files.serving_key.write_bytes(_pem_key(serving_key))
        files.admin_cert.write_bytes(admin.public_bytes(serialization.Encoding.PEM))
        files.admin_key.write_bytes(_pem_key(admin_key))
        files.service_account_key.write_bytes(_pem_key(_key()))
        for secret in (files.serving_key, files.admin_key, files.service_account_key):
            secret.chmod(0o600)
        files.ca_key = folder / "ca.key"
        files.ca_key.write_bytes(_pem_key(ca_key))
        files.ca_key.chmod(0o600)
        return files

    def issue(
        self,
        name: str,
        common_name: str,
        organization: str | None = None,
        *,
        server: bool = False,
        ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> tuple[Path, Path]:
        """Another certificate signed by this CA (a kubelet's client or serving one): (cert, key)."""
        ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, rsa.RSAPrivateKey)
        key = _key()
        certificate = _certificate(
            _name(common_name, organization),
            key,
            issuer=ca.subject,
            issuer_key=ca_key,
            server=server,
            dns_names=("localhost",),
            ip_addresses=ip_addresses,
        )
        cert_path, key_path = (
            self.ca_cert.with_name(f"{name}.crt"),
            self.ca_cert.with_name(f"{name}.key"),
        )
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return cert_path, key_path


def _override(*argv: str, overrides: tuple[str, ...]) -> list[str]:
    """`argv` with each `--flag=value` of `overrides` replacing the same flag (list-valued flags
    such as --authorization-mode would otherwise add up), and the other overrides appended."""
    flags = {item.split("=", 1)[0] for item in overrides}
    return [item for item in argv if item.split("=", 1)[0] not in flags] + list(overrides)


class ControlPlane:
    """etcd and kube-apiserver as child processes, with a kubeconfig for an admin user."""

    def __init__(
        self,
        workdir: Path,
        binaries: Path | None = None,
        *,
        serving_names: tuple[str, ...] = (),
        serving_ips: tuple[str, ...] = (),
        apiserver_args: tuple[str, ...] = (),
        service_account_admission: bool = False,
    ) -> None:
        """The defaults are the bare control plane of the e2e tests. A real node (tests/cluster)
        adds the names pods use (kubernetes.default.svc, the Service IP) to the serving
        certificate, more flags, and the ServiceAccount admission plugin that mounts tokens."""
        self.workdir = workdir
        self.binaries = binaries or control_plane_binaries()
        self.serving_names = serving_names
        self.serving_ips = serving_ips
        self.apiserver_args = apiserver_args
        self.service_account_admission = service_account_admission
        self.kubeconfig = workdir / "kubeconfig"
        self.etcd: ChildProcess | None = None
        self.apiserver: ChildProcess | None = None
        self.url = ""
        #: Every request made by a service account (the e2e operators run as one), one JSON
        #: audit event per line: what tests/e2e/test_manifests.py checks the RBAC against.
        self.audit_log = workdir / "audit.log"

    @property
    def kubectl_path(self) -> Path:
        return self.binaries / "kubectl"

    def start(self, timeout: float = 120.0) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        credentials = Credentials.generate(
            self.workdir / "pki",
            dns_names=("localhost", *self.serving_names),
            ip_addresses=("127.0.0.1", *self.serving_ips),
        )
        try:
            self._start_etcd()
            self._start_apiserver(credentials)
            self._write_kubeconfig(credentials)
            wait_until(self._ready, timeout=timeout, what="kube-apiserver /readyz")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.etcd = ChildProcess(
            "etcd",
            [
                str(self.binaries / "etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.workdir / "etcd.log",
        ).start()

    def _write_audit_policy(self) -> Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
                {"level": "None"},
            ],
        }
        path = self.workdir / "audit-policy.json"
        path.write_text(json.dumps(policy, indent=2))
        return path

    def _start_apiserver(self, credentials: Credentials) -> None:
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        audit_policy = self._write_audit_policy()
        self.apiserver = ChildProcess(
            "kube-apiserver",
            _override(
                str(self.binaries / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--advertise-address=127.0.0.1",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={credentials.serving_cert}",
                f"--tls-private-key-file={credentials.serving_key}",
                f"--client-ca-file={credentials.ca_cert}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                *(
                    ()
                    if self.service_account_admission
                    else ("--disable-admission-plugins=ServiceAccount",)
                ),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={credentials.service_account_key}",
                f"--service-account-signing-key-file={credentials.service_account_key}",
                "--enable-priority-and-fairness=false",
                f"--audit-policy-file={audit_policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--v=0",
                overrides=self.apiserver_args,
            ),
            self.workdir / "kube-apiserver.log",
        ).start()
        self.credentials = credentials

    def _write_kubeconfig(self, credentials: Credentials) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ecsrole-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(credentials.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(credentials.admin_cert),
                        "client-key": str(credentials.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "ecsrole-test", "context": {"cluster": "ecsrole-test", "user": "admin"}}
            ],
            "current-context": "ecsrole-test",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))

    def _ready(self) -> bool:
        for child in (self.etcd, self.apiserver):
            assert child is not None
            child.ensure_alive()
        context = ssl.create_default_context(cafile=str(self.credentials.ca_cert))
        context.load_cert_chain(str(self.credentials.admin_cert), str(self.credentials.admin_key))
        with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)

    def stop_apiserver(self, grace: float = 3.0) -> None:
        """Stop kube-apiserver only (SIGTERM, SIGKILL after `grace` seconds: with watches open it
        may otherwise take its full shutdown timeout); etcd, the port and certificates stay."""
        assert self.apiserver is not None, "the control plane was never started"
        self.apiserver.stop(timeout=grace)

    def start_apiserver(self, timeout: float = 120.0) -> float:
        """Start kube-apiserver again on the same port, certificates and etcd, so that every
        client (kubeconfigs, service-account tokens) reconnects unchanged; return the seconds
        until /readyz answered."""
        assert self.apiserver is not None, "the control plane was never started"
        started = time.monotonic()
        self.apiserver = ChildProcess(
            self.apiserver.name, self.apiserver.argv, self.apiserver.log_path
        ).start()
        wait_until(self._ready, timeout=timeout, what="kube-apiserver /readyz after a restart")
        return time.monotonic() - started

    def restart_apiserver(self, outage: float = 0.0, timeout: float = 120.0) -> float:
        """Stop kube-apiserver, stay down for `outage` seconds, start it; return the seconds
        from the stop until it was ready again."""
        started = time.monotonic()
        self.stop_apiserver()
        time.sleep(max(0.0, outage - (time.monotonic() - started)))
        self.start_apiserver(timeout)
        return time.monotonic() - started

    def stop(self) -> None:
        for child in (self.apiserver, self.etcd):
            if child is not None:
                child.stop()
