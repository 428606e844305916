"""Serve EcsExecutionRoles whenever their CRD is installed, however late, and again after it is re-created.

kopf resolves the resources it serves through API discovery when it starts, and re-scans when a
CustomResourceDefinition event arrives. When the API server publishes the new resource in
discovery only after the CRD's last status update (common on a loaded machine, and whenever the
CRD and the operator's Deployment are applied together), no further event comes and kopf serves
nothing, silently, until it is restarted. So the operator itself waits until the resource is
served, runs kopf around it, and restarts kopf when the CRD disappears or is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ecsrole import logs
from ecsrole.kube import GROUP, PLURAL, VERSION, KubeClient, KubeError

CRD_NAME = f"{PLURAL}.{GROUP}"
# How often the CRD is looked at while waiting for it (cheap reads; only while nothing is served).
WAIT_POLL_SECONDS = 1.0
# How often it is looked at while serving: a deletion or re-creation is noticed within this.
SERVING_POLL_SECONDS = 10.0
# The "waiting for the CRD" line is logged at start, then at most this often.
WAITING_LOG_SECONDS = 60.0

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class CrdState:
    """What the API server says about the CRD right now."""

    uid: str | None  # None: not installed
    established: bool = False
    served: bool = False  # discovery lists the resource, so kopf's scan will find it
    terminating: bool = False  # being deleted: its objects go first, finalizers permitting

    @property
    def ready(self) -> bool:
        return self.uid is not None and self.established and self.served and not self.terminating

    def missing(self) -> str:
        """Why it cannot be served yet, in words for the log."""
        if self.uid is None:
            return "not installed"
        if self.terminating:
            return "being deleted"
        if not self.established:
            return "not established yet"
        return "not yet published in API discovery"


class CrdProbe(Protocol):
    async def state(self) -> CrdState: ...


class KubeCrdProbe:
    """Reads the CRD (list with a field selector: the RBAC kopf needs anyway) and discovery."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def state(self) -> CrdState:
        status, body = await self.kube.request(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
            f"?fieldSelector=metadata.name%3D{CRD_NAME}",
        )
        if status != 200 or not isinstance(body, dict):
            raise KubeError(status, _message(body) or "cannot list CustomResourceDefinitions")
        items = body.get("items") or []
        if not items:
            return CrdState(uid=None)
        crd = items[0]
        conditions = (crd.get("status") or {}).get("conditions") or []
        established = any(
            c.get("type") == "Established" and c.get("status") == "True" for c in conditions
        )
        uid = str(crd.get("metadata", {}).get("uid", "")) or None
        terminating = bool(crd.get("metadata", {}).get("deletionTimestamp")) or any(
            c.get("type") == "Terminating" and c.get("status") == "True" for c in conditions
        )
        if terminating:
            return CrdState(uid=uid, established=established, terminating=True)
        if not established:
            return CrdState(uid=uid)
        status, body = await self.kube.request("GET", f"/apis/{GROUP}/{VERSION}")
        served = (
            status == 200
            and isinstance(body, dict)
            and any(r.get("name") == PLURAL for r in body.get("resources") or [])
        )
        return CrdState(uid=uid, established=True, served=served)


def _message(body: Any) -> str:
    return str(body.get("message", "")) if isinstance(body, dict) else ""


Serve = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
Finalize = Callable[[], Coroutine[Any, Any, None]]


class CrdGate:
    """Runs `serve(until)` while the CRD is served; `until` is set when it goes or is replaced.

    `serve` is kopf's run (handlers.py); it returns once `until` is set, or by itself (a signal,
    a fatal error), which ends the gate too. While the CRD is terminating, `finalize` runs at
    every look: kopf stops serving a resource that discovery lists without the patch verb, as
    it does for a terminating CRD, yet the API server removes the CRD only once every object's
    finalizer is gone, so the operator finishes those deletions itself.
    """

    def __init__(
        self,
        probe: CrdProbe,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_poll: float = WAIT_POLL_SECONDS,
        serving_poll: float = SERVING_POLL_SECONDS,
        waiting_log_every: float = WAITING_LOG_SECONDS,
    ) -> None:
        self.probe = probe
        self.clock = clock
        self.wait_poll = wait_poll
        self.serving_poll = serving_poll
        self.waiting_log_every = waiting_log_every
        self.serving_runs = 0  # how many times serving started (tests and logs)

    async def run(
        self, serve: Serve, stop: asyncio.Event, finalize: Finalize | None = None
    ) -> None:
        """Until `stop` is set: wait for the CRD, serve it, and start over when it is gone."""
        while not stop.is_set():
            ready = await self._wait_until_served(stop, finalize)
            if ready is None:
                return
            self.serving_runs += 1
            log.info("serving EcsExecutionRoles", crd=CRD_NAME, crd_uid=ready.uid)
            if not await self._serve_while_installed(serve, ready, stop, finalize):
                return

    async def _wait_until_served(
        self, stop: asyncio.Event, finalize: Finalize | None
    ) -> CrdState | None:
        logged_at: float | None = None
        while not stop.is_set():
            try:
                state = await self.probe.state()
                reason = state.missing()
            except KubeError as error:
                state, reason = CrdState(uid=None), f"cannot be read ({error})"
            if state.ready:
                return state
            if state.terminating and finalize is not None:
                await finalize()  # a CRD deleted while the operator was down or starting
            now = self.clock()
            if logged_at is None or now - logged_at >= self.waiting_log_every:
                log.warning(
                    f"waiting for CustomResourceDefinition {CRD_NAME}: {reason}; "
                    "EcsExecutionRoles are served as soon as it is installed",
                    crd=CRD_NAME,
                )
                logged_at = now
            await _wait(stop, self.wait_poll)
        return None

    async def _serve_while_installed(
        self, serve: Serve, ready: CrdState, stop: asyncio.Event, finalize: Finalize | None
    ) -> bool:
        """True when serving stopped because the CRD went away (so wait for it again)."""
        until = asyncio.Event()
        serving = asyncio.create_task(serve(until), name="kopf")
        stopping = asyncio.create_task(stop.wait(), name="crd-gate-stop")
        gone = False
        try:
            while True:
                await asyncio.wait(
                    {serving, stopping}, timeout=self.serving_poll, return_when=FIRST_COMPLETED
                )
                if serving.done() or stop.is_set():
                    break
                try:
                    now = await self.probe.state()
                except KubeError:
                    continue  # the API server is briefly away: keep serving
                if now.uid == ready.uid and now.terminating and finalize is not None:
                    await finalize()
                # Keep kopf running while the same CRD exists, Terminating included.
                if now.uid != ready.uid:
                    gone = True
                    log.warning(
                        f"CustomResourceDefinition {CRD_NAME} was "
                        f"{'deleted' if now.uid is None else 're-created'}; "
                        "restarting the serving of EcsExecutionRoles",
                        crd=CRD_NAME,
                    )
                    break
        finally:
            until.set()
            stopping.cancel()
            if not serving.done():
                await asyncio.wait({serving})
        serving.result()  # kopf's own failure ends the operator, as it always did
        return gone and not stop.is_set()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
