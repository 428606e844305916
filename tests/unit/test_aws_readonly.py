"""The tools' AWS access can only read: no write method, and a hook that refuses writes."""

from __future__ import annotations

import inspect
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from ecsrole.aws import readonly

pytestmark = pytest.mark.unit


def iam_client() -> Any:
    session = botocore.session.Session()
    return session.create_client(
        "iam",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # never reached: the hook or the stub answers first
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="not-a-secret",  # noqa: S106
    )


def test_the_wrapper_has_reads_only() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(readonly.ReadOnlyIam, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == {"caller_identity", "read_role", "read_roles_bulk"}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("create_role", {"RoleName": "x", "AssumeRolePolicyDocument": "{}"}),
        ("attach_role_policy", {"RoleName": "x", "PolicyArn": "arn:aws:iam::aws:policy/x"}),
        ("tag_role", {"RoleName": "x", "Tags": [{"Key": "k", "Value": "v"}]}),
        ("update_assume_role_policy", {"RoleName": "x", "PolicyDocument": "{}"}),
        ("delete_role", {"RoleName": "x"}),
    ],
)
def test_writes_are_refused_before_anything_is_sent(method: str, params: dict[str, object]) -> None:
    client = iam_client()
    sent: list[str] = []
    client.meta.events.register("before-send", lambda **kwargs: sent.append("sent"))
    readonly.forbid_writes(client)
    readonly.forbid_writes(client)  # idempotent: one hook however often it is installed
    with pytest.raises(readonly.WriteRefusedError, match="only read IAM"):
        getattr(client, method)(**params)
    assert sent == []


def test_reads_pass() -> None:
    client = iam_client()
    readonly.forbid_writes(client)
    with Stubber(client) as stub:
        stub.add_response("list_role_policies", {"PolicyNames": ["a"]}, {"RoleName": "x"})
        assert client.list_role_policies(RoleName="x")["PolicyNames"] == ["a"]


def test_role_arn_template_and_session_name() -> None:
    template = "arn:aws:iam::{account}:role/ci/ecsrole-diff-readonly"
    assert (
        readonly.role_arn_from_template(template, "111111111111")
        == "arn:aws:iam::111111111111:role/ci/ecsrole-diff-readonly"
    )
    session = readonly.Session(region="us-east-1", session_name="ecsrole-diff-prod eu/1:x")
    assert session.factory.session_name == "ecsrole-diff-prod-eu-1-x"
