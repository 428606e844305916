"""What every handler needs: the configuration, the AWS clients and the worker pool.

kopf hands it to handlers as `memo`; there are no module-level globals.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from ecsrole.aws.clients import AccountAccess, ClientFactory
from ecsrole.aws.iam import CallerIdentity, IamAdapter
from ecsrole.config import AccountConfig, OperatorConfig

T = TypeVar("T")

# The caller identity of an account changes only when its configuration does; re-checking it
# now and then still catches a roleArn that was repointed at another account.
IDENTITY_TTL_SECONDS = 900.0


@dataclass
class _IdentityCache:
    entries: dict[str, tuple[float, CallerIdentity]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class OperatorContext:
    config: OperatorConfig
    clients: ClientFactory
    pool: ThreadPoolExecutor
    _identities: _IdentityCache = field(default_factory=_IdentityCache)

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

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        """STS GetCallerIdentity for the account's clients, cached for a while (blocking)."""
        now = time.monotonic()
        with self._identities.lock:
            cached = self._identities.entries.get(account.account_id)
        if cached is not None and now - cached[0] < IDENTITY_TTL_SECONDS:
            return cached[1]
        identity = self.adapter(account).caller_identity()
        with self._identities.lock:
            self._identities.entries[account.account_id] = (now, identity)
        return identity

    async def in_worker(self, fn: Callable[[], T]) -> T:
        """Run blocking AWS work in the bounded pool so the event loop never blocks.

        The caller's context variables (the bound log fields) travel with the work.
        """
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.pool, context.run, fn)
