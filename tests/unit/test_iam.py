"""IAM naming rules and ARN shapes."""

from __future__ import annotations

import pytest

from ecsrole.core import iam

pytestmark = pytest.mark.unit


def test_parse_arn_keeps_colons_in_the_resource() -> None:
    arn = iam.parse_arn("arn:aws:secretsmanager:us-east-1:111111111111:secret:a/b-AbCdEf")
    assert arn == iam.Arn("aws", "secretsmanager", "us-east-1", "111111111111", "secret:a/b-AbCdEf")


@pytest.mark.parametrize(
    "text",
    ["", "arn", "arn:aws:s3", "urn:aws:s3:::b", "arn::s3:::b", "arn:aws::::r", "arn:aws:s3:::"],
)
def test_parse_arn_refuses_non_arns(text: str) -> None:
    assert iam.parse_arn(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("111111111111", True),
        ("011111111111", True),
        ("11111111111", False),
        ("1111111111111", False),
        ("11111111111a", False),
        ("\uff11" * 12, False),  # fullwidth digits
    ],
)
def test_account_ids_are_twelve_ascii_digits(text: str, expected: bool) -> None:
    assert iam.is_account_id(text) is expected


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov", "aws-iso-b"])
def test_partitions(partition: str) -> None:
    assert iam.is_partition(partition)


@pytest.mark.parametrize("partition", ["", "AWS", "gcp", "aws-", "aws_cn"])
def test_not_partitions(partition: str) -> None:
    assert not iam.is_partition(partition)


@pytest.mark.parametrize("region", ["us-east-1", "cn-north-1", "us-gov-west-1", "ap-southeast-4"])
def test_regions(region: str) -> None:
    assert iam.is_region(region)


@pytest.mark.parametrize("region", ["", "*", "us-east", "US-EAST-1", "us-east-*"])
def test_not_regions(region: str) -> None:
    assert not iam.is_region(region)


@pytest.mark.parametrize("name", ["a", "ecsTaskExecutionRole", "a+b=c,d.e@f_g-h", "x" * 64])
def test_valid_role_names(name: str) -> None:
    assert iam.role_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 65, "at most 64"),
        ("a b", "may contain only"),
        ("a/b", "may contain only"),
        ("é", "may contain only"),
    ],
)
def test_invalid_role_names(name: str, problem: str) -> None:
    assert problem in (iam.role_name_problem(name) or "")


@pytest.mark.parametrize("path", ["/", "/ecs/", "/ecs/team-a/", "/a_b.c/"])
def test_valid_paths(path: str) -> None:
    assert iam.path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "start and end"),
        ("ecs/", "start and end"),
        ("/ecs", "start and end"),
        ("/" + "a" * 511 + "/", "at most 512"),
        ("/a b/", "printable ASCII"),
        ("/é/", "printable"),
        ("/a//b/", "empty segment"),
    ],
)
def test_invalid_paths(path: str, problem: str) -> None:
    assert problem in (iam.path_problem(path) or "")


def test_path_under_prefix_is_case_sensitive() -> None:
    assert iam.is_path_under("/ecs/", "/ecs/")
    assert iam.is_path_under("/ecs/a/", "/ecs/")
    assert not iam.is_path_under("/ECS/", "/ecs/")
    assert not iam.is_path_under("/ecsx/", "/ecs/")


@pytest.mark.parametrize("key", ["team", "Cost Center", "a_b.c:d/e=f+g-h@i", "équipe", "k" * 128])
def test_valid_tag_keys(key: str) -> None:
    assert iam.tag_key_problem(key) is None


@pytest.mark.parametrize("key", ["", "k" * 129, "a,b", "a*b", "tab\there"])
def test_invalid_tag_keys(key: str) -> None:
    assert iam.tag_key_problem(key) is not None


def test_tag_values_may_be_empty_but_not_too_long_or_odd() -> None:
    assert iam.tag_value_problem("") is None
    assert iam.tag_value_problem("v" * 256) is None
    assert iam.tag_value_problem("v" * 257) is not None
    assert iam.tag_value_problem("a;b") is not None


@pytest.mark.parametrize("key", ["aws:x", "AWS:x", "ecsrole.dev/x", "ECSRole.Dev/uid"])
def test_reserved_tag_keys_in_any_case(key: str) -> None:
    assert iam.is_reserved_tag_key(key)


def test_unreserved_tag_keys() -> None:
    assert not iam.is_reserved_tag_key("awsome")
    assert not iam.is_reserved_tag_key("ecsrole.dev")


def test_descriptions() -> None:
    assert iam.description_problem("") is None
    assert iam.description_problem("Runs the web tier\n\tcafé") is None
    assert iam.description_problem("d" * 1001) is not None
    assert iam.description_problem("emoji 🚀") is not None


def test_role_arns() -> None:
    parsed = iam.parse_role_arn("arn:aws-cn:iam::111111111111:role/ecs/team-a/web")
    assert parsed == iam.IamPathArn("aws-cn", "111111111111", "/ecs/team-a/", "web")
    assert iam.parse_role_arn("arn:aws:iam::111111111111:role/web") == iam.IamPathArn(
        "aws", "111111111111", "/", "web"
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111111111111:user/x",
        "arn:aws:iam::aws:role/x",
        "arn:aws:iam::111:role/x",
        "arn:aws:iam:us-east-1:111111111111:role/x",
        "arn:aws:sts::111111111111:role/x",
        "arn:aws:iam::111111111111:role/",
        "arn:aws:iam::111111111111:role/a b",
        "arn:nope:iam::111111111111:role/x",
        "arn:aws:iam::111111111111:role//x",
    ],
)
def test_invalid_role_arns(arn: str) -> None:
    assert isinstance(iam.parse_role_arn(arn), str)


def test_policy_arns() -> None:
    assert iam.parse_policy_arn(
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    ) == iam.IamPathArn("aws", "aws", "/service-role/", "AmazonECSTaskExecutionRolePolicy")
    assert not isinstance(iam.parse_policy_arn("arn:aws:iam::111111111111:policy/b"), str)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::aws:role/x",
        "arn:aws:iam::amazon:policy/x",
        "arn:aws:iam::aws:policy/",
        "arn:aws:iam::aws:policy/a*",
        "arn:aws:s3:::b",
    ],
)
def test_invalid_policy_arns(arn: str) -> None:
    assert isinstance(iam.parse_policy_arn(arn), str)


def test_role_name_from_arn() -> None:
    assert iam.role_name_from_arn("arn:aws:iam::111111111111:role/ecs/web") == "web"
    assert iam.role_name_from_arn("not an arn") is None


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        (
            "arn:aws:sts::111111111111:assumed-role/ecsrole-operator/botocore-session-1",
            "ecsrole-operator",
        ),
        ("arn:aws:iam::111111111111:role/ops/ecsrole-operator", "ecsrole-operator"),
        ("arn:aws:iam::111111111111:user/alice", None),
        ("arn:aws:sts::111111111111:federated-user/alice", None),
        ("arn:aws:iam::111111111111:root", None),
        ("garbage", None),
    ],
)
def test_caller_role_name(arn: str, name: str | None) -> None:
    assert iam.caller_role_name(arn) == name
