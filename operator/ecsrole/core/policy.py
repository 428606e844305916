"""Semantic normalisation and comparison of IAM policy documents.

IAM never hands back the document it was given: it URL-encodes it, reorders keys and statements,
turns one-element lists into scalars (and sometimes the reverse), drops or keeps `Sid: ""`,
inserts `Version`, and treats condition operators and keys case-insensitively. Comparing strings
would report drift forever (a false drift is a bug), while normalising too eagerly would hide
privilege creep (a real change that does not diff is a bug too). So each document is reduced to a
canonical, hashable form that keeps exactly what IAM evaluates, and two documents are equivalent
when their canonical forms are equal.

Choices where IAM leaves room, written down because they decide what counts as drift:

- Statements form a set: order and exact duplicates do not change IAM's evaluation.
- Values of Action, NotAction, Resource, NotResource, each Principal type and each condition key
  form sets; a scalar equals a one-element list.
- Action and NotAction compare case-insensitively (IAM matches action names that way); condition
  operator names and condition keys too. Resources, principals and condition values compare
  exactly, because their case can matter.
- An AWS principal written as a bare account id equals `arn:<partition>:iam::<id>:root` (IAM
  rewrites the former into the latter when it stores a trust policy), and `"Principal": "*"`
  equals `{"AWS": "*"}` (AWS documents them as the same principal).
- A missing `Version` equals "2012-10-17", the version the operator always sends, so that IAM
  inserting it is not drift. An explicit "2008-10-17" differs, because that version turns off
  policy variables.
- `Sid: ""` equals no Sid. A non-empty Sid, a policy `Id` and any element this module does not
  know are compared exactly, so that an unexpected edit is reported rather than hidden.
- An empty `Condition` (or an operator with no keys) equals no condition: it constrains nothing.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

DEFAULT_VERSION = "2012-10-17"

#: How many values a description lists before it says "and N more".
_DESCRIBE_LIMIT = 3

_STATEMENT_KEYS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
_ROOT_PRINCIPAL = re.compile(r"arn:aws(?:-[a-z]+)*:iam::([0-9]{12}):root")

#: Display spellings of common condition operators and keys, which are stored lower-cased.
_PRETTY_NAMES = {
    name.lower(): name
    for name in (
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "ArnEquals",
        "ArnNotEquals",
        "ArnLike",
        "ArnNotLike",
        "Bool",
        "Null",
        "IpAddress",
        "NotIpAddress",
        "NumericEquals",
        "DateGreaterThan",
        "DateLessThan",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceOrgID",
        "aws:PrincipalArn",
        "aws:PrincipalOrgID",
        "aws:PrincipalAccount",
        "aws:SecureTransport",
        "aws:SourceIp",
        "sts:ExternalId",
    )
}


class PolicyDocumentError(ValueError):
    """A document that is not a policy document at all (bad JSON, wrong types)."""


#: (principal type, value) pairs, e.g. ("Service", "ecs-tasks.amazonaws.com").
Principals: TypeAlias = frozenset[tuple[str, str]]
#: (operator, key, values) triples, operator and key lower-cased.
Conditions: TypeAlias = frozenset[tuple[str, str, frozenset[str]]]

_T = TypeVar("_T")


@dataclass(frozen=True)
class CanonicalStatement:
    """One statement reduced to what IAM evaluates; hashable so statements can form a set."""

    effect: str
    sid: str | None = None
    principal: Principals | None = None
    not_principal: Principals | None = None
    action: frozenset[str] | None = None
    not_action: frozenset[str] | None = None
    resource: frozenset[str] | None = None
    not_resource: frozenset[str] | None = None
    condition: Conditions = frozenset()
    other: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CanonicalPolicy:
    """A whole document in canonical form: equal canonical forms mean equivalent documents."""

    version: str
    statements: frozenset[CanonicalStatement]
    id: str | None = None
    other: tuple[tuple[str, str], ...] = ()


def decode(document: str | Mapping[str, Any]) -> dict[str, Any]:
    """Turn a document as IAM or boto3 hands it over (JSON, URL-encoded JSON, dict) into a dict."""
    if isinstance(document, Mapping):
        # A deep copy, so that a caller mutating its document cannot change a stored one.
        return copy.deepcopy(dict(document))
    if not isinstance(document, str):
        raise PolicyDocumentError(
            f"a policy document must be JSON text or an object, not {document!r}"
        )
    text = document.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        # IAM returns documents URL-encoded; unquote (never unquote_plus: "+" is literal in
        # role names and ARNs) and try again.
        try:
            parsed = json.loads(urllib.parse.unquote(text))
        except json.JSONDecodeError as error:
            raise PolicyDocumentError(f"not a JSON policy document: {error.msg}") from error
    if not isinstance(parsed, dict):
        raise PolicyDocumentError("a policy document must be a JSON object")
    return parsed


def dumps(document: Mapping[str, Any]) -> str:
    """Compact JSON, as IAM API parameters take policy documents (key order kept as written)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def normalize(document: str | Mapping[str, Any]) -> CanonicalPolicy:
    """The canonical, hashable form of a policy document (see the module docstring)."""
    doc = decode(document)
    version = doc.get("Version", DEFAULT_VERSION)
    if not isinstance(version, str):
        raise PolicyDocumentError("Version must be a string")
    policy_id = doc.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise PolicyDocumentError("Id must be a string")
    raw_statements = doc.get("Statement", [])
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        raise PolicyDocumentError("Statement must be an object or a list of objects")
    return CanonicalPolicy(
        version=version,
        statements=frozenset(_statement(raw) for raw in raw_statements),
        id=policy_id,
        other=_others(doc, {"Version", "Id", "Statement"}),
    )


def equivalent(a: str | Mapping[str, Any], b: str | Mapping[str, Any]) -> bool:
    """True when IAM would evaluate both documents the same; an unreadable one never is."""
    try:
        return normalize(a) == normalize(b)
    except PolicyDocumentError:
        return False


def trusted_principals(document: str | Mapping[str, Any]) -> Principals | None:
    """The principals that Allow statements trust, as (type, value) pairs.

    None when the document cannot be read as a plain allow-list of principals, i.e. it uses
    NotPrincipal in an Allow statement (which trusts everyone except the named ones) or an
    Allow statement without Principal. Deny statements only narrow and are not counted.
    """
    try:
        canonical = normalize(document)
    except PolicyDocumentError:
        return None
    principals: set[tuple[str, str]] = set()
    for statement in canonical.statements:
        if statement.effect != "Allow":
            continue
        if statement.not_principal is not None or statement.principal is None:
            return None
        principals |= statement.principal
    return frozenset(principals)


def describe_difference(desired: str | Mapping[str, Any], observed: str | Mapping[str, Any]) -> str:
    """A short human summary of how `observed` differs from `desired`.

    Phrased from the observed document's point of view, to follow a subject such as "trust
    policy": "also allows AWS account 999999999999; drops condition ArnLike aws:SourceArn".
    """
    try:
        want = normalize(desired)
        got = normalize(observed)
    except PolicyDocumentError as error:
        return f"cannot be read as a policy document ({error})"
    if want == got:
        return "has no semantic difference"
    parts: list[str] = []
    if want.version != got.version:
        parts.append(f"has Version {got.version} instead of {want.version}")
    if want.id != got.id:
        parts.append(f"has Id {got.id!r} instead of {want.id!r}")
    if want.other != got.other:
        parts.append("has other top-level elements than declared")
    parts.extend(_describe_statements(want.statements, got.statements))
    # Some differences (say, one condition key split over two spellings of an operator) have
    # no short summary; saying so beats an empty message.
    return "; ".join(parts) or "differs from the declared document"


# -- normalisation helpers ---------------------------------------------------------------------


def _statement(raw: object) -> CanonicalStatement:
    if not isinstance(raw, Mapping):
        raise PolicyDocumentError("each statement must be an object")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyDocumentError("Sid must be a string")
    effect = raw.get("Effect")
    if not isinstance(effect, str):
        raise PolicyDocumentError("Effect must be a string")
    return CanonicalStatement(
        effect=effect,
        sid=sid or None,
        principal=_optional(raw, "Principal", _principals),
        not_principal=_optional(raw, "NotPrincipal", _principals),
        action=_optional(raw, "Action", _actions),
        not_action=_optional(raw, "NotAction", _actions),
        resource=_optional(raw, "Resource", _values),
        not_resource=_optional(raw, "NotResource", _values),
        condition=_conditions(raw.get("Condition")),
        other=_others(raw, _STATEMENT_KEYS),
    )


def _optional(raw: Mapping[str, Any], key: str, convert: Callable[[object], _T]) -> _T | None:
    if key not in raw or raw[key] is None:
        return None
    return convert(raw[key])


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        # IAM keeps JSON scalars as sent; compare them by their JSON spelling (true, 3, null).
        return json.dumps(value)
    raise PolicyDocumentError(f"expected a string or a list of strings, not {value!r}")


def _values(value: object) -> frozenset[str]:
    if isinstance(value, list):
        return frozenset(_scalar(item) for item in value)
    return frozenset({_scalar(value)})


def _actions(value: object) -> frozenset[str]:
    return frozenset(action.lower() for action in _values(value))


def _principal_value(principal_type: str, value: str) -> str:
    if principal_type == "AWS":
        root = _ROOT_PRINCIPAL.fullmatch(value)
        if root is not None:
            return root.group(1)
    return value


def _principals(value: object) -> Principals:
    if value == "*":
        return frozenset({("AWS", "*")})
    if not isinstance(value, Mapping):
        raise PolicyDocumentError('Principal must be "*" or an object of principal types')
    return frozenset(
        (principal_type, _principal_value(principal_type, item))
        for principal_type, values in value.items()
        for item in _values(values)
    )


def _conditions(value: object) -> Conditions:
    if value is None:
        return frozenset()
    if not isinstance(value, Mapping):
        raise PolicyDocumentError("Condition must be an object")
    entries: set[tuple[str, str, frozenset[str]]] = set()
    for operator, block in value.items():
        if not isinstance(block, Mapping):
            raise PolicyDocumentError(f"condition operator {operator} must map keys to values")
        for key, values in block.items():
            entries.add((str(operator).lower(), str(key).lower(), _values(values)))
    return frozenset(entries)


def _others(
    raw: Mapping[str, Any], known: frozenset[str] | set[str]
) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (key, json.dumps(value, sort_keys=True))
            for key, value in raw.items()
            if key not in known
        )
    )


# -- description helpers -----------------------------------------------------------------------


def _enumerate(items: Iterable[str]) -> str:
    ordered = sorted(items)
    shown = ", ".join(ordered[:_DESCRIBE_LIMIT])
    hidden = len(ordered) - _DESCRIBE_LIMIT
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def _pretty(name: str) -> str:
    return _PRETTY_NAMES.get(name, name)


def _principal_text(principal: tuple[str, str]) -> str:
    principal_type, value = principal
    if value == "*":
        return "everyone (*)"
    if principal_type == "AWS" and value.isdigit():
        return f"AWS account {value}"
    return f"{principal_type} {value}"


def _summary(statement: CanonicalStatement) -> str:
    words = [statement.effect]
    if statement.action is not None:
        words.append(_enumerate(statement.action))
    if statement.not_action is not None:
        words.append(f"all actions except {_enumerate(statement.not_action)}")
    if statement.principal is not None:
        words.append(f"to {_enumerate(_principal_text(p) for p in statement.principal)}")
    if statement.not_principal is not None:
        words.append(
            f"to everyone except {_enumerate(_principal_text(p) for p in statement.not_principal)}"
        )
    if statement.resource is not None:
        words.append(f"on {_enumerate(statement.resource)}")
    if statement.condition:
        words.append("with conditions")
    return " ".join(words)


def _set_changes(
    want: Iterable[str] | None, got: Iterable[str] | None, *, added: str, removed: str
) -> list[str]:
    want_set, got_set = frozenset(want or ()), frozenset(got or ())
    parts = []
    if got_set - want_set:
        parts.append(f"{added} {_enumerate(got_set - want_set)}")
    if want_set - got_set:
        parts.append(f"{removed} {_enumerate(want_set - got_set)}")
    return parts


def _condition_changes(want: Conditions, got: Conditions) -> list[str]:
    def by_key(conditions: Conditions) -> dict[tuple[str, str], frozenset[str]]:
        grouped: dict[tuple[str, str], frozenset[str]] = {}
        for operator, key, values in conditions:
            grouped[operator, key] = grouped.get((operator, key), frozenset()) | values
        return grouped

    want_by_key, got_by_key = by_key(want), by_key(got)
    parts = []
    for operator, key in sorted(want_by_key.keys() | got_by_key.keys()):
        label = f"{_pretty(operator)} {_pretty(key)}"
        if (operator, key) not in got_by_key:
            parts.append(f"drops condition {label}")
        elif (operator, key) not in want_by_key:
            parts.append(f"adds condition {label} {_enumerate(got_by_key[operator, key])}")
        else:
            parts.extend(
                _set_changes(
                    want_by_key[operator, key],
                    got_by_key[operator, key],
                    added=f"condition {label} also accepts",
                    removed=f"condition {label} no longer accepts",
                )
            )
    return parts


def _statement_changes(want: CanonicalStatement, got: CanonicalStatement) -> list[str]:
    parts = []
    if want.effect != got.effect:
        parts.append(f"has Effect {got.effect} instead of {want.effect}")
    if want.sid != got.sid:
        parts.append(f"has Sid {got.sid!r} instead of {want.sid!r}")
    for name, want_principals, got_principals in (
        ("allows", want.principal, got.principal),
        ("excludes", want.not_principal, got.not_principal),
    ):
        parts.extend(
            _set_changes(
                (_principal_text(p) for p in want_principals or ()),
                (_principal_text(p) for p in got_principals or ()),
                added=f"also {name}",
                removed=f"no longer {name}",
            )
        )
    verb = "allows" if got.effect == "Allow" else "denies"
    parts.extend(
        _set_changes(
            want.action, got.action, added=f"also {verb} action", removed=f"no longer {verb} action"
        )
    )
    parts.extend(
        _set_changes(
            want.not_action,
            got.not_action,
            added="also exempts action",
            removed="no longer exempts action",
        )
    )
    parts.extend(
        _set_changes(want.resource, got.resource, added="also covers", removed="no longer covers")
    )
    parts.extend(
        _set_changes(
            want.not_resource,
            got.not_resource,
            added="also exempts resource",
            removed="no longer exempts resource",
        )
    )
    parts.extend(_condition_changes(want.condition, got.condition))
    if want.other != got.other:
        parts.append("has other statement elements than declared")
    return parts


#: Statements at least this similar are described as one changed statement, others as one
#: missing and one extra statement (a lone missing and a lone extra one are always paired).
_PAIRING_THRESHOLD = 3


def _similarity(want: CanonicalStatement, got: CanonicalStatement) -> int:
    score = 0
    score += 4 if want.sid is not None and want.sid == got.sid else 0
    score += 2 if want.effect == got.effect else 0
    score += 1 if (want.action or frozenset()) & (got.action or frozenset()) else 0
    score += 1 if (want.principal or frozenset()) & (got.principal or frozenset()) else 0
    score += 1 if (want.resource or frozenset()) & (got.resource or frozenset()) else 0
    return score


def _describe_statements(
    want: frozenset[CanonicalStatement], got: frozenset[CanonicalStatement]
) -> list[str]:
    """Pair each changed statement with its most similar counterpart and say what changed."""
    missing = sorted(want - got, key=repr)
    extra = sorted(got - want, key=repr)
    parts: list[str] = []
    for wanted in list(missing):
        scored = [(_similarity(wanted, candidate), index) for index, candidate in enumerate(extra)]
        best = max(scored, default=(0, -1))
        only_pair = len(missing) == 1 and len(extra) == 1
        if best[1] < 0 or (best[0] < _PAIRING_THRESHOLD and not only_pair):
            continue
        match = extra[best[1]]
        parts.extend(_statement_changes(wanted, match))
        missing.remove(wanted)
        extra.remove(match)
    parts.extend(f"has an extra statement: {_summary(s)}" for s in extra)
    parts.extend(f"lacks the statement: {_summary(s)}" for s in missing)
    return parts
