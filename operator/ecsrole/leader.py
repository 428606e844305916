"""Leader election on a coordination.k8s.io Lease: one active replica, the others stand by.

kopf's peering only pauses operators; it is not a lease. So a replica runs kopf and the sweeps
only while it holds the Lease, with client-go's algorithm:

- a standby never trusts the holder's timestamps (clocks differ between nodes): it notes, on its
  own monotonic clock, when it last saw the lease record change, and takes over only when the
  record has not changed for a full lease duration;
- the leader renews every retry period; when it cannot renew within the renew deadline it
  must assume another replica may take over, so it stops (the process ends and restarts as a
  standby) rather than risk two writers;
- on SIGTERM the leader releases the lease (holder cleared), so a standby takes over at once.

Every write is a compare-and-swap on the lease's resourceVersion, so two standbys racing for an
expired lease cannot both win.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecsrole import logs, metrics
from ecsrole.kube import KubeClient, KubeError

log = logs.get_logger(__name__)

#: A standby waking for an expiry checks this much after it, so the record is surely older
#: than a lease duration by its clock when it looks.
EXPIRY_MARGIN_SECONDS = 0.01


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "lease timings must satisfy lease duration > renew deadline > retry period > 0"
            )


def _micro_time(now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquires, renews and releases one Lease for this process."""

    def __init__(
        self,
        kube: KubeClient,
        settings: LeaseSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        #: The standby's own clock, never the holder's timestamps (tests pass a fake one).
        self.clock = clock
        self.path = (
            f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}/leases/{settings.name}"
        )
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None
        self.is_leader = False

    async def _get(self) -> dict[str, Any] | None:
        status, body = await self.kube.request(
            "GET", self.path, timeout=self.settings.retry_period * 2
        )
        if status == 404:
            return None
        if status >= 400 or not isinstance(body, dict):
            raise KubeError(status, f"reading lease {self.settings.name}: {body}")
        return body

    def _spec(self, transitions: int, acquire_time: str | None) -> dict[str, Any]:
        now = _micro_time()
        return {
            "holderIdentity": self.settings.identity,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration)),
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the lease afterwards."""
        lease = await self._get()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
                "spec": self._spec(0, None),
            }
            status, created = await self.kube.request(
                "POST", self.path.rsplit("/", 1)[0], body, timeout=self.settings.retry_period * 2
            )
            if status in (200, 201) and isinstance(created, dict):
                self._lease = created
                return True
            return False

        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), lease["metadata"].get("resourceVersion"))
        now = self.clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        mine = holder == self.settings.identity
        if holder and not mine and now - self._observed_at < self.settings.lease_duration:
            return False  # someone else holds it and was seen renewing recently
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        lease["spec"] = self._spec(transitions, spec.get("acquireTime") if mine else None)
        status, replaced = await self.kube.request(
            "PUT", self.path, lease, timeout=self.settings.retry_period * 2
        )
        if status == 200 and isinstance(replaced, dict):
            self._lease = replaced
            return True
        return False  # 409: another replica changed it first

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process holds the lease (True) or `stop` is set (False)."""
        log.info(
            "waiting for the leader lease",
            lease=self.settings.name,
            identity=self.settings.identity,
        )
        while not stop.is_set():
            try:
                if await self.try_acquire_or_renew():
                    self.is_leader = True
                    metrics.leader.set(1)
                    log.info("became the leader", lease=self.settings.name)
                    return True
            except KubeError as error:
                log.warning("lease check failed", error=str(error))
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.next_attempt_in())
            except TimeoutError:
                continue
        return False

    def next_attempt_in(self) -> float:
        """Seconds until a standby's next attempt: a retry period, or less when the record it saw
        expires sooner by its own clock. A silent leader is then replaced at the expiry, not up
        to a retry period after it (on average a second sooner, with client-go's timings)."""
        if self._observed is None:
            return self.settings.retry_period
        expires_in = self._observed_at + self.settings.lease_duration - self.clock()
        if 0 < expires_in < self.settings.retry_period:
            return expires_in + EXPIRY_MARGIN_SECONDS
        return self.settings.retry_period

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew until `stop`; return (having cleared leadership) when renewal is lost."""
        last_renewed = self.clock()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.retry_period)
                return
            except TimeoutError:
                pass
            try:
                renewed = await self.try_acquire_or_renew()
            except KubeError as error:
                log.warning("lease renewal failed", error=str(error))
                renewed = False
            if renewed:
                last_renewed = self.clock()
            elif self.clock() - last_renewed > self.settings.renew_deadline:
                self.is_leader = False
                metrics.leader.set(0)
                log.error(
                    "lost the leader lease: stopping so that only one replica writes",
                    lease=self.settings.name,
                )
                return

    async def release(self) -> None:
        """Clear the holder so a standby takes over now instead of after the lease duration."""
        if not self.is_leader or self._lease is None:
            return
        self.is_leader = False
        metrics.leader.set(0)
        lease = dict(self._lease)
        lease["spec"] = {
            **(lease.get("spec") or {}),
            "holderIdentity": None,
            "leaseDurationSeconds": 1,
        }
        try:
            status, _ = await self.kube.request("PUT", self.path, lease, timeout=5)
            log.info("released the leader lease", lease=self.settings.name, status=status)
        except KubeError as error:
            log.warning("could not release the lease", error=str(error))
