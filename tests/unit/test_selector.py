"""`ecsrole run --selector`: the label selector grammar the API server accepts, refused early
with the part that is wrong, and one Lease name per shard."""

from __future__ import annotations

import re

import pytest

from ecsrole import cli, selector
from ecsrole.selector import Requirement

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "requirements"),
    [
        ("ecsrole.dev/shard=a", [Requirement("ecsrole.dev/shard", "=", ("a",))]),
        ("shard==a", [Requirement("shard", "=", ("a",))]),
        ("shard!=a", [Requirement("shard", "!=", ("a",))]),
        ("shard", [Requirement("shard", "exists")]),
        ("!ecsrole.dev/shard", [Requirement("ecsrole.dev/shard", "!exists")]),
        ("shard=", [Requirement("shard", "=", ("",))]),
        (
            "tier in (a, b),env notin (dev)",
            [Requirement("tier", "in", ("a", "b")), Requirement("env", "notin", ("dev",))],
        ),
        (
            " team = blue , !legacy ",
            [Requirement("team", "=", ("blue",)), Requirement("legacy", "!exists")],
        ),
    ],
)
def test_selectors_the_api_server_accepts_parse(text: str, requirements: list[Requirement]) -> None:
    assert list(selector.parse(text)) == requirements


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("a=b,", "empty requirement"),
        ("tier in (a,b", "unbalanced '('"),
        ("tier in ()", "at least one value"),
        ("shard=a=b", "not a label value"),
        ("-shard=a", "not a label key"),
        ("Example.COM/shard=a", "not a label key"),
        (f"shard={'x' * 64}", "not a label value"),
        ("shard > 3 <", "not a label"),
    ],
)
def test_malformed_selectors_are_refused_naming_the_wrong_part(text: str, complaint: str) -> None:
    with pytest.raises(selector.SelectorError, match=re.escape(complaint)):
        selector.parse(text)


def test_the_cli_refuses_a_malformed_selector_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (Read from ECSROLE_WATCH_SELECTOR too, with the flag winning: tests/unit/test_cli.py.)
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--selector", "shard=a=b"])
    assert exited.value.code == 2
    assert "--selector" in capsys.readouterr().err


def test_each_shard_gets_a_lease_of_its_own_and_spacing_does_not_matter() -> None:
    assert selector.lease_name(None) == "ecsrole-leader"
    a = selector.lease_name("ecsrole.dev/shard=a")
    assert a.startswith("ecsrole-leader-")
    assert len(a) <= 63
    assert a != selector.lease_name("ecsrole.dev/shard=b")
    assert a == selector.lease_name(" ecsrole.dev/shard == a ")
    assert selector.lease_name("x=1,y=2") == selector.lease_name("y=2,x=1")
