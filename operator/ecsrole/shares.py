"""Fair sharing of the AWS worker threads between accounts (event-loop side, no I/O).

All accounts share one bounded thread pool. Without a bound per account, an account with a low
`maxCallsPerSecond` and hundreds of pending reconciles fills every worker with threads waiting
for its rate limiter, and every other account's reconciles and sweeps queue behind them. So a
piece of AWS work for an account first takes a *turn* here, on the event loop, and only then
goes to a worker.

An account's share is the pool size divided by the number of accounts that have work running
or waiting, and never more than half the pool: an account alone leaves half the workers idle
for the next account that gets work, and all accounts together never hold more turns than
there are workers, so a granted turn finds a free worker. When a new account gets work, the
others' shares shrink as their running work finishes (nothing is taken away mid-call). Waiting turns are granted first in, first
out within an account, and round-robin across accounts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator


class WorkerShares:
    """Turns on the worker pool, at most `share()` running per account at any time."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._running: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}
        # Accounts in the order their waiters are served next (round robin).
        self._rotation: collections.deque[str] = collections.deque()

    def share(self) -> int:
        """Turns one account may hold now: pool / busy accounts, at most half the pool."""
        busy = len(self._running.keys() | self._waiting.keys())
        return max(1, self.workers // max(2, busy))

    def _may_run(self, account_id: str) -> bool:
        return (
            self.running(account_id) < self.share() and sum(self._running.values()) < self.workers
        )

    def running(self, account_id: str) -> int:
        return self._running.get(account_id, 0)

    def waiting(self, account_id: str) -> int:
        return len(self._waiting.get(account_id, ()))

    @contextlib.asynccontextmanager
    async def turn(self, account_id: str) -> AsyncIterator[None]:
        """Hold one of the account's turns for the duration of the block."""
        await self._acquire(account_id)
        try:
            yield
        finally:
            self._release(account_id)

    async def _acquire(self, account_id: str) -> None:
        if account_id not in self._waiting and self._may_run(account_id):
            self._running[account_id] = self.running(account_id) + 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(account_id)
        if queue is None:
            queue = self._waiting[account_id] = collections.deque()
            self._rotation.append(account_id)
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Granted and cancelled in the same tick: hand the turn on.
                self._release(account_id)
            else:
                self._forget_waiter(account_id, waiter)
            raise

    def _release(self, account_id: str) -> None:
        left = self.running(account_id) - 1
        if left > 0:
            self._running[account_id] = left
        else:
            self._running.pop(account_id, None)
        self._grant()

    def _forget_waiter(self, account_id: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(account_id)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        if not queue:
            del self._waiting[account_id]
            self._rotation.remove(account_id)
        self._grant()  # one account fewer may mean a larger share for the others

    def _grant(self) -> None:
        """Wake waiters, one per account in turn, while their accounts are under the share."""
        progressed = True
        while progressed and self._rotation:
            progressed = False
            for _ in range(len(self._rotation)):
                account_id = self._rotation[0]
                self._rotation.rotate(-1)
                if not self._may_run(account_id):
                    continue
                queue = self._waiting[account_id]
                waiter = queue.popleft()
                if not queue:
                    del self._waiting[account_id]
                    self._rotation.remove(account_id)
                if waiter.cancelled():
                    progressed = True
                    continue
                waiter.set_result(None)
                self._running[account_id] = self.running(account_id) + 1
                progressed = True
                break
