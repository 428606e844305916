"""Reading EcsExecutionRole manifests for `ecsrole diff` (files, directories, stdin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecsrole.tools import manifests

pytestmark = pytest.mark.unit

ROLE = """\
apiVersion: iam.ecsrole.dev/v1alpha1
kind: EcsExecutionRole
metadata: {name: NAME}
spec: {accountId: "111111111111", roleName: NAME-exec}
"""
DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"


def role(name: str, namespace: str | None = None) -> str:
    text = ROLE.replace("NAME", name)
    if namespace:
        text = text.replace(f"{{name: {name}}}", f"{{name: {name}, namespace: {namespace}}}")
    return text


def parse(text: str, *, required: bool = True) -> manifests.Loaded:
    return manifests.parse_documents(
        text, source="f.yaml", default_namespace="default", required=required
    )


def test_multi_document_file_with_other_kinds_skips_them_with_a_warning() -> None:
    loaded = parse("---\n".join([role("web", "team-a"), DEPLOYMENT, role("api")]))
    assert [(m.namespace, m.name, m.source) for m in loaded.manifests] == [
        ("team-a", "web", "f.yaml#1"),
        ("default", "api", "f.yaml#3"),
    ]
    assert loaded.manifests[0].spec == {"accountId": "111111111111", "roleName": "web-exec"}
    assert loaded.warnings == ["f.yaml#2: skipped Deployment web: not an EcsExecutionRole"]
    assert loaded.errors == []


def test_single_document_source_has_no_index_and_namespace_defaults() -> None:
    loaded = manifests.parse_documents(role("web"), source="web.yaml", default_namespace="team-x")
    assert [(m.source, m.namespace) for m in loaded.manifests] == [("web.yaml", "team-x")]


def test_a_file_without_any_ecsexecutionrole_is_an_error_naming_what_it_found() -> None:
    loaded = parse(DEPLOYMENT)
    assert loaded.errors == ["f.yaml: no EcsExecutionRole in it (found: Deployment web)"]
    assert loaded.warnings == []
    assert parse("").errors == ["f.yaml: no EcsExecutionRole in it (it holds no documents)"]


def test_a_file_of_a_directory_may_hold_other_kinds_only() -> None:
    loaded = parse(DEPLOYMENT, required=False)
    assert loaded.errors == []
    assert loaded.warnings


def test_lists_are_expanded() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: iam.ecsrole.dev/v1alpha1, kind: EcsExecutionRole, metadata: {name: a}, spec: {}}\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n"
    )
    loaded = parse(text)
    assert [(m.name, m.source) for m in loaded.manifests] == [("a", "f.yaml items[0]")]
    assert loaded.warnings == ["f.yaml items[1]: skipped ConfigMap b: not an EcsExecutionRole"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [", "f.yaml: not valid YAML (line 1, column 5)"),
        ("- just\n- a list\n", "f.yaml: not a Kubernetes manifest (a list, not an object)"),
        (
            "apiVersion: iam.ecsrole.dev/v2\nkind: EcsExecutionRole\nmetadata: {name: a}\n",
            "f.yaml: apiVersion iam.ecsrole.dev/v2 is not supported",
        ),
        (
            "apiVersion: iam.ecsrole.dev/v1alpha1\nkind: EcsExecutionRole\nmetadata: {}\n",
            "f.yaml: metadata.name: is required",
        ),
        (
            "apiVersion: iam.ecsrole.dev/v1alpha1\nkind: EcsExecutionRole\n",
            "f.yaml: metadata: must be an object with a name",
        ),
        (
            "apiVersion: iam.ecsrole.dev/v1alpha1\nkind: EcsExecutionRole\n"
            "metadata: {name: a, namespace: 3}\n",
            "f.yaml: metadata.namespace: must be a non-empty string",
        ),
    ],
)
def test_unreadable_documents_are_errors(text: str, expected: str) -> None:
    loaded = parse(text)
    assert loaded.manifests == []
    assert len(loaded.errors) == 1
    assert loaded.errors[0].startswith(expected), loaded.errors


def test_same_kind_of_another_group_is_skipped() -> None:
    loaded = parse(role("web") + "---\napiVersion: other.io/v1\nkind: EcsExecutionRole\n")
    assert len(loaded.manifests) == 1
    assert "skipped EcsExecutionRole" in loaded.warnings[0]


def test_directories_are_read_recursively_sorted_skipping_hidden_and_other_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "api.yml").write_text(role("api"))
    (tmp_path / "a.yaml").write_text(role("web") + "---\n" + DEPLOYMENT)
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "iam.ecsrole.dev/v1alpha1", "kind": "EcsExecutionRole",'
        ' "metadata": {"name": "db"}, "spec": {}}'
    )
    (tmp_path / ".git" / "x.yaml").write_text("not: [valid")
    (tmp_path / "README.md").write_text("# not a manifest")
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    loaded = manifests.load([str(tmp_path)], default_namespace="default")
    assert loaded.errors == []
    assert [m.name for m in loaded.manifests] == ["web", "api", "db"]
    assert len(loaded.warnings) == 2


def test_a_directory_without_any_ecsexecutionrole_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    loaded = manifests.load([str(tmp_path)], default_namespace="default")
    assert loaded.errors == [
        f"{tmp_path}: no EcsExecutionRole found in this directory (1 file(s) ending in .yaml, .yml, .json)"
    ]


def test_stdin_missing_and_undecodable_files(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    loaded = manifests.load(
        ["-", str(tmp_path / "missing.yaml"), str(binary)],
        default_namespace="default",
        stdin_text=role("web"),
    )
    assert [(m.name, m.source) for m in loaded.manifests] == [("web", "(stdin)")]
    assert loaded.errors == [
        f"{tmp_path}/missing.yaml: cannot read: No such file or directory",
        f"{binary}: cannot read: not UTF-8 text",
    ]


def test_the_same_object_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(role("web", "team-a"))
    (tmp_path / "b.yaml").write_text(role("web", "team-a") + "---\n" + role("web", "team-b"))
    loaded = manifests.load([str(tmp_path)], default_namespace="default")
    assert loaded.errors == [
        f"{tmp_path}/b.yaml#1: EcsExecutionRole team-a/web is also defined in {tmp_path}/a.yaml"
    ]


def test_annotations_are_kept_as_strings() -> None:
    text = role("web").replace(
        "{name: web}", "{name: web, annotations: {ecsrole.dev/paused: true}}"
    )
    (manifest,) = parse(text).manifests
    assert manifest.annotations == {"ecsrole.dev/paused": "True"}
