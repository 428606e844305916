"""Small helpers for the local stack: free ports, waiting, and child processes that die cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessExitedError(RuntimeError):
    """A child process that should be running has exited; waiting longer cannot help."""


class WaitTimeoutError(AssertionError, TimeoutError):
    """A wait ran out: a test failure (AssertionError) and a timeout, whichever callers expect."""


def eventually(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float = 90.0,
    interval: float = 0.2,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """The one poll of the test stack: `check` until it returns something truthy, and return it.

    Waits are bounded for failure only; on a loaded machine give them room. `tolerate` lists
    exceptions that mean "not yet" (an API server restarting, an object not written yet).
    The failure names `what` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except ProcessExitedError:
            raise
        except tolerate as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"[:4000]
            )
        time.sleep(interval)


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll a probe that may fail while the thing is not up yet (any exception is "not yet")."""
    eventually(check, timeout=timeout, what=what, interval=interval, tolerate=(Exception,))


@dataclass
class ChildProcess:
    """A long-running child in its own process group, with stdout+stderr in a log file.

    Its own process group lets `stop` take down anything it spawned too, so nothing is left
    running after a test session or `make dev-down`.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_alive(self) -> None:
        """Raise with the tail of the log when the child has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ProcessExitedError(
                f"{self.name} exited with {self.process.returncode}; last log lines:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        terminate_group(self.process.pid, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def terminate_group(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM a process group, then SIGKILL it if it is still there after `timeout`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); reap it if it is ours, and treat it as gone.
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
