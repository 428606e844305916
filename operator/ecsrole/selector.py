"""Kubernetes label selectors for sharding (`ecsrole run --selector`), checked before use.

The selector itself is applied by the API server (kopf passes it as the watch's
labelSelector), so a shard never even receives another shard's objects. It is parsed here
only so that a typo is a clear error at start, not a watch the API server refuses over and
over, and so that the shard's Lease gets a stable name of its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

DEFAULT_LEASE_NAME = "ecsrole-leader"

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"(?:(?P<prefix>{_PREFIX})/)?(?P<name>{_NAME})")
_VALUE = re.compile(rf"(?:{_NAME})?")
_SET_REQUIREMENT = re.compile(r"(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)")
_EQUALITY_REQUIREMENT = re.compile(r"(?P<key>[^\s!=]+)\s*(?P<op>==|=|!=)\s*(?P<value>\S*)")
_EXISTS_REQUIREMENT = re.compile(r"(?P<negated>!?)\s*(?P<key>\S+)")


class SelectorError(ValueError):
    """A label selector the API server would refuse, with the part that is wrong."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # exists, !exists, =, !=, in, notin
    values: tuple[str, ...] = ()


def parse(selector: str) -> tuple[Requirement, ...]:
    """The requirements of a label selector (comma-separated, as `kubectl get -l` takes)."""
    text = selector.strip()
    if not text:
        raise SelectorError("the selector is empty")
    return tuple(_requirement(term.strip()) for term in _terms(text))


def _terms(text: str) -> list[str]:
    """Split at the commas that are not inside a set's parentheses."""
    terms, depth, start = [], 0, 0
    for position, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in {text!r}")
        elif char == "," and depth == 0:
            terms.append(text[start:position])
            start = position + 1
    if depth:
        raise SelectorError(f"unbalanced '(' in {text!r}")
    terms.append(text[start:])
    return terms


def _requirement(term: str) -> Requirement:
    if not term:
        raise SelectorError("an empty requirement (two commas in a row, or a trailing comma)")
    if match := _SET_REQUIREMENT.fullmatch(term):
        values = tuple(v.strip() for v in match["values"].split(","))
        if values == ("",):
            raise SelectorError(f"{term!r}: a set needs at least one value")
        return Requirement(_key(match["key"]), match["op"], tuple(_value(v) for v in values))
    if match := _EQUALITY_REQUIREMENT.fullmatch(term):
        op = "=" if match["op"] == "==" else match["op"]
        return Requirement(_key(match["key"]), op, (_value(match["value"]),))
    if match := _EXISTS_REQUIREMENT.fullmatch(term):
        return Requirement(_key(match["key"]), "!exists" if match["negated"] else "exists")
    raise SelectorError(
        f"{term!r} is not a label requirement (key, !key, key=value, "
        "key!=value, key in (a,b), key notin (a,b))"
    )


def _key(key: str) -> str:
    match = _KEY.fullmatch(key)
    if match is None or len(match["prefix"] or "") > 253:
        raise SelectorError(
            f"{key!r} is not a label key: an optional DNS prefix and '/', then a name of at most "
            "63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return key


def _value(value: str) -> str:
    if not _VALUE.fullmatch(value):
        raise SelectorError(
            f"{value!r} is not a label value: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


def lease_name(selector: str | None) -> str:
    """The Lease a shard's replicas share: one per selector, so shards never wait for each other.

    Without a selector the operator serves everything and uses the default Lease. The suffix is a
    hash of the selector's requirements, so spacing does not matter and the name is a valid
    object name whatever the selector contains.
    """
    if not selector:
        return DEFAULT_LEASE_NAME
    canonical = ",".join(
        f"{r.key}{r.operator}{'|'.join(r.values)}" for r in sorted(parse(selector), key=repr)
    )
    return f"{DEFAULT_LEASE_NAME}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"
