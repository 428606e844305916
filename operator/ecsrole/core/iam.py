"""IAM's own naming rules and ARN shapes, in one place.

IAM refuses bad names at write time, but moto (the emulator the tests and `make dev` use) accepts
most of them, and a refusal from IAM half-way through a plan is a worse experience than a
condition that names the field. So the operator validates names itself, here, and both the
configuration parser and the spec parser share these rules.

Problem functions return a short message (or None when the value is fine) rather than raising,
so that callers can collect every problem at once and prefix it with the field the user wrote.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from ecsrole.core import constants

MAX_ROLE_NAME_LENGTH = 64
MAX_PATH_LENGTH = 512
MAX_DESCRIPTION_LENGTH = 1000
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_TAGS_PER_ROLE = 50
MIN_SESSION_DURATION = 3600
MAX_SESSION_DURATION = 43200
MAX_POLICY_NAME_LENGTH = 128


_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_ROLE_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
_POLICY_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
_PARTITION = re.compile(r"aws(?:-[a-z]+)*")
_REGION = re.compile(r"[a-z]{2,}(?:-[a-z]+)+-[0-9]+")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_DESCRIPTION_CHARS = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]*")


class Arn(NamedTuple):
    """The six colon-separated parts of an ARN (the resource part keeps its own colons)."""

    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(text: str) -> Arn | None:
    """Split an ARN into its parts, or None when it does not have the ARN shape at all."""
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    _, partition, service, region, account, resource = parts
    if not partition or not service or not resource:
        return None
    return Arn(partition, service, region, account, resource)


def is_account_id(text: str) -> bool:
    """True for exactly twelve ASCII digits (IAM account ids keep their leading zeros)."""
    return _ACCOUNT_ID.fullmatch(text) is not None


def is_partition(text: str) -> bool:
    """True for a partition name such as aws, aws-cn or aws-us-gov."""
    return _PARTITION.fullmatch(text) is not None


def is_region(text: str) -> bool:
    """True for a concrete region name such as us-east-1, cn-north-1 or us-gov-west-1."""
    return _REGION.fullmatch(text) is not None


def role_name_problem(name: str) -> str | None:
    """Why `name` is not a valid IAM role name, or None."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_ROLE_NAME_LENGTH:
        return f"must be at most {MAX_ROLE_NAME_LENGTH} characters (has {len(name)})"
    if _ROLE_NAME.fullmatch(name) is None:
        return "may contain only letters, digits and + = , . @ _ -"
    return None


def policy_name_problem(name: str) -> str | None:
    """Why `name` is not a valid IAM (managed or inline) policy name, or None."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_POLICY_NAME_LENGTH:
        return f"must be at most {MAX_POLICY_NAME_LENGTH} characters (has {len(name)})"
    if _POLICY_NAME.fullmatch(name) is None:
        return "may contain only letters, digits and + = , . @ _ -"
    return None


def path_problem(path: str) -> str | None:
    """Why `path` is not a valid IAM path, or None.

    IAM's pattern is `/` or `/` + printable ASCII + `/`. Empty segments (`//`) are refused too:
    IAM's own regex lets them through but nothing good comes of them, and they make the
    "sits under the prefix" rule ambiguous.
    """
    if not path.startswith("/") or not path.endswith("/"):
        return 'must start and end with "/"'
    if len(path) > MAX_PATH_LENGTH:
        return f"must be at most {MAX_PATH_LENGTH} characters (has {len(path)})"
    if any(not "\x21" <= char <= "\x7e" for char in path):
        return "may contain only printable ASCII characters without spaces"
    if "//" in path:
        return 'must not contain an empty segment ("//")'
    return None


def is_path_under(path: str, prefix: str) -> bool:
    """True when `path` is `prefix` or sits below it (IAM paths compare case-sensitively)."""
    return path.startswith(prefix)


def _is_tag_char(char: str) -> bool:
    # IAM: [\p{L}\p{Z}\p{N}_.:/=+\-@]; Python's re has no \p{...}, unicodedata does.
    return char in _TAG_PUNCTUATION or unicodedata.category(char)[0] in "LZN"


def tag_key_problem(key: str) -> str | None:
    """Why `key` is not a valid IAM tag key (ignoring the reserved prefixes), or None."""
    if not key:
        return "tag keys must not be empty"
    if len(key) > MAX_TAG_KEY_LENGTH:
        return f"tag keys must be at most {MAX_TAG_KEY_LENGTH} characters (has {len(key)})"
    if not all(_is_tag_char(char) for char in key):
        return "tag keys may contain only letters, digits, spaces and _ . : / = + - @"
    return None


def tag_value_problem(value: str) -> str | None:
    """Why `value` is not a valid IAM tag value, or None (the empty value is valid)."""
    if len(value) > MAX_TAG_VALUE_LENGTH:
        return f"tag values must be at most {MAX_TAG_VALUE_LENGTH} characters (has {len(value)})"
    if not all(_is_tag_char(char) for char in value):
        return "tag values may contain only letters, digits, spaces and _ . : / = + - @"
    return None


def is_reserved_tag_key(key: str) -> bool:
    """True for keys under `aws:` or `ecsrole.dev/`, in any letter case."""
    return key.lower().startswith(constants.RESERVED_TAG_PREFIXES)


def description_problem(text: str) -> str | None:
    """Why `text` is not a valid IAM role description, or None."""
    if len(text) > MAX_DESCRIPTION_LENGTH:
        return f"must be at most {MAX_DESCRIPTION_LENGTH} characters (has {len(text)})"
    if _DESCRIPTION_CHARS.fullmatch(text) is None:
        return "may contain only tab, newline and Latin-1 printable characters"
    return None


class IamPathArn(NamedTuple):
    """An IAM role or policy ARN split into the parts the rules below look at."""

    partition: str
    account: str
    path: str
    name: str


def _iam_path_arn(text: str, resource_type: str) -> IamPathArn | str:
    arn = parse_arn(text)
    if arn is None or arn.service != "iam" or arn.region:
        return (
            f'must be an IAM ARN of the form "arn:<partition>:iam::<account>:{resource_type}/..."'
        )
    if not is_partition(arn.partition):
        return f"has an unknown partition {arn.partition!r}"
    head, _, path_and_name = arn.resource.partition("/")
    if head != resource_type or not path_and_name:
        return f'must name a {resource_type} ("...:{resource_type}/<path><name>")'
    middle, separator, name = path_and_name.rpartition("/")
    path = f"/{middle}/" if separator else "/"
    return IamPathArn(arn.partition, arn.account, path, name)


def parse_role_arn(text: str) -> IamPathArn | str:
    """Parse an IAM role ARN, or return why it is not one."""
    parsed = _iam_path_arn(text, "role")
    if isinstance(parsed, str):
        return parsed
    if not is_account_id(parsed.account):
        return "must name a 12-digit account id"
    problem = path_problem(parsed.path) or role_name_problem(parsed.name)
    if problem is not None:
        return f"has an invalid role path or name: {problem}"
    return parsed


def parse_policy_arn(text: str) -> IamPathArn | str:
    """Parse an IAM managed policy ARN (customer or `aws` managed), or return why not."""
    parsed = _iam_path_arn(text, "policy")
    if isinstance(parsed, str):
        return parsed
    if parsed.account != "aws" and not is_account_id(parsed.account):
        return 'must name a 12-digit account id or "aws"'
    problem = path_problem(parsed.path) or policy_name_problem(parsed.name)
    if problem is not None:
        return f"has an invalid policy path or name: {problem}"
    return parsed


def role_name_from_arn(text: str) -> str | None:
    """The role name of a role ARN, or None when `text` is not one."""
    parsed = parse_role_arn(text)
    return None if isinstance(parsed, str) else parsed.name


def caller_role_name(caller_arn: str) -> str | None:
    """The IAM role behind an STS caller identity ARN, or None when the caller is not a role.

    GetCallerIdentity returns `arn:<p>:sts::<account>:assumed-role/<role name>/<session>` for
    assumed roles (the role's path is not included) and the plain role or user ARN otherwise;
    the last segment of an assumed-role ARN is the session name, not the role.
    """
    arn = parse_arn(caller_arn)
    if arn is None:
        return None
    if arn.service == "sts" and arn.resource.startswith("assumed-role/"):
        parts = arn.resource.split("/")
        return parts[1] if len(parts) >= 3 and parts[1] else None
    if arn.service == "iam":
        return role_name_from_arn(caller_arn)
    return None


@dataclass(frozen=True)
class CallerIdentity:
    """Who the credentials used for an account are (STS GetCallerIdentity)."""

    account_id: str
    arn: str
    user_id: str

    @property
    def partition(self) -> str:
        return self.arn.split(":", 2)[1]
