"""The shared botocore loader keeps only what the operator's clients use (aws/clients.py): the
endpoint data of its own services and service models without documentation, and the clients it
builds still reach the same endpoints, with the same signing, as botocore's own loader's.
"""

from __future__ import annotations

from typing import Any

import botocore.loaders
import botocore.session
import pytest

from ecsrole.aws.clients import SERVICES, AccountAccess, ClientFactory, lean_loader

pytestmark = pytest.mark.unit


def _contains_key(data: Any, key: str) -> bool:
    if isinstance(data, dict):
        return key in data or any(_contains_key(v, key) for v in data.values())
    if isinstance(data, list):
        return any(_contains_key(v, key) for v in data)
    return False


def test_endpoint_data_keeps_only_the_operators_services() -> None:
    full = botocore.loaders.create_loader().load_data("endpoints")
    lean = lean_loader().load_data("endpoints")
    assert [p["partition"] for p in lean["partitions"]] == [
        p["partition"] for p in full["partitions"]
    ]
    aws = next(p for p in lean["partitions"] if p["partition"] == "aws")
    assert set(aws["services"]) == SERVICES
    assert (
        aws["services"]["iam"]
        == next(p for p in full["partitions"] if p["partition"] == "aws")["services"]["iam"]
    )


def test_service_models_have_no_documentation_but_every_operation_and_shape() -> None:
    full = botocore.loaders.create_loader().load_service_model("iam", "service-2")
    lean = lean_loader().load_service_model("iam", "service-2")
    assert _contains_key(full, "documentation")
    assert not _contains_key(lean, "documentation")
    assert set(lean["operations"]) == set(full["operations"])
    assert set(lean["shapes"]) == set(full["shapes"])
    assert lean["metadata"] == full["metadata"]


def _where(client: Any) -> tuple[str, str, str]:
    return (client._endpoint.host, client.meta.region_name, client._request_signer._signing_name)


@pytest.mark.parametrize(
    ("service", "region"),
    [
        ("iam", "us-east-1"),
        ("iam", "cn-north-1"),
        ("sts", "us-gov-west-1"),
        ("sts", "eu-west-1"),
        ("sqs", "eu-central-1"),
        # Clients for other services (credential providers create sso, sso-oidc) still work.
        ("sso", "eu-west-1"),
    ],
)
def test_clients_reach_the_same_endpoint_as_with_botocores_loader(
    service: str, region: str
) -> None:
    def client(session: botocore.session.Session) -> Any:
        return session.create_client(
            service,
            region_name=region,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",  # noqa: S106 - never sent anywhere
        )

    default = client(botocore.session.Session())
    lean_session = botocore.session.Session()
    lean_session.register_component("data_loader", lean_loader())
    lean = client(lean_session)
    assert _where(lean) == _where(default)


def test_account_clients_use_the_lean_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    factory = ClientFactory(region="us-east-1", session_name="tests")
    clients = factory.for_account(AccountAccess("111111111111", None, None, 10.0))
    assert clients.iam.meta.service_model.documentation == ""
    assert clients.iam.meta.service_model.operation_model("GetRole").documentation == ""
    assert clients.iam._endpoint.host == "https://iam.amazonaws.com"  # type: ignore[attr-defined]
