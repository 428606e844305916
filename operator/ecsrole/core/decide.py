"""The one decision sequence for an EcsExecutionRole: what to do about its role, and in which words.

The operator's reconcile and `ecsrole diff` both run `decide` and then `carry_out`, in the
spirit of crossplane-runtime's managed reconciler: the sequence is written once, and the
outside world sits behind one small interface (`Port`: the caller identity, a read of the
role, and applying operations). The operator's port is the IAM adapter; the diff's port reads
through a read-only view and records the calls it is asked to apply instead of making them.
The checks come in the order that keeps every write behind every safety check:

    spec parses -> account listed for the namespace -> no earlier claim on the role
    -> caller identity is the spec's account -> desired state allowed -> read the role
    -> create | the recorded role | claim (crash recovery, adoption) | refuse
    -> diff -> repair or report

The diff's two documented differences are inputs, not a second copy of the logic: `Facts.proof`
(a manifest has no uid, so its role is the one whose cluster, namespace and name tags name it)
and the absence of status (`recorded_role_id` None: a missing role is one to create).

Pure apart from the port it is given: no I/O of its own. The messages are decided here, so both
callers say the same words; they name only the resource's own role, never another tenant's.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from ecsrole.core import claims, constants, desired, diff, ownership, plan
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.iam import CallerIdentity, caller_role_name
from ecsrole.core.model import (
    Aspect,
    DesiredRole,
    Drift,
    ObservedRole,
    Operation,
    Owner,
    ReadyReason,
    Refusal,
)
from ecsrole.core.spec import DriftPolicy, RoleSpec, SpecError

PAUSED = constants.PAUSED_ANNOTATION


class Port(Protocol):
    """What the sequence needs from AWS, for the account a resource names."""

    def caller_identity(self, account: AccountConfig) -> CallerIdentity: ...

    def read_role(self, account: AccountConfig, role_name: str) -> ObservedRole | None: ...

    def apply(
        self, account: AccountConfig, operations: Sequence[Operation]
    ) -> Mapping[str, Any] | None:
        """Run the operations in order; the Role from CreateRole when one was created."""
        ...


class Action(StrEnum):
    """What is to be done about the role."""

    REFUSE = "Refuse"  # nothing, until a human changes something (`Decision.refusal`)
    CREATE = "Create"  # the role does not exist: CreateRole and the policies
    FORGET_MISSING = "ForgetMissing"  # the recorded role went (Enforce): drop the record first
    REPORT_MISSING = "ReportMissing"  # the recorded role went (Report): a human decides
    PAUSED = "Paused"  # observed, never written
    REPAIR = "Repair"  # put the drifted aspects back (`Decision.operations`)
    REPORT = "Report"  # drifted, nothing will be written
    NOTHING = "Nothing"  # the role matches the spec


class Acquisition(StrEnum):
    """How an existing role without a recorded id becomes the resource's own."""

    RECORD = "Record"  # it created the role just before a crash: record its id
    ADOPT = "Adopt"  # spec.adopt on an adoptable role: write the ownership tags


@dataclass(frozen=True)
class Facts:
    """What the sequence knows of a resource before it asks AWS anything.

    `spec` is the parsed spec, or why it does not parse. `recorded_role_id` and
    `was_role_missing` come from status (the id recorded at creation or adoption; whether the
    last outcome said the role was missing). `settling` are the aspects the operator wrote
    within the settle window, not judged by a detection read.
    """

    namespace: str
    name: str
    uid: str
    created: datetime.datetime | None
    spec: RoleSpec | SpecError
    conflicting: bool = False
    recorded_role_id: str | None = None
    was_role_missing: bool = False
    paused: bool = False
    settling: frozenset[Aspect] = frozenset()
    proof: ownership.Proof = ownership.Proof.TAGS_AND_RECORDED_ID


@dataclass(frozen=True)
class Decision:
    """What to do, why, and with which calls.

    `role` is the resource's own role as it is once the decision is carried out (adoption's
    tags included): the one whose ARN and id the status records; None when the role is not
    (yet) the resource's. `drifts` are the differences found, before anything is repaired.
    `adoption` (the ownership tags) is applied before `operations` (creation or repairs).
    """

    action: Action
    message: str = ""
    refusal: Refusal | None = None
    spec: RoleSpec | None = None
    account: AccountConfig | None = None
    desired: DesiredRole | None = None
    observed: ObservedRole | None = None
    role: ObservedRole | None = None
    acquisition: Acquisition | None = None
    drifts: tuple[Drift, ...] = ()
    adoption: tuple[Operation, ...] = ()
    operations: tuple[Operation, ...] = ()
    recreates: bool = False

    @property
    def arn(self) -> str | None:
        """The role's ARN once it was read: the existing one's, or the one it will have."""
        if self.observed is not None:
            return self.observed.arn
        return self.desired.arn if self.desired is not None else None


def decide(facts: Facts, config: OperatorConfig, port: Port) -> Decision:
    """The decision for one resource: every refusal before the first AWS call that needs it."""
    spec = facts.spec
    if isinstance(spec, SpecError):
        return _refuse(Decision(Action.REFUSE), ReadyReason.InvalidSpec, str(spec), spec.field)
    base = Decision(Action.NOTHING, spec=spec)
    account = claims.account_for(config, facts.namespace, spec.account_id)
    if account is None:
        return _refuse(
            base,
            ReadyReason.AccountNotAllowed,
            f"namespace {facts.namespace} may not manage roles in account {spec.account_id}; "
            "the operator configuration must list the namespace for that account",
        )
    if facts.conflicting:
        return _refuse(
            base,
            ReadyReason.ConflictingResource,
            claims.conflict_message(spec.role_name, spec.account_id),
        )
    base = dataclasses.replace(base, account=account)
    identity = port.caller_identity(account)
    if identity.account_id != spec.account_id:
        return _refuse(
            base,
            ReadyReason.AccountMismatch,
            f"the credentials configured for account {spec.account_id} belong to account "
            f"{identity.account_id}; nothing was changed",
        )
    owner = Owner(config.cluster_name, facts.namespace, facts.name, facts.uid)
    wanted = _desired(facts, spec, account, identity, owner)
    if isinstance(wanted, Refusal):
        return dataclasses.replace(
            base, action=Action.REFUSE, refusal=wanted, message=wanted.message
        )
    observed = port.read_role(account, spec.role_name)
    base = dataclasses.replace(base, desired=wanted, observed=observed)
    if observed is None:
        return _absent(base, facts, spec, wanted)
    return _existing(base, facts, config, spec, identity, owner, observed)


def carry_out(decision: Decision, port: Port) -> Mapping[str, Any] | None:
    """Apply the decision's writes through `port`: the adoption's tags, then the rest.

    Returns the Role from CreateRole when the decision creates one. An exception from the port
    stops here; a caller tells how far it got from what its port applied.
    """
    created: Mapping[str, Any] | None = None
    if decision.account is None:
        return None
    for step in (decision.adoption, decision.operations):
        if step:
            created = port.apply(decision.account, step) or created
    return created


def _refuse(
    base: Decision, reason: ReadyReason, message: str, field: str | None = None
) -> Decision:
    refusal = Refusal(reason, message, field)
    return dataclasses.replace(base, action=Action.REFUSE, refusal=refusal, message=message)


def _desired(
    facts: Facts, spec: RoleSpec, account: AccountConfig, identity: CallerIdentity, owner: Owner
) -> DesiredRole | Refusal:
    return desired.build_desired(
        spec, account, namespace=facts.namespace, partition=identity.partition, owner=owner
    )


def _drifts(
    base: Decision, facts: Facts, wanted: DesiredRole, role: ObservedRole | None
) -> tuple[Drift, ...]:
    """The one comparison of the declared role with the role (as it is, or once adopted)."""
    assert base.account is not None
    return diff.diff(
        wanted,
        role,
        ignore_aspects=facts.settling,
    )


def _absent(base: Decision, facts: Facts, spec: RoleSpec, wanted: DesiredRole) -> Decision:
    """No role: create it; or, when the recorded role went, report it or re-create in two steps.

    A recorded role that is gone is re-created in two steps: first its record is dropped, then
    (on the retry) the role is created and its new id recorded. A crash right after that
    CreateRole then leaves a role the crash-recovery claim recognises (no id recorded, this
    object's tags, newer than the object); with the old id still recorded it could not be told
    from an impostor carrying copied tags.
    """
    if facts.recorded_role_id:
        missing = Drift(Aspect.RoleMissing, f"role {spec.role_name} no longer exists in IAM")
        gone = dataclasses.replace(base, drifts=(missing,))
        if facts.paused:
            return dataclasses.replace(gone, action=Action.PAUSED, message=missing.message)
        if spec.drift_policy == DriftPolicy.Report:
            # Nothing will bring the role back by itself: a human decides.
            return dataclasses.replace(
                gone,
                action=Action.REPORT_MISSING,
                message=f"{missing.message}; driftPolicy is Report, so it is not recreated: set "
                "spec.driftPolicy to Enforce to recreate it, or delete this resource",
            )
        return dataclasses.replace(
            gone, action=Action.FORGET_MISSING, message=f"{missing.message}; it is created anew"
        )
    if facts.paused:
        return dataclasses.replace(
            base,
            action=Action.PAUSED,
            message=f"{PAUSED} is set: the role does not exist and is not created",
        )
    return dataclasses.replace(
        base,
        action=Action.CREATE,
        drifts=_drifts(base, facts, wanted, None),
        operations=plan.plan_create(wanted),
        recreates=facts.was_role_missing,
    )


def _existing(
    base: Decision,
    facts: Facts,
    config: OperatorConfig,
    spec: RoleSpec,
    identity: CallerIdentity,
    owner: Owner,
    observed: ObservedRole,
) -> Decision:
    """A role of that name exists: the resource's own, one to record or adopt, or refused."""
    standing = ownership.standing(
        observed,
        owner,
        facts.recorded_role_id,
        resource_created=facts.created,
        path=spec.path,
        proof=facts.proof,
    )
    if standing == ownership.Standing.NOT_THE_RECORDED_ROLE:
        return _refuse(
            base,
            ReadyReason.RoleExistsNotOwned,
            ownership.not_the_recorded_role_message(
                observed, str(facts.recorded_role_id), spec.account_id
            ),
        )
    if standing == ownership.Standing.OWNED:
        if facts.proof == ownership.Proof.TAGS_WITHOUT_UID:
            # The manifest cannot know its uid: keep the one the role carries.
            owner = dataclasses.replace(owner, uid=observed.tags.get(constants.TAG_UID, owner.uid))
        return _converge(base, facts, spec, identity, owner, observed, None)
    if standing == ownership.Standing.CREATED_BEFORE_CRASH:
        return _converge(base, facts, spec, identity, owner, observed, Acquisition.RECORD)
    refusal = _adoption_refusal(base, config, spec, identity, owner, observed)
    if refusal is not None:
        return _refuse(base, refusal.reason, refusal.message)
    if facts.paused:
        return dataclasses.replace(
            base,
            action=Action.PAUSED,
            message=f"{PAUSED} is set: role {spec.role_name} is not adopted",
        )
    return _converge(base, facts, spec, identity, owner, observed, Acquisition.ADOPT)


def _adoption_refusal(
    base: Decision,
    config: OperatorConfig,
    spec: RoleSpec,
    identity: CallerIdentity,
    owner: Owner,
    observed: ObservedRole,
) -> Refusal | None:
    """Why an existing role that is not the resource's may not become it, or None."""
    assert base.account is not None
    if not spec.adopt:
        return Refusal(
            ReadyReason.RoleExistsNotOwned,
            f"role {spec.role_name} already exists in account {spec.account_id} and is not "
            "managed by this resource; set spec.adopt: true to adopt it where the account "
            "allows adoption",
        )
    return ownership.adoption_refusal(
        observed,
        account=base.account,
        config_protected_names=config.protected_role_names,
        caller_role_name=caller_role_name(identity.arn),
        account_map_role_names=config.account_map_role_names(base.account.account_id),
        owner=owner,
        expected_path=spec.path,
    )


def _converge(
    base: Decision,
    facts: Facts,
    spec: RoleSpec,
    identity: CallerIdentity,
    owner: Owner,
    observed: ObservedRole,
    acquisition: Acquisition | None,
) -> Decision:
    """The resource's own role (or about to be): paused, in sync, reported or repaired."""
    assert base.account is not None
    wanted = _desired(facts, spec, base.account, identity, owner)
    if isinstance(wanted, Refusal):  # pragma: no cover - the uid decides no refusal
        return _refuse(base, wanted.reason, wanted.message, wanted.field)
    adoption: tuple[Operation, ...] = ()
    role = observed
    if acquisition == Acquisition.ADOPT:
        adoption = plan.plan_tag_owner(observed, owner)
        # Judged as the role is once adopted, so the ownership tags the adoption writes are
        # not reported again as tag drift.
        role = plan.after_tag_owner(observed, owner)
    drifts = _drifts(base, facts, wanted, role)
    found = dataclasses.replace(
        base,
        desired=wanted,
        role=role,
        acquisition=acquisition,
        drifts=drifts,
        adoption=adoption,
    )
    if facts.paused:
        return dataclasses.replace(
            found,
            action=Action.PAUSED,
            adoption=(),
            message=f"{PAUSED} is set: no AWS writes"
            + ("; the role differs from the spec" if drifts else ""),
        )
    if not drifts:
        return dataclasses.replace(found, message=_summary(acquisition, "", ""))
    if spec.drift_policy == DriftPolicy.Report:
        message = _summary(
            acquisition,
            "driftPolicy Report: the drift is reported and alerted on, never repaired",
            "the drift is then only reported (driftPolicy Report)",
        )
        return dataclasses.replace(found, action=Action.REPORT, message=message)
    operations = plan.plan_update(role.role_name, drifts)
    if not operations:
        message = _summary(
            acquisition,
            "the operator cannot repair this drift; a human has to",
            "the operator cannot repair the drift; a human has to",
        )
        return dataclasses.replace(found, action=Action.REPORT, message=message)
    return dataclasses.replace(
        found,
        action=Action.REPAIR,
        operations=operations,
        message=_summary(acquisition, "", "then repairs the drift (driftPolicy Enforce)"),
    )


def _summary(acquisition: Acquisition | None, alone: str, after_adoption: str) -> str:
    """What happens to the role, led by the adoption when there is one."""
    if acquisition != Acquisition.ADOPT:
        return alone
    adopts = "the operator adopts the role by writing its ownership tags"
    return f"{adopts}; {after_adoption}" if after_adoption else adopts
