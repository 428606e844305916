"""The one decision sequence (core.decide) over a fake port: what it asks AWS, and when."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ecsrole.core import constants, decide, model, spec
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.iam import CallerIdentity

from . import factories

pytestmark = pytest.mark.unit

CONFIG = OperatorConfig(
    cluster_name=factories.OWNER.cluster,
    accounts={factories.ACCOUNT_ID: factories.account(allow_adoption=True)},
)
CREATED = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class FakePort:
    """Answers from one role; records every call, reads included."""

    def __init__(self, role: model.ObservedRole | None = None) -> None:
        self.role = role
        self.calls: list[str] = []
        self.applied: list[list[str]] = []

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        self.calls.append("caller_identity")
        arn = f"arn:aws:sts::{account.account_id}:assumed-role/ecsrole-operator/s"
        return CallerIdentity(account.account_id, arn, "AROAOP")

    def read_role(self, account: AccountConfig, role_name: str) -> model.ObservedRole | None:
        self.calls.append("read_role")
        return self.role

    def apply(
        self, account: AccountConfig, operations: Sequence[model.Operation]
    ) -> Mapping[str, Any] | None:
        self.calls.append("apply")
        self.applied.append([op.action for op in operations])
        return None


def facts(**overrides: Any) -> decide.Facts:
    values: dict[str, Any] = {
        "namespace": factories.NAMESPACE,
        "name": factories.OWNER.name,
        "uid": factories.OWNER.uid,
        "created": CREATED,
        "spec": factories.role_spec(),
    }
    values.update(overrides)
    return decide.Facts(**values)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"spec": spec.SpecError("spec.path", "must start with /")}, "InvalidSpec"),
        ({"namespace": "rogue"}, "AccountNotAllowed"),
        ({"conflicting": True}, "ConflictingResource"),
    ],
)
def test_refusals_before_any_aws_call(overrides: dict[str, Any], reason: str) -> None:
    port = FakePort()
    decision = decide.decide(facts(**overrides), CONFIG, port)
    assert decision.action == decide.Action.REFUSE
    assert decision.refusal is not None
    assert decision.refusal.reason == reason
    assert decision.message == decision.refusal.message
    assert port.calls == []


def test_a_refused_desired_state_names_its_field_and_reads_no_role() -> None:
    port = FakePort()
    decision = decide.decide(facts(spec=factories.role_spec(path="/other/")), CONFIG, port)
    assert decision.refusal is not None
    assert decision.refusal.reason == model.ReadyReason.InvalidSpec
    assert decision.refusal.field == "spec.path"
    assert decision.refusal.message.startswith("spec.path: ")
    assert port.calls == ["caller_identity"]


def test_a_gone_recorded_role_is_forgotten_first_under_enforce() -> None:
    decision = decide.decide(facts(recorded_role_id="AROAOLD"), CONFIG, FakePort())
    assert decision.action == decide.Action.FORGET_MISSING
    assert [d.aspect for d in decision.drifts] == [model.Aspect.RoleMissing]
    assert decision.operations == ()
    assert "created anew" in decision.message


def test_a_gone_recorded_role_is_left_to_a_human_under_report() -> None:
    report = factories.role_spec(driftPolicy="Report")
    decision = decide.decide(facts(spec=report, recorded_role_id="AROAOLD"), CONFIG, FakePort())
    assert decision.action == decide.Action.REPORT_MISSING
    assert "set spec.driftPolicy to Enforce" in decision.message
    assert decision.operations == ()


def test_a_gone_recorded_role_while_paused_is_reported_not_recreated() -> None:
    decision = decide.decide(facts(recorded_role_id="AROAOLD", paused=True), CONFIG, FakePort())
    assert decision.action == decide.Action.PAUSED
    assert [d.aspect for d in decision.drifts] == [model.Aspect.RoleMissing]
    assert decision.operations == ()


def test_a_recreation_after_the_record_was_dropped_says_so() -> None:
    decision = decide.decide(facts(was_role_missing=True), CONFIG, FakePort())
    assert decision.action == decide.Action.CREATE
    assert decision.recreates
    assert decision.operations[0].action == "CreateRole"


def test_adoption_tags_are_applied_before_the_repairs() -> None:
    role = factories.desired_role()
    tags = {k: v for k, v in role.tags.items() if not k.startswith(constants.OWNERSHIP_TAG_PREFIX)}
    unowned = factories.observed_from(
        role,
        role_id="AROAHANDMADE",
        tags=tags,
        managed_policy_arns={*role.managed_policy_arns, factories.ADMIN_POLICY},
    )
    port = FakePort(unowned)
    decision = decide.decide(facts(spec=factories.role_spec(adopt=True)), CONFIG, port)
    assert (decision.action, decision.acquisition) == (
        decide.Action.REPAIR,
        decide.Acquisition.ADOPT,
    )
    # Judged as the role is once adopted: the ownership tags are not drift as well.
    assert [d.aspect for d in decision.drifts] == [model.Aspect.ManagedPolicy]
    decide.carry_out(decision, port)
    assert port.applied == [["TagRole"], ["DetachRolePolicy"]]


def test_paused_adoption_writes_nothing_and_records_nothing() -> None:
    role = factories.desired_role()
    tags = {k: v for k, v in role.tags.items() if not k.startswith(constants.OWNERSHIP_TAG_PREFIX)}
    port = FakePort(factories.observed_from(role, role_id="AROAHANDMADE", tags=tags))
    decision = decide.decide(facts(spec=factories.role_spec(adopt=True), paused=True), CONFIG, port)
    assert decision.action == decide.Action.PAUSED
    assert decision.role is None  # not the resource's: nothing for status to record
    assert decide.carry_out(decision, port) is None
    assert port.applied == []
