"""The operator configuration: every field, every error, all errors at once."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ecsrole import config

pytestmark = pytest.mark.unit

A = "111111111111"
DESIGN_EXAMPLE = """
clusterName: prod-eu-1            # required; part of ownership
region: us-east-1                 # STS/SQS region
driftCheckInterval: 60s
events: {sqsQueueUrl: null}
protectedRoleNames: []            # never adopted or touched, beside the built-in list
accounts:
  "111111111111":
    roleArn: null                 # null: the operator's own credentials must BE this account
    externalId: null
    namespaces: ["team-a", "team-b-*"]
    rolePathPrefix: /ecs/
    permissionsBoundaryArn: null  # when set, every role gets exactly this boundary
    allowedPolicyArns: []
    allowedResourcePatterns: {"team-a": ["arn:aws:secretsmanager:*:111111111111:secret:team-a/*"]}
    allowAdoption: false
    ignoredTagKeys: []
    sweepMode: bulk               # bulk | perRole
    maxCallsPerSecond: 10
"""


def errors_of(data: Any) -> list[str]:
    with pytest.raises(config.ConfigError) as raised:
        config.parse_config(data)
    return raised.value.errors


def with_account(**settings: Any) -> dict[str, Any]:
    return {"clusterName": "c", "accounts": {A: settings}}


def account_error(**settings: Any) -> str:
    errors = errors_of(with_account(**settings))
    assert len(errors) == 1, errors
    return errors[0]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- valid configurations --------------------------------------------------------------------


def test_design_example_loads(tmp_path: Path) -> None:
    loaded = config.load_config(write(tmp_path, DESIGN_EXAMPLE))
    assert loaded.cluster_name == "prod-eu-1"
    assert loaded.region == "us-east-1"
    assert loaded.drift_check_interval == 60.0
    assert loaded.events_sqs_queue_url is None
    assert loaded.protected_role_names == ()
    account = loaded.accounts[A]
    assert account == config.AccountConfig(
        account_id=A,
        namespaces=("team-a", "team-b-*"),
        role_path_prefix="/ecs/",
        allowed_resource_patterns={
            "team-a": ("arn:aws:secretsmanager:*:111111111111:secret:team-a/*",)
        },
    )
    assert account.sweep_mode is config.SweepMode.BULK
    assert account.max_calls_per_second == 10.0


def test_minimal_config_takes_defaults() -> None:
    loaded = config.parse_config({"clusterName": "c", "accounts": {A: None}})
    assert loaded == config.OperatorConfig(cluster_name="c", accounts={A: config.AccountConfig(A)})
    assert loaded.region == "us-east-1"
    assert loaded.drift_check_interval == 60.0
    account = loaded.accounts[A]
    assert account.role_path_prefix == "/"
    assert account.namespaces == ()
    assert not account.allow_adoption
    assert account.sweep_mode == "bulk"


def test_empty_accounts_map_is_allowed() -> None:
    assert config.parse_config({"clusterName": "c", "accounts": {}}).accounts == {}
    assert config.parse_config({"clusterName": "c", "accounts": None}).accounts == {}


def test_full_account() -> None:
    loaded = config.parse_config(
        with_account(
            roleArn=f"arn:aws-us-gov:iam::{A}:role/ops/ecsrole-access",
            externalId="ext-123",
            namespaces=["team-a"],
            rolePathPrefix="/ecs/team-a/",
            permissionsBoundaryArn=f"arn:aws-us-gov:iam::{A}:policy/boundary",
            allowedPolicyArns=["arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess"],
            allowAdoption=True,
            ignoredTagKeys=["CostCenter"],
            sweepMode="perRole",
            maxCallsPerSecond=2.5,
        )
    )
    account = loaded.accounts[A]
    assert account.role_arn == f"arn:aws-us-gov:iam::{A}:role/ops/ecsrole-access"
    assert account.external_id == "ext-123"
    assert account.role_path_prefix == "/ecs/team-a/"
    assert account.allow_adoption
    assert account.ignored_tag_keys == ("CostCenter",)
    assert account.sweep_mode is config.SweepMode.PER_ROLE
    assert account.max_calls_per_second == 2.5
    assert loaded.account(A) is account
    assert loaded.account("222222222222") is None
    assert loaded.account_map_role_names(A) == ("ecsrole-access",)
    assert loaded.account_map_role_names("222222222222") == ()


def test_aws_managed_boundary_is_allowed() -> None:
    loaded = config.parse_config(
        with_account(permissionsBoundaryArn="arn:aws:iam::aws:policy/PowerUserAccess")
    )
    assert loaded.accounts[A].permissions_boundary_arn == "arn:aws:iam::aws:policy/PowerUserAccess"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("60s", 60),
        ("5m", 300),
        ("1h30m", 5400),
        ("1h", 3600),
        ("1.5s", 1.5),
        ("1500ms", 1.5),
        ("2m30s", 150),
        (90, 90),
        (2.5, 2.5),
        ("90", 90),
        (" 45s ", 45),
    ],
)
def test_drift_check_interval(value: Any, seconds: float) -> None:
    loaded = config.parse_config({"clusterName": "c", "accounts": {}, "driftCheckInterval": value})
    assert loaded.drift_check_interval == seconds


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 15.0), ("0s", 0.0), (0, 0.0), ("2m", 120.0), ("1.5", 1.5)]
)
def test_settle_window(value: Any, seconds: float) -> None:
    data: dict[str, Any] = {"clusterName": "c", "accounts": {}}
    if value is not None:
        data["settleWindow"] = value
    assert config.parse_config(data).settle_window == seconds


def test_events_queue() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/111111111111/ecsrole-events"
    loaded = config.parse_config(
        {"clusterName": "c", "accounts": {}, "events": {"sqsQueueUrl": url}}
    )
    assert loaded.events_sqs_queue_url == url
    local = "http://127.0.0.1:5000/123456789012/q"
    assert (
        config.parse_config(
            {"clusterName": "c", "accounts": {}, "events": {"sqsQueueUrl": local}}
        ).events_sqs_queue_url
        == local
    )


def test_config_objects_are_frozen_and_hashable() -> None:
    loaded = config.parse_config(yaml_like_design())
    with pytest.raises(AttributeError):
        loaded.cluster_name = "x"  # type: ignore[misc]
    assert hash(loaded) == hash(config.parse_config(yaml_like_design()))
    assert hash(loaded.accounts[A])


def yaml_like_design() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(DESIGN_EXAMPLE)
    return data


# -- account helpers -------------------------------------------------------------------------


def test_namespace_globs() -> None:
    account = config.AccountConfig(A, namespaces=("team-a", "team-b-*", "ops-[0-9]"))
    assert account.allows_namespace("team-a")
    assert account.allows_namespace("team-b-prod")
    assert account.allows_namespace("ops-1")
    assert not account.allows_namespace("team-ab")
    assert not account.allows_namespace("TEAM-A")
    assert not account.allows_namespace("team-b")
    assert not config.AccountConfig(A).allows_namespace("team-a")


def test_resource_patterns_collect_every_matching_entry_in_order() -> None:
    account = config.AccountConfig(
        A,
        allowed_resource_patterns={
            "team-*": ("arn:shared", "arn:teams"),
            "team-a": ("arn:a", "arn:shared"),
            "other": ("arn:other",),
        },
    )
    assert account.resource_patterns_for("team-a") == ("arn:shared", "arn:teams", "arn:a")
    assert account.resource_patterns_for("team-b") == ("arn:shared", "arn:teams")
    assert account.resource_patterns_for("nobody") == ()


def test_policy_allowed_uses_globs() -> None:
    account = config.AccountConfig(
        A,
        allowed_policy_arns=(
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            f"arn:aws:iam::{A}:policy/team-a/*",
        ),
    )
    assert account.policy_allowed("arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert account.policy_allowed(f"arn:aws:iam::{A}:policy/team-a/read")
    assert not account.policy_allowed("arn:aws:iam::aws:policy/AdministratorAccess")
    assert not account.policy_allowed("arn:aws:iam::aws:policy/readonlyaccess")
    assert not config.AccountConfig(A).policy_allowed("arn:aws:iam::aws:policy/ReadOnlyAccess")


# -- top-level errors ------------------------------------------------------------------------


def test_empty_and_non_mapping_configs() -> None:
    assert errors_of(None) == [
        "(top level): the configuration is empty; clusterName and accounts are required"
    ]
    assert errors_of(["a"]) == ["(top level): must be a mapping, not a list"]


def test_required_fields() -> None:
    assert errors_of({}) == [
        "clusterName: is required (it is part of every role's ownership tags)",
        'accounts: is required: a mapping of quoted 12-digit account ids ("111111111111") '
        "to their settings",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "clusterName: must not be empty"),
        (3, "clusterName: must be a string, not a number"),
        ("prod;eu", "clusterName: must be usable as an IAM tag value: tag values may contain only"),
        (
            "c" * 257,
            "clusterName: must be usable as an IAM tag value: tag values must be at most 256",
        ),
    ],
)
def test_cluster_name_errors(value: Any, message: str) -> None:
    errors = errors_of({"clusterName": value, "accounts": {}})
    assert len(errors) == 1
    assert errors[0].startswith(message)


def test_cluster_name_may_use_tag_value_characters() -> None:
    assert config.parse_config({"clusterName": "prod eu-1/a:b=c+d@e", "accounts": {}})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("region", "US-EAST-1", "region: 'US-EAST-1' is not an AWS region name such as us-east-1"),
        ("region", 1, "region: must be a string, not a number"),
        (
            "driftCheckInterval",
            "5x",
            "driftCheckInterval: must be a number of seconds or a duration",
        ),
        ("driftCheckInterval", "", "driftCheckInterval: must be a number of seconds or a duration"),
        (
            "driftCheckInterval",
            True,
            "driftCheckInterval: must be a number of seconds or a duration",
        ),
        (
            "driftCheckInterval",
            "inf",
            "driftCheckInterval: must be a number of seconds or a duration",
        ),
        ("driftCheckInterval", 0, "driftCheckInterval: must be at least 1 second"),
        ("driftCheckInterval", "500ms", "driftCheckInterval: must be at least 1 second"),
        ("driftCheckInterval", -5, "driftCheckInterval: must be at least 1 second"),
        ("settleWindow", -1, "settleWindow: must be at least 0 seconds"),
        ("settleWindow", "10m", "settleWindow: must be at most 300 seconds"),
        ("settleWindow", "soon", "settleWindow: must be a number of seconds or a duration"),
        ("events", "x", "events: must be a mapping, not a string"),
        ("events", {"sqsQueue": "x"}, 'events.sqsQueue: unknown key (did you mean "sqsQueueUrl"?)'),
        (
            "events",
            {"sqsQueueUrl": "ftp://x/y"},
            "events.sqsQueueUrl: 'ftp://x/y' is not an SQS queue URL",
        ),
        ("events", {"sqsQueueUrl": "https://sqs.us-east-1.amazonaws.com"}, "events.sqsQueueUrl:"),
        ("events", {"sqsQueueUrl": 1}, "events.sqsQueueUrl: must be a string, not a number"),
        ("protectedRoleNames", "admin", "protectedRoleNames: must be a list, not a string"),
        ("protectedRoleNames", ["ok", "not ok"], "protectedRoleNames[1]: may contain only"),
        ("protectedRoleNames", [None], "protectedRoleNames[0]: must be a string, not null"),
        ("accounts", ["111111111111"], "accounts: must be a mapping of account ids to settings"),
        ("clusterNmae", "x", 'clusterNmae: unknown key (did you mean "clusterName"?)'),
        ("Region", "us-east-1", 'Region: unknown key (did you mean "region"?)'),
        ("zzz", 1, "zzz: unknown key (expected one of: clusterName, region, driftCheckInterval,"),
    ],
)
def test_top_level_errors(key: str, value: Any, message: str) -> None:
    errors = errors_of({"clusterName": "c", "accounts": {}, key: value})
    assert len(errors) == 1, errors
    assert errors[0].startswith(message), errors[0]


def test_non_string_keys_are_refused() -> None:
    assert errors_of({"clusterName": "c", "accounts": {}, 1: "x"}) == [
        "1: keys must be strings, not a number"
    ]


# -- account errors --------------------------------------------------------------------------


def test_unquoted_account_id_is_reported_clearly() -> None:
    errors = errors_of({"clusterName": "c", "accounts": {111111111111: {}}})
    assert errors == [
        "accounts.111111111111: account ids must be quoted strings of 12 digits, e.g. "
        '"111111111111": YAML reads unquoted digits as a number (and digits with a leading '
        "zero as octal)"
    ]


@pytest.mark.parametrize("key", ["11111111111", "1111111111111", "11111111111a", "", "*"])
def test_account_ids_must_be_twelve_digits(key: str) -> None:
    errors = errors_of({"clusterName": "c", "accounts": {key: {}}})
    assert errors == [f'accounts."{key}": account ids must be exactly 12 digits']


def test_account_settings_must_be_a_mapping() -> None:
    errors = errors_of({"clusterName": "c", "accounts": {A: ["team-a"]}})
    assert errors == [f'accounts."{A}": must be a mapping of account settings, not a list']


P = f'accounts."{A}"'


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rolArn": None}, f'{P}.rolArn: unknown key (did you mean "roleArn"?)'),
        (
            {"allowAdoptoin": True},
            f'{P}.allowAdoptoin: unknown key (did you mean "allowAdoption"?)',
        ),
        ({"NameSpaces": []}, f'{P}.NameSpaces: unknown key (did you mean "namespaces"?)'),
        ({"roleArn": "arn:aws:iam::111111111111:user/x"}, f"{P}.roleArn: must name a role"),
        ({"roleArn": 5}, f"{P}.roleArn: must be a string, not a number"),
        (
            {"roleArn": "arn:aws:iam::222222222222:role/x"},
            f"{P}.roleArn: names account 222222222222, but this entry is for account {A}",
        ),
        ({"externalId": "abc"}, f"{P}.externalId: is only used with roleArn"),
        (
            {"roleArn": f"arn:aws:iam::{A}:role/x", "externalId": "a b"},
            f"{P}.externalId: must be 2-1224 characters",
        ),
        ({"namespaces": "team-a"}, f"{P}.namespaces: must be a list, not a string"),
        (
            {"namespaces": ["Team_A"]},
            f"{P}.namespaces[0]: 'Team_A' is not a namespace name or glob",
        ),
        ({"namespaces": [True]}, f"{P}.namespaces[0]: must be a string, not a boolean (quote it"),
        ({"rolePathPrefix": "ecs"}, f'{P}.rolePathPrefix: must start and end with "/"'),
        ({"rolePathPrefix": "/ecs"}, f'{P}.rolePathPrefix: must start and end with "/"'),
        ({"rolePathPrefix": "/a//b/"}, f"{P}.rolePathPrefix: must not contain an empty segment"),
        (
            {"rolePathPrefix": "/aws-service-role/x/"},
            f"{P}.rolePathPrefix: /aws-service-role/x/ is reserved",
        ),
        ({"rolePathPrefix": "/aws-reserved/"}, f"{P}.rolePathPrefix: /aws-reserved/ is reserved"),
        (
            {"permissionsBoundaryArn": "arn:aws:iam::aws:role/x"},
            f"{P}.permissionsBoundaryArn: must name a policy",
        ),
        (
            {"permissionsBoundaryArn": "arn:aws:iam::222222222222:policy/b"},
            f"{P}.permissionsBoundaryArn: must be a policy of account {A} or an AWS managed policy",
        ),
        (
            {
                "roleArn": f"arn:aws:iam::{A}:role/x",
                "permissionsBoundaryArn": f"arn:aws-cn:iam::{A}:policy/b",
            },
            f"{P}.permissionsBoundaryArn: is in partition aws-cn, but roleArn is in aws",
        ),
        (
            {"allowedPolicyArns": ["ReadOnlyAccess"]},
            f"{P}.allowedPolicyArns[0]: 'ReadOnlyAccess' is not an ARN pattern",
        ),
        ({"allowedPolicyArns": {}}, f"{P}.allowedPolicyArns: must be a list, not a mapping"),
        ({"allowedResourcePatterns": ["x"]}, f"{P}.allowedResourcePatterns: must be a mapping"),
        (
            {"allowedResourcePatterns": {"Team A": []}},
            f"{P}.allowedResourcePatterns.\"Team A\": 'Team A' is not a namespace",
        ),
        (
            {"allowedResourcePatterns": {"team-a": "arn:aws:s3:::b"}},
            f'{P}.allowedResourcePatterns."team-a": must be a list, not a string',
        ),
        (
            {"allowedResourcePatterns": {"team-a": ["*"]}},
            f"{P}.allowedResourcePatterns.\"team-a\"[0]: '*' is not an ARN pattern",
        ),
        (
            {"allowedResourcePatterns": {1: []}},
            f'{P}.allowedResourcePatterns."1": namespace globs must be strings',
        ),
        ({"allowAdoption": "yes"}, f"{P}.allowAdoption: must be true or false, not a string"),
        (
            {"ignoredTagKeys": ["ecsrole.dev/uid"]},
            f"{P}.ignoredTagKeys[0]: 'ecsrole.dev/uid' is an ownership tag key",
        ),
        (
            {"ignoredTagKeys": ["ECSROLE.DEV/x"]},
            f"{P}.ignoredTagKeys[0]: 'ECSROLE.DEV/x' is an ownership tag key",
        ),
        ({"ignoredTagKeys": ["a,b"]}, f"{P}.ignoredTagKeys[0]: tag keys may contain only"),
        (
            {"sweepMode": "perrole"},
            f"{P}.sweepMode: must be bulk or perRole, not 'perrole' (did you mean \"perRole\"?)",
        ),
        ({"sweepMode": "fast"}, f"{P}.sweepMode: must be bulk or perRole, not 'fast'"),
        ({"sweepMode": 1}, f"{P}.sweepMode: must be bulk or perRole, not 1"),
        (
            {"maxCallsPerSecond": 0},
            f"{P}.maxCallsPerSecond: must be a finite number greater than 0, not 0",
        ),
        (
            {"maxCallsPerSecond": -1.5},
            f"{P}.maxCallsPerSecond: must be a finite number greater than 0",
        ),
        (
            {"maxCallsPerSecond": float("inf")},
            f"{P}.maxCallsPerSecond: must be a finite number greater than 0",
        ),
        ({"maxCallsPerSecond": "10"}, f"{P}.maxCallsPerSecond: must be a number, not a string"),
        ({"maxCallsPerSecond": True}, f"{P}.maxCallsPerSecond: must be a number, not a boolean"),
    ],
)
def test_account_errors_name_the_field(settings: dict[str, Any], message: str) -> None:
    error = account_error(**settings)
    assert error.startswith(message), error


def test_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    error = account_error(zzz=1)
    assert error.startswith(f"{P}.zzz: unknown key (expected one of: roleArn, externalId,")


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of(
        {
            "clusterName": "",
            "region": "nowhere",
            "driftCheckInterval": "soon",
            "accounts": {
                111111111111: {},
                "22": {},
                "333333333333": {
                    "rolePathPrefix": "ecs",
                    "sweepMode": "fast",
                    "namespaces": [1],
                    "maxCallsPerSecond": 0,
                },
            },
        }
    )
    assert [error.split(":", 1)[0] for error in errors] == [
        "clusterName",
        "region",
        "driftCheckInterval",
        "accounts.111111111111",
        'accounts."22"',
        'accounts."333333333333".namespaces[0]',
        'accounts."333333333333".rolePathPrefix',
        'accounts."333333333333".sweepMode',
        'accounts."333333333333".maxCallsPerSecond',
    ]


def test_config_error_renders_every_line() -> None:
    error = config.ConfigError(["a: one", "b: two"], source="/etc/ecsrole/config.yaml")
    assert isinstance(error, ValueError)
    assert str(error) == (
        "invalid operator configuration in /etc/ecsrole/config.yaml:\n  - a: one\n  - b: two"
    )
    assert error.errors == ["a: one", "b: two"]


# -- files -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(config.ConfigError) as raised:
        config.load_config(path)
    assert raised.value.errors == [f"{path}: cannot read the file: No such file or directory"]
    assert raised.value.source == str(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="cannot read the file"):
        config.load_config(tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"clusterName: caf\xe9\n")
    with pytest.raises(config.ConfigError, match="cannot read the file"):
        config.load_config(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "clusterName: [unclosed\n")
    with pytest.raises(config.ConfigError) as raised:
        config.load_config(path)
    assert raised.value.errors[0].startswith(f"{path}: not valid YAML:")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        clusterName: c
        accounts:
          "111111111111": {namespaces: [team-a]}
          "111111111111": {namespaces: [team-b]}
        """,
    )
    with pytest.raises(config.ConfigError) as raised:
        config.load_config(path)
    assert "duplicate key '111111111111'" in raised.value.errors[0]
    assert "line 5" in raised.value.errors[0]


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        clusterName: c
        accounts:
          "111111111111": &base {namespaces: [team-a], rolePathPrefix: /ecs/}
          "222222222222":
            <<: *base
            namespaces: [team-b]
        """,
    )
    loaded = config.load_config(path)
    assert loaded.accounts["222222222222"].namespaces == ("team-b",)
    assert loaded.accounts["222222222222"].role_path_prefix == "/ecs/"


def test_unquoted_account_id_in_a_real_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        clusterName: c
        accounts:
          111111111111: {namespaces: [team-a]}
        """,
    )
    with pytest.raises(config.ConfigError) as raised:
        config.load_config(path)
    assert raised.value.errors[0].startswith("accounts.111111111111: account ids must be quoted")
    assert str(path) in str(raised.value)


def test_yaml_booleans_in_lists_get_a_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        clusterName: c
        accounts:
          "111111111111": {namespaces: [team-a, no]}
        """,
    )
    with pytest.raises(config.ConfigError) as raised:
        config.load_config(path)
    assert "quote it" in raised.value.errors[0]


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="the configuration is empty"):
        config.load_config(write(tmp_path, ""))
