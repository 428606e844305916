"""How botocore's failures reach the reconciler: as one of three kinds, never as botocore types."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError

from ecsrole.aws.errors import AwsCallError, FailureKind, NotFoundError
from ecsrole.aws.iam import _call

pytestmark = pytest.mark.unit


def _raise(error: Exception) -> Any:
    def fn() -> Any:
        raise error

    return fn


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetRole",
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error("Throttling", 400), FailureKind.THROTTLED),
        (_client_error("AccessDenied", 403), FailureKind.ACCESS_DENIED),
        (_client_error("ServiceFailure", 500), FailureKind.AWS_ERROR),
        (EndpointConnectionError(endpoint_url="https://iam.amazonaws.com"), FailureKind.AWS_ERROR),
        # An HTML error page from a proxy or load balancer: botocore cannot parse it.
        (
            ResponseParserError("Unable to parse response, invalid XML received"),
            FailureKind.AWS_ERROR,
        ),
    ],
)
def test_failures_become_one_of_three_kinds(error: Exception, kind: FailureKind) -> None:
    with pytest.raises(AwsCallError) as caught:
        _call("GetRole", _raise(error))
    assert caught.value.kind is kind
    assert caught.value.operation == "GetRole"


def test_no_such_entity_is_its_own_type() -> None:
    with pytest.raises(NotFoundError):
        _call("GetRole", _raise(_client_error("NoSuchEntity", 404)))


def test_programming_errors_are_not_disguised_as_aws_failures() -> None:
    with pytest.raises(KeyError):
        _call("GetRole", _raise(KeyError("Role")))
