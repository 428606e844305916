"""The operator's configuration model (DESIGN section 3): typed, frozen, free of I/O.

The core decides with these values; ecsrole.config reads the YAML file and validates it into
them. Keeping the model here means the pure core never imports the loader (or yaml).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ecsrole.core import iam

DEFAULT_REGION = "us-east-1"
DEFAULT_DRIFT_CHECK_INTERVAL = 60.0
#: A sweep reads every role of an account; more often than this is a hot loop against IAM.
MIN_DRIFT_CHECK_INTERVAL = 1.0
#: After its own write the operator does not trust a read of that aspect for this long: IAM is
#: eventually consistent (Terraform waits up to 2 minutes), and a stale read must not look like
#: drift. 0 suits only a strongly consistent emulator such as moto.
DEFAULT_SETTLE_WINDOW = 15.0
MAX_SETTLE_WINDOW = 300.0
DEFAULT_MAX_CALLS_PER_SECOND = 10.0


class SweepMode(StrEnum):
    """How the drift sweep reads an account (DESIGN section 4)."""

    BULK = "bulk"
    PER_ROLE = "perRole"


@dataclass(frozen=True)
class AccountConfig:
    """One AWS account the operator may manage roles in, and what it allows there."""

    account_id: str
    role_arn: str | None = None
    external_id: str | None = None
    namespaces: tuple[str, ...] = ()
    role_path_prefix: str = "/"
    permissions_boundary_arn: str | None = None
    allowed_policy_arns: tuple[str, ...] = ()
    allowed_resource_patterns: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict, hash=False
    )
    allow_adoption: bool = False
    ignored_tag_keys: tuple[str, ...] = ()
    sweep_mode: SweepMode = SweepMode.BULK
    max_calls_per_second: float = DEFAULT_MAX_CALLS_PER_SECOND

    def allows_namespace(self, namespace: str) -> bool:
        """True when a resource in `namespace` may manage roles in this account."""
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.namespaces)

    def resource_patterns_for(self, namespace: str) -> tuple[str, ...]:
        """The ARN patterns `namespace` may grant access to, from every matching entry, in order."""
        patterns: dict[str, None] = {}
        for namespace_glob, arn_patterns in self.allowed_resource_patterns.items():
            if fnmatch.fnmatchcase(namespace, namespace_glob):
                patterns.update(dict.fromkeys(arn_patterns))
        return tuple(patterns)

    def policy_allowed(self, arn: str) -> bool:
        """True when `arn` matches one of allowedPolicyArns (the seed policy is desired's call)."""
        return any(fnmatch.fnmatchcase(arn, pattern) for pattern in self.allowed_policy_arns)


@dataclass(frozen=True)
class OperatorConfig:
    """The whole operator configuration."""

    cluster_name: str
    region: str = DEFAULT_REGION
    drift_check_interval: float = DEFAULT_DRIFT_CHECK_INTERVAL
    settle_window: float = DEFAULT_SETTLE_WINDOW
    events_sqs_queue_url: str | None = None
    protected_role_names: tuple[str, ...] = ()
    accounts: Mapping[str, AccountConfig] = field(default_factory=dict, hash=False)

    def account(self, account_id: str) -> AccountConfig | None:
        """The entry for `account_id`, or None: an unlisted account gets zero AWS calls."""
        return self.accounts.get(account_id)

    def account_map_role_names(self, account_id: str) -> tuple[str, ...]:
        """Names of the roles the account map itself assumes in `account_id` (never adopted)."""
        names = []
        for account in self.accounts.values():
            if account.role_arn is None:
                continue
            parsed = iam.parse_role_arn(account.role_arn)
            if not isinstance(parsed, str) and parsed.account == account_id:
                names.append(parsed.name)
        return tuple(names)
