"""A small Kubernetes client for the writes made outside kopf handlers (drift sweeps, events).

kopf writes status from inside its handlers; the per-account sweeps run beside kopf, so they
need their own way to patch status and post Events. This uses the same credentials kopf logs in
with (in-cluster service account, else KUBECONFIG) and aiohttp, which kopf already depends on,
rather than a second full Kubernetes client library.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse

from ecsrole.core import constants

COMPONENT = "ecsrole"


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


# Requests to the API server in flight at once, per session; watch streams are not counted.
# Without a bound, a burst of applies makes kopf patch every new object at once (a finalizer
# each): 237 TLS connections for 1,000 objects, each with a 256 KiB asyncio buffer plus
# OpenSSL's own, and glibc keeps much of that heap after the burst.
MAX_REQUESTS_IN_FLIGHT = 32
# How long one request may take once it is through the gate: connecting, sending, and reading
# the whole answer. The wait for the gate does not count (see RequestGate).
REQUEST_SECONDS = 30.0
# Answers after which kopf retries a request (kopf's api.request), like an error or a timeout.
RETRIED_STATUSES = frozenset({403, 429})
# Failed attempts are remembered this long (kopf's longest pause between attempts is 21 s).
FAILURES_KEPT_SECONDS = 600.0
# aiohttp's pool hands out idle connections first-in first-out, so a steady trickle of requests
# keeps alive every connection a burst opened. A short keep-alive lets the pool shrink.
KEEPALIVE_SECONDS = 2.0


def _is_watch(request: ClientRequest) -> bool:
    return request.url.query.get("watch") in ("true", "1")


def object_key(path: str) -> str:
    """What a request path names, as "namespace/plural/name" (a status subresource is its
    object; a collection is "namespace/plural"); a server URL's own path prefix is ignored."""
    named = path.rsplit("/namespaces/", 1)[-1]
    return named.removesuffix("/status")


class RequestGate:
    """At most `limit` non-watch requests of a session in flight, each bounded once let in.

    aiohttp's total timeout starts before a session's middlewares run, so it counts the wait
    in this gate: in a burst of 5,000 creations thousands of requests queue behind the 32 in
    flight, and a request that waited 29.9 s got 0.1 s for itself. Some of them reached the
    API server, were applied, and timed out all the same; kopf's retry of such a finalizer
    patch fails its resourceVersion test, and kopf then never runs the object's handlers
    (docs/performance-analysis.md, "Failover at scale"). So kopf's requests carry no total timeout
    (its `request_timeout` is None), and the gate bounds each request from the moment it is
    let in until its whole answer is read: a hung connection or read still fails after
    `seconds`, a long queue does not. (KubeClient's calls keep their own deadlines on top: a
    lease renewal must end in time, however long it waited.) Watch streams pass untouched and
    keep their own timeouts. `waiting` (requests queued at the gate) tells whether a burst is
    still draining, `outstanding` whether a request about an object is queued or in flight,
    `failed_within` whether one failed lately (kopf pauses, then tries again).
    """

    def __init__(self, limit: int = MAX_REQUESTS_IN_FLIGHT, seconds: float = REQUEST_SECONDS):
        self.seconds = seconds
        self._gate = asyncio.Semaphore(limit)
        self.waiting = 0
        self._outstanding: collections.Counter[str] = collections.Counter()
        self._failed: dict[str, float] = {}  # key -> when an attempt about it last failed
        self.clock: Callable[[], float] = time.monotonic

    def outstanding(self, namespace: str, plural: str, name: str) -> bool:
        """A request about this object is queued at the gate or in flight now."""
        return f"{namespace}/{plural}/{name}" in self._outstanding

    def failed_within(self, namespace: str, plural: str, name: str, seconds: float) -> bool:
        """An attempt of a request about this object failed in the last `seconds` (an error, a
        timeout, or an answer kopf retries after): its client may be about to try again."""
        failed = self._failed.get(f"{namespace}/{plural}/{name}")
        return failed is not None and self.clock() - failed < seconds

    def _note_failure(self, key: str) -> None:
        now = self.clock()
        if len(self._failed) > 1024:
            for old in [k for k, at in self._failed.items() if now - at > FAILURES_KEPT_SECONDS]:
                del self._failed[old]
        self._failed[key] = now

    async def middleware(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        if _is_watch(request):
            return await handler(request)  # long-lived: bounding them would starve requests
        key = object_key(request.url.path)
        self._outstanding[key] += 1
        try:
            response = await self._pass(request, handler)
        except Exception:
            self._note_failure(key)
            raise
        finally:
            self._outstanding[key] -= 1
            if not self._outstanding[key]:
                del self._outstanding[key]
        if response.status in RETRIED_STATUSES or response.status >= 500:
            self._note_failure(key)
        return response

    async def _pass(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        self.waiting += 1
        try:
            await self._gate.acquire()
        finally:
            self.waiting -= 1
        try:
            async with asyncio.timeout(self.seconds):
                response = await handler(request)
                try:
                    await response.read()  # the answer is read while the request holds its slot
                except BaseException:
                    response.close()
                    raise
                return response
        finally:
            self._gate.release()


def session_for(info: Any, gate: RequestGate | None = None) -> aiohttp.ClientSession:
    """An aiohttp session for a kopf ConnectionInfo (TLS, token or basic auth, proxy), its
    non-watch requests passed through `gate` (a gate of its own when not given)."""
    gate = gate if gate is not None else RequestGate()
    middleware: ClientMiddlewareType = gate.middleware
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=0, ssl=info.as_ssl_context(), keepalive_timeout=KEEPALIVE_SECONDS
        ),
        headers=info.as_http_headers(),  # bearer token or basic auth
        proxy=info.proxy_url,
        trust_env=bool(info.trust_env),
        middlewares=(middleware,),
    )


class KubeClient:
    """Status patches and Events for EcsExecutionRole objects."""

    def __init__(self, login: Callable[[], Any]) -> None:
        """`login` returns a kopf ConnectionInfo; it is called again after a 401 (token rotation)."""
        self._login = login
        self._session: aiohttp.ClientSession | None = None
        self._server = ""

    async def _connect(self) -> aiohttp.ClientSession:
        info = self._login()
        if info is None:
            raise KubeError(0, "no Kubernetes credentials (neither in-cluster nor KUBECONFIG)")
        if self._session is not None:
            await self._session.close()
        self._session = session_for(info)
        self._server = str(info.server).rstrip("/")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """One API call: (HTTP status, decoded JSON body). Raises KubeError only when unreachable.

        A 401 triggers one fresh login (in-cluster tokens rotate) and a retry.
        """
        for attempt in range(2):
            session = self._session
            if session is None or attempt:
                session = await self._connect()
            try:
                async with session.request(
                    method,
                    f"{self._server}{path}",
                    json=dict(body) if body is not None else None,
                    headers={"Content-Type": content_type},
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    if response.status == 401 and attempt == 0:
                        continue
                    try:
                        decoded = await response.json(content_type=None)
                    except ValueError:
                        decoded = None
                    return response.status, decoded
            except (aiohttp.ClientError, TimeoutError) as error:
                raise KubeError(0, str(error) or type(error).__name__) from error
        return 401, None

    async def _write(
        self, method: str, path: str, body: Mapping[str, Any], content_type: str
    ) -> None:
        status, decoded = await self.request(method, path, body, content_type)
        if status >= 400:
            message = decoded.get("message", "") if isinstance(decoded, dict) else ""
            raise KubeError(status, str(message)[:500])

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource; the condition list is replaced whole."""
        await self._write(
            "PATCH",
            f"/apis/{constants.GROUP}/{constants.VERSION}/namespaces/{namespace}/{constants.PLURAL}/{name}/status",
            {"status": dict(status)},
            "application/merge-patch+json",
        )

    async def patch_object(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch the object itself (metadata only: the operator never writes spec)."""
        await self._write(
            "PATCH",
            f"/apis/{constants.GROUP}/{constants.VERSION}/namespaces/{namespace}/{constants.PLURAL}/{name}",
            patch,
            "application/merge-patch+json",
        )

    async def post_event(
        self, *, namespace: str, name: str, uid: str, type_: str, reason: str, message: str
    ) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await self._write(
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": f"{constants.GROUP}/{constants.VERSION}",
                    "kind": constants.KIND,
                    "namespace": namespace,
                    "name": name,
                    "uid": uid,
                },
                "type": type_,
                "reason": reason,
                "message": message[:1024],
                "source": {"component": COMPONENT},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
            "application/json",
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
