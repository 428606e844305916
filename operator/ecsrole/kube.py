"""A small Kubernetes client for the writes made outside kopf handlers (drift sweeps, events).

kopf writes status from inside its handlers; the per-account sweeps run beside kopf, so they
need their own way to patch status and post Events. This uses the same credentials kopf logs in
with (in-cluster service account, else KUBECONFIG) and aiohttp, which kopf already depends on,
rather than a second full Kubernetes client library.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse

GROUP, VERSION, PLURAL = "iam.ecsrole.dev", "v1alpha1", "ecsexecutionroles"
KIND = "EcsExecutionRole"
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
# aiohttp's pool hands out idle connections first-in first-out, so a steady trickle of requests
# keeps alive every connection a burst opened. A short keep-alive lets the pool shrink.
KEEPALIVE_SECONDS = 2.0


def _bounded(limit: int) -> ClientMiddlewareType:
    """A middleware letting at most `limit` non-watch requests reach the pool at once."""
    gate = asyncio.Semaphore(limit)

    async def middleware(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if request.url.query.get("watch") in ("true", "1"):
            return await handler(request)  # long-lived: bounding them would starve requests
        async with gate:
            return await handler(request)

    return middleware


def session_for(info: Any) -> aiohttp.ClientSession:
    """An aiohttp session for a kopf ConnectionInfo (TLS, token or basic auth, proxy)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=0, ssl=info.as_ssl_context(), keepalive_timeout=KEEPALIVE_SECONDS
        ),
        headers=info.as_http_headers(),  # bearer token or basic auth
        proxy=info.proxy_url,
        trust_env=bool(info.trust_env),
        middlewares=(_bounded(MAX_REQUESTS_IN_FLIGHT),),
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
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
            {"status": dict(status)},
            "application/merge-patch+json",
        )

    async def patch_object(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch the object itself (metadata only: the operator never writes spec)."""
        await self._write(
            "PATCH",
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
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
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
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
