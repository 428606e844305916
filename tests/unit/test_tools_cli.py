"""The `ecsrole` command's tools, in-process: check-config's output and exit status, and the
errors diff and import report before they need AWS."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ecsrole import cli

pytestmark = pytest.mark.unit

VALID = """\
clusterName: prod-eu-1
accounts:
  "111111111111":
    namespaces: ["team-a"]
"""

#: (case, configuration text, the line check-config must print)
MISTAKES = [
    ("missing-cluster-name", 'accounts: {"111111111111": {}}\n', "clusterName: is required"),
    ("empty-cluster-name", 'clusterName: ""\naccounts: {}\n', "clusterName: must not be empty"),
    ("missing-accounts", "clusterName: a\n", "accounts: is required"),
    (
        "unknown-top-level-key",
        "clusterName: a\naccounts: {}\nacounts: {}\n",
        'acounts: unknown key (did you mean "accounts"?)',
    ),
    (
        "region",
        "clusterName: a\nregion: mars\naccounts: {}\n",
        "region: 'mars' is not an AWS region name",
    ),
    (
        "interval",
        "clusterName: a\ndriftCheckInterval: soon\naccounts: {}\n",
        "driftCheckInterval: must be a number of seconds or a duration",
    ),
    (
        "sqs-url",
        "clusterName: a\nevents: {sqsQueueUrl: 'ftp://x'}\naccounts: {}\n",
        "events.sqsQueueUrl: 'ftp://x' is not an SQS queue URL",
    ),
    (
        "protected-role-name",
        "clusterName: a\nprotectedRoleNames: ['a b']\naccounts: {}\n",
        "protectedRoleNames[0]: may contain only",
    ),
    (
        "unquoted-account-id",
        "clusterName: a\naccounts: {111111111111: {}}\n",
        "accounts.111111111111: account ids must be quoted strings",
    ),
    (
        "short-account-id",
        "clusterName: a\naccounts: {'12345': {}}\n",
        'accounts."12345": account ids must be exactly 12 digits',
    ),
    (
        "unknown-account-key",
        "clusterName: a\naccounts: {'111111111111': {allowAdoptoin: true}}\n",
        'accounts."111111111111".allowAdoptoin: unknown key (did you mean "allowAdoption"?)',
    ),
    (
        "role-arn-of-another-account",
        "clusterName: a\naccounts: {'111111111111': {roleArn: 'arn:aws:iam::222222222222:role/x'}}\n",
        'accounts."111111111111".roleArn: names account 222222222222',
    ),
    (
        "external-id-without-role-arn",
        "clusterName: a\naccounts: {'111111111111': {externalId: abc}}\n",
        'accounts."111111111111".externalId: is only used with roleArn',
    ),
    (
        "namespace-glob",
        "clusterName: a\naccounts: {'111111111111': {namespaces: [Team_A]}}\n",
        "accounts.\"111111111111\".namespaces[0]: 'Team_A' is not a namespace name or glob",
    ),
    (
        "path-prefix",
        "clusterName: a\naccounts: {'111111111111': {rolePathPrefix: ecs}}\n",
        'accounts."111111111111".rolePathPrefix: must start and end with "/"',
    ),
    (
        "boundary-of-another-account",
        "clusterName: a\naccounts: {'111111111111': {permissionsBoundaryArn: 'arn:aws:iam::222222222222:policy/b'}}\n",
        'accounts."111111111111".permissionsBoundaryArn: must be a policy of account 111111111111',
    ),
    (
        "policy-pattern",
        "clusterName: a\naccounts: {'111111111111': {allowedPolicyArns: [AdministratorAccess]}}\n",
        "accounts.\"111111111111\".allowedPolicyArns[0]: 'AdministratorAccess' is not an ARN pattern",
    ),
    (
        "resource-pattern",
        "clusterName: a\naccounts: {'111111111111': {allowedResourcePatterns: {team-a: [secret]}}}\n",
        'accounts."111111111111".allowedResourcePatterns."team-a"[0]: \'secret\' is not an ARN pattern',
    ),
    (
        "ignored-ownership-tag",
        "clusterName: a\naccounts: {'111111111111': {ignoredTagKeys: [ecsrole.dev/uid]}}\n",
        "accounts.\"111111111111\".ignoredTagKeys[0]: 'ecsrole.dev/uid' is an ownership tag key",
    ),
    (
        "sweep-mode",
        "clusterName: a\naccounts: {'111111111111': {sweepMode: bulkk}}\n",
        'accounts."111111111111".sweepMode: must be bulk or perRole, not \'bulkk\' (did you mean "bulk"?)',
    ),
    (
        "rate",
        "clusterName: a\naccounts: {'111111111111': {maxCallsPerSecond: 0}}\n",
        'accounts."111111111111".maxCallsPerSecond: must be a finite number greater than 0',
    ),
    (
        "boolean",
        "clusterName: a\naccounts: {'111111111111': {allowAdoption: 'yes'}}\n",
        'accounts."111111111111".allowAdoption: must be true or false, not a string',
    ),
    ("empty-file", "", "(top level): the configuration is empty"),
    ("not-a-mapping", "- a\n", "(top level): must be a mapping, not a list"),
    ("invalid-yaml", "clusterName: [\n", "not valid YAML"),
    (
        "duplicate-key",
        "clusterName: a\nclusterName: b\naccounts: {}\n",
        "found duplicate key 'clusterName'",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_check_config_names_the_field_of_each_kind_of_mistake(
    text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert cli.main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}: invalid configuration\n")
    assert expected in err


def test_check_config_reports_every_problem_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            region: mars
            accounts:
              "111111111111": {rolePathPrefix: ecs, sweepMode: bulkk, allowAdoptoin: true}
            """
        )
    )
    assert cli.main(["check-config", str(path)]) == 1
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")]
    assert [p.split(":")[0] for p in problems] == [
        "  - clusterName",
        "  - region",
        '  - accounts."111111111111".allowAdoptoin',
        '  - accounts."111111111111".rolePathPrefix',
        '  - accounts."111111111111".sweepMode',
    ]


def test_check_config_valid_missing_and_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID)
    assert cli.main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: valid (1 account(s), cluster prod-eu-1)\n"
    assert cli.main(["check-config", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read the file: No such file or directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["check-config"])
    assert usage.value.code == 2


# -- diff and import: errors found before any AWS call -------------------------------------------


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may reach AWS: no credentials and an endpoint nobody listens on."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_diff_with_unreadable_manifests_exits_1_before_any_aws_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(VALID)
    other = tmp_path / "deployment.yaml"
    other.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
    code = cli.main(
        ["diff", "-f", str(tmp_path / "missing.yaml"), "-f", str(other), "--config", str(config)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path}/missing.yaml: cannot read: No such file or directory" in err
    assert f"error: {other}: no EcsExecutionRole in it (found: Deployment web)" in err


def test_diff_json_reports_an_invalid_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("clusterName: a\n")
    assert cli.main(["diff", "-f", "-", "--config", str(config), "-o", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["exitCode"] == 1
    assert document["errors"] == [
        f'invalid configuration {config}: accounts: is required: a mapping of quoted 12-digit account ids ("111111111111") to their settings'
    ]


def test_diff_without_credentials_says_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(VALID)
    manifest = tmp_path / "role.yaml"
    manifest.write_text(
        "apiVersion: iam.ecsrole.dev/v1alpha1\nkind: EcsExecutionRole\n"
        "metadata: {name: web, namespace: team-a}\n"
        "spec: {accountId: '111111111111', roleName: web}\n"
    )
    assert cli.main(["diff", "-f", str(manifest), "--config", str(config)]) == 1
    assert (
        "error: no AWS credentials found: Unable to locate credentials" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--account", "12345"], "--account '12345': must be exactly 12 digits"),
        (
            ["--account", "999999999999", "--config", "CONFIG"],
            "account 999999999999 is not in the configuration",
        ),
        (
            ["--account", "111111111111", "--config", "CONFIG", "--path-prefix", "ecs"],
            "--path-prefix 'ecs': must start and end with \"/\"",
        ),
    ],
)
def test_import_argument_errors_exit_1(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(VALID)
    argv = [str(config) if arg == "CONFIG" else arg for arg in argv]
    assert cli.main(["import", *argv]) == 1
    assert message in capsys.readouterr().err


def test_role_arn_template_must_name_the_account(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["diff", "-f", "x", "--role-arn-template", "arn:aws:iam::111111111111:role/x"])
    assert usage.value.code == 2
    assert 'must contain "{account}"' in capsys.readouterr().err


def test_the_command_module_imports_neither_kopf_nor_boto() -> None:
    code = (
        "import sys, ecsrole.cli; ecsrole.cli.main(['run', '--help']); "
        "print(sorted(m for m in ('kopf', 'boto3', 'botocore') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]"


def test_diff_and_import_never_import_kopf() -> None:
    code = (
        "import sys; from ecsrole.tools import diff, importer; from ecsrole.aws import readonly; "
        "print('kopf' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
