"""`ecsrole import`: roles read off IAM become manifests the operator adopts without a change."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsrole.aws.iam import CallerIdentity
from ecsrole.core import config, desired, model, policy
from ecsrole.tools import diff, importer, manifests

from .factories import (
    ACCOUNT_ID,
    ADMIN_POLICY,
    BOUNDARY,
    KMS_KEY,
    PARAMETER,
    READONLY_POLICY,
    SECRET,
    SEED_POLICY,
    account,
    seed_trust,
)

pytestmark = pytest.mark.unit

NAMESPACE = "team-a"
CLUSTER = "prod-eu-1"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ECS_SOURCE = f"arn:aws:ecs:us-east-1:{ACCOUNT_ID}:cluster/prod"


def role(name: str = "web-exec", **overrides: Any) -> model.ObservedRole:
    """A hand-made execution role under /ecs/: seed trust and policy, nothing else."""
    values: dict[str, Any] = {
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/ecs/{name}",
        "role_id": f"AROA{name.upper()}",
        "role_name": name,
        "path": "/ecs/",
        "trust_policy": policy.dumps(seed_trust()),
        "managed_policy_arns": {SEED_POLICY},
    }
    values.update(overrides)
    return model.ObservedRole(**values)


def permissions_document(**kwargs: Any) -> dict[str, Any]:
    document = desired.permissions_policy(
        desired.spec.PermissionsSpec(**kwargs), partition="aws", account_id=ACCOUNT_ID
    )
    assert document is not None
    return document


FULL = role(
    "Web_Exec",
    description="made by hand",
    max_session_duration=7200,
    permissions_boundary_arn=BOUNDARY,
    tags={"team": "a", "org:cost-center": "42"},
    trust_policy=desired.trust_policy([ACCOUNT_ID], [ECS_SOURCE]),
    managed_policy_arns={SEED_POLICY, READONLY_POLICY},
    inline_policies={
        "ecsrole-permissions": policy.dumps(
            permissions_document(
                secret_arns=(SECRET,),
                parameter_arns=(PARAMETER,),
                kms_key_arns=(KMS_KEY,),
                create_log_groups=True,
            )
        )
    },
)


def account_config(**overrides: Any) -> config.AccountConfig:
    values: dict[str, Any] = {"allow_adoption": True, "ignored_tag_keys": ("org:cost-center",)}
    values.update(overrides)
    return account(**values)


def run(
    *roles: model.ObservedRole, configured: bool = True, **account_overrides: Any
) -> importer.ImportResult:
    return importer.import_roles(
        roles,
        namespace=NAMESPACE,
        account=account_config(**account_overrides)
        if configured
        else config.AccountConfig(ACCOUNT_ID, role_path_prefix="/ecs/"),
        partition="aws",
        cluster_name=CLUSTER,
        configured=configured,
        protected_role_names=("break-glass",),
        caller_role_name="admin",
        account_map_role_names=("ecsrole-operator",),
    )


def one(*roles: model.ObservedRole, **kwargs: Any) -> importer.Imported:
    result = run(*roles, **kwargs)
    assert result.skipped == (), result.skipped
    (imported,) = result.imported
    return imported


# -- mapping -----------------------------------------------------------------------------------


def test_a_fully_expressible_role_becomes_an_enforce_manifest_with_everything_read_off_it() -> None:
    imported = one(FULL)
    assert imported.manifest == {
        "apiVersion": "iam.ecsrole.dev/v1alpha1",
        "kind": "EcsExecutionRole",
        "metadata": {"name": "web-exec", "namespace": NAMESPACE},
        "spec": {
            "accountId": ACCOUNT_ID,
            "roleName": "Web_Exec",
            "path": "/ecs/",
            "description": "made by hand",
            "maxSessionDuration": 7200,
            "permissionsBoundaryArn": BOUNDARY,
            "tags": {"team": "a"},  # without the account's ignoredTagKeys
            "trust": {"sourceAccounts": [ACCOUNT_ID], "sourceArns": [ECS_SOURCE]},
            "permissions": {
                "secretArns": [SECRET],
                "parameterArns": [PARAMETER],
                "kmsKeyArns": [KMS_KEY],
                "createLogGroups": True,
            },
            "additionalPolicyArns": [READONLY_POLICY],
            "driftPolicy": "Enforce",
            "deletionPolicy": "Retain",
            "adopt": True,
        },
    }
    assert imported.inexpressible == ()
    assert imported.warnings == ()
    assert imported.file_name == "web-exec.yaml"


def test_a_minimal_role_gets_a_minimal_manifest() -> None:
    spec = one(role()).manifest["spec"]
    assert spec == {
        "accountId": ACCOUNT_ID,
        "roleName": "web-exec",
        "path": "/ecs/",
        "driftPolicy": "Enforce",
        "deletionPolicy": "Retain",
        "adopt": True,
    }


INEXPRESSIBLE = {
    "missing-seed-policy": (
        {"managed_policy_arns": set()},
        f"ManagedPolicy: managed policy {SEED_POLICY} is declared but not attached",
    ),
    "other-inline-policy": (
        {"inline_policies": {"legacy": {"Version": "2012-10-17", "Statement": []}}},
        "InlinePolicy: inline policy legacy is present but not declared",
    ),
    "trust-with-a-sid": (
        {"trust_policy": seed_trust(Sid="AllowEcs")},
        "TrustPolicy: trust policy has Sid 'AllowEcs' instead of None",
    ),
    "trust-with-another-condition": (
        {"trust_policy": seed_trust(Condition={"StringEquals": {"aws:PrincipalTag/x": "y"}})},
        "TrustPolicy: trust policy adds condition",
    ),
    "trust-with-a-deny": (
        {
            "trust_policy": {
                **seed_trust(),
                "Statement": [
                    *seed_trust()["Statement"],
                    {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"},
                ],
            }
        },
        "TrustPolicy: trust policy has an extra statement: Deny",
    ),
    # aws: tags cannot be declared (nor removed by anyone); the core counts them as undeclared.
    "aws-tag": (
        {"tags": {"aws:cloudformation:stack-name": "old", "team": "a"}},
        "Tags: tag aws:cloudformation:stack-name is present but not declared",
    ),
    "permissions-of-another-shape": (
        {
            "inline_policies": {
                "ecsrole-permissions": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            }
        },
        "InlinePolicy: inline policy ecsrole-permissions is present but not declared",
    ),
    "trust-condition-for-another-account": (
        {"trust_policy": desired.trust_policy(["999999999999"])},
        "TrustPolicy: trust policy adds condition",
    ),
}


@pytest.mark.parametrize("case", list(INEXPRESSIBLE))
def test_inexpressible_parts_make_a_report_manifest_that_names_them(case: str) -> None:
    overrides, part = INEXPRESSIBLE[case]
    imported = one(role(**overrides))
    assert imported.drift_policy == "Report"
    assert any(item.startswith(part) for item in imported.inexpressible), imported.inexpressible
    text = importer.render_manifest(imported)
    assert "# driftPolicy is Report" in text
    assert any(line.startswith("#   - " + part) for line in text.splitlines())


CRD = (
    Path(__file__).resolve().parents[2]
    / "deploy"
    / "crds"
    / "iam.ecsrole.dev_ecsexecutionroles.yaml"
)


def test_the_crd_limits_the_importer_applies_are_the_crds() -> None:
    crd = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, (max_items, max_length, pattern) in importer.CRD_LISTS.items():
        node = spec
        for key in path:
            node = node["properties"][key]
        assert (node["maxItems"], node["items"]["maxLength"], node["items"]["pattern"]) == (
            max_items,
            max_length,
            pattern,
        ), path


def test_lists_the_crd_refuses_are_left_out_and_reported() -> None:
    wildcard_source = f"arn:aws:ecs:us-east-1:{ACCOUNT_ID}:*"  # the operator's checks accept it
    imported = one(role(trust_policy=desired.trust_policy([ACCOUNT_ID], [wildcard_source])))
    assert "trust" not in imported.manifest["spec"]
    assert imported.left_out[0].startswith(
        f"spec.trust.sourceArns[0]: {wildcard_source} does not match the CRD's pattern"
    )
    assert imported.drift_policy == "Report"
    many = {f"arn:aws:iam::{ACCOUNT_ID}:policy/p{i}" for i in range(20)}
    imported = one(role(managed_policy_arns={SEED_POLICY, *many}), configured=False)
    assert "additionalPolicyArns" not in imported.manifest["spec"]
    assert imported.left_out == (
        "spec.additionalPolicyArns: the CRD allows at most 19 items (the role has 20)",
    )


def test_a_trust_condition_the_operator_refuses_is_left_out_with_the_reason() -> None:
    imported = one(role(trust_policy=desired.trust_policy(["999999999999"])))
    assert "trust" not in imported.manifest["spec"]
    assert imported.left_out == (
        f"spec.trust.sourceAccounts[0]: must be the role's own account {ACCOUNT_ID} "
        "(ECS tasks of other accounts cannot be trusted)",
    )


def test_with_a_config_policies_and_permissions_it_refuses_are_left_out_and_reported() -> None:
    observed = role(
        managed_policy_arns={SEED_POLICY, ADMIN_POLICY},
        inline_policies={
            "ecsrole-permissions": permissions_document(
                secret_arns=(SECRET.replace("team-a/", "team-b/"),)
            )
        },
    )
    imported = one(observed)
    spec = imported.manifest["spec"]
    assert "additionalPolicyArns" not in spec
    assert "permissions" not in spec
    assert spec["driftPolicy"] == "Report"
    assert [item.split(":")[0] for item in imported.inexpressible] == [
        "ManagedPolicy",
        "InlinePolicy",
    ]
    assert [item.split(":")[0] for item in imported.left_out] == [
        "spec.additionalPolicyArns[0]",
        "spec.permissions.secretArns[0]",
    ]
    # Without a config there are no allow-lists: everything expressible is declared.
    unchecked = one(observed, configured=False)
    assert unchecked.manifest["spec"]["additionalPolicyArns"] == [ADMIN_POLICY]
    assert unchecked.drift_policy == "Enforce"


def test_a_boundary_other_than_the_accounts_is_left_out_and_reported() -> None:
    required = f"arn:aws:iam::{ACCOUNT_ID}:policy/required-boundary"
    imported = one(role(permissions_boundary_arn=BOUNDARY), permissions_boundary_arn=required)
    assert "permissionsBoundaryArn" not in imported.manifest["spec"]
    assert imported.inexpressible == (
        f"PermissionsBoundary: permissions boundary is {BOUNDARY} but {required} is declared",
    )


def test_what_the_operator_would_still_refuse_is_a_warning() -> None:
    imported = one(role(), namespaces=("team-b-*",))
    assert imported.warnings == (
        "the operator will refuse it: AccountNotAllowed: spec.accountId: namespace team-a may "
        f"not manage roles in account {ACCOUNT_ID}",
    )
    assert "# WARNING: the operator will refuse it" in importer.render_manifest(imported)


# -- selection ---------------------------------------------------------------------------------


def test_roles_that_cannot_be_imported_are_skipped_with_the_reason() -> None:
    also_ec2 = seed_trust(Principal={"Service": ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]})
    not_principal = {
        **seed_trust(),
        "Statement": [
            *seed_trust()["Statement"],
            {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::1:root"}, "Action": "*"},
        ],
    }
    result = run(
        role("both", trust_policy=also_ec2),
        role("not-principal", trust_policy=not_principal),
        role("lambda", trust_policy=seed_trust(Principal={"Service": "lambda.amazonaws.com"})),
        role("AWSServiceRoleForECS"),
        role("break-glass"),
        role("ecsrole-operator"),
        role("claimed", tags={"ecsrole.dev/cluster": "other", "ecsrole.dev/name": "x"}),
        role("outside", path="/other/", arn=f"arn:aws:iam::{ACCOUNT_ID}:role/other/outside"),
        role("too-many-tags", tags={f"k{i}": "v" for i in range(47)}),
        role("fine"),
    )
    assert [i.role_name for i in result.imported] == ["fine"]
    assert result.ignored == 1
    reasons = {s.role_name: s.reason for s in result.skipped}
    assert reasons["both"].startswith(
        "it trusts ecs-tasks.amazonaws.com and also Service ec2.amazonaws.com"
    )
    assert "NotPrincipal" in reasons["not-principal"]
    assert "protected" in reasons["AWSServiceRoleForECS"]
    assert "protectedRoleNames" in reasons["break-glass"]
    assert "assumes it to reach an account" in reasons["ecsrole-operator"]
    assert "ecsrole.dev/cluster=other" in reasons["claimed"]
    assert "outside the account's role path prefix" in reasons["outside"]
    assert reasons["too-many-tags"].startswith("spec.tags: at most 46 tags")


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role_name", "expected"),
    [
        ("web-exec", "web-exec"),
        ("Team_A.Web+Exec@prod", "team-a-web-exec-prod"),
        ("__x__", "x"),
        ("___", "role"),
        ("a" * 64, "a" * 63),
        ("a" * 62 + "_b", "a" * 62),
    ],
)
def test_resource_names_are_dns_labels(role_name: str, expected: str) -> None:
    name = importer.resource_name(role_name)
    assert name == expected
    assert DNS_LABEL.fullmatch(name)
    assert len(name) <= 63


def test_colliding_names_get_a_stable_hash() -> None:
    names = importer.resource_names(["App_Exec", "app-exec", "other"])
    assert names["other"] == "other"
    assert names["App_Exec"] != names["app-exec"]
    for value in names.values():
        assert DNS_LABEL.fullmatch(value)
    assert importer.resource_names(["app-exec", "App_Exec", "other"]) == names


# -- the output --------------------------------------------------------------------------------


def test_rendered_manifest_is_yaml_with_comments_and_quoted_account_id() -> None:
    imported = one(role(managed_policy_arns=set()))
    text = importer.render_manifest(imported)
    head = text.split("apiVersion:")[0]
    assert all(line.startswith("#") for line in head.splitlines())
    assert f"# Imported by `ecsrole import` from {imported.arn}." in head
    assert f"accountId: '{ACCOUNT_ID}'" in text
    assert yaml.safe_load(text) == imported.manifest


ROUND_TRIP = [FULL, role(), *(role(**overrides) for overrides, _ in INEXPRESSIBLE.values())]


@pytest.mark.parametrize("observed", ROUND_TRIP, ids=lambda r: r.role_name)
@pytest.mark.parametrize("configured", [True, False])
def test_diff_of_an_imported_manifest_is_the_adoption_tagging_and_nothing_else(
    observed: model.ObservedRole, configured: bool
) -> None:
    """What `ecsrole diff` says of the import's own output: adopt by tagging, change nothing."""
    imported = one(observed, configured=configured)
    (manifest,) = manifests.parse_documents(
        importer.render_manifest(imported), source="x.yaml", default_namespace="default"
    ).manifests
    acct = (
        account_config()
        if configured
        else config.AccountConfig(
            ACCOUNT_ID,
            namespaces=(NAMESPACE,),
            role_path_prefix="/ecs/",
            allowed_policy_arns=("*",),
            allowed_resource_patterns={NAMESPACE: ("*",)},
        )
    )
    operator = config.OperatorConfig(
        cluster_name=CLUSTER, accounts={ACCOUNT_ID: dataclasses.replace(acct, allow_adoption=True)}
    )

    class Reader:
        def caller_identity(self) -> CallerIdentity:
            return CallerIdentity(ACCOUNT_ID, f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/ci/x", "x")

        def read_role(self, role_name: str) -> model.ObservedRole | None:
            return observed

    (result,) = diff.evaluate_all([manifest], config=operator, reader=lambda _: Reader())
    assert result.outcome == diff.Outcome.Adopt, result
    assert [op.action for op in result.operations] == ["TagRole"]
    assert [f"{d.aspect.value}: {d.message}" for d in result.drifts] == list(imported.inexpressible)
