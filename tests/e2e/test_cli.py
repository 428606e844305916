"""The command-line tools end to end: `ecsrole diff`, `ecsrole import` and `ecsrole check-config`
run as the real command against the moto server (and, where the operator must act, the real
API server and the operator as a process).

`diff` and `import` never write: every test that runs them compares the roles in moto before
and after. The import test also proves from the operator's own metrics that adopting the
imported manifests wrote nothing but the ownership tags.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from tests.conftest import (
    CROSS_ACCOUNT_ID,
    MISMATCHED_ACCOUNT_ID,
    NO_ADOPTION_ACCOUNT_ID,
    SHARED_ACCOUNTS,
    UNLISTED_NAMESPACE_ACCOUNT_ID,
    OperatorFactory,
)
from tests.stack.kube import Kubectl, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config, ecsrole_executable, metric_value
from tests.stack.resources import SEED_POLICY, role_manifest

pytestmark = pytest.mark.e2e

Aws = Callable[..., Any]

ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
SSM_READ_POLICY = "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess"
ECS_STATEMENT = {
    "Sid": "",
    "Effect": "Allow",
    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
    "Action": "sts:AssumeRole",
}
WRITE_OPERATIONS = (
    "CreateRole",
    "DeleteRole",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "TagRole",
    "UntagRole",
    "UpdateRole",
    "UpdateRoleDescription",
    "UpdateAssumeRolePolicy",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "RemoveRoleFromInstanceProfile",
)


# -- helpers ------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def trust(*statements: Mapping[str, Any], **statement: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{**ECS_STATEMENT, **statement}, *statements]}


def manifest(
    name: str, namespace: str, *, account_id: str = DEFAULT_ACCOUNT_ID, **spec: Any
) -> dict[str, Any]:
    """An EcsExecutionRole in `namespace` (for files and kubectl alike); `spec` carries roleName."""
    role_name = spec.pop("roleName")
    return role_manifest(name, role_name, namespace=namespace, account_id=account_id, **spec)


def write_yaml(path: Path, *documents: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
    return path


def ecsrole(
    *args: str,
    moto: MotoServer,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real `ecsrole` command, with only the standard AWS settings pointing at moto."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECSROLE_"))},
        **moto.aws_env(),
    }
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        [ecsrole_executable(), *args],
        input=input,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def role_state(iam: Any, role_name: str) -> dict[str, Any] | None:
    """Everything IAM says about a role that a write could change; None when absent."""
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    inline = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    return {
        "role_id": role["RoleId"],
        "path": role["Path"],
        "description": role.get("Description", ""),
        "max_session_duration": role["MaxSessionDuration"],
        "boundary": (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
        "trust": json.loads(unquote(role["AssumeRolePolicyDocument"]))
        if isinstance(role["AssumeRolePolicyDocument"], str)
        else role["AssumeRolePolicyDocument"],
        "attached": sorted(p["PolicyArn"] for p in attached),
        "inline": {
            name: iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
            for name in sorted(inline)
        },
        "tags": {t["Key"]: t["Value"] for t in role.get("Tags", [])},
    }


def snapshot(iam: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: role_state(iam, name) for name in names}


def create_role(
    iam: Any,
    name: str,
    *,
    trust_policy: Mapping[str, Any],
    path: str = "/",
    policies: Sequence[str] = (SEED_POLICY,),
    inline: Mapping[str, Mapping[str, Any]] | None = None,
    **params: Any,
) -> None:
    iam.create_role(
        RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust_policy), **params
    )
    for arn in policies:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    for policy_name, document in (inline or {}).items():
        iam.put_role_policy(
            RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
        )


def iam_writes(text: str) -> dict[str, float]:
    return {
        operation: metric_value(
            text, "ecsrole_aws_api_calls_total", service="iam", operation=operation
        )
        for operation in WRITE_OPERATIONS
    }


def by_name(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {resource["name"]: resource for resource in report["resources"]}


@pytest.fixture
def shared_config(tmp_path: Path) -> Path:
    """The shared operator's configuration, as a file for the CLI (cluster e2e-shared)."""
    path = tmp_path / "ecsrole-config.yaml"
    path.write_text(yaml.safe_dump(dev_config("e2e-shared", SHARED_ACCOUNTS), sort_keys=False))
    return path


# -- diff: create, in sync, drift ---------------------------------------------------------------


def test_diff_names_the_create_then_nothing_once_ready_then_the_drifted_aspect(
    kubectl: Kubectl,
    namespace: str,
    shared_operator: OperatorProcess,
    moto: MotoServer,
    aws: Aws,
    shared_config: Path,
    tmp_path: Path,
) -> None:
    iam = aws("iam")
    role_name = unique("e2e-cli-diff")
    role = manifest("web", namespace, roleName=role_name, tags={"team": "blue"})
    roles_dir = tmp_path / "deploy"
    write_yaml(
        roles_dir / "web.yaml",
        role,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-settings"}},
    )
    diff = ("diff", "-f", str(roles_dir), "--config", str(shared_config))

    # 1. Before the resource exists: the create, with the calls it makes.
    result = ecsrole(*diff, moto=moto)
    assert result.returncode == 2, result.stderr + result.stdout
    assert (
        f"+ {namespace}/web ({roles_dir}/web.yaml#1): role {role_name} in account "
        f"{DEFAULT_ACCOUNT_ID}: does not exist: the operator will create it"
    ) in result.stdout
    assert f'    CreateRole {{"Path": "/", "RoleName": "{role_name}"' in result.stdout
    assert "skipped ConfigMap web-settings: not an EcsExecutionRole" in result.stderr
    report = json.loads(ecsrole(*diff, "-o", "json", moto=moto).stdout)
    web = by_name(report)["web"]
    assert (report["exitCode"], web["result"], web["changes"]) == (2, "Create", True)
    assert [op["action"] for op in web["operations"]] == ["CreateRole", "AttachRolePolicy"]
    assert role_state(iam, role_name) is None  # nothing was created by the diff

    # 2. Once the operator made it Ready: no changes.
    kubectl.apply(role)
    wait_for_condition(kubectl, namespace, "web", "Ready", "True", timeout=120)
    before = snapshot(iam, [role_name])
    result = ecsrole(*diff, moto=moto)
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"= {namespace}/web" in result.stdout
    assert result.stdout.rstrip().endswith("No changes: the operator would not write to IAM.")
    assert snapshot(iam, [role_name]) == before

    # 3. Someone attaches AdministratorAccess by hand: the drifted aspect and its repair. The
    # shared operator's sweep (every 60 s) may repair it first; then the change is made again.
    for _ in range(3):
        iam.attach_role_policy(RoleName=role_name, PolicyArn=ADMIN_POLICY)
        before = snapshot(iam, [role_name])
        result = ecsrole(*diff, moto=moto)
        attached = ADMIN_POLICY in before[role_name]["attached"]
        if result.returncode == 2 and attached and snapshot(iam, [role_name]) == before:
            break
    assert result.returncode == 2, result.stderr + result.stdout
    assert "drifted: the operator will repair it (driftPolicy Enforce)" in result.stdout, (
        result.stdout
    )
    assert (
        f"    drift ManagedPolicy: managed policy {ADMIN_POLICY} is attached but not declared"
        in result.stdout.splitlines()
    )
    assert (
        f'    DetachRolePolicy {{"RoleName": "{role_name}", "PolicyArn": "{ADMIN_POLICY}"}}'
        in result.stdout.splitlines()
    )


# -- diff: refusals, errors ----------------------------------------------------------------------


def test_diff_reports_each_refusal_reads_other_accounts_and_changes_nothing(
    moto: MotoServer, aws: Aws, shared_config: Path, tmp_path: Path
) -> None:
    iam = aws("iam")
    no_adoption_iam = aws("iam", account_id=NO_ADOPTION_ACCOUNT_ID)
    namespace = "shared-cli"
    exists = unique("e2e-cli-exists")
    create_role(iam, exists, trust_policy=trust())
    refused_adoption = unique("e2e-cli-noadopt")
    create_role(no_adoption_iam, refused_adoption, trust_policy=trust())
    cross = unique("e2e-cli-cross")
    documents = [
        manifest("exists", namespace, roleName=exists),
        manifest(
            "no-adoption",
            namespace,
            account_id=NO_ADOPTION_ACCOUNT_ID,
            roleName=refused_adoption,
            adopt=True,
        ),
        manifest("unlisted", "team-z", roleName=unique("e2e-cli")),
        manifest(
            "other-account", namespace, account_id=UNLISTED_NAMESPACE_ACCOUNT_ID, roleName="x"
        ),
        manifest("unknown-account", namespace, account_id="666666666666", roleName="x"),
        manifest(
            "admin", namespace, roleName=unique("e2e-cli"), additionalPolicyArns=[ADMIN_POLICY]
        ),
        manifest(
            "wildcard-secret",
            namespace,
            roleName=unique("e2e-cli"),
            permissions={
                "secretArns": [f"arn:aws:secretsmanager:us-east-1:{DEFAULT_ACCOUNT_ID}:secret:*"]
            },
        ),
        manifest("invalid", namespace, roleName=unique("e2e-cli"), maxSessionDuration=100),
        manifest("cross", namespace, account_id=CROSS_ACCOUNT_ID, roleName=cross, path="/ecs/"),
        manifest("twin", namespace, roleName=exists.upper(), adopt=True),
    ]
    path = write_yaml(tmp_path / "roles.yaml", *documents)
    before = snapshot(iam, [exists]) | {
        "no-adoption": role_state(no_adoption_iam, refused_adoption),
        "cross": role_state(aws("iam", account_id=CROSS_ACCOUNT_ID), cross),
    }

    result = ecsrole(
        "diff", "-f", str(path), "--config", str(shared_config), "-o", "json", moto=moto
    )
    assert result.returncode == 2, result.stderr + result.stdout
    resources = by_name(json.loads(result.stdout))
    assert {name: (r["result"], r["reason"]) for name, r in resources.items()} == {
        "exists": ("Refused", "RoleExistsNotOwned"),
        "no-adoption": ("Refused", "AdoptionRefused"),
        "unlisted": ("Refused", "AccountNotAllowed"),
        "other-account": ("Refused", "AccountNotAllowed"),
        "unknown-account": ("Refused", "AccountNotAllowed"),
        "admin": ("Refused", "PolicyNotAllowed"),
        "wildcard-secret": ("Refused", "PermissionNotAllowed"),
        "invalid": ("Refused", "InvalidSpec"),
        # Read through AssumeRole with the configured roleArn and externalId.
        "cross": ("Create", None),
        "twin": ("Refused", "ConflictingResource"),
    }
    assert "allowAdoption" in resources["no-adoption"]["message"]
    # The operator's words, the same for an account it does not know and for one that does not
    # list the namespace.
    assert resources["unknown-account"]["message"] == (
        f"namespace {namespace} may not manage roles in account 666666666666; the operator "
        "configuration must list the namespace for that account"
    )
    assert "another EcsExecutionRole has an earlier claim" in resources["twin"]["message"]
    assert resources["invalid"]["message"].startswith("spec.maxSessionDuration:")
    assert resources["cross"]["arn"] == f"arn:aws:iam::{CROSS_ACCOUNT_ID}:role/ecs/{cross}"
    after = snapshot(iam, [exists]) | {
        "no-adoption": role_state(no_adoption_iam, refused_adoption),
        "cross": role_state(aws("iam", account_id=CROSS_ACCOUNT_ID), cross),
    }
    assert after == before

    # The same from stdin, as text.
    text = ecsrole(
        "diff", "-f", "-", "--config", str(shared_config), moto=moto, input=path.read_text()
    )
    assert text.returncode == 2
    assert (
        f"! {namespace}/exists ((stdin)#1): role {exists} in account {DEFAULT_ACCOUNT_ID}: refused: RoleExistsNotOwned"
        in text.stdout
    )


def test_diff_errors_exit_1_with_a_clear_message(
    moto: MotoServer, shared_config: Path, tmp_path: Path
) -> None:
    ok = write_yaml(tmp_path / "ok.yaml", manifest("web", "shared-cli", roleName=unique("e2e-cli")))
    diff = ("diff", "--config", str(shared_config))

    # Credentials of another account (no roleArn for 444444444444): the account can't be read.
    mismatch = write_yaml(
        tmp_path / "mismatch.yaml",
        manifest("m", "shared-cli", account_id=MISMATCHED_ACCOUNT_ID, roleName="x"),
    )
    result = ecsrole(*diff, "-f", str(mismatch), "-f", str(ok), moto=moto)
    assert result.returncode == 1
    assert (
        f"role x in account {MISMATCHED_ACCOUNT_ID}: error: AccountMismatch: the credentials used "
        f"for account {MISMATCHED_ACCOUNT_ID} belong to account {DEFAULT_ACCOUNT_ID}"
    ) in result.stdout

    no_credentials = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    result = ecsrole(*diff, "-f", str(ok), moto=moto, env=no_credentials)
    assert result.returncode == 1
    assert "error: no AWS credentials found: Unable to locate credentials" in result.stderr

    other_kind = write_yaml(
        tmp_path / "app.yaml",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
    )
    result = ecsrole(*diff, "-f", str(other_kind), "-f", str(tmp_path / "gone.yaml"), moto=moto)
    assert result.returncode == 1
    assert (
        f"error: {other_kind}: no EcsExecutionRole in it (found: Deployment web)" in result.stderr
    )
    assert f"error: {tmp_path}/gone.yaml: cannot read: No such file or directory" in result.stderr

    result = ecsrole("diff", "-f", str(ok), "--config", str(tmp_path / "none.yaml"), moto=moto)
    assert result.returncode == 1
    assert "cannot read the file: No such file or directory" in result.stderr


# -- import -> apply -> adopt -> diff -------------------------------------------------------------


def test_import_then_adoption_changes_nothing_but_the_ownership_tags(
    operator_factory: OperatorFactory,
    own_namespace: str,
    kubectl: Kubectl,
    moto: MotoServer,
    aws: Aws,
    tmp_path: Path,
) -> None:
    # A brownfield account of its own, so the import sees only this test's roles.
    account_id = "7" + "".join(random.choices("0123456789", k=11))
    iam = aws("iam", account_id=account_id)
    config = dev_config(
        "e2e-cli",
        {
            account_id: {
                "roleArn": f"arn:aws:iam::{account_id}:role/ecsrole-operator",
                "namespaces": [own_namespace],
                "rolePathPrefix": "/ecs/",
                "allowAdoption": True,
                "allowedPolicyArns": [SSM_READ_POLICY],
                "allowedResourcePatterns": {
                    own_namespace: [f"arn:aws:secretsmanager:*:{account_id}:secret:app/*"]
                },
            }
        },
        driftCheckInterval="2s",
    )
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    expressible, legacy = "App_Exec", "legacy-exec"
    both, lambda_role, outside = "both-exec", "lambda-fn", "outside-exec"
    create_role(
        iam,
        expressible,
        path="/ecs/",
        trust_policy=trust(
            Condition={
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:us-east-1:{account_id}:cluster/prod"},
            }
        ),
        policies=(SEED_POLICY, SSM_READ_POLICY),
        inline={
            "ecsrole-permissions": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ReadSecrets",
                        "Effect": "Allow",
                        "Action": ["secretsmanager:GetSecretValue"],
                        "Resource": [
                            f"arn:aws:secretsmanager:us-east-1:{account_id}:secret:app/db-AbCdEf"
                        ],
                    },
                    {
                        "Sid": "CreateLogGroups",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogGroup"],
                        "Resource": [f"arn:aws:logs:*:{account_id}:log-group:*"],
                    },
                ],
            }
        },
        Description="made by hand",
        MaxSessionDuration=7200,
        Tags=[{"Key": "team", "Value": "payments"}],
    )
    create_role(
        iam,
        legacy,
        path="/ecs/",
        trust_policy=trust(Sid="LegacyTrust"),
        policies=(ADMIN_POLICY,),  # and no AmazonECSTaskExecutionRolePolicy
        inline={
            "legacy-s3": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        },
    )
    create_role(
        iam,
        both,
        path="/ecs/",
        trust_policy=trust(
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ),
    )
    create_role(
        iam,
        lambda_role,
        path="/ecs/",
        trust_policy={
            "Version": "2012-10-17",
            "Statement": [{**ECS_STATEMENT, "Principal": {"Service": "lambda.amazonaws.com"}}],
        },
        policies=(),
    )
    create_role(iam, outside, path="/other/", trust_policy=trust())
    names = [expressible, legacy, both, lambda_role, outside]
    before = snapshot(iam, names)

    # Import: one manifest per adoptable role, the rest skipped with the reason.
    out = tmp_path / "imported"
    result = ecsrole(
        "import",
        f"--account={account_id}",
        f"--config={config_path}",
        f"--namespace={own_namespace}",
        f"--output={out}",
        moto=moto,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["app-exec.yaml", "legacy-exec.yaml"]
    assert (
        f"skipped {both}: it trusts ecs-tasks.amazonaws.com and also Service ec2.amazonaws.com"
        in result.stderr
    )
    assert "imported 2 role(s)" in result.stderr
    assert "1 other role(s) under /ecs/ do not trust ecs-tasks.amazonaws.com" in result.stderr
    assert snapshot(iam, names) == before

    app = yaml.safe_load((out / "app-exec.yaml").read_text())
    assert app["metadata"] == {"name": "app-exec", "namespace": own_namespace}
    assert app["spec"] == {
        "accountId": account_id,
        "roleName": expressible,
        "path": "/ecs/",
        "description": "made by hand",
        "maxSessionDuration": 7200,
        "tags": {"team": "payments"},
        "trust": {
            "sourceAccounts": [account_id],
            "sourceArns": [f"arn:aws:ecs:us-east-1:{account_id}:cluster/prod"],
        },
        "permissions": {
            "secretArns": [f"arn:aws:secretsmanager:us-east-1:{account_id}:secret:app/db-AbCdEf"],
            "createLogGroups": True,
        },
        "additionalPolicyArns": [SSM_READ_POLICY],
        "driftPolicy": "Enforce",
        "deletionPolicy": "Retain",
        "adopt": True,
    }
    legacy_text = (out / "legacy-exec.yaml").read_text()
    assert yaml.safe_load(legacy_text)["spec"]["driftPolicy"] == "Report"
    comments = [line for line in legacy_text.splitlines() if line.startswith("#   - ")]
    assert any("TrustPolicy: trust policy has Sid 'LegacyTrust'" in line for line in comments)
    assert any(
        f"managed policy {ADMIN_POLICY} is attached but not declared" in line for line in comments
    )
    assert any(
        f"managed policy {SEED_POLICY} is declared but not attached" in line for line in comments
    )
    assert any("inline policy legacy-s3 is present but not declared" in line for line in comments)

    # Before applying, diff says what adoption will do: only the ownership TagRole.
    diff = ("diff", "-f", str(out), f"--config={config_path}", "-o", "json")
    pending = by_name(json.loads(ecsrole(*diff, moto=moto).stdout))
    for name in ("app-exec", "legacy-exec"):
        assert pending[name]["result"] == "Adopt"
        assert [op["action"] for op in pending[name]["operations"]] == ["TagRole"]

    # Apply to a namespace of an operator whose account allows adoption; wait until Ready.
    operator = operator_factory(config, namespaces=[own_namespace])
    writes_before = iam_writes(operator.metrics_text())
    kubectl("apply", "--server-side", "--field-manager=e2e", "-f", str(out))
    for name in ("app-exec", "legacy-exec"):
        resource = wait_for_condition(kubectl, own_namespace, name, "Ready", "True", timeout=120)
        assert resource["status"]["adopted"] is True

    # diff: no changes (the legacy role's drift is reported only, under Report).
    result = ecsrole(*diff[:-2], moto=moto)
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"= {own_namespace}/app-exec" in result.stdout
    assert f"? {own_namespace}/legacy-exec" in result.stdout

    # The operator's own counters: adoption wrote the ownership tags and nothing else, and the
    # sweeps since (every 2 s) wrote nothing at all.
    operator.wait_sweeps(2)
    writes = {
        operation: count - writes_before[operation]
        for operation, count in iam_writes(operator.metrics_text()).items()
    }
    assert {op: n for op, n in writes.items() if op != "TagRole" and n} == {}, writes
    # Exactly one ownership TagRole per adopted role: the reconcile that adopts judges drift
    # against the role as the adoption left it, so the tags it just wrote are not "repaired".
    assert writes["TagRole"] == 2, writes

    # And IAM agrees: each role is as it was, plus exactly the four ownership tags.
    after = snapshot(iam, names)
    for name in (expressible, legacy):
        uid = kubectl.get_json(
            "ecsexecutionroles.iam.ecsrole.dev",
            "app-exec" if name == expressible else "legacy-exec",
            own_namespace,
        )["metadata"]["uid"]
        assert after[name]["tags"] == {
            **before[name]["tags"],
            "ecsrole.dev/cluster": "e2e-cli",
            "ecsrole.dev/namespace": own_namespace,
            "ecsrole.dev/name": "app-exec" if name == expressible else "legacy-exec",
            "ecsrole.dev/uid": uid,
        }
        assert {k: v for k, v in after[name].items() if k != "tags"} == {
            k: v for k, v in before[name].items() if k != "tags"
        }
    for name in (both, lambda_role, outside):
        assert after[name] == before[name]


# -- check-config --------------------------------------------------------------------------------


def test_check_config_names_every_wrong_field_and_exits_1(moto: MotoServer, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        """\
region: mars-1
driftCheckInterval: soon
accounts:
  111111111111: {}
  "222222222222":
    roleArn: arn:aws:iam::333333333333:role/x
    rolePathPrefix: ecs
    allowAdoptoin: true
    sweepMode: bulkk
    maxCallsPerSecond: 0
    namespaces: [Team_A]
"""
    )
    result = ecsrole("check-config", str(path), moto=moto)
    assert result.returncode == 1
    assert result.stdout == ""
    fields = [line.split(":")[0] for line in result.stderr.splitlines()[1:]]
    assert fields == [
        "  - clusterName",
        "  - region",
        "  - driftCheckInterval",
        "  - accounts.111111111111",
        '  - accounts."222222222222".allowAdoptoin',
        '  - accounts."222222222222".roleArn',
        '  - accounts."222222222222".namespaces[0]',
        '  - accounts."222222222222".rolePathPrefix',
        '  - accounts."222222222222".sweepMode',
        '  - accounts."222222222222".maxCallsPerSecond',
    ]
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(dev_config("e2e-shared", SHARED_ACCOUNTS)))
    result = ecsrole("check-config", str(good), moto=moto)
    assert result.returncode == 0
    assert (
        result.stdout == f"{good}: valid ({len(SHARED_ACCOUNTS)} account(s), cluster e2e-shared)\n"
    )
