"""The operator's configuration (DESIGN section 3): typed, frozen, validated by hand.

The file is written by a platform team and mounted from a ConfigMap, and a mistake in it can
open an AWS account to the wrong namespace. So parsing is strict and exhaustive:

- every problem is reported at once (`ecsrole check-config` prints them all), each as
  `field.path: message` with the field spelled as the user wrote it, e.g.
  `accounts."111111111111".rolePathPrefix: must start and end with "/"`;
- unknown keys are refused, with a did-you-mean, because a typo such as `allowAdoptoin` must
  not silently keep the default;
- account ids must be quoted strings: YAML reads an unquoted 111111111111 as a number (and one
  with a leading zero as an octal number), which would name a different account;
- duplicate keys in the YAML are refused: PyYAML would silently keep the last one, dropping,
  say, a whole account entry.

Nothing here talks to AWS; the values are checked for shape and consistency only.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml
import yaml.constructor
import yaml.nodes

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
#: Role paths AWS reserves for its own roles (service-linked roles, IAM Identity Center).
RESERVED_PATH_PREFIXES = ("/aws-service-role/", "/aws-reserved/")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMESPACE_GLOB = re.compile(r"[a-z0-9*?\[\]!-]+")
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)


class SweepMode(StrEnum):
    """How the drift sweep reads an account (DESIGN section 4)."""

    BULK = "bulk"
    PER_ROLE = "perRole"


class ConfigError(ValueError):
    """An invalid configuration; `errors` lists every problem as "field.path: message"."""

    def __init__(self, errors: Iterable[str], *, source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "".join(f"\n  - {error}" for error in self.errors)
        super().__init__(f"invalid operator configuration{where}:{lines}")


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


def load_config(path: str | os.PathLike[str]) -> OperatorConfig:
    """Read, parse and validate the YAML file at `path`; ConfigError names the file."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError([f"{source}: cannot read the file: {reason}"], source=source) from error
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError([f"{source}: not valid YAML: {error}"], source=source) from error
    try:
        return parse_config(data)
    except ConfigError as error:
        raise ConfigError(error.errors, source=source) from None


def parse_config(data: object) -> OperatorConfig:
    """Validate already-loaded configuration data; ConfigError lists every problem found."""
    problems = _Problems()
    if data is None:
        raise ConfigError(
            ["(top level): the configuration is empty; clusterName and accounts are required"]
        )
    if not isinstance(data, Mapping):
        raise ConfigError([f"(top level): must be a mapping, not {_type_name(data)}"])
    problems.unknown_keys(data, _TOP_LEVEL_KEYS, "")

    cluster_name = _cluster_name(data.get("clusterName"), problems)
    region = _region(data.get("region"), problems)
    interval = _duration(data.get("driftCheckInterval"), "driftCheckInterval", problems)
    settle_window = _duration(
        data.get("settleWindow"),
        "settleWindow",
        problems,
        default=DEFAULT_SETTLE_WINDOW,
        minimum=0.0,
        maximum=MAX_SETTLE_WINDOW,
    )
    queue_url = _events(data.get("events"), problems)
    protected = _string_list(
        data.get("protectedRoleNames"),
        "protectedRoleNames",
        problems,
        check=iam.role_name_problem,
    )
    accounts = _accounts(data, problems)
    if problems:
        raise ConfigError(problems)
    return OperatorConfig(
        cluster_name=cluster_name,
        region=region,
        drift_check_interval=interval,
        settle_window=settle_window,
        events_sqs_queue_url=queue_url,
        protected_role_names=protected,
        accounts=accounts,
    )


# -- problem collection ------------------------------------------------------------------------


_TOP_LEVEL_KEYS = (
    "clusterName",
    "region",
    "driftCheckInterval",
    "settleWindow",
    "events",
    "protectedRoleNames",
    "accounts",
)
_EVENTS_KEYS = ("sqsQueueUrl",)
_ACCOUNT_KEYS = (
    "roleArn",
    "externalId",
    "namespaces",
    "rolePathPrefix",
    "permissionsBoundaryArn",
    "allowedPolicyArns",
    "allowedResourcePatterns",
    "allowAdoption",
    "ignoredTagKeys",
    "sweepMode",
    "maxCallsPerSecond",
)


def _child(parent: str, key: str, *, quoted: bool = False) -> str:
    """The path of `key` under `parent`; user-chosen keys (ids, namespaces) are always quoted."""
    text = key if (not quoted and _IDENTIFIER.fullmatch(key)) else json.dumps(key)
    return f"{parent}.{text}" if parent else text


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    candidates = {name.lower(): name for name in known}
    match = candidates.get(key.lower())
    if match is None:
        close = difflib.get_close_matches(key.lower(), candidates, n=1, cutoff=0.6)
        match = candidates[close[0]] if close else None
    if match is not None:
        return f'unknown key (did you mean "{match}"?)'
    return f"unknown key (expected one of: {', '.join(known)})"


class _Problems(list[str]):
    """Accumulates "field.path: message" lines so that every problem is reported at once."""

    def add(self, path: str, message: str) -> None:
        self.append(f"{path or '(top level)'}: {message}")

    def unknown_keys(self, mapping: Mapping[Any, Any], known: Iterable[str], path: str) -> None:
        known = tuple(known)
        for key in mapping:
            if not isinstance(key, str):
                # Unquoted, as YAML showed it: quoting would suggest it was a string.
                where = f"{path}.{key}" if path else str(key)
                self.add(where, f"keys must be strings, not {_type_name(key)}")
            elif key not in known:
                self.add(_child(path, key), _did_you_mean(key, known))


# -- field parsers -----------------------------------------------------------------------------


def _optional_str(value: object, path: str, problems: _Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(path, f"must be a string, not {_type_name(value)}")
        return None
    return value


def _string_list(
    value: object,
    path: str,
    problems: _Problems,
    *,
    check: Callable[[str], str | None] | None = None,
) -> tuple[str, ...]:
    """A list of strings, each optionally checked by `check(item) -> problem | None`."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(path, f"must be a list, not {_type_name(value)}")
        return ()
    items = []
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, str):
            hint = (
                " (quote it: YAML reads yes/no/on/off as booleans)"
                if isinstance(item, bool)
                else ""
            )
            problems.add(item_path, f"must be a string, not {_type_name(item)}{hint}")
            continue
        problem = check(item) if check is not None else None
        if problem is not None:
            problems.add(item_path, problem)
            continue
        items.append(item)
    return tuple(items)


def _bool(value: object, path: str, problems: _Problems) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.add(path, f"must be true or false, not {_type_name(value)}")
        return False
    return value


def _cluster_name(value: object, problems: _Problems) -> str:
    if value is None:
        problems.add("clusterName", "is required (it is part of every role's ownership tags)")
        return ""
    name = _optional_str(value, "clusterName", problems)
    if name is None:
        return ""
    if not name:
        problems.add("clusterName", "must not be empty")
    elif (problem := iam.tag_value_problem(name)) is not None:
        problems.add("clusterName", f"must be usable as an IAM tag value: {problem}")
    return name


def _region(value: object, problems: _Problems) -> str:
    region = _optional_str(value, "region", problems)
    if region is None:
        return DEFAULT_REGION
    if not iam.is_region(region):
        problems.add("region", f"{region!r} is not an AWS region name such as us-east-1")
    return region


def _duration(
    value: object,
    path: str,
    problems: _Problems,
    *,
    default: float = DEFAULT_DRIFT_CHECK_INTERVAL,
    minimum: float = MIN_DRIFT_CHECK_INTERVAL,
    maximum: float | None = None,
) -> float:
    """Seconds from a number or a Go-style duration ("60s", "5m", "1h30m")."""
    if value is None:
        return default
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _DURATION.fullmatch(text):
            seconds = sum(
                float(number) * _DURATION_UNITS[unit]
                for number, unit in _DURATION_PART.findall(text)
            )
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = None
    if seconds is None or not math.isfinite(seconds):
        problems.add(
            path,
            f'must be a number of seconds or a duration such as "60s", "5m" or "1h30m", not {value!r}',
        )
        return default
    if seconds < minimum:
        problems.add(path, f"must be at least {minimum:g} second{'' if minimum == 1 else 's'}")
    if maximum is not None and seconds > maximum:
        problems.add(path, f"must be at most {maximum:g} seconds")
    return seconds


def _events(value: object, problems: _Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.add("events", f"must be a mapping, not {_type_name(value)}")
        return None
    problems.unknown_keys(value, _EVENTS_KEYS, "events")
    url = _optional_str(value.get("sqsQueueUrl"), "events.sqsQueueUrl", problems)
    if url is None:
        return None
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path in ("", "/"):
        problems.add(
            "events.sqsQueueUrl",
            f"{url!r} is not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)",
        )
    return url


def _accounts(data: Mapping[Any, Any], problems: _Problems) -> dict[str, AccountConfig]:
    if "accounts" not in data:
        problems.add(
            "accounts",
            'is required: a mapping of quoted 12-digit account ids ("111111111111") to their settings',
        )
        return {}
    value = data["accounts"]
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(
            "accounts", f"must be a mapping of account ids to settings, not {_type_name(value)}"
        )
        return {}
    accounts: dict[str, AccountConfig] = {}
    for key, settings in value.items():
        if isinstance(key, int) and not isinstance(key, bool):
            problems.add(
                f"accounts.{key}",
                'account ids must be quoted strings of 12 digits, e.g. "111111111111": YAML reads '
                "unquoted digits as a number (and digits with a leading zero as octal)",
            )
            continue
        if not isinstance(key, str) or not iam.is_account_id(key):
            problems.add(
                _child("accounts", str(key), quoted=True), "account ids must be exactly 12 digits"
            )
            continue
        account = _account(key, settings, _child("accounts", key, quoted=True), problems)
        if account is not None:
            accounts[key] = account
    return accounts


def _account(
    account_id: str, settings: object, path: str, problems: _Problems
) -> AccountConfig | None:
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        problems.add(path, f"must be a mapping of account settings, not {_type_name(settings)}")
        return None
    problems.unknown_keys(settings, _ACCOUNT_KEYS, path)

    def at(key: str) -> str:
        return _child(path, key)

    role_arn = _optional_str(settings.get("roleArn"), at("roleArn"), problems)
    partition: str | None = None
    if role_arn is not None:
        parsed_role = iam.parse_role_arn(role_arn)
        if isinstance(parsed_role, str):
            problems.add(at("roleArn"), parsed_role)
        elif parsed_role.account != account_id:
            problems.add(
                at("roleArn"),
                f"names account {parsed_role.account}, but this entry is for account {account_id}",
            )
        else:
            partition = parsed_role.partition

    external_id = _optional_str(settings.get("externalId"), at("externalId"), problems)
    if external_id is not None:
        if role_arn is None:
            problems.add(at("externalId"), "is only used with roleArn (set roleArn or remove it)")
        elif _EXTERNAL_ID.fullmatch(external_id) is None:
            problems.add(
                at("externalId"),
                "must be 2-1224 characters of letters, digits and + = , . @ : / _ -",
            )

    namespaces = _string_list(
        settings.get("namespaces"), at("namespaces"), problems, check=_namespace_glob_problem
    )
    prefix = _optional_str(settings.get("rolePathPrefix"), at("rolePathPrefix"), problems)
    if prefix is None:
        prefix = "/"
    elif (problem := iam.path_problem(prefix)) is not None:
        problems.add(at("rolePathPrefix"), problem)
    elif prefix.startswith(RESERVED_PATH_PREFIXES):
        problems.add(at("rolePathPrefix"), f"{prefix} is reserved for roles AWS creates itself")

    boundary = _optional_str(
        settings.get("permissionsBoundaryArn"), at("permissionsBoundaryArn"), problems
    )
    if boundary is not None:
        parsed_boundary = iam.parse_policy_arn(boundary)
        if isinstance(parsed_boundary, str):
            problems.add(at("permissionsBoundaryArn"), parsed_boundary)
        elif parsed_boundary.account not in ("aws", account_id):
            problems.add(
                at("permissionsBoundaryArn"),
                f"must be a policy of account {account_id} or an AWS managed policy "
                "(IAM cannot use another account's policy as a boundary)",
            )
        elif partition is not None and parsed_boundary.partition != partition:
            problems.add(
                at("permissionsBoundaryArn"),
                f"is in partition {parsed_boundary.partition}, but roleArn is in {partition}",
            )

    allowed_policies = _string_list(
        settings.get("allowedPolicyArns"),
        at("allowedPolicyArns"),
        problems,
        check=_arn_pattern_problem,
    )
    resource_patterns = _resource_patterns(
        settings.get("allowedResourcePatterns"), at("allowedResourcePatterns"), problems
    )
    ignored = _string_list(
        settings.get("ignoredTagKeys"),
        at("ignoredTagKeys"),
        problems,
        check=_ignored_tag_key_problem,
    )
    sweep_mode = _sweep_mode(settings.get("sweepMode"), at("sweepMode"), problems)
    rate = _rate(settings.get("maxCallsPerSecond"), at("maxCallsPerSecond"), problems)
    allow_adoption = _bool(settings.get("allowAdoption"), at("allowAdoption"), problems)

    return AccountConfig(
        account_id=account_id,
        role_arn=role_arn,
        external_id=external_id,
        namespaces=namespaces,
        role_path_prefix=prefix,
        permissions_boundary_arn=boundary,
        allowed_policy_arns=allowed_policies,
        allowed_resource_patterns=resource_patterns,
        allow_adoption=allow_adoption,
        ignored_tag_keys=ignored,
        sweep_mode=sweep_mode,
        max_calls_per_second=rate,
    )


def _namespace_glob_problem(pattern: str) -> str | None:
    if _NAMESPACE_GLOB.fullmatch(pattern) is None:
        return (
            f"{pattern!r} is not a namespace name or glob "
            "(lowercase letters, digits, -, and the glob characters * ? [ ] !)"
        )
    return None


def _arn_pattern_problem(pattern: str) -> str | None:
    if not pattern.startswith("arn:") or pattern.count(":") < 5:
        return f"{pattern!r} is not an ARN pattern (arn:<partition>:<service>:<region>:<account>:<resource>, * and ? as wildcards)"
    return None


def _ignored_tag_key_problem(key: str) -> str | None:
    problem = iam.tag_key_problem(key)
    if problem is not None:
        return problem
    if key.lower().startswith("ecsrole.dev/"):
        return f"{key!r} is an ownership tag key and cannot be ignored"
    return None


def _resource_patterns(value: object, path: str, problems: _Problems) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(
            path,
            f"must be a mapping of namespace globs to lists of ARN patterns, not {_type_name(value)}",
        )
        return {}
    patterns: dict[str, tuple[str, ...]] = {}
    for namespace_glob, arn_patterns in value.items():
        if not isinstance(namespace_glob, str):
            problems.add(
                _child(path, str(namespace_glob), quoted=True), "namespace globs must be strings"
            )
            continue
        entry_path = _child(path, namespace_glob, quoted=True)
        if (problem := _namespace_glob_problem(namespace_glob)) is not None:
            problems.add(entry_path, problem)
            continue
        patterns[namespace_glob] = _string_list(
            arn_patterns, entry_path, problems, check=_arn_pattern_problem
        )
    return patterns


def _sweep_mode(value: object, path: str, problems: _Problems) -> SweepMode:
    if value is None:
        return SweepMode.BULK
    for mode in SweepMode:
        if value == mode.value:
            return mode
    allowed = [mode.value for mode in SweepMode]
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.5)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
    problems.add(path, f"must be {' or '.join(allowed)}, not {value!r}{hint}")
    return SweepMode.BULK


def _rate(value: object, path: str, problems: _Problems) -> float:
    if value is None:
        return DEFAULT_MAX_CALLS_PER_SECOND
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(path, f"must be a number, not {_type_name(value)}")
        return DEFAULT_MAX_CALLS_PER_SECOND
    if not math.isfinite(value) or value <= 0:
        problems.add(path, f"must be a finite number greater than 0, not {value!r}")
        return DEFAULT_MAX_CALLS_PER_SECOND
    return float(value)


# -- YAML --------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""

    def construct_mapping(
        self, node: yaml.nodes.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merged keys may be overridden; that is what merging is for
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: SafeLoader reports it with a better message
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
