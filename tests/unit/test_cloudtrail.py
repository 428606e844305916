"""CloudTrail IAM events: which ones lead to a re-read, and whose calls are the operator's own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecsrole.core.cloudtrail import ROLE_EVENTS, RoleChange, Skipped, made_by, parse_message

pytestmark = pytest.mark.unit

ADMIN = "arn:aws:sts::111111111111:assumed-role/Admin/alice"


def _event(**detail: Any) -> str:
    base: dict[str, Any] = {
        "eventName": "DetachRolePolicy",
        "eventTime": "2026-11-29T05:00:00Z",
        "requestParameters": {"roleName": "web-exec", "policyArn": "arn:aws:iam::aws:policy/x"},
        "recipientAccountId": "111111111111",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": ADMIN,
            "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111111111111:role/Admin"}},
        },
    }
    base.update(detail)
    return json.dumps(
        {"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": base}
    )


def test_a_role_change_names_account_role_time_and_actor() -> None:
    change = parse_message(_event())
    assert isinstance(change, RoleChange)
    assert (change.account_id, change.role_name, change.event_name) == (
        "111111111111",
        "web-exec",
        "DetachRolePolicy",
    )
    assert change.event_time == 1795928400.0
    assert change.actor_arn == ADMIN
    assert change.issuer_arn == "arn:aws:iam::111111111111:role/Admin"


@pytest.mark.parametrize("name", sorted(ROLE_EVENTS))
def test_every_role_changing_call_is_read(name: str) -> None:
    assert isinstance(parse_message(_event(eventName=name)), RoleChange)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_event(errorCode="AccessDenied"), "failed"),
        (_event(eventName="GetRole"), "does not change a role"),
        (_event(eventName="CreateUser"), "does not change a role"),
        (_event(requestParameters={"userName": "bob"}), "names no role"),
        (_event(recipientAccountId="nope"), "no account id"),
        (
            json.dumps({"source": "aws.s3", "detail-type": "AWS API Call via CloudTrail"}),
            "not a CloudTrail IAM",
        ),
        ("not json", "not JSON"),
        ("[1, 2]", "not an event"),
    ],
)
def test_messages_that_change_nothing_are_skipped(body: str, why: str) -> None:
    skipped = parse_message(body)
    assert isinstance(skipped, Skipped)
    assert why in skipped.reason


def test_the_operators_own_assumed_role_is_recognised_whatever_the_session() -> None:
    own = "arn:aws:sts::111111111111:assumed-role/ecsrole-operator/ecsrole-prod"
    mine = parse_message(
        _event(
            userIdentity={
                "arn": "arn:aws:sts::111111111111:assumed-role/ecsrole-operator/botocore-session-1",
                "sessionContext": {
                    "sessionIssuer": {"arn": "arn:aws:iam::111111111111:role/ops/ecsrole-operator"}
                },
            }
        )
    )
    theirs = parse_message(_event())
    assert isinstance(mine, RoleChange)
    assert isinstance(theirs, RoleChange)
    assert made_by(mine, own)
    assert not made_by(theirs, own)


def test_a_user_identity_is_matched_by_arn() -> None:
    change = parse_message(_event(userIdentity={"arn": "arn:aws:iam::111111111111:user/ops"}))
    assert isinstance(change, RoleChange)
    assert made_by(change, "arn:aws:iam::111111111111:user/ops")
    assert not made_by(change, "arn:aws:iam::111111111111:user/other")
