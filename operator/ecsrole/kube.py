"""A small Kubernetes client for the writes made outside kopf handlers (drift sweeps, events).

kopf writes status from inside its handlers; the per-account sweeps run beside kopf, so they
need their own way to patch status and post Events. This uses the same credentials kopf logs in
with (in-cluster service account, else KUBECONFIG) and aiohttp, which kopf already depends on,
rather than a second full Kubernetes client library.
"""

from __future__ import annotations

import base64
import datetime
import ssl
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

GROUP, VERSION, PLURAL = "iam.ecsrole.dev", "v1alpha1", "ecsexecutionroles"
KIND = "EcsExecutionRole"
COMPONENT = "ecsrole"


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _as_file(data: str | bytes, folder: Path, name: str) -> str:
    """kopf gives certificate data base64-encoded or raw; ssl wants files."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        decoded = base64.b64decode(raw, validate=True)
        if b"-----BEGIN" in decoded:
            raw = decoded
    except ValueError:
        pass
    path = folder / name
    path.write_bytes(raw)
    path.chmod(0o600)
    return str(path)


class KubeClient:
    """Status patches and Events for EcsExecutionRole objects."""

    def __init__(self, login: Callable[[], Any]) -> None:
        """`login` returns a kopf ConnectionInfo; it is called again after a 401 (token rotation)."""
        self._login = login
        self._session: aiohttp.ClientSession | None = None
        self._server = ""
        self._headers: dict[str, str] = {}
        self._ssl: ssl.SSLContext | bool = True
        self._tmp = tempfile.TemporaryDirectory(prefix="ecsrole-kube-")

    def _connect(self) -> None:
        info = self._login()
        if info is None:
            raise KubeError(0, "no Kubernetes credentials (neither in-cluster nor KUBECONFIG)")
        folder = Path(self._tmp.name)
        context = ssl.create_default_context()
        if info.ca_path:
            context.load_verify_locations(cafile=str(info.ca_path))
        elif info.ca_data:
            context.load_verify_locations(cafile=_as_file(info.ca_data, folder, "ca.crt"))
        cert = info.certificate_path or (
            _as_file(info.certificate_data, folder, "client.crt") if info.certificate_data else None
        )
        key = info.private_key_path or (
            _as_file(info.private_key_data, folder, "client.key") if info.private_key_data else None
        )
        if cert and key:
            context.load_cert_chain(str(cert), str(key))
        if info.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._ssl = context
        self._server = str(info.server).rstrip("/")
        self._headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}

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
            if self._session is None or attempt:
                self._connect()
                if self._session is None:
                    self._session = aiohttp.ClientSession()
            try:
                async with self._session.request(
                    method,
                    f"{self._server}{path}",
                    json=dict(body) if body is not None else None,
                    headers={**self._headers, "Content-Type": content_type},
                    ssl=self._ssl,
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
        self._tmp.cleanup()
