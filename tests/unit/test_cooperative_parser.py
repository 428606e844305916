"""IAM's XML responses are parsed in slices (aws/clients.py), so a large page never holds the GIL
for the whole parse: the same result as botocore's own parser, expat fed at most
XML_SLICE_BYTES at a time, errors reported as botocore reports them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ETree
from typing import Any

import botocore.parsers
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from ecsrole.aws.clients import (
    XML_SLICE_BYTES,
    AccountAccess,
    ClientFactory,
    CooperativeParserFactory,
    CooperativeQueryParser,
)

pytestmark = pytest.mark.unit


def _role_detail(i: int) -> str:
    # Non-ASCII text, so that slices cut through multi-byte characters somewhere.
    return (
        "<member>"
        f"<RoleName>role-{i}</RoleName><RoleId>AROA{i:017d}</RoleId>"
        f"<Arn>arn:aws:iam::111111111111:role/role-{i}</Arn><Path>/</Path>"
        "<CreateDate>2026-01-01T00:00:00Z</CreateDate>"
        "<AssumeRolePolicyDocument>%7B%22Version%22%3A%222012-10-17%22%7D</AssumeRolePolicyDocument>"
        f"<Tags><member><Key>owner</Key><Value>équipe-ü-{i}</Value></member></Tags>"
        "<AttachedManagedPolicies><member><PolicyName>p</PolicyName>"
        "<PolicyArn>arn:aws:iam::aws:policy/p</PolicyArn></member></AttachedManagedPolicies>"
        "</member>"
    )


def _page(roles: int) -> bytes:
    body = "".join(_role_detail(i) for i in range(roles))
    return (
        '<GetAccountAuthorizationDetailsResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<GetAccountAuthorizationDetailsResult><IsTruncated>false</IsTruncated>"
        f"<RoleDetailList>{body}</RoleDetailList>"
        "</GetAccountAuthorizationDetailsResult>"
        "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
        "</GetAccountAuthorizationDetailsResponse>"
    ).encode()


def _output_shape() -> Any:
    model = botocore.session.get_session().get_service_model("iam")
    return model.operation_model("GetAccountAuthorizationDetails").output_shape


def _response(body: bytes) -> dict[str, Any]:
    return {"body": body, "headers": {}, "status_code": 200}


def test_a_large_page_parses_to_what_botocore_parses_in_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = _page(1500)
    assert len(body) > 10 * XML_SLICE_BYTES
    fed: list[int] = []

    class RecordingParser(ETree.XMLParser):
        def feed(self, data: Any) -> None:
            fed.append(len(data))
            super().feed(data)

    monkeypatch.setattr(ETree, "XMLParser", RecordingParser)
    ours = CooperativeParserFactory().create_parser("query").parse(_response(body), _output_shape())
    monkeypatch.undo()
    theirs = botocore.parsers.QueryParser().parse(_response(body), _output_shape())

    assert ours == theirs
    assert len(ours["RoleDetailList"]) == 1500
    assert ours["RoleDetailList"][7]["Tags"] == [{"Key": "owner", "Value": "équipe-ü-7"}]
    assert max(fed) <= XML_SLICE_BYTES
    assert sum(fed) == len(body)


def test_malformed_xml_is_a_response_parser_error_as_with_botocore() -> None:
    broken = _page(400)[:-30]
    # botocore turns a ResponseParserError of a 200 response into its own error shape.
    parser = CooperativeQueryParser()
    with pytest.raises(botocore.parsers.ResponseParserError, match="invalid XML received"):
        parser._parse_xml_string_to_dom(broken)


def test_other_protocols_keep_botocores_parsers() -> None:
    assert type(CooperativeParserFactory().create_parser("json")) is botocore.parsers.JSONParser


class _Raw:
    """What botocore reads an HTTP body from (urllib3's response, here canned)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_account_clients_parse_iam_responses_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    factory = ClientFactory(region="us-east-1", session_name="tests")
    iam = factory.for_account(AccountAccess("111111111111", None, None, 1000.0)).iam
    body = _page(600)

    def answer(request: Any, **_: Any) -> Any:
        return AWSResponse(request.url, 200, HTTPHeaders(), _Raw(body))

    iam.meta.events.register("before-send.iam", answer)
    fed: list[int] = []

    class RecordingParser(ETree.XMLParser):
        def feed(self, data: Any) -> None:
            fed.append(len(data))
            super().feed(data)

    monkeypatch.setattr(ETree, "XMLParser", RecordingParser)
    page: Any = iam.get_account_authorization_details(Filter=["Role"])
    assert len(page["RoleDetailList"]) == 600
    assert page["RoleDetailList"][0]["AssumeRolePolicyDocument"] == {"Version": "2012-10-17"}
    assert sum(fed) == len(body)
    assert len(fed) > 1
    assert max(fed) <= XML_SLICE_BYTES
