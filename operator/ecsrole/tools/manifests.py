"""Reading EcsExecutionRole manifests from files, directories and stdin, as `kubectl -f` would.

Rules, chosen for a GitOps repository where role manifests sit next to the application's own:

- a file (or stdin) may hold many YAML documents; `kind: List` (and `*List`) items are expanded;
- a directory is read recursively: files ending in .yaml, .yml or .json, in sorted order,
  skipping hidden files and directories (.git);
- documents of other kinds are skipped with a warning, so a directory of application manifests
  can be diffed as it is; but an input that yields no EcsExecutionRole at all is an error (a
  wrong path must not pass as "no changes");
- a document that cannot be read (invalid YAML, not an object, no metadata.name, an
  EcsExecutionRole of an unsupported apiVersion, two documents for the same object) is an error.

`parse_documents` is pure (text in, manifests out); `load` does the reading.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ecsrole.core import constants

SUPPORTED_VERSIONS = (constants.VERSION,)
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"


@dataclass(frozen=True)
class Manifest:
    """One EcsExecutionRole as written in a file: what `diff` judges."""

    source: str
    namespace: str
    name: str
    spec: Any
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass
class Loaded:
    """Everything read from the inputs: manifests, plus warnings and errors naming their source."""

    manifests: list[Manifest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def extend(self, other: Loaded) -> None:
        self.manifests.extend(other.manifests)
        self.warnings.extend(other.warnings)
        self.errors.extend(other.errors)


def _describe(document: Mapping[str, Any]) -> str:
    kind = document.get("kind")
    if not kind or not document.get("apiVersion"):
        return "a document without kind and apiVersion"
    meta = document.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return f"{kind} {name}" if name else str(kind)


def _items(documents: Sequence[Any], source: str) -> Iterator[tuple[str, Any]]:
    """(source, document) pairs, with List items expanded and empty documents dropped."""
    many = len([d for d in documents if d is not None]) > 1
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        where = f"{source}#{index}" if many else source
        kind = document.get("kind") if isinstance(document, Mapping) else None
        items = document.get("items") if isinstance(document, Mapping) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            for item_index, item in enumerate(items):
                yield f"{where} items[{item_index}]", item
        else:
            yield where, document


def parse_documents(
    text: str, *, source: str, default_namespace: str, required: bool = True
) -> Loaded:
    """The EcsExecutionRole manifests in `text` (one or more YAML or JSON documents).

    `required`: an input with no EcsExecutionRole is an error (a named file, stdin); False for
    one file of a directory, where the directory as a whole is checked instead.
    """
    loaded = Loaded()
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        loaded.errors.append(f"{source}: not valid YAML{where}: {problem}")
        return loaded
    skipped: list[str] = []
    for where, document in _items(documents, source):
        if not isinstance(document, Mapping):
            loaded.errors.append(
                f"{where}: not a Kubernetes manifest (a {type(document).__name__}, not an object)"
            )
            continue
        kind, api_version = document.get("kind"), document.get("apiVersion")
        group, _, version = str(api_version or "").rpartition("/")
        if kind != constants.KIND or group != constants.GROUP:
            skipped.append(_describe(document))
            loaded.warnings.append(
                f"{where}: skipped {_describe(document)}: not an {constants.KIND}"
            )
            continue
        if version not in SUPPORTED_VERSIONS:
            loaded.errors.append(
                f"{where}: apiVersion {api_version} is not supported "
                f"(this ecsrole reads {', '.join(f'{constants.GROUP}/{v}' for v in SUPPORTED_VERSIONS)})"
            )
            continue
        manifest = _manifest(document, where, default_namespace, loaded.errors)
        if manifest is not None:
            loaded.manifests.append(manifest)
    if required and not loaded.manifests and not loaded.errors:
        found = f" (found: {', '.join(skipped)})" if skipped else " (it holds no documents)"
        loaded.errors.append(f"{source}: no {constants.KIND} in it{found}")
        loaded.warnings.clear()  # the error names what was skipped
    return loaded


def _manifest(
    document: Mapping[str, Any], where: str, default_namespace: str, errors: list[str]
) -> Manifest | None:
    meta = document.get("metadata")
    if not isinstance(meta, Mapping):
        errors.append(f"{where}: metadata: must be an object with a name")
        return None
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        errors.append(f"{where}: metadata.name: is required")
        return None
    namespace = meta.get("namespace")
    if namespace is None:
        namespace = default_namespace
    if not isinstance(namespace, str) or not namespace:
        errors.append(f"{where}: metadata.namespace: must be a non-empty string")
        return None
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        errors.append(f"{where}: metadata.annotations: must be a map of strings")
        return None
    return Manifest(
        source=where,
        namespace=namespace,
        name=name,
        spec=document.get("spec") if document.get("spec") is not None else {},
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


def _files_under(directory: str) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            os.path.join(root, name)
            for name in sorted(files)
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith(".")
        )
    # Sorted as paths, so that a.yaml comes before b/c.yaml (os.walk lists files first).
    return sorted(found, key=lambda path: os.path.relpath(path, directory).split(os.sep))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def _read_error(path: str, error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"{path}: cannot read: not UTF-8 text"
    if isinstance(error, OSError):
        return f"{path}: cannot read: {error.strerror or error}"
    return f"{path}: cannot read: {error}"


def load(paths: Iterable[str], *, default_namespace: str, stdin_text: str | None = None) -> Loaded:
    """Read every input (files, directories, "-" for `stdin_text`), in order."""
    loaded = Loaded()
    for path in paths:
        if path == STDIN:
            loaded.extend(
                parse_documents(
                    stdin_text or "", source="(stdin)", default_namespace=default_namespace
                )
            )
        elif os.path.isdir(path):
            before = len(loaded.manifests)
            errors_before = len(loaded.errors)
            files = _files_under(path)
            for file in files:
                try:
                    text = _read(file)
                except (OSError, UnicodeDecodeError) as error:
                    loaded.errors.append(_read_error(file, error))
                    continue
                loaded.extend(
                    parse_documents(
                        text, source=file, default_namespace=default_namespace, required=False
                    )
                )
            if len(loaded.manifests) == before and len(loaded.errors) == errors_before:
                loaded.errors.append(
                    f"{path}: no {constants.KIND} found in this directory "
                    f"({len(files)} file(s) ending in {', '.join(MANIFEST_SUFFIXES)})"
                )
        else:
            try:
                text = _read(path)
            except (OSError, UnicodeDecodeError) as error:
                loaded.errors.append(_read_error(path, error))
                continue
            loaded.extend(parse_documents(text, source=path, default_namespace=default_namespace))
    seen: dict[tuple[str, str], str] = {}
    for manifest in loaded.manifests:
        key = (manifest.namespace, manifest.name)
        if key in seen:
            loaded.errors.append(
                f"{manifest.source}: {constants.KIND} {manifest.namespace}/{manifest.name} is also "
                f"defined in {seen[key]}"
            )
        else:
            seen[key] = manifest.source
    return loaded
