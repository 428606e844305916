"""The EcsExecutionRole CRD, proved against a real kube-apiserver through the real kubectl.

The CRD's OpenAPI schema and CEL rules are the first line of validation (DESIGN section 2): bad
input must be refused by the API server, with a message naming the field, before the operator
ever sees it. Each invalid spec below is its own test id; each is checked for kubectl's non-zero
exit and for the field named in its error. The valid edge cases prove the rules do not refuse
what IAM accepts. No operator runs here: only the API server's own behaviour is under test.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack.kube import Kubectl

pytestmark = pytest.mark.e2e


@pytest.fixture
def namespace(own_namespace: str) -> str:
    """A namespace no operator watches: these tests are about the API server alone."""
    return own_namespace


REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
CRD_NAME = "ecsexecutionroles.iam.ecsrole.dev"
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"

Spec = dict[str, Any]


def _resource(name: str, spec: Spec) -> str:
    return json.dumps(
        {
            "apiVersion": "iam.ecsrole.dev/v1alpha1",
            "kind": "EcsExecutionRole",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def _base_spec() -> Spec:
    return {"accountId": ACCOUNT, "roleName": "ecsrole-crd-test"}


def _with(**fields: Any) -> Spec:
    spec = _base_spec()
    spec.update(fields)
    return spec


def _secret(account: str = ACCOUNT, name: str = "team-a/db-??????") -> str:
    return f"arn:aws:secretsmanager:us-east-1:{account}:secret:{name}"


def _get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    result = kubectl("get", "ecsexecutionrole", name, "-n", namespace, "-o", "json")
    return dict(json.loads(result.stdout))


def _create(
    kubectl: Kubectl, namespace: str, name: str, spec: Spec, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kubectl("create", "-n", namespace, "-f", "-", input=_resource(name, spec), check=check)


def _explain(kubectl: Kubectl, field: str) -> str:
    """`kubectl explain`, once the API server publishes the CRD's schema in /openapi/v3.

    The schema is published asynchronously, shortly after the CRD is Established.
    """
    deadline = time.monotonic() + 60
    while True:
        result = kubectl("explain", field, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, result.stderr
            return result.stdout
        time.sleep(0.5)


def _assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0, f"accepted but should be refused:\n{result.stdout}"
    for text in expected:
        assert text in result.stderr, f"{text!r} not in kubectl's error:\n{result.stderr}"


# --- the CRD itself --------------------------------------------------------------------------


def test_crd_is_kept_on_uninstall_and_names_are_as_documented(kubectl: Kubectl) -> None:
    crd = json.loads(kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    names = crd["spec"]["names"]
    assert names["kind"] == "EcsExecutionRole"
    assert names["plural"] == "ecsexecutionroles"
    assert names["singular"] == "ecsexecutionrole"
    assert set(names["shortNames"]) == {"ecsrole", "eer"}
    assert {"ecsrole", "aws"} <= set(names["categories"])
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def _undescribed(schema: dict[str, Any], path: str) -> list[str]:
    missing = [] if schema.get("description") else [path]
    for name, child in schema.get("properties", {}).items():
        missing += _undescribed(child, f"{path}.{name}")
    items = schema.get("items")
    if isinstance(items, dict) and items.get("type") == "object":  # string items: the list's
        missing += _undescribed(items, f"{path}[]")
    return missing


def test_every_spec_and_status_field_has_a_description(kubectl: Kubectl) -> None:
    crd = json.loads(kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = _undescribed(root["properties"]["spec"], "spec")
    missing += _undescribed(root["properties"]["status"], "status")
    assert missing == []


def test_explain_spec_is_the_reference(kubectl: Kubectl) -> None:
    text = _explain(kubectl, "ecsexecutionrole.spec")
    for expected in (
        "accountId",
        "roleName",
        "immutable",
        "rolePathPrefix",
        "43200",
        "Enforce",
        "Report",
        "Retain",
        "allowAdoption",
        "At most 46",
        "ecsrole.dev/",
        "aws:",
    ):
        assert expected in text, f"{expected!r} missing from kubectl explain ecsexecutionrole.spec"


def test_explain_permissions_describes_what_aws_does(kubectl: Kubectl) -> None:
    text = _explain(kubectl, "ecsexecutionrole.spec.permissions")
    for expected in (
        "ecsrole-permissions",  # the one inline policy
        "allowedResourcePatterns",  # who decides what may be granted
        "PermissionNotAllowed",  # what happens otherwise
        "secretsmanager:GetSecretValue",
        "ssm:GetParameters",
        "kms:Decrypt",
        "logs:CreateLogGroup",
        "-??????",  # the only wildcard allowed
        "secretArns",
        "parameterArns",
        "kmsKeyArns",
        "createLogGroups",
    ):
        assert expected in text, f"{expected!r} missing from explain spec.permissions"


def test_explain_works_through_the_short_name(kubectl: Kubectl) -> None:
    text = _explain(kubectl, "eer.spec.additionalPolicyArns")
    assert "AmazonECSTaskExecutionRolePolicy" in text
    assert "At most 19" in text
    assert "allowedPolicyArns" in text


# --- valid resources -------------------------------------------------------------------------


def test_minimal_example_is_accepted_with_defaults(kubectl: Kubectl, namespace: str) -> None:
    example = EXAMPLES / "ecsexecutionrole-minimal.yaml"
    assert "namespace" not in yaml.safe_load(example.read_text())["metadata"]
    kubectl("apply", "--server-side", "-n", namespace, "-f", str(example))
    spec = _get(kubectl, namespace, "example-minimal")["spec"]
    assert spec["accountId"] == ACCOUNT
    assert spec["path"] == "/"
    assert spec["maxSessionDuration"] == 3600
    assert spec["driftPolicy"] == "Enforce"
    assert spec["adopt"] is False
    assert "deletionPolicy" not in spec, "deletionPolicy has no default: the operator decides"


def test_full_example_is_accepted_and_nothing_is_pruned(kubectl: Kubectl, namespace: str) -> None:
    example = EXAMPLES / "ecsexecutionrole-full.yaml"
    declared = yaml.safe_load(example.read_text())
    assert "namespace" not in declared["metadata"]
    kubectl("create", "-n", namespace, "-f", str(example))
    stored = _get(kubectl, namespace, declared["metadata"]["name"])["spec"]
    assert stored == declared["spec"]
    # every field of the schema is used by the full example
    crd = json.loads(kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(stored) == set(schema["properties"])
    for group in ("trust", "permissions"):
        assert set(stored[group]) == set(schema["properties"][group]["properties"])
    assert stored["path"].startswith("/ecs/")


VALID_EDGE_CASES = [
    pytest.param(_with(roleName="a" * 64), id="role-name-64-chars"),
    pytest.param(_with(roleName="Svc+=,.@_-Role9"), id="role-name-all-iam-punctuation"),
    pytest.param(_with(path="/ecs/team-a/service/"), id="nested-path"),
    pytest.param(_with(maxSessionDuration=43200), id="max-session-43200"),
    pytest.param(_with(description="d" * 1000), id="description-1000-chars"),
    pytest.param(_with(description="Rôle d'exécution\tÉquipe A\n"), id="description-latin1"),
    pytest.param(_with(tags={f"k{i}": f"v{i}" for i in range(46)}), id="46-tags"),
    pytest.param(
        _with(tags={"k" * 128: "v" * 256, "Équipe": "", "a:b/c=d+e-f@g_h.i": "x y"}),
        id="tag-limits-and-charset",
    ),
    pytest.param(_with(tags={"awsome": "x", "ecsrole.dev": "x"}), id="tag-keys-near-reserved"),
    pytest.param(
        _with(
            trust={
                "sourceAccounts": [ACCOUNT],
                "sourceArns": [
                    f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod",
                    f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task/prod/*",
                ],
            }
        ),
        id="trust-own-account",
    ),
    pytest.param(
        _with(
            accountId="111122223333",
            trust={
                "sourceArns": ["arn:aws-us-gov:ecs:us-gov-west-1:111122223333:service/c/s"],
            },
        ),
        id="trust-gov-partition",
    ),
    pytest.param(
        _with(
            permissions={
                "secretArns": [_secret(), _secret(name="team-a/api-key-a1B2c3")],
                "parameterArns": [f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/team-a/db/password"],
                "kmsKeyArns": [
                    f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                    f"arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab",
                ],
                "createLogGroups": True,
            }
        ),
        id="permissions-all-kinds",
    ),
    pytest.param(
        _with(
            additionalPolicyArns=[f"arn:aws:iam::{ACCOUNT}:policy/p{i}" for i in range(18)]
            + ["arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"]
        ),
        id="19-additional-policies",
    ),
    pytest.param(
        _with(permissionsBoundaryArn="arn:aws-cn:iam::aws:policy/job-function/ViewOnlyAccess"),
        id="aws-managed-boundary",
    ),
    pytest.param(_with(deletionPolicy="Retain", driftPolicy="Report", adopt=True), id="policies"),
]


@pytest.mark.parametrize("spec", VALID_EDGE_CASES)
def test_valid_edge_case_is_accepted(kubectl: Kubectl, namespace: str, spec: Spec) -> None:
    result = _create(kubectl, namespace, "edge", spec, check=False)
    assert result.returncode == 0, result.stderr


# --- invalid resources -----------------------------------------------------------------------


def _without(field: str) -> Spec:
    spec = _base_spec()
    del spec[field]
    return spec


INVALID_CASES = [
    # accountId
    pytest.param(_with(accountId="12345678901"), ["spec.accountId"], id="account-11-digits"),
    pytest.param(_with(accountId="12345678901a"), ["spec.accountId"], id="account-not-digits"),
    pytest.param(_without("accountId"), ["spec.accountId", "Required"], id="account-missing"),
    # roleName
    pytest.param(_with(roleName="r" * 65), ["spec.roleName"], id="role-name-65-chars"),
    pytest.param(_with(roleName="bad/name"), ["spec.roleName"], id="role-name-slash"),
    pytest.param(_with(roleName=""), ["spec.roleName"], id="role-name-empty"),
    pytest.param(_without("roleName"), ["spec.roleName", "Required"], id="role-name-missing"),
    # path
    pytest.param(_with(path="ecs"), ["spec.path"], id="path-without-slashes"),
    pytest.param(_with(path="/ecs"), ["spec.path"], id="path-without-trailing-slash"),
    pytest.param(_with(path="/" + "p" * 511 + "/"), ["spec.path"], id="path-513-chars"),
    pytest.param(_with(path="/a b/"), ["spec.path"], id="path-with-space"),
    # description, maxSessionDuration
    pytest.param(_with(description="d" * 1001), ["spec.description"], id="description-1001"),
    pytest.param(
        _with(description="emoji \U0001f600"),
        ["spec.description"],
        id="description-outside-iam-charset",
    ),
    pytest.param(
        _with(maxSessionDuration=50000), ["spec.maxSessionDuration"], id="max-session-50000"
    ),
    pytest.param(
        _with(maxSessionDuration=3599), ["spec.maxSessionDuration"], id="max-session-3599"
    ),
    # tags
    pytest.param(_with(tags={"aws:team": "a"}), ["spec.tags", "aws:"], id="tag-aws-prefix"),
    pytest.param(_with(tags={"AWS:team": "a"}), ["spec.tags", "aws:"], id="tag-AWS-prefix"),
    pytest.param(_with(tags={"Aws:Team": "a"}), ["spec.tags", "aws:"], id="tag-Aws-prefix"),
    pytest.param(
        _with(tags={"ecsrole.dev/owner": "me"}),
        ["spec.tags", "ecsrole.dev/"],
        id="tag-ecsrole-prefix",
    ),
    pytest.param(
        _with(tags={"ECSROLE.DEV/x": "me"}), ["spec.tags", "ecsrole.dev/"], id="tag-ECSROLE-prefix"
    ),
    pytest.param(_with(tags={f"k{i}": "v" for i in range(51)}), ["spec.tags"], id="51-tags"),
    pytest.param(_with(tags={f"k{i}": "v" for i in range(47)}), ["spec.tags"], id="47-tags"),
    pytest.param(_with(tags={"k" * 129: "v"}), ["spec.tags"], id="tag-key-129-chars"),
    pytest.param(_with(tags={"": "v"}), ["spec.tags"], id="tag-key-empty"),
    pytest.param(_with(tags={"k": "v" * 257}), ["spec.tags"], id="tag-value-257-chars"),
    pytest.param(_with(tags={"team#1": "v"}), ["spec.tags"], id="tag-key-bad-char"),
    pytest.param(_with(tags={"k": "a;b"}), ["spec.tags"], id="tag-value-bad-char"),
    pytest.param(
        _with(tags={"Team": "a", "team": "b"}),
        ["spec.tags", "letter case"],
        id="tag-keys-differ-only-in-case",
    ),
    # trust
    pytest.param(
        _with(trust={"sourceAccounts": [OTHER_ACCOUNT]}),
        ["spec.trust.sourceAccounts"],
        id="trust-other-source-account",
    ),
    pytest.param(
        _with(trust={"sourceAccounts": ["*"]}),
        ["spec.trust.sourceAccounts"],
        id="trust-wildcard-source-account",
    ),
    pytest.param(
        _with(trust={"sourceAccounts": [ACCOUNT, OTHER_ACCOUNT]}),
        ["spec.trust.sourceAccounts"],
        id="trust-two-source-accounts",
    ),
    pytest.param(
        _with(trust={"sourceArns": [f"arn:aws:ecs:us-east-1:{OTHER_ACCOUNT}:cluster/c"]}),
        ["spec.trust.sourceArns"],
        id="trust-source-arn-other-account",
    ),
    pytest.param(
        _with(trust={"sourceArns": ["arn:aws:ecs:us-east-1:*:cluster/c"]}),
        ["spec.trust.sourceArns"],
        id="trust-source-arn-wildcard-account",
    ),
    pytest.param(
        _with(trust={"sourceArns": [f"arn:aws:ecs:*:{ACCOUNT}:cluster/c"]}),
        ["spec.trust.sourceArns"],
        id="trust-source-arn-wildcard-region",
    ),
    pytest.param(
        _with(trust={"sourceArns": [f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"]}),
        ["spec.trust.sourceArns"],
        id="trust-source-arn-not-ecs",
    ),
    # permissions
    pytest.param(
        _with(permissions={"secretArns": [_secret(account="*")]}),
        ["spec.permissions.secretArns"],
        id="permissions-wildcard-account",
    ),
    pytest.param(
        _with(permissions={"secretArns": [_secret(account=OTHER_ACCOUNT)]}),
        ["spec.permissions.secretArns", "spec.accountId"],
        id="permissions-secret-other-account",
    ),
    pytest.param(
        _with(permissions={"secretArns": [_secret(name="*")]}),
        ["spec.permissions.secretArns"],
        id="permissions-secret-wildcard-name",
    ),
    pytest.param(
        _with(permissions={"secretArns": [_secret(name="team-a/db")]}),
        ["spec.permissions.secretArns"],
        id="permissions-secret-without-suffix",
    ),
    pytest.param(
        _with(permissions={"secretArns": [f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:db-??????"]}),
        ["spec.permissions.secretArns"],
        id="permissions-secret-wildcard-region",
    ),
    pytest.param(
        _with(
            permissions={
                "secretArns": [
                    f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s{i}-??????"
                    for i in range(21)
                ]
            }
        ),
        ["spec.permissions.secretArns"],
        id="permissions-21-secrets",
    ),
    pytest.param(
        _with(
            permissions={
                "parameterArns": [f"arn:aws:ssm:us-east-1:{OTHER_ACCOUNT}:parameter/team-a/db"]
            }
        ),
        ["spec.permissions.parameterArns", "spec.accountId"],
        id="permissions-parameter-other-account",
    ),
    pytest.param(
        _with(
            permissions={"parameterArns": [f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/team-a/*"]}
        ),
        ["spec.permissions.parameterArns"],
        id="permissions-parameter-wildcard",
    ),
    pytest.param(
        _with(
            permissions={
                "kmsKeyArns": [
                    f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                ]
            }
        ),
        ["spec.permissions.kmsKeyArns", "spec.accountId"],
        id="permissions-kms-other-account",
    ),
    pytest.param(
        _with(permissions={"kmsKeyArns": [f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*"]}),
        ["spec.permissions.kmsKeyArns"],
        id="permissions-kms-wildcard",
    ),
    pytest.param(
        _with(permissions={"kmsKeyArns": [f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/team-a"]}),
        ["spec.permissions.kmsKeyArns"],
        id="permissions-kms-alias",
    ),
    pytest.param(
        _with(
            permissions={
                "secretArns": [f"arn:aws-x:secretsmanager:us-east-1:{ACCOUNT}:secret:db-??????"]
            }
        ),
        ["spec.permissions.secretArns"],
        id="permissions-unknown-partition",
    ),
    pytest.param(
        _with(permissions={"secretArns": [_secret(), _secret()]}),
        ["spec.permissions.secretArns", "Duplicate value"],
        id="permissions-duplicate-arn",
    ),
    # additionalPolicyArns, permissionsBoundaryArn
    pytest.param(
        _with(additionalPolicyArns=[f"arn:aws:iam::{ACCOUNT}:policy/p{i}" for i in range(20)]),
        ["spec.additionalPolicyArns"],
        id="20-additional-policies",
    ),
    pytest.param(
        _with(additionalPolicyArns=[f"arn:aws:iam::{OTHER_ACCOUNT}:policy/p"]),
        ["spec.additionalPolicyArns"],
        id="additional-policy-other-account",
    ),
    pytest.param(
        _with(additionalPolicyArns=[f"arn:aws:iam::{ACCOUNT}:policy/*"]),
        ["spec.additionalPolicyArns"],
        id="additional-policy-wildcard",
    ),
    pytest.param(
        _with(
            additionalPolicyArns=[
                "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
            ]
        ),
        ["spec.additionalPolicyArns", "AmazonECSTaskExecutionRolePolicy"],
        id="additional-policy-is-the-seed",
    ),
    pytest.param(
        _with(additionalPolicyArns=[f"arn:aws:iam::{ACCOUNT}:role/admin"]),
        ["spec.additionalPolicyArns"],
        id="additional-policy-not-a-policy",
    ),
    pytest.param(
        _with(permissionsBoundaryArn=f"arn:aws:iam::{OTHER_ACCOUNT}:policy/b"),
        ["spec.permissionsBoundaryArn"],
        id="boundary-other-account",
    ),
    pytest.param(
        _with(permissionsBoundaryArn="Boundary"),
        ["spec.permissionsBoundaryArn"],
        id="boundary-not-an-arn",
    ),
    # enums
    pytest.param(_with(driftPolicy="Ignore"), ["spec.driftPolicy"], id="drift-policy-unknown"),
    pytest.param(
        _with(deletionPolicy="Orphan"), ["spec.deletionPolicy"], id="deletion-policy-unknown"
    ),
]


@pytest.mark.parametrize(("spec", "expected"), INVALID_CASES)
def test_invalid_spec_is_refused(
    kubectl: Kubectl, namespace: str, spec: Spec, expected: list[str]
) -> None:
    result = _create(kubectl, namespace, "invalid", spec, check=False)
    _assert_refused(result, *expected)
    listed = kubectl("get", "eer", "-n", namespace, "-o", "name").stdout
    assert listed.strip() == ""


def test_missing_spec_is_refused(kubectl: Kubectl, namespace: str) -> None:
    manifest = json.loads(_resource("nospec", _base_spec()))
    del manifest["spec"]
    result = kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
    _assert_refused(result, "spec")


# --- immutability ----------------------------------------------------------------------------

IMMUTABLE_CHANGES = [
    pytest.param("accountId", OTHER_ACCOUNT, id="accountId"),
    pytest.param("roleName", "ecsrole-crd-test-renamed", id="roleName"),
    pytest.param("path", "/ecs/other/", id="path"),
]


@pytest.mark.parametrize(("field", "value"), IMMUTABLE_CHANGES)
def test_immutable_field_cannot_be_patched(
    kubectl: Kubectl, namespace: str, field: str, value: str
) -> None:
    _create(kubectl, namespace, "immutable", _with(path="/ecs/"))
    patch = json.dumps({"spec": {field: value}})
    result = kubectl(
        "patch", "eer", "immutable", "-n", namespace, "--type", "merge", "-p", patch, check=False
    )
    _assert_refused(result, f"spec.{field}", f"spec.{field} is immutable")
    assert _get(kubectl, namespace, "immutable")["spec"][field] != value


@pytest.mark.parametrize(("field", "value"), IMMUTABLE_CHANGES)
def test_immutable_field_cannot_be_reapplied(
    kubectl: Kubectl, namespace: str, field: str, value: str
) -> None:
    spec = _with(path="/ecs/")
    kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=_resource("immutable", spec)
    )
    spec[field] = value
    result = kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=_resource("immutable", spec),
        check=False,
    )
    _assert_refused(result, f"spec.{field} is immutable")


def test_defaulted_path_stays_unchanged_on_update(kubectl: Kubectl, namespace: str) -> None:
    """A resource created without path (defaulted to "/") can still be updated."""
    kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=_resource("mutable", _base_spec()),
    )
    kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=_resource(
            "mutable",
            _with(
                description="now described",
                deletionPolicy="Retain",
                driftPolicy="Report",
                tags={"team": "a"},
            ),
        ),
    )
    spec = _get(kubectl, namespace, "mutable")["spec"]
    assert spec["path"] == "/"
    assert spec["description"] == "now described"
    assert spec["deletionPolicy"] == "Retain"


# --- status and printer columns --------------------------------------------------------------


def _conditions(ready: str, drifted: str) -> list[dict[str, Any]]:
    now = "2025-01-01T00:00:00Z"
    return [
        {
            "type": "Ready",
            "status": ready,
            "reason": "Reconciled",
            "message": "",
            "lastTransitionTime": now,
            "observedGeneration": 1,
        },
        {
            "type": "Drifted",
            "status": drifted,
            "reason": "TrustPolicy",
            "message": "trust policy widened",
            "lastTransitionTime": now,
            "observedGeneration": 1,
        },
        {
            "type": "Synced",
            "status": "True",
            "reason": "ReconcileSuccess",
            "message": "",
            "lastTransitionTime": now,
        },
    ]


def _write_status(
    kubectl: Kubectl, namespace: str, name: str, status: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return kubectl(
        "patch",
        "eer",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
        check=False,
    )


def test_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    _create(kubectl, namespace, "columns", _base_spec())
    arn = f"arn:aws:iam::{ACCOUNT}:role/ecsrole-crd-test"
    written = _write_status(
        kubectl,
        namespace,
        "columns",
        {
            "observedGeneration": 1,
            "arn": arn,
            "roleId": "AROAEXAMPLEID1234567",
            "conditions": _conditions("True", "False"),
            "drift": [{"aspect": "TrustPolicy", "message": "trust policy widened"}],
            "lastSyncTime": "2025-01-01T00:00:00Z",
            "lastDriftTime": "2025-01-01T00:00:00Z",
        },
    )
    assert written.returncode == 0, written.stderr

    plain = kubectl("get", "ecsrole", "-n", namespace).stdout.splitlines()
    header = plain[0].split()
    assert header == ["NAME", "ACCOUNT", "ROLE", "READY", "DRIFTED", "AGE"]
    assert plain[1].split()[:5] == ["columns", ACCOUNT, "ecsrole-crd-test", "True", "False"]
    assert arn not in "\n".join(plain)

    wide = kubectl("get", "eer", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "ACCOUNT", "ROLE", "READY", "DRIFTED", "AGE", "ARN"]
    assert arn in wide[1]

    by_plural = kubectl("get", "ecsexecutionroles.iam.ecsrole.dev", "-n", namespace, "-o", "name")
    assert by_plural.stdout.strip().endswith("/columns")


def test_status_is_only_written_through_the_subresource(kubectl: Kubectl, namespace: str) -> None:
    _create(kubectl, namespace, "status", _base_spec())
    kubectl(
        "patch",
        "eer",
        "status",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"status": {"arn": "arn:aws:iam::123456789012:role/x"}}),
    )
    # Only the schema default is there: a new object reads "not judged yet" (observedGeneration 0).
    assert _get(kubectl, namespace, "status")["status"] == {"observedGeneration": 0}


def test_status_conditions_follow_the_metav1_condition_shape(
    kubectl: Kubectl, namespace: str
) -> None:
    _create(kubectl, namespace, "conditions", _base_spec())
    bad = _conditions("Maybe", "False")
    result = _write_status(kubectl, namespace, "conditions", {"conditions": bad})
    _assert_refused(result, "status.conditions")
    duplicate = _conditions("True", "False") + _conditions("True", "False")[:1]
    result = _write_status(kubectl, namespace, "conditions", {"conditions": duplicate})
    _assert_refused(result, "status.conditions")
