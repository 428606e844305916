"""What every handler and sweep needs: configuration, AWS clients, worker pool, shared memory.

kopf hands it to handlers as `memo`, the sweeps get it directly; there are no module-level
globals. Besides clients it keeps the little state the process must remember between
reconciles: one lock per object (a handler and a sweep never work on the same object at
once), the aspects the operator itself wrote recently (the settle window), and when each
object was last seen in sync (sweep-path detection latency).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ecsrole.aws.clients import AccountAccess, ClientFactory
from ecsrole.aws.iam import CallerIdentity, IamAdapter
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.model import Aspect
from ecsrole.shares import WorkerShares

T = TypeVar("T")

# The caller identity of an account changes only when its configuration does; re-checking it
# now and then still catches a roleArn that was repointed at another account.
IDENTITY_TTL_SECONDS = 900.0

#: One object's spec as of one generation: (metadata.uid, metadata.generation).
SpecVersion = tuple[str, int]


@dataclass
class _IdentityCache:
    entries: dict[str, tuple[float, CallerIdentity]] = field(default_factory=dict)
    fetching: dict[str, threading.Lock] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class OperatorContext:
    config: OperatorConfig
    clients: ClientFactory
    pool: ThreadPoolExecutor
    _identities: _IdentityCache = field(default_factory=_IdentityCache)
    # Each account's share of the pool's workers (ecsrole.shares). It also bounds the AWS work
    # in flight at once to about the pool size: after a start or a burst of applies thousands
    # of objects are handled together, and unbounded each holds its own API connection and
    # buffers (RSS grew by ~0.2 MB per object and stayed). Not kopf's worker limit: kopf's
    # workers wait for its indices to be complete before handlers run, so a worker limit below
    # the number of existing objects deadlocks a restart.
    shares: WorkerShares = field(default_factory=lambda: WorkerShares(16))
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    #: (account, role in lower case) -> aspect -> (when, the spec it was written for).
    _writes: dict[tuple[str, str], dict[Aspect, tuple[float, SpecVersion]]] = field(
        default_factory=dict
    )
    _in_sync_at: dict[str, float] = field(default_factory=dict)
    #: uid -> when kopf last showed work on the object (an event it processed, a handler end).
    _kopf_seen: dict[str, float] = field(default_factory=dict)
    _state_lock: threading.Lock = field(default_factory=threading.Lock)
    # The label selector of this shard (`--selector`): the API server sends only matching
    # objects, so the handlers, the index and the sweeps see only this shard's resources.
    selector: str | None = None
    resources: Any = None  # kopf's index of resources (by account and by uid), set at startup
    claims: Any = None  # kopf's index of claims by account and role name (core.claims)
    sweeper: Any = None  # sweeper.Sweeper of the current leadership term (wakes claimants)
    #: Monotonic seconds for the settle window, the identity cache and the seed (tests pass a
    #: fake clock); wall-clock times (in-sync observations) stay time.time.
    clock: Callable[[], float] = time.monotonic
    seeds: Any = None  # sweeper.Seeder of the current leadership term
    #: The gate of kopf's API session (kube.RequestGate): whether requests queue at it now.
    kopf_requests: Any = None

    def __copy__(self) -> OperatorContext:
        # kopf copies the memo per object; all of this is shared state, so share it.
        return self

    def adapter(self, account: AccountConfig) -> IamAdapter:
        access = AccountAccess(
            account_id=account.account_id,
            role_arn=account.role_arn,
            external_id=account.external_id,
            max_calls_per_second=account.max_calls_per_second,
        )
        return IamAdapter(self.clients.for_account(access))

    def warm_clients(self) -> None:
        """Create every configured account's clients now (blocking: run it in a thread).

        Creating an account's clients builds botocore's client classes, tens of milliseconds of
        CPU each; done lazily, it lands on the event loop at the account's first sweep or seed
        read, which after a takeover is when the loop is busiest. A standby does it while it
        waits for the lease. No AWS call is made (credentials are fetched on first use).
        """
        for account in self.config.accounts.values():
            self.adapter(account)

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        """STS GetCallerIdentity for the account's clients, cached for a while (blocking).

        One lookup per account at a time: a burst of first reconciles waits for it instead of
        each asking STS.
        """
        with self._identities.lock:
            account_lock = self._identities.fetching.setdefault(
                account.account_id, threading.Lock()
            )
        with account_lock:
            now = self.clock()
            with self._identities.lock:
                cached = self._identities.entries.get(account.account_id)
            if cached is not None and now - cached[0] < IDENTITY_TTL_SECONDS:
                return cached[1]
            identity = self.adapter(account).caller_identity()
            with self._identities.lock:
                self._identities.entries[account.account_id] = (now, identity)
            return identity

    def lock_for(self, uid: str) -> asyncio.Lock:
        """The lock serialising work on one object (event-loop side only)."""
        lock = self._locks.get(uid)
        if lock is None:
            lock = self._locks[uid] = asyncio.Lock()
        return lock

    def working_on(self, uid: str) -> bool:
        """A handler or a sweep holds the object's lock now (no lock is made for asking)."""
        lock = self._locks.get(uid)
        return lock is not None and lock.locked()

    def forget(self, uid: str) -> None:
        """Drop what is remembered about a deleted object."""
        self._locks.pop(uid, None)
        with self._state_lock:
            self._in_sync_at.pop(uid, None)
            self._kopf_seen.pop(uid, None)

    def kopf_saw(self, uid: str) -> None:
        """kopf worked on the object just now (the index function, the handlers, the nudges)."""
        now = self.clock()
        with self._state_lock:
            self._kopf_seen[uid] = now

    def kopf_quiet_for(self, uid: str) -> float:
        """Seconds since kopf last worked on the object; 0 the first time it is asked about one
        kopf has not reported (the quiet is counted from then)."""
        now = self.clock()
        with self._state_lock:
            return now - self._kopf_seen.setdefault(uid, now)

    def record_writes(
        self, account_id: str, role_name: str, aspects: Iterable[Aspect], written_for: SpecVersion
    ) -> None:
        """The operator wrote these aspects of the role, carrying out spec `written_for`."""
        now = self.clock()
        with self._state_lock:
            written = self._writes.setdefault((account_id, role_name.lower()), {})
            for aspect in aspects:
                written[aspect] = (now, written_for)

    def settling(
        self, account_id: str, role_name: str, judged_for: SpecVersion
    ) -> frozenset[Aspect]:
        """Aspects the operator wrote within the settle window: not judged by a detection read.

        Only writes made for the spec now being judged settle. After a spec change a stale
        read cannot hide the new value, so an aspect written for an older generation (or by a
        deleted object that had the same role name) is judged at once: skipping it would
        report the role in sync with a generation AWS does not hold.
        """
        now = self.clock()
        with self._state_lock:
            written = self._writes.get((account_id, role_name.lower()), {})
            for aspect, (at, _) in list(written.items()):
                if now - at > self.config.settle_window:
                    del written[aspect]
            if not written:
                self._writes.pop((account_id, role_name.lower()), None)
            return frozenset(a for a, (_, spec) in written.items() if spec == judged_for)

    def mark_in_sync(self, uid: str) -> None:
        with self._state_lock:
            self._in_sync_at[uid] = time.time()

    def last_in_sync(self, uid: str) -> float | None:
        with self._state_lock:
            return self._in_sync_at.get(uid)

    async def in_worker(self, fn: Callable[[], T], *, account_id: str | None = None) -> T:
        """Run blocking AWS work in the bounded pool so the event loop never blocks.

        Work for an account (`account_id`) first takes one of that account's turns on the pool
        (its fair share of the workers) and waits, still on the event loop, until the account's
        rate limiter has a token: a slow or throttled account queues here, not in the workers
        every account shares. The caller's context variables (the bound log fields) travel
        with the work.
        """
        if account_id is None:
            return await self._run(fn)
        async with self.shares.turn(account_id):
            limiter = self.clients.limiter(account_id) if self.clients else None
            if limiter is not None:
                await limiter.wait_available()
            return await self._run(fn)

    async def _run(self, fn: Callable[[], T]) -> T:
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.pool, context.run, fn)
