"""`make dev` / `make dev-up` on a machine where a fixed dev port is already taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.stack.operator import REPO_ROOT

pytestmark = pytest.mark.e2e


def dev(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m tests.stack.dev COMMAND` (what `make dev` / `make dev-up` run) with `env`."""
    return subprocess.run(
        [sys.executable, "-m", "tests.stack.dev", command],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "variable"),
    [("up", "ECSROLE_DEV_METRICS_PORT"), ("run", "ECSROLE_DEV_HEALTH_PORT")],
)
def test_a_busy_dev_port_is_named_with_its_variable_before_anything_starts(
    tmp_path: Path, command: str, variable: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as spare:
            spare.bind(("127.0.0.1", 0))
            free = spare.getsockname()[1]
        other = (
            "ECSROLE_DEV_HEALTH_PORT"
            if variable == "ECSROLE_DEV_METRICS_PORT"
            else ("ECSROLE_DEV_METRICS_PORT")
        )
        env = {"ECSROLE_DEV_DIR": str(tmp_path / "dev"), variable: str(busy), other: str(free)}
        started = time.monotonic()
        result = dev(command, env)
        took = time.monotonic() - started

    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    assert f"127.0.0.1:{busy}" in errors[0]
    assert variable in errors[0]
    # Nothing was started: no control plane, moto or operator state.
    assert not (tmp_path / "dev" / "state.json").exists()
    assert "starting" not in result.stdout
    print(f"`{command}` refused the busy port in {took:.1f}s")


def test_a_port_variable_that_is_not_a_port_is_refused(tmp_path: Path) -> None:
    result = dev(
        "up", {"ECSROLE_DEV_DIR": str(tmp_path / "dev"), "ECSROLE_DEV_METRICS_PORT": "http"}
    )
    assert result.returncode == 2
    assert "ECSROLE_DEV_METRICS_PORT='http' is not a TCP port number" in result.stderr
