"""`ecsrole diff`: what the operator would do to IAM for each manifest, without a cluster.

The judgement is the operator's own: `core.decide` runs the reconciler's sequence of checks
and decisions, with a port (`readonly.PlanningPort`) that reads through a read-only view of
IAM and records the calls the operator would make instead of making them. This module only
turns each manifest into the decision's inputs and the decision into a report.

Two differences, both because a manifest in a pull request has never been applied, and both
inputs of the decision (`facts_of`), not logic of their own:

- ownership is judged without a uid: a role is this manifest's when its ecsrole.dev/cluster,
  namespace and name tags match (`ownership.Proof.TAGS_WITHOUT_UID`); the uid tag it carries
  is kept as it is;
- there is no status, so a missing role is always "to create" (the operator reports
  RoleMissing instead when it had recorded the role and the drift policy is Report).

`evaluate_all` is pure apart from the `RoleReader` it is given (the tests use a fake one);
`render_text`, `render_json` and `exit_code` are pure; `run` is the shell.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TextIO

from ecsrole import config as config_module
from ecsrole.aws import readonly
from ecsrole.aws.errors import AwsCallError
from ecsrole.aws.iam import CallerIdentity
from ecsrole.core import claims, constants, decide, model, ownership, policy
from ecsrole.core import config as config_model
from ecsrole.core.spec import RoleSpec, SpecError, parse_spec
from ecsrole.tools import manifests

API_VERSION = "ecsrole.dev/diff/v1"
KIND = "DiffReport"
#: Stands in for the uid Kubernetes assigns when the manifest is applied (ecsrole.dev/uid).
UID_PLACEHOLDER = "<uid of the applied resource>"

EXIT_NO_CHANGES = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


class Outcome(StrEnum):
    """What the operator would do for one manifest; the JSON report's `result`."""

    InSync = "InSync"  # nothing to do
    Create = "Create"  # the role does not exist: CreateRole and the policies
    Update = "Update"  # owned and drifted, driftPolicy Enforce: the repairs
    Adopt = "Adopt"  # adopt: true on an adoptable role: the ownership TagRole (+ repairs)
    ReportOnly = "ReportOnly"  # drifted, but nothing will be written (driftPolicy Report)
    Paused = "Paused"  # ecsrole.dev/paused: true: observed, never written
    Refused = "Refused"  # the operator would refuse the resource (Ready=False, Stalled=True)
    Error = "Error"  # the diff could not judge it (AWS error, credentials of another account)


#: Outcomes that make `ecsrole diff` exit 2: the operator would write to IAM, or refuse.
CHANGES = frozenset({Outcome.Create, Outcome.Update, Outcome.Adopt, Outcome.Refused})


@dataclass(frozen=True)
class RoleDiff:
    """The judgement for one manifest."""

    manifest: manifests.Manifest
    outcome: Outcome
    account_id: str | None = None
    role_name: str | None = None
    arn: str | None = None
    drift_policy: str | None = None
    reason: str | None = None
    message: str | None = None
    drifts: tuple[model.Drift, ...] = ()
    operations: tuple[model.Operation, ...] = field(default=(), hash=False)

    @property
    def changes(self) -> bool:
        return self.outcome in CHANGES


class RoleReader(Protocol):
    """The reads a diff needs from one account (`readonly.ReadOnlyIam`, or a fake in tests)."""

    def caller_identity(self) -> CallerIdentity: ...

    def read_role(self, role_name: str) -> model.ObservedRole | None: ...


_CREDENTIAL_ERROR_CODES = frozenset({"NoCredentialsError", "PartialCredentialsError"})


# -- judging ---------------------------------------------------------------------------------


def evaluate_all(
    items: Sequence[manifests.Manifest],
    *,
    config: config_model.OperatorConfig,
    reader: Callable[[config_model.AccountConfig], RoleReader],
) -> list[RoleDiff]:
    """Judge every manifest in order; a later manifest claiming an earlier one's role conflicts."""
    claimed: dict[tuple[str, str], manifests.Manifest] = {}
    identities: dict[str, CallerIdentity] = {}
    results = []
    for item in items:
        port = readonly.PlanningPort(reader, identities)
        try:
            results.append(_evaluate(item, config, port, claimed))
        except AwsCallError as error:
            if error.code in _CREDENTIAL_ERROR_CODES:
                # Every account would fail the same way: stop the whole diff.
                raise readonly.MissingCredentialsError(error.message) from error
            results.append(
                RoleDiff(
                    item,
                    Outcome.Error,
                    **_target(item),
                    reason=error.kind.value,
                    message=f"{error.operation} failed: {error.code or error.kind.value}: "
                    f"{error.message}",
                )
            )
    return results


def _target(item: manifests.Manifest) -> dict[str, Any]:
    """Account and role as written, for results that stop before the spec is trusted."""
    spec = item.spec if isinstance(item.spec, Mapping) else {}
    account, role = spec.get("accountId"), spec.get("roleName")
    return {
        "account_id": account if isinstance(account, str) else None,
        "role_name": role if isinstance(role, str) else None,
    }


#: The operator's decisions as the diff reports them. A recorded role gone missing cannot
#: happen here (a manifest has no status), but would be reported as the operator treats it.
_OUTCOMES = {
    decide.Action.REFUSE: Outcome.Refused,
    decide.Action.CREATE: Outcome.Create,
    decide.Action.FORGET_MISSING: Outcome.Create,
    decide.Action.REPORT_MISSING: Outcome.ReportOnly,
    decide.Action.PAUSED: Outcome.Paused,
    decide.Action.REPAIR: Outcome.Update,
    decide.Action.REPORT: Outcome.ReportOnly,
    decide.Action.NOTHING: Outcome.InSync,
}


def facts_of(
    item: manifests.Manifest, spec: RoleSpec | SpecError, *, conflicting: bool
) -> decide.Facts:
    """The decision's inputs for a manifest that was never applied.

    The diff's two documented differences from the operator are these inputs: there is no uid
    (ownership by the cluster, namespace and name tags) and no status (no recorded role id, so
    a missing role is one to create).
    """
    return decide.Facts(
        namespace=item.namespace,
        name=item.name,
        uid=UID_PLACEHOLDER,
        created=None,
        spec=spec,
        conflicting=conflicting,
        recorded_role_id=None,
        was_role_missing=False,
        paused=str(item.annotations.get(constants.PAUSED_ANNOTATION, "")).lower() == "true",
        proof=ownership.Proof.TAGS_WITHOUT_UID,
    )


def _evaluate(
    item: manifests.Manifest,
    config: config_model.OperatorConfig,
    port: readonly.PlanningPort,
    claimed: dict[tuple[str, str], manifests.Manifest],
) -> RoleDiff:
    try:
        spec: RoleSpec | SpecError = parse_spec(item.spec)
    except SpecError as error:
        spec = error
    # Only a manifest the operator would let claim (`claims.claim_of`) claims; of several on
    # one role, the first in the files stands in for the oldest.
    claim = claims.claim_of(
        config, namespace=item.namespace, uid=item.name, created="", spec=item.spec, status={}
    )
    conflicting = claim is not None and claimed.setdefault(claim.key, item) is not item
    decision = decide.decide(facts_of(item, spec, conflicting=conflicting), config, port)
    decide.carry_out(decision, port)
    if not isinstance(spec, RoleSpec):
        return RoleDiff(
            item,
            Outcome.Refused,
            **_target(item),
            reason=_reason(decision),
            message=decision.message,
        )
    result = RoleDiff(
        item,
        _OUTCOMES[decision.action],
        account_id=spec.account_id,
        role_name=spec.role_name,
        arn=decision.arn,
        drift_policy=spec.drift_policy.value,
        reason=_reason(decision),
        message=decision.message or None,
        drifts=decision.drifts,
        operations=tuple(port.planned),
    )
    if decision.acquisition == decide.Acquisition.ADOPT:
        return dataclasses.replace(result, outcome=Outcome.Adopt)
    if decision.account is not None and _reason(decision) == model.ReadyReason.AccountMismatch:
        # The diff's own credentials are not the operator's: it cannot judge that account.
        identity = port.caller_identity(decision.account)
        return dataclasses.replace(
            result,
            outcome=Outcome.Error,
            message=f"the credentials used for account {spec.account_id} belong to account "
            f"{identity.account_id} ({identity.arn}); the diff cannot read the declared account",
        )
    return result


def _reason(decision: decide.Decision) -> str | None:
    return decision.refusal.reason if decision.refusal is not None else None


def exit_code(results: Iterable[RoleDiff], *, errors: Sequence[str] = ()) -> int:
    """1 when anything could not be judged, else 2 when the operator would write or refuse, else 0."""
    results = list(results)
    if errors or any(result.outcome == Outcome.Error for result in results):
        return EXIT_ERROR
    if any(result.changes for result in results):
        return EXIT_CHANGES
    return EXIT_NO_CHANGES


# -- rendering -------------------------------------------------------------------------------

_DOCUMENT_PARAMS = ("AssumeRolePolicyDocument", "PolicyDocument")


def operation_params(operation: model.Operation) -> dict[str, Any]:
    """The request parameters, with policy documents as objects (IAM takes them as JSON text)."""
    params = dict(operation.params)
    for key in _DOCUMENT_PARAMS:
        if isinstance(params.get(key), str):
            params[key] = policy.decode(params[key])
    return params


def _headline(result: RoleDiff) -> str:
    outcome = result.outcome
    if outcome == Outcome.InSync:
        return "in sync"
    if outcome == Outcome.Create:
        return "does not exist: the operator will create it"
    if outcome == Outcome.Update:
        return "drifted: the operator will repair it (driftPolicy Enforce)"
    if outcome == Outcome.Adopt:
        return f"exists, not yet managed: {result.message}"
    if outcome == Outcome.ReportOnly:
        return f"drifted, nothing will be written: {result.message}"
    if outcome == Outcome.Paused:
        return f"paused: {result.message}"
    if outcome == Outcome.Refused:
        return f"refused: {result.reason}: {result.message}"
    return f"error: {result.reason}: {result.message}"


_MARKS = {
    Outcome.InSync: "=",
    Outcome.Create: "+",
    Outcome.Update: "~",
    Outcome.Adopt: "~",
    Outcome.ReportOnly: "?",
    Outcome.Paused: "?",
    Outcome.Refused: "!",
    Outcome.Error: "!",
}


def summary(results: Sequence[RoleDiff]) -> dict[str, int]:
    counts = {outcome.value: 0 for outcome in Outcome}
    for result in results:
        counts[result.outcome.value] += 1
    return counts


def render_text(results: Sequence[RoleDiff], *, errors: Sequence[str] = ()) -> str:
    """The human report: one block per manifest, then a summary line and what the exit means."""
    lines: list[str] = []
    for result in results:
        item = result.manifest
        role = (
            f"role {result.role_name} in account {result.account_id}"
            if result.role_name and result.account_id
            else "role ?"
        )
        lines.append(
            f"{_MARKS[result.outcome]} {item.namespace}/{item.name} ({item.source}): "
            f"{role}: {_headline(result)}"
        )
        lines.extend(f"    drift {drift.aspect.value}: {drift.message}" for drift in result.drifts)
        lines.extend(
            f"    {operation.action} {json.dumps(operation_params(operation), ensure_ascii=False)}"
            for operation in result.operations
        )
    lines.extend(f"error: {error}" for error in errors)
    counts = summary(results)
    shown = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    lines.append(f"Summary: {len(results)} EcsExecutionRole(s){': ' + shown if shown else ''}.")
    code = exit_code(results, errors=errors)
    lines.append(
        {
            EXIT_NO_CHANGES: "No changes: the operator would not write to IAM.",
            EXIT_CHANGES: "Changes: the operator would write to IAM or refuse a resource (exit 2).",
            EXIT_ERROR: "Error: the diff is incomplete (exit 1).",
        }[code]
    )
    return "\n".join(lines) + "\n"


def report(
    results: Sequence[RoleDiff],
    *,
    cluster_name: str | None,
    errors: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON report (apiVersion ecsrole.dev/diff/v1; schema in docs/cli.md)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "clusterName": cluster_name,
        "exitCode": exit_code(results, errors=errors),
        "changes": any(result.changes for result in results),
        "summary": summary(results),
        "errors": list(errors),
        "warnings": list(warnings),
        "resources": [
            {
                "source": result.manifest.source,
                "namespace": result.manifest.namespace,
                "name": result.manifest.name,
                "accountId": result.account_id,
                "roleName": result.role_name,
                "arn": result.arn,
                "driftPolicy": result.drift_policy,
                "result": result.outcome.value,
                "changes": result.changes,
                "reason": result.reason,
                "message": result.message,
                "drift": [
                    {"aspect": drift.aspect.value, "message": drift.message}
                    for drift in result.drifts
                ],
                "operations": [
                    {
                        "action": operation.action,
                        "aspect": next((a.value for a in model.ordered(operation.aspects)), None),
                        "aspects": [aspect.value for aspect in model.ordered(operation.aspects)],
                        "params": operation_params(operation),
                    }
                    for operation in result.operations
                ],
            }
            for result in results
        ],
    }


def render_json(
    results: Sequence[RoleDiff],
    *,
    cluster_name: str | None,
    errors: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> str:
    document = report(results, cluster_name=cluster_name, errors=errors, warnings=warnings)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# -- the command -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffOptions:
    files: Sequence[str]
    config_path: str
    output: str = "text"
    namespace: str = "default"
    role_arn_template: str | None = None


def run(options: DiffOptions, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """`ecsrole diff`: load, judge, print; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    def finish(
        results: Sequence[RoleDiff],
        errors: Sequence[str],
        warnings: Sequence[str],
        cluster: str | None,
    ) -> int:
        for warning in warnings:
            print(f"warning: {warning}", file=err)
        if options.output == "json":
            out.write(render_json(results, cluster_name=cluster, errors=errors, warnings=warnings))
            for error in errors:
                print(f"error: {error}", file=err)
        else:
            for error in errors:
                print(f"error: {error}", file=err)
            if results or not errors:
                out.write(render_text(results))
        return exit_code(results, errors=errors)

    try:
        config = config_module.load_config(options.config_path)
    except config_module.ConfigError as error:
        problems = [f"invalid configuration {options.config_path}: {p}" for p in error.errors]
        return finish([], problems, [], None)
    stdin_text = sys.stdin.read() if manifests.STDIN in options.files else None
    loaded = manifests.load(
        options.files, default_namespace=options.namespace, stdin_text=stdin_text
    )
    if loaded.errors:
        # An incomplete set of manifests would make an incomplete diff: judge none of them.
        return finish([], loaded.errors, loaded.warnings, config.cluster_name)
    session = readonly.Session(
        region=config.region,
        session_name=f"ecsrole-diff-{config.cluster_name}",
        role_arn_template=options.role_arn_template,
    )
    try:
        results = evaluate_all(loaded.manifests, config=config, reader=session.reader)
    except readonly.MissingCredentialsError as error:
        message = readonly.missing_credentials_message(str(error))
        return finish([], [message], loaded.warnings, config.cluster_name)
    except AwsCallError as error:  # the tool's own identity could not be read
        return finish([], [f"AWS: {error}"], loaded.warnings, config.cluster_name)
    return finish(results, [], loaded.warnings, config.cluster_name)
