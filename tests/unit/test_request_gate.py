"""kube.RequestGate, the middleware of the operator's API sessions, with fake requests and
handlers (no network): the wait at the gate does not count against a request's bound, a hung
request or answer still fails after it, watch streams pass, and the gate says which objects
have a request queued or in flight."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from yarl import URL

from ecsrole.kube import RequestGate, object_key

pytestmark = pytest.mark.unit

SERVER = "https://127.0.0.1:6443"
OBJECT = "/apis/iam.ecsrole.dev/v1alpha1/namespaces/team-a/ecsexecutionroles/web"


class Request:
    def __init__(self, path: str = OBJECT, query: str = "") -> None:
        self.url = URL(f"{SERVER}{path}{'?' + query if query else ''}")


class Response:
    def __init__(self, read_seconds: float = 0.0, status: int = 200) -> None:
        self.status = status
        self.read_seconds = read_seconds
        self.read_done = False
        self.closed = False

    async def read(self) -> bytes:
        await asyncio.sleep(self.read_seconds)
        self.read_done = True
        return b"{}"

    def close(self) -> None:
        self.closed = True


def handler(seconds: float, response: Response | None = None) -> Any:
    async def handle(request: Any) -> Response:
        await asyncio.sleep(seconds)
        return response or Response()

    return handle


def test_the_wait_at_the_gate_does_not_count_against_a_requests_bound() -> None:
    """With aiohttp's total timeout the second request here would have failed: it waits 0.3 s
    for the first, then takes 0.3 s itself, more than the bound of 0.5 s in all."""
    gate = RequestGate(limit=1, seconds=0.5)

    async def both() -> list[Any]:
        first = asyncio.ensure_future(gate.middleware(Request(), handler(0.3)))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        second = asyncio.ensure_future(gate.middleware(Request(), handler(0.3)))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert gate.waiting == 1
        return await asyncio.gather(first, second)

    first, second = asyncio.run(both())
    assert first.read_done
    assert second.read_done
    assert gate.waiting == 0


def test_a_hung_request_or_answer_still_fails_after_the_bound() -> None:
    gate = RequestGate(limit=2, seconds=0.1)
    with pytest.raises(TimeoutError):
        asyncio.run(gate.middleware(Request(), handler(10)))  # type: ignore[arg-type]
    slow_answer = Response(read_seconds=10)
    with pytest.raises(TimeoutError):
        asyncio.run(gate.middleware(Request(), handler(0, slow_answer)))  # type: ignore[arg-type]
    assert slow_answer.closed  # the connection is not left half-read

    async def after() -> Response:  # both slots were given back
        return await asyncio.gather(  # type: ignore[return-value]
            gate.middleware(Request(), handler(0)),  # type: ignore[arg-type]
            gate.middleware(Request(), handler(0)),  # type: ignore[arg-type]
        )

    asyncio.run(asyncio.wait_for(after(), timeout=5))


def test_watch_streams_are_neither_gated_nor_bounded() -> None:
    gate = RequestGate(limit=1, seconds=0.15)
    watch = Request("/apis/iam.ecsrole.dev/v1alpha1/ecsexecutionroles", "watch=true")

    async def run() -> Any:
        held = asyncio.ensure_future(gate.middleware(Request(), handler(0.1)))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        streaming = asyncio.ensure_future(gate.middleware(watch, handler(0.3)))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert gate.waiting == 0  # the watch did not queue behind the full gate
        await held
        return await streaming  # 0.3 s, past the bound of 0.15 s

    streamed = asyncio.run(run())
    assert not streamed.read_done  # a stream's body is left to its reader


def test_the_gate_knows_which_objects_have_a_request_outstanding() -> None:
    gate = RequestGate(limit=1, seconds=5)
    status = Request(OBJECT + "/status")
    other = Request(OBJECT.replace("/web", "/api"))

    async def run() -> None:
        first = asyncio.ensure_future(gate.middleware(status, handler(0.1)))  # type: ignore[arg-type]
        queued = asyncio.ensure_future(gate.middleware(other, handler(0.1)))  # type: ignore[arg-type]
        await asyncio.sleep(0.02)
        assert gate.outstanding("team-a", "ecsexecutionroles", "web")  # in flight
        assert gate.outstanding("team-a", "ecsexecutionroles", "api")  # queued at the gate
        assert not gate.outstanding("team-b", "ecsexecutionroles", "web")
        await asyncio.gather(first, queued)

    asyncio.run(run())
    assert not gate.outstanding("team-a", "ecsexecutionroles", "web")
    assert not gate.outstanding("team-a", "ecsexecutionroles", "api")


def test_the_gate_remembers_failed_attempts_kopf_will_retry() -> None:
    """kopf pauses between two attempts of a request: the object is still its work then."""
    gate = RequestGate(limit=2, seconds=0.05)
    now = [100.0]
    gate.clock = lambda: now[0]

    def answered(name: str, status: int) -> None:
        path = OBJECT.replace("/web", f"/{name}")
        asyncio.run(gate.middleware(Request(path), handler(0, Response(status=status))))  # type: ignore[arg-type]

    with pytest.raises(TimeoutError):
        asyncio.run(gate.middleware(Request(), handler(10)))  # type: ignore[arg-type]
    for name, status in (("busy", 503), ("slow", 429), ("denied", 403)):
        answered(name, status)
    for name, status in (("ok", 200), ("gone", 404), ("conflict", 422)):
        answered(name, status)
    failed = ["web", "busy", "slow", "denied"]
    for name in failed:
        assert gate.failed_within("team-a", "ecsexecutionroles", name, 30)
    for name in ("ok", "gone", "conflict", "never-asked"):
        assert not gate.failed_within("team-a", "ecsexecutionroles", name, 30)
    now[0] += 30
    assert not [n for n in failed if gate.failed_within("team-a", "ecsexecutionroles", n, 30)]


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (OBJECT, "team-a/ecsexecutionroles/web"),
        (OBJECT + "/status", "team-a/ecsexecutionroles/web"),
        ("/k8s/clusters/c-1" + OBJECT, "team-a/ecsexecutionroles/web"),  # a proxied server
        ("/api/v1/namespaces/team-a/events", "team-a/events"),
        (
            "/apis/iam.ecsrole.dev/v1alpha1/ecsexecutionroles",
            "/apis/iam.ecsrole.dev/v1alpha1/ecsexecutionroles",
        ),
    ],
)
def test_a_request_path_names_its_object(path: str, key: str) -> None:
    assert object_key(path) == key
