"""`ecsrole import`: EcsExecutionRole manifests for the execution roles an account already has.

For brownfield accounts: every role under the path prefix that trusts ecs-tasks.amazonaws.com
becomes a manifest with `adopt: true` and `deletionPolicy: Retain` and the settings the role
has now, so that applying it changes nothing in IAM except the ownership tags adoption writes.

What the manifest can express is decided by the operator's own core, not by a second set of
rules: the importer writes the spec it can read off the role, builds the desired role from it
(`desired.build_desired`) and diffs it against the role as it will be once adopted
(`diff.diff`). Whatever still differs is a part the API cannot express (another inline policy,
a trust condition it has no field for, an undeclared boundary, a missing
AmazonECSTaskExecutionRolePolicy, ...): such a role gets `driftPolicy: Report` and a comment
listing those parts, because under Enforce the operator would remove or change them. A role
with nothing left over gets `driftPolicy: Enforce`.

Roles that cannot be adopted at all are skipped with the reason (the adoption rules of
`ownership.adoption_refusal`, and a trust policy that names ECS tasks and someone else, which
the API cannot express and which adoption refuses).

`import_roles`, `render_manifest` and `resource_names` are pure; `run` is the shell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from ecsrole import config as config_module
from ecsrole.aws import readonly
from ecsrole.aws.errors import AwsCallError
from ecsrole.core import config as config_model
from ecsrole.core import constants, iam, model, ownership, policy, spec
from ecsrole.core import desired as desired_module
from ecsrole.core import diff as diff_module

#: Stands in for the uid of the applied resource when judging the role "as once adopted".
_UID = "<uid>"
_MAX_NAME = 63
_GRANTS = {
    "secretsmanager:getsecretvalue": "secretArns",
    "ssm:getparameters": "parameterArns",
    "kms:decrypt": "kmsKeyArns",
    "logs:createloggroup": "createLogGroups",
}


@dataclass(frozen=True)
class Skipped:
    """A role that trusts ECS tasks but cannot be imported, and why."""

    role_name: str
    reason: str


@dataclass(frozen=True)
class Imported:
    """One role turned into a manifest."""

    role_name: str
    arn: str
    manifest: Mapping[str, Any] = field(hash=False)
    #: "Aspect: message" for every part the manifest cannot express (empty: Enforce).
    inexpressible: tuple[str, ...] = ()
    #: Why fields read off the role were left out of the spec.
    left_out: tuple[str, ...] = ()
    #: What the operator's configuration would refuse (only with --config).
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def drift_policy(self) -> str:
        return str(self.manifest["spec"]["driftPolicy"])

    @property
    def file_name(self) -> str:
        return f"{self.name}.yaml"


@dataclass(frozen=True)
class ImportResult:
    imported: tuple[Imported, ...]
    skipped: tuple[Skipped, ...]
    #: Roles under the prefix that do not trust ECS tasks at all (not execution roles).
    ignored: int


# -- names -----------------------------------------------------------------------------------


def resource_name(role_name: str) -> str:
    """A DNS-1123 label (what metadata.name accepts everywhere) read off a role name."""
    name = re.sub(r"[^a-z0-9]+", "-", role_name.lower()).strip("-")
    return name[:_MAX_NAME].rstrip("-") or "role"


def resource_names(role_names: Iterable[str]) -> dict[str, str]:
    """metadata.name for each role name, unique within the batch.

    Lower-casing and replacing IAM's extra characters (_ + = , . @) can make two role names
    meet (`App_Exec` and `app-exec`); those get a short hash of the role name appended, so the
    result depends only on the set of names, never on their order.
    """
    names = sorted(set(role_names))
    base = {role: resource_name(role) for role in names}
    counts: dict[str, int] = {}
    for candidate in base.values():
        counts[candidate] = counts.get(candidate, 0) + 1
    result = {}
    for role, candidate in base.items():
        if counts[candidate] > 1:
            digest = hashlib.sha256(role.encode()).hexdigest()[:6]
            candidate = f"{candidate[: _MAX_NAME - 7].rstrip('-')}-{digest}"
        result[role] = candidate
    return result


# -- reading a role into a spec --------------------------------------------------------------


def _trust(observed: model.ObservedRole) -> dict[str, list[str]] | None:
    """spec.trust read off the trust policy; None when the trust has no such reading."""
    try:
        canonical = policy.normalize(observed.trust_policy)
    except policy.PolicyDocumentError:
        return None
    allows = [s for s in canonical.statements if s.effect == "Allow"]
    if len(allows) != 1:
        return None
    found: dict[str, list[str]] = {}
    for operator, key, values in allows[0].condition:
        if (operator, key) == ("stringequals", "aws:sourceaccount"):
            found["sourceAccounts"] = sorted(values)
        elif (operator, key) == ("arnlike", "aws:sourcearn"):
            found["sourceArns"] = sorted(values)
        else:
            return None
    trust: dict[str, list[str]] = {
        key: found[key] for key in ("sourceAccounts", "sourceArns") if key in found
    }
    candidate = desired_module.trust_policy(
        trust.get("sourceAccounts", ()), trust.get("sourceArns", ())
    )
    return trust if policy.equivalent(candidate, observed.trust_policy) else None


def _permissions(
    observed: model.ObservedRole, *, partition: str, account_id: str
) -> dict[str, Any] | None:
    """spec.permissions read off the ecsrole-permissions inline policy, when it has that shape."""
    document = observed.inline_policies.get(desired_module.INLINE_POLICY_NAME)
    if document is None:
        return None
    try:
        canonical = policy.normalize(document)
    except policy.PolicyDocumentError:
        return None
    fields: dict[str, list[str]] = {}
    for statement in canonical.statements:
        action = sorted(statement.action or ())
        if (
            statement.effect != "Allow"
            or len(action) != 1
            or action[0] not in _GRANTS
            or statement.resource is None
            or _GRANTS[action[0]] in fields
        ):
            return None
        fields[_GRANTS[action[0]]] = sorted(statement.resource)
    permissions: dict[str, Any] = {
        key: fields[key] for key in ("secretArns", "parameterArns", "kmsKeyArns") if key in fields
    }
    if "createLogGroups" in fields:
        permissions["createLogGroups"] = True
    built = desired_module.permissions_policy(
        spec.PermissionsSpec(
            secret_arns=tuple(permissions.get("secretArns", ())),
            parameter_arns=tuple(permissions.get("parameterArns", ())),
            kms_key_arns=tuple(permissions.get("kmsKeyArns", ())),
            create_log_groups=bool(permissions.get("createLogGroups")),
        ),
        partition=partition,
        account_id=account_id,
    )
    if built is None or not policy.equivalent(built, document):
        return None
    return permissions


def _spec_from_role(
    observed: model.ObservedRole,
    *,
    account_id: str,
    partition: str,
    ignored_tag_keys: Iterable[str],
) -> dict[str, Any]:
    """Everything the API can say about the role, before the core has judged it."""
    ignored = {key.lower() for key in ignored_tag_keys}
    seed = desired_module.execution_role_policy_arn(partition)
    result: dict[str, Any] = {
        "accountId": account_id,
        "roleName": observed.role_name,
        "path": observed.path,
    }
    if observed.description:
        result["description"] = observed.description
    if observed.max_session_duration != iam.MIN_SESSION_DURATION:
        result["maxSessionDuration"] = observed.max_session_duration
    if observed.permissions_boundary_arn:
        result["permissionsBoundaryArn"] = observed.permissions_boundary_arn
    tags = {
        key: value
        for key, value in sorted(observed.tags.items())
        if not iam.is_reserved_tag_key(key) and key.lower() not in ignored
    }
    if tags:
        result["tags"] = tags
    trust = _trust(observed)
    if trust:
        result["trust"] = trust
    permissions = _permissions(observed, partition=partition, account_id=account_id)
    if permissions:
        result["permissions"] = permissions
    additional = sorted(observed.managed_policy_arns - {seed})
    if additional:
        result["additionalPolicyArns"] = additional
    return result


#: What the CRD's schema accepts in the lists read off policies: (maxItems, item maxLength, item
#: pattern), copied from deploy/crds (a unit test keeps them equal). The operator's own checks
#: are laxer in places (a sourceArn like arn:aws:ecs:us-east-1:111111111111:* is fine to it,
#: not to the CRD), and a manifest the API server refuses helps nobody: such a list is left
#: out, and what it grants stays reported drift.
_POLICY_ARN = (
    r"^arn:(aws|aws-cn|aws-us-gov):iam::([0-9]{12}|aws):policy/"
    r"([\x21-\x29\x2B-\x3E\x40-\x7E]*/)?[\w+=,.@-]{1,128}$"
)
_REGION = r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}"
CRD_LISTS: dict[tuple[str, ...], tuple[int, int, str]] = {
    ("trust", "sourceAccounts"): (1, 12, r"^[0-9]{12}$"),
    ("trust", "sourceArns"): (
        20,
        512,
        rf"^arn:(aws|aws-cn|aws-us-gov):ecs:{_REGION}:[0-9]{{12}}:[a-z][a-z-]*/[\w+=,.@:/*?-]+$",
    ),
    ("permissions", "secretArns"): (
        20,
        1024,
        rf"^arn:(aws|aws-cn|aws-us-gov):secretsmanager:{_REGION}:[0-9]{{12}}:secret:"
        r"[A-Za-z0-9/_+=.@-]+-([A-Za-z0-9]{6}|\?{6})$",
    ),
    ("permissions", "parameterArns"): (
        20,
        1024,
        rf"^arn:(aws|aws-cn|aws-us-gov):ssm:{_REGION}:[0-9]{{12}}:parameter/"
        r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
    ),
    ("permissions", "kmsKeyArns"): (
        10,
        128,
        rf"^arn:(aws|aws-cn|aws-us-gov):kms:{_REGION}:[0-9]{{12}}:key/"
        r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$",
    ),
    ("additionalPolicyArns",): (19, 2048, _POLICY_ARN),
}


def _crd_problem(spec_dict: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first (field path, message) of a list the CRD would refuse, or None."""
    for path, (max_items, max_length, pattern) in CRD_LISTS.items():
        node: Any = spec_dict
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if not node:
            continue
        field_path = "spec." + ".".join(path)
        if len(node) > max_items:
            return (
                field_path,
                f"the CRD allows at most {max_items} items (the role has {len(node)})",
            )
        for index, item in enumerate(node):
            if len(item) > max_length or re.fullmatch(pattern[1:-1], item, re.ASCII) is None:
                return (
                    f"{field_path}[{index}]",
                    f"{item} does not match the CRD's pattern {pattern}",
                )
    return None


_INDEXED = re.compile(r"(spec\.additionalPolicyArns)\[(\d+)\]")


def _leave_out(spec_dict: dict[str, Any], field_path: str) -> bool:
    """Drop the spec field a refusal names; False when it is not one that can be left out."""
    indexed = _INDEXED.fullmatch(field_path)
    if indexed is not None:
        arns = spec_dict.get("additionalPolicyArns", [])
        index = int(indexed.group(2))
        if index < len(arns):
            del arns[index]
            if not arns:
                del spec_dict["additionalPolicyArns"]
            return True
        return False
    for key in ("trust", "permissions", "permissionsBoundaryArn", "additionalPolicyArns"):
        named = field_path == f"spec.{key}" or field_path.startswith(
            (f"spec.{key}.", f"spec.{key}[")
        )
        if named and key in spec_dict:
            del spec_dict[key]
            return True
    return False


def _tags_after_adoption(observed: model.ObservedRole, owner: model.Owner) -> dict[str, str]:
    tags = {
        key: value
        for key, value in observed.tags.items()
        if not key.lower().startswith(constants.OWNERSHIP_TAG_PREFIX)
    }
    tags.update(owner.tags())
    return tags


def _judging_account(
    account: config_model.AccountConfig, namespace: str, *, configured: bool
) -> config_model.AccountConfig:
    """The account the spec is judged with: the real one, minus what a manifest cannot fix.

    The namespace and allowAdoption become warnings (the platform team decides). With a real
    configuration the allow-lists stay: a managed policy or a permission they refuse is left
    out of the spec, so it stays reported drift (an alert) instead of becoming declared, and
    the resource is not refused as a whole. Without a configuration there are no allow-lists
    to judge by, and everything the API can express is declared.
    """
    changes: dict[str, Any] = {"namespaces": (namespace,), "allow_adoption": True}
    if not configured:
        changes["allowed_policy_arns"] = ("*",)
        changes["allowed_resource_patterns"] = {namespace: ("*",)}
    return dataclasses.replace(account, **changes)


def render_role(
    observed: model.ObservedRole,
    *,
    name: str,
    namespace: str,
    account: config_model.AccountConfig,
    partition: str,
    cluster_name: str,
    configured: bool,
) -> Imported | Skipped:
    """The manifest for one adoptable role (or why it cannot be imported after all).

    `account` is the account's configuration (or a stand-in when no --config was given, then
    `configured` is False and nothing is judged against allow-lists).
    """
    spec_dict = _spec_from_role(
        observed,
        account_id=account.account_id,
        partition=partition,
        ignored_tag_keys=account.ignored_tag_keys,
    )
    owner = model.Owner(cluster_name, namespace, name, _UID)
    shape = _judging_account(account, namespace, configured=configured)
    left_out: list[str] = []
    while (problem := _crd_problem(spec_dict)) is not None:
        field_path, message = problem
        if not _leave_out(spec_dict, field_path):  # pragma: no cover - every listed field can go
            return Skipped(observed.role_name, f"{field_path}: {message}")
        left_out.append(f"{field_path}: {message}")
    while True:
        try:
            role_spec = spec.parse_spec(spec_dict)
        except spec.SpecError as error:
            return Skipped(observed.role_name, f"{error.field}: {error.message}")
        built = desired_module.build_desired(
            role_spec, shape, namespace=namespace, partition=partition, owner=owner
        )
        if isinstance(built, model.DesiredRole):
            break
        if built.field is None or not _leave_out(spec_dict, built.field):
            return Skipped(observed.role_name, built.message)
        left_out.append(built.message)
    adopted = dataclasses.replace(observed, tags=_tags_after_adoption(observed, owner))
    drifts = diff_module.diff(built, adopted)
    inexpressible = tuple(f"{drift.aspect.value}: {drift.message}" for drift in drifts)
    spec_dict["driftPolicy"] = (
        spec.DriftPolicy.Report if drifts else spec.DriftPolicy.Enforce
    ).value
    spec_dict["deletionPolicy"] = spec.DeletionPolicy.Retain.value
    spec_dict["adopt"] = True
    warnings: list[str] = []
    if configured:
        verdict = desired_module.build_desired(
            spec.parse_spec(spec_dict),
            account,
            namespace=namespace,
            partition=partition,
            owner=owner,
        )
        if isinstance(verdict, model.Refusal):
            warnings.append(f"the operator will refuse it: {verdict.reason}: {verdict.message}")
    manifest = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec_dict,
    }
    return Imported(
        role_name=observed.role_name,
        arn=observed.arn,
        manifest=manifest,
        inexpressible=inexpressible,
        left_out=tuple(left_out),
        warnings=tuple(warnings),
    )


def _ecs_candidate(observed: model.ObservedRole) -> Skipped | bool:
    """True for an importable trust, False for a role that is no execution role, else Skipped."""
    ecs = ("Service", desired_module.ECS_TASKS_SERVICE)
    principals = policy.trusted_principals(observed.trust_policy)
    if principals is None:
        if desired_module.ECS_TASKS_SERVICE in json.dumps(observed.trust_policy):
            return Skipped(
                observed.role_name,
                "its trust policy mentions ecs-tasks.amazonaws.com but is not a plain list of "
                "trusted principals (NotPrincipal, or an Allow without Principal)",
            )
        return False
    if ecs not in principals:
        return False
    others = sorted(f"{kind} {value}" for kind, value in principals - {ecs})
    if others:
        return Skipped(
            observed.role_name,
            f"it trusts ecs-tasks.amazonaws.com and also {', '.join(others)}: an "
            "EcsExecutionRole trusts ECS tasks only, so the API cannot express this role "
            "(and the operator never adopts it)",
        )
    return True


def import_roles(
    roles: Iterable[model.ObservedRole],
    *,
    namespace: str,
    account: config_model.AccountConfig,
    partition: str,
    cluster_name: str,
    configured: bool,
    protected_role_names: Sequence[str] = (),
    caller_role_name: str | None = None,
    account_map_role_names: Sequence[str] = (),
) -> ImportResult:
    """Manifests for every importable role of `roles`, and why the others were skipped."""
    candidates: list[model.ObservedRole] = []
    skipped: list[Skipped] = []
    ignored = 0
    for observed in sorted(roles, key=lambda role: role.role_name.lower()):
        candidate = _ecs_candidate(observed)
        if candidate is False:
            ignored += 1
            continue
        if isinstance(candidate, Skipped):
            skipped.append(candidate)
            continue
        if ownership.has_ownership_tags(observed):
            claimed = ", ".join(
                f"{key}={value}"
                for key, value in sorted(observed.tags.items())
                if key.lower().startswith(constants.OWNERSHIP_TAG_PREFIX)
                and key.lower() != constants.TAG_UID
            )
            skipped.append(
                Skipped(
                    observed.role_name,
                    f"it carries ecsrole ownership tags ({claimed}): an EcsExecutionRole manages "
                    "it already (or did, and the tags were not released)",
                )
            )
            continue
        refusal = ownership.adoption_refusal(
            observed,
            account=dataclasses.replace(account, allow_adoption=True),
            config_protected_names=protected_role_names,
            caller_role_name=caller_role_name,
            account_map_role_names=account_map_role_names,
        )
        if refusal is not None:
            reason = refusal.message.removeprefix(f"role {observed.role_name} ")
            skipped.append(Skipped(observed.role_name, reason))
            continue
        candidates.append(observed)
    names = resource_names(role.role_name for role in candidates)
    imported: list[Imported] = []
    for observed in candidates:
        rendered = render_role(
            observed,
            name=names[observed.role_name],
            namespace=namespace,
            account=account,
            partition=partition,
            cluster_name=cluster_name,
            configured=configured,
        )
        if isinstance(rendered, Skipped):
            skipped.append(rendered)
        else:
            imported.append(rendered)
    return ImportResult(tuple(imported), tuple(skipped), ignored)


# -- rendering -------------------------------------------------------------------------------


def render_manifest(imported: Imported) -> str:
    """The manifest as YAML, preceded by comments saying where it came from and what to know."""
    lines = [f"# Imported by `ecsrole import` from {imported.arn}."]
    if imported.inexpressible:
        lines += [
            "# driftPolicy is Report: the role has parts an EcsExecutionRole cannot express. The",
            "# operator leaves them as they are and reports them (Drifted=True, ecsrole_drifted);",
            "# under driftPolicy Enforce it would remove or change them:",
            *(f"#   - {part}" for part in imported.inexpressible),
        ]
    else:
        lines += [
            "# The role is fully expressed: adopting it writes only the ownership tags, and the",
            "# operator then keeps it exactly like this (driftPolicy Enforce).",
        ]
    if imported.left_out:
        lines += [
            "# Read off the role but left out of the spec (with them the resource would be refused):",
            *(f"#   - {part}" for part in imported.left_out),
        ]
    if imported.warnings:
        lines += [f"# WARNING: {warning}" for warning in imported.warnings]
    body = yaml.safe_dump(dict(imported.manifest), sort_keys=False, allow_unicode=True)
    return "\n".join(lines) + "\n" + body


# -- the command -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    account_id: str
    config_path: str | None = None
    namespace: str = "default"
    output_dir: str | None = None
    path_prefix: str | None = None
    role_arn_template: str | None = None
    force: bool = False


def _region() -> str:
    return (
        os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or config_model.DEFAULT_REGION
    )


def run(
    options: ImportOptions, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """`ecsrole import`: read the account, write the manifests; returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr

    def fail(message: str) -> int:
        print(f"error: {message}", file=stderr)
        return 1

    if not iam.is_account_id(options.account_id):
        return fail(f"--account {options.account_id!r}: must be exactly 12 digits")
    loaded: config_model.OperatorConfig | None = None
    if options.config_path is not None:
        try:
            loaded = config_module.load_config(options.config_path)
        except config_module.ConfigError as error:
            return fail(
                f"invalid configuration {options.config_path}:"
                + "".join(f"\n  - {problem}" for problem in error.errors)
            )
        account = loaded.account(options.account_id)
        if account is None:
            known = ", ".join(sorted(loaded.accounts)) or "none"
            return fail(
                f"account {options.account_id} is not in the configuration "
                f"{options.config_path} (accounts: {known})"
            )
    else:
        account = config_model.AccountConfig(account_id=options.account_id)
    prefix = options.path_prefix if options.path_prefix is not None else account.role_path_prefix
    if (problem := iam.path_problem(prefix)) is not None:
        return fail(f"--path-prefix {prefix!r}: {problem}")
    cluster_name = loaded.cluster_name if loaded is not None else "ecsrole"
    session = readonly.Session(
        region=loaded.region if loaded is not None else _region(),
        session_name=f"ecsrole-import-{options.account_id}",
        role_arn_template=options.role_arn_template,
    )
    try:
        reader = session.reader(account)
        identity = reader.caller_identity()
        if identity.account_id != options.account_id:
            return fail(
                f"the credentials used for account {options.account_id} belong to account "
                f"{identity.account_id} ({identity.arn}); configure a roleArn for the account "
                "(--config) or --role-arn-template, or use credentials of that account"
            )
        roles = reader.read_roles_bulk(prefix)
    except readonly.MissingCredentialsError as error:
        return fail(readonly.missing_credentials_message(str(error)))
    except AwsCallError as error:
        if error.code in ("NoCredentialsError", "PartialCredentialsError"):
            return fail(readonly.missing_credentials_message(error.message))
        return fail(f"AWS: {error}")

    result = import_roles(
        roles.values(),
        namespace=options.namespace,
        account=account,
        partition=identity.partition,
        cluster_name=cluster_name,
        configured=loaded is not None,
        protected_role_names=loaded.protected_role_names if loaded is not None else (),
        caller_role_name=iam.caller_role_name(identity.arn),
        account_map_role_names=(
            loaded.account_map_role_names(options.account_id) if loaded is not None else ()
        ),
    )
    status = _write(result, options, stdout=stdout, stderr=stderr)
    _summarise(result, options, account, loaded is not None, prefix, stderr)
    return status


def _write(result: ImportResult, options: ImportOptions, *, stdout: TextIO, stderr: TextIO) -> int:
    if options.output_dir is None:
        stdout.write("---\n".join(render_manifest(imported) for imported in result.imported))
        return 0
    try:
        os.makedirs(options.output_dir, exist_ok=True)
    except OSError as error:
        print(f"error: {options.output_dir}: cannot create: {error.strerror}", file=stderr)
        return 1
    status = 0
    for imported in result.imported:
        path = os.path.join(options.output_dir, imported.file_name)
        try:
            with open(path, "w" if options.force else "x", encoding="utf-8") as stream:
                stream.write(render_manifest(imported))
        except FileExistsError:
            print(f"error: {path}: exists, not overwritten (use --force)", file=stderr)
            status = 1
        except OSError as error:
            print(f"error: {path}: cannot write: {error.strerror}", file=stderr)
            status = 1
    return status


def _summarise(
    result: ImportResult,
    options: ImportOptions,
    account: config_model.AccountConfig,
    configured: bool,
    prefix: str,
    stderr: TextIO,
) -> None:
    for skipped in result.skipped:
        print(f"skipped {skipped.role_name}: {skipped.reason}", file=stderr)
    for imported in result.imported:
        for warning in imported.warnings:
            print(f"warning: {imported.role_name}: {warning}", file=stderr)
    report_count = sum(1 for imported in result.imported if imported.inexpressible)
    where = f" into {options.output_dir}" if options.output_dir else ""
    print(
        f"imported {len(result.imported)} role(s){where} "
        f"({len(result.imported) - report_count} driftPolicy Enforce, {report_count} Report); "
        f"skipped {len(result.skipped)}; {result.ignored} other role(s) under {prefix} do not "
        "trust ecs-tasks.amazonaws.com",
        file=stderr,
    )
    if not configured:
        print(
            "note: without --config the manifests were not checked against the account's "
            "allow-lists (namespaces, allowedPolicyArns, allowedResourcePatterns, boundary)",
            file=stderr,
        )
    elif not account.allow_adoption:
        print(
            f"warning: account {account.account_id} does not allow adoption (allowAdoption: "
            "false): the operator will refuse these manifests with AdoptionRefused until it does",
            file=stderr,
        )
