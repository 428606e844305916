"""Stand-ins shared by the unit tests of the stateful shell: a clock that moves only when told,
and an OperatorContext whose AWS side is one fake adapter."""

from __future__ import annotations

import asyncio
from typing import Any

from ecsrole.aws.iam import CallerIdentity
from ecsrole.context import OperatorContext
from ecsrole.core.config import AccountConfig

OPERATOR_ROLE = "ecsrole-operator"


class Clock:
    """A monotonic clock for the code under test; `now` moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class WakeUps:
    """Counts an asyncio.Condition's notify_all calls: how often its waiters were woken."""

    def __init__(self, condition: asyncio.Condition) -> None:
        self.count = 0
        notify_all = condition.notify_all

        def counted() -> None:
            self.count += 1
            notify_all()

        condition.notify_all = counted  # type: ignore[method-assign]


def operator_arn(account_id: str) -> str:
    return f"arn:aws:sts::{account_id}:assumed-role/{OPERATOR_ROLE}/session"


class FakeContext(OperatorContext):
    """Every account is reached through `fake` (an IamAdapter stand-in), as the operator's role."""

    fake: Any

    def adapter(self, account: AccountConfig) -> Any:
        return self.fake

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        return CallerIdentity(account.account_id, operator_arn(account.account_id), "AROAOPERATOR")
