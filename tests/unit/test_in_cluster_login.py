"""In-cluster login as client-go does it: KUBERNETES_SERVICE_HOST/PORT, the service-account token
(read again on every login, so a rotated token is used), its CA and namespace."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest

from ecsrole import handlers

pytestmark = pytest.mark.unit

ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "6443"}


@pytest.fixture
def account_dir(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("first-token\n")
    (tmp_path / "namespace").write_text("ecsrole-system")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def _login(account_dir: Path, environ: dict[str, str]) -> kopf.ConnectionInfo | None:
    return handlers._in_cluster_info(kopf.OperatorSettings(), environ, str(account_dir))


def test_server_comes_from_the_service_environment(account_dir: Path) -> None:
    info = _login(account_dir, ENV)
    assert info is not None
    assert info.server == "https://10.96.0.1:6443"
    assert info.token == "first-token"  # noqa: S105 - a fake token
    assert info.default_namespace == "ecsrole-system"
    assert info.ca_path == str(account_dir / "ca.crt")


def test_ipv6_service_address_is_bracketed(account_dir: Path) -> None:
    info = _login(account_dir, {**ENV, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert info is not None
    assert info.server == "https://[fd00::1]:6443"


def test_a_rotated_token_is_used_at_the_next_login(account_dir: Path) -> None:
    assert (info := _login(account_dir, ENV)) is not None
    assert info.token == "first-token"  # noqa: S105 - a fake token
    (account_dir / "token").write_text("rotated-token")
    assert (info := _login(account_dir, ENV)) is not None
    assert info.token == "rotated-token"  # noqa: S105 - a fake token


@pytest.mark.parametrize("missing", ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"])
def test_outside_a_pod_there_is_no_in_cluster_login(account_dir: Path, missing: str) -> None:
    environ = {key: value for key, value in ENV.items() if key != missing}
    assert _login(account_dir, environ) is None


def test_no_token_file_means_no_in_cluster_login(tmp_path: Path) -> None:
    assert _login(tmp_path, ENV) is None


def test_without_ca_or_namespace_the_login_still_works(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    info = _login(tmp_path, ENV)
    assert info is not None
    assert info.ca_path is None
    assert info.default_namespace is None
