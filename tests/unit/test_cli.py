"""`ecsrole run`'s flags and environment variables, as a user and the manifests set them.

The operator itself is replaced by a recorder of what `runtime.run` would have been called
with, so each test sees exactly what the command line and environment resolve to.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsrole import cli, runtime

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the documented default, never bound here
VALID_CONFIG = 'clusterName: c\naccounts:\n  "111111111111": {namespaces: [team-a]}\n'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ECSROLE_* or POD_* variable of the machine running the tests leaks into these."""
    for name in list(os.environ):
        if name.startswith(("ECSROLE_", "POD_")):
            monkeypatch.delenv(name)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every `runtime.run` call (the operator never starts)."""
    calls: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> int:
        calls.append(kwargs)
        return 0

    monkeypatch.setattr(runtime, "run", record)
    return calls


def run(
    started: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    assert cli.main(["run", *argv]) == 0
    assert len(started) == 1
    return started[0]


def usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str, **env: str
) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as raised:
        cli.main(list(argv))
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# -- the three bugs of issue 18 --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "YES", "true", "True", "1", "on", "y", "t"])
def test_a_true_leader_election_variable_in_any_spelling_keeps_leader_election_on(
    value: str, started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: anything but the exact "true" turned leader election off, so two replicas both led.
    kwargs = run(started, monkeypatch, env={"ECSROLE_LEADER_ELECTION": value})
    assert kwargs["lease"] is not None
    assert kwargs["lease"].name == "ecsrole-leader"


@pytest.mark.parametrize("value", ["no", "false", "FALSE", "0", "off", "n", "f"])
def test_a_false_leader_election_variable_turns_it_off(
    value: str, started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(started, monkeypatch, env={"ECSROLE_LEADER_ELECTION": value})["lease"] is None


@pytest.mark.parametrize("value", ["maybe", "enabled", "treu", "2"])
def test_an_unreadable_leader_election_variable_is_refused_naming_it(
    value: str,
    started: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = usage_error(capsys, monkeypatch, "run", ECSROLE_LEADER_ELECTION=value)
    assert "ECSROLE_LEADER_ELECTION" in err
    assert f"{value!r} is not a valid boolean" in err
    assert started == []


def test_the_namespace_flag_replaces_the_namespaces_variable(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: both team-a (from the environment) and team-b were watched.
    kwargs = run(
        started, monkeypatch, "--namespace", "team-b", env={"ECSROLE_WATCH_NAMESPACES": "team-a"}
    )
    assert kwargs["namespaces"] == ("team-b",)


@pytest.mark.parametrize("value", ["x", "0", "-3", "1.5", "sixteen"])
def test_a_bad_aws_workers_variable_is_a_usage_error_naming_it_not_a_traceback(
    value: str,
    started: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = usage_error(capsys, monkeypatch, "run", ECSROLE_AWS_WORKERS=value)
    assert "Invalid value for '--aws-workers' (env var: 'ECSROLE_AWS_WORKERS')" in err
    assert started == []


def test_a_bad_aws_workers_variable_does_not_break_the_other_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECSROLE_AWS_WORKERS", "x")
    monkeypatch.setenv("ECSROLE_LEASE_DURATION", "soon")
    path = tmp_path / "config.yaml"
    path.write_text(VALID_CONFIG)
    assert cli.main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: valid (1 account(s), cluster c)\n"
    assert cli.main(["--version"]) == 0


def test_the_installed_command_reports_a_bad_variable_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID_CONFIG)
    env = {**os.environ, "ECSROLE_AWS_WORKERS": "x"}
    command = [sys.executable, "-m", "ecsrole.cli"]
    checked = subprocess.run(
        [*command, "check-config", str(path)], env=env, capture_output=True, text=True
    )
    assert (checked.returncode, checked.stderr) == (0, "")
    refused = subprocess.run(
        [*command, "run", f"--config={path}"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert refused.stderr.rstrip().endswith(
        "Error: Invalid value for '--aws-workers' (env var: 'ECSROLE_AWS_WORKERS'): "
        "'x' is not a valid integer range."
    )


# -- every flag and variable ---------------------------------------------------------------------


def test_defaults_without_flags_or_variables(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli, "SERVICE_ACCOUNT_NAMESPACE", str(tmp_path / "absent"))
    kwargs = run(started, monkeypatch)
    lease = kwargs.pop("lease")
    assert kwargs == {
        "config_path": "/etc/ecsrole/config.yaml",
        "metrics_address": (ALL_INTERFACES, 8080),
        "health_address": (ALL_INTERFACES, 8081),
        "log_format": "auto",
        "log_level": "INFO",
        "namespaces": (),
        "selector": None,
        "aws_workers": 16,
    }
    assert (lease.namespace, lease.name, lease.lease_duration) == ("default", "ecsrole-leader", 15)
    assert (lease.renew_deadline, lease.retry_period) == (10, 2)


def test_each_variable_is_read(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = run(
        started,
        monkeypatch,
        env={
            "ECSROLE_CONFIG": "/c.yaml",
            "ECSROLE_METRICS_ADDRESS": "127.0.0.1:9090",
            "ECSROLE_HEALTH_ADDRESS": ":9091",
            "ECSROLE_LOG_FORMAT": "console",
            "ECSROLE_LOG_LEVEL": "debug",
            "ECSROLE_WATCH_NAMESPACES": "team-a, team-b-*,,",
            "ECSROLE_LEASE_NAME": "other",
            "ECSROLE_LEASE_NAMESPACE": "ops",
            "POD_NAMESPACE": "ignored-when-the-lease-namespace-is-set",
            "POD_NAME": "ecsrole-0",
            "ECSROLE_LEASE_DURATION": "30",
            "ECSROLE_AWS_WORKERS": "4",
            "ECSROLE_WATCH_SELECTOR": "ecsrole.dev/shard=a",
        },
    )
    lease = kwargs.pop("lease")
    assert kwargs == {
        "config_path": "/c.yaml",
        "metrics_address": ("127.0.0.1", 9090),
        "health_address": (ALL_INTERFACES, 9091),
        "log_format": "console",
        "log_level": "DEBUG",
        "namespaces": ("team-a", "team-b-*"),
        "selector": "ecsrole.dev/shard=a",
        "aws_workers": 4,
    }
    assert (lease.namespace, lease.name, lease.lease_duration) == ("ops", "other", 30)
    assert lease.identity.startswith("ecsrole-0_")


def test_each_flag_beats_its_variable(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = run(
        started,
        monkeypatch,
        "--config=/flag.yaml",
        "--metrics-address=127.0.0.1:1",
        "--health-address=127.0.0.1:2",
        "--log-format=json",
        "--log-level=WARNING",
        "--namespace=a",
        "--namespace=b",
        "--no-leader-election",
        "--aws-workers=2",
        "--selector=ecsrole.dev/shard=b",
        env={
            "ECSROLE_CONFIG": "/env.yaml",
            "ECSROLE_METRICS_ADDRESS": "127.0.0.1:9090",
            "ECSROLE_HEALTH_ADDRESS": "127.0.0.1:9091",
            "ECSROLE_LOG_FORMAT": "console",
            "ECSROLE_LOG_LEVEL": "DEBUG",
            "ECSROLE_WATCH_NAMESPACES": "c",
            "ECSROLE_LEADER_ELECTION": "true",
            "ECSROLE_AWS_WORKERS": "4",
            "ECSROLE_WATCH_SELECTOR": "ecsrole.dev/shard=a",
        },
    )
    assert kwargs == {
        "lease": None,
        "config_path": "/flag.yaml",
        "metrics_address": ("127.0.0.1", 1),
        "health_address": ("127.0.0.1", 2),
        "log_format": "json",
        "log_level": "WARNING",
        "namespaces": ("a", "b"),
        "selector": "ecsrole.dev/shard=b",
        "aws_workers": 2,
    }


def test_lease_namespace_falls_back_to_the_pod_namespace_then_the_service_account(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("from-the-service-account\n")
    monkeypatch.setattr(cli, "SERVICE_ACCOUNT_NAMESPACE", str(namespace_file))
    assert run(started, monkeypatch)["lease"].namespace == "from-the-service-account"
    started.clear()
    kwargs = run(started, monkeypatch, env={"POD_NAMESPACE": "pod-ns"})
    assert kwargs["lease"].namespace == "pod-ns"
    started.clear()
    kwargs = run(
        started, monkeypatch, "--lease-namespace=flag-ns", env={"ECSROLE_LEASE_NAMESPACE": "x"}
    )
    assert kwargs["lease"].namespace == "flag-ns"


def test_empty_variables_count_as_unset(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("CONFIG", "LOG_LEVEL", "WATCH_NAMESPACES", "LEADER_ELECTION", "AWS_WORKERS")
    kwargs = run(started, monkeypatch, env={f"ECSROLE_{name}": "" for name in names})
    assert kwargs["config_path"] == "/etc/ecsrole/config.yaml"
    assert (kwargs["log_level"], kwargs["namespaces"], kwargs["aws_workers"]) == ("INFO", (), 16)
    assert kwargs["lease"] is not None


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {"ECSROLE_METRICS_ADDRESS": "8080"}, "expected HOST:PORT, got '8080'"),
        (["--health-address=h:99999"], {}, "expected HOST:PORT, got 'h:99999'"),
        ([], {"ECSROLE_LOG_LEVEL": "verbose"}, "'verbose' is not one of"),
        (["--log-format=xml"], {}, "'xml' is not one of"),
        ([], {"ECSROLE_LEASE_DURATION": "0.5"}, "0.5 is not in the range x>=1.0"),
    ],
)
def test_other_bad_values_are_usage_errors(
    argv: list[str],
    env: dict[str, str],
    message: str,
    started: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert message in usage_error(capsys, monkeypatch, "run", *argv, **env)
    assert started == []


def _container(path: Path) -> tuple[list[str], dict[str, str]]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    (deployment,) = [d for d in documents if d.get("kind") == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container.get("env", ()) if "value" in e}
    return container["args"], env


def test_the_kustomize_base_deployment_starts_the_operator_as_documented(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    args, env = _container(REPO / "deploy" / "base" / "deployment.yaml")
    assert args[0] == "run"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POD_NAMESPACE", "ecsrole-system")
    assert cli.main(args) == 0
    (kwargs,) = started
    lease = kwargs.pop("lease")
    assert kwargs == {
        "config_path": "/etc/ecsrole/config.yaml",
        "metrics_address": (ALL_INTERFACES, 8080),
        "health_address": (ALL_INTERFACES, 8081),
        "log_format": "json",
        "log_level": "INFO",
        "namespaces": (),
        "selector": None,
        "aws_workers": 16,
    }
    assert (lease.namespace, lease.name, lease.lease_duration) == (
        "ecsrole-system",
        "ecsrole-leader",
        15,
    )
