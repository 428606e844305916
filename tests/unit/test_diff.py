"""Desired vs observed: every aspect, the order, and what is not drift."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from ecsrole.core import diff, model

from .factories import (
    ADMIN_POLICY,
    BOUNDARY,
    OWNER,
    SECRET,
    SEED_POLICY,
    desired_role,
    observed_from,
    seed_trust,
)

pytestmark = pytest.mark.unit

Aspect = model.Aspect


def only(drifts: tuple[model.Drift, ...]) -> model.Drift:
    assert len(drifts) == 1, drifts
    return drifts[0]


def test_matching_role_has_no_drift() -> None:
    role = desired_role(
        description="web",
        maxSessionDuration=7200,
        permissionsBoundaryArn=BOUNDARY,
        tags={"team": "a"},
        permissions={"secretArns": [SECRET], "createLogGroups": True},
        trust={"sourceAccounts": ["111111111111"]},
    )
    assert diff.diff(role, observed_from(role)) == ()


def test_missing_role_is_one_role_missing_drift() -> None:
    role = desired_role()
    drift = only(diff.diff(role, None))
    assert drift.aspect is Aspect.RoleMissing
    assert drift.message == "role web-exec does not exist in account 111111111111"
    assert diff.diff(role, None, ignore_aspects={Aspect.RoleMissing}) == ()


def test_iam_reformatted_documents_are_not_drift() -> None:
    role = desired_role(permissions={"secretArns": [SECRET]})
    iam_trust = {
        "Version": "2012-10-17",
        "Statement": {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": ["ecs-tasks.amazonaws.com"]},
        },
    }
    inline = dict(role.inline_policies["ecsrole-permissions"])
    inline["Statement"] = [
        {**s, "Action": s["Action"][0], "Resource": s["Resource"][0]} for s in inline["Statement"]
    ]
    observed = observed_from(
        role,
        trust_policy=urllib.parse.quote(json.dumps(iam_trust)),
        inline_policies={"ecsrole-permissions": urllib.parse.quote(json.dumps(inline))},
    )
    assert diff.diff(role, observed) == ()


# -- trust -----------------------------------------------------------------------------------


def test_widened_trust_is_drift_with_a_readable_message() -> None:
    role = desired_role()
    widened = seed_trust(
        Principal={"Service": "ecs-tasks.amazonaws.com", "AWS": "arn:aws:iam::999999999999:root"}
    )
    drift = only(diff.diff(role, observed_from(role, trust_policy=widened)))
    assert drift.aspect is Aspect.TrustPolicy
    assert drift.message == "trust policy also allows AWS account 999999999999"


def test_dropped_confused_deputy_condition_is_drift() -> None:
    role = desired_role(trust={"sourceAccounts": ["111111111111"]})
    drift = only(diff.diff(role, observed_from(role, trust_policy=seed_trust())))
    assert drift.aspect is Aspect.TrustPolicy
    assert "drops condition StringEquals aws:SourceAccount" in drift.message


def test_extra_trust_statement_is_drift() -> None:
    role = desired_role()
    extra = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:role/x"},
        "Action": "sts:AssumeRole",
    }
    observed = observed_from(role, trust_policy={"Statement": [*seed_trust()["Statement"], extra]})
    drift = only(diff.diff(role, observed))
    assert drift.aspect is Aspect.TrustPolicy
    assert "extra statement" in drift.message


# -- managed policies ------------------------------------------------------------------------


def test_extra_managed_policy_is_drift() -> None:
    role = desired_role()
    observed = observed_from(role, managed_policy_arns={SEED_POLICY, ADMIN_POLICY})
    drift = only(diff.diff(role, observed))
    assert drift.aspect is Aspect.ManagedPolicy
    assert drift.message == (
        "managed policy arn:aws:iam::aws:policy/AdministratorAccess is attached but not declared"
    )


def test_detached_seed_policy_is_drift() -> None:
    role = desired_role()
    drift = only(diff.diff(role, observed_from(role, managed_policy_arns=set())))
    assert drift.message == f"managed policy {SEED_POLICY} is declared but not attached"


def test_many_managed_policy_changes_are_one_drift_with_a_bounded_message() -> None:
    role = desired_role()
    extras = {f"arn:aws:iam::aws:policy/P{i}" for i in range(8)}
    drift = only(diff.diff(role, observed_from(role, managed_policy_arns=extras)))
    assert drift.aspect is Aspect.ManagedPolicy
    assert drift.message.endswith("; and 4 more")


# -- inline policies -------------------------------------------------------------------------


def test_extra_inline_policy_is_drift() -> None:
    role = desired_role()
    observed = observed_from(role, inline_policies={"backdoor": seed_trust()})
    drift = only(diff.diff(role, observed))
    assert drift.aspect is Aspect.InlinePolicy
    assert drift.message == "inline policy backdoor is present but not declared"


def test_missing_and_changed_inline_policy_are_drift() -> None:
    role = desired_role(permissions={"secretArns": [SECRET]})
    assert only(diff.diff(role, observed_from(role, inline_policies={}))).message == (
        "inline policy ecsrole-permissions is declared but missing"
    )
    widened = json.loads(json.dumps(role.inline_policies["ecsrole-permissions"]))
    widened["Statement"][0]["Resource"] = "*"
    drift = only(
        diff.diff(role, observed_from(role, inline_policies={"ecsrole-permissions": widened}))
    )
    assert drift.aspect is Aspect.InlinePolicy
    assert drift.message.startswith("inline policy ecsrole-permissions also covers *")
    assert f"no longer covers {SECRET}" in drift.message


# -- boundary --------------------------------------------------------------------------------


def test_boundary_drifts() -> None:
    plain = desired_role()
    bounded = desired_role(permissionsBoundaryArn=BOUNDARY)
    other = "arn:aws:iam::aws:policy/PowerUserAccess"
    unexpected = only(diff.diff(plain, observed_from(plain, permissions_boundary_arn=BOUNDARY)))
    assert unexpected.aspect is Aspect.PermissionsBoundary
    assert "is set but not declared" in unexpected.message
    missing = only(diff.diff(bounded, observed_from(bounded, permissions_boundary_arn=None)))
    assert missing.message == f"permissions boundary {BOUNDARY} is declared but not set"
    different = only(diff.diff(bounded, observed_from(bounded, permissions_boundary_arn=other)))
    assert different.message == f"permissions boundary is {other} but {BOUNDARY} is declared"


# -- tags ------------------------------------------------------------------------------------


def tags_drift(
    role: model.DesiredRole, tags: dict[str, str], **kwargs: Any
) -> tuple[model.Drift, ...]:
    return diff.diff(role, observed_from(role, tags=tags), **kwargs)


def test_tag_drifts() -> None:
    role = desired_role(tags={"team": "a", "env": "prod"})
    base = {**OWNER.tags(), "team": "a", "env": "prod"}
    assert tags_drift(role, base) == ()
    assert only(tags_drift(role, {**base, "team": "b"})).message == (
        'tag team is "b" but "a" is declared'
    )
    assert only(tags_drift(role, {k: v for k, v in base.items() if k != "env"})).message == (
        "tag env is declared but missing"
    )
    assert only(tags_drift(role, {**base, "owner": "x"})).message == (
        "tag owner is present but not declared"
    )


def test_tag_keys_compare_case_insensitively_but_spelling_is_enforced() -> None:
    role = desired_role(tags={"team": "a"})
    observed_tags = {**OWNER.tags(), "Team": "a"}
    drift = only(tags_drift(role, observed_tags))
    assert drift.aspect is Aspect.Tags
    assert drift.message == "tag Team should be spelled team"


def ignoring(role: model.DesiredRole, *keys: str) -> model.DesiredRole:
    """The role as build_desired makes it for an account with these ignoredTagKeys."""
    return model.DesiredRole(**{**role.__dict__, "ignored_tag_keys": frozenset(keys)})


def test_ignored_tag_keys_are_never_drift_in_any_case() -> None:
    role = desired_role()
    observed = {**OWNER.tags(), "CostCenter": "42"}
    assert only(tags_drift(role, observed)).aspect is Aspect.Tags
    assert tags_drift(ignoring(role, "costcenter"), observed) == ()
    assert tags_drift(ignoring(role, "COSTCENTER"), observed) == ()


def test_declared_but_ignored_tag_is_not_compared() -> None:
    role = ignoring(desired_role(tags={"CostCenter": "1"}), "CostCenter")
    assert tags_drift(role, {**OWNER.tags(), "costcenter": "2"}) == ()


def test_changed_ownership_tag_is_drift() -> None:
    role = desired_role()
    drift = only(tags_drift(role, {**OWNER.tags(), "ecsrole.dev/uid": "other"}))
    assert drift.aspect is Aspect.Tags


def test_long_tag_values_are_shortened_in_messages() -> None:
    role = desired_role(tags={"note": "a" * 200})
    drift = only(tags_drift(role, {**OWNER.tags(), "note": "b" * 200}))
    assert len(drift.message) < 200


# -- description and session -----------------------------------------------------------------


def test_description_drifts() -> None:
    described = desired_role(description="web tier")
    plain = desired_role()
    assert only(diff.diff(described, observed_from(described, description=None))).message == (
        'description is empty but "web tier" is declared'
    )
    assert only(diff.diff(plain, observed_from(plain, description="hand edit"))).message == (
        'description is "hand edit" but none is declared'
    )
    drift = only(diff.diff(described, observed_from(described, description="other")))
    assert drift.aspect is Aspect.Description
    assert drift.message == 'description is "other" but "web tier" is declared'


def test_max_session_duration_drift() -> None:
    role = desired_role()
    drift = only(diff.diff(role, observed_from(role, max_session_duration=43200)))
    assert drift.aspect is Aspect.MaxSessionDuration
    assert drift.message == "max session duration is 43200 s but 3600 s is declared"


# -- order and filtering ---------------------------------------------------------------------


def everything_drifted(role: model.DesiredRole) -> model.ObservedRole:
    return observed_from(
        role,
        trust_policy=seed_trust(Principal="*"),
        managed_policy_arns={ADMIN_POLICY},
        inline_policies={"x": seed_trust()},
        permissions_boundary_arn=BOUNDARY,
        tags={},
        description="x",
        max_session_duration=7200,
    )


def test_drifts_come_in_severity_order_one_per_aspect() -> None:
    role = desired_role()
    aspects = [d.aspect for d in diff.diff(role, everything_drifted(role))]
    assert aspects == [
        Aspect.TrustPolicy,
        Aspect.ManagedPolicy,
        Aspect.InlinePolicy,
        Aspect.PermissionsBoundary,
        Aspect.Tags,
        Aspect.Description,
        Aspect.MaxSessionDuration,
    ]
    assert aspects == [a for a in diff.SEVERITY if a is not Aspect.RoleMissing]
    assert set(diff.SEVERITY) == set(Aspect)


def test_each_drift_carries_its_delta() -> None:
    role = desired_role(permissions={"secretArns": [SECRET]})
    observed = everything_drifted(role)
    deltas = {d.aspect: d.delta for d in diff.diff(role, observed)}
    fields = model.RoleFieldsDelta("", 3600)
    assert deltas == {
        Aspect.TrustPolicy: model.TrustDelta(role.trust_policy),
        Aspect.ManagedPolicy: model.ManagedPolicyDelta(
            detach=(ADMIN_POLICY,), attach=(SEED_POLICY,)
        ),
        Aspect.InlinePolicy: model.InlinePolicyDelta(
            delete=("x",), add={"ecsrole-permissions": role.inline_policies["ecsrole-permissions"]}
        ),
        Aspect.PermissionsBoundary: model.BoundaryDelta(put=None),
        Aspect.Tags: model.TagDelta(missing=tuple(sorted(role.tags)), to_set=dict(role.tags)),
        Aspect.Description: fields,
        Aspect.MaxSessionDuration: fields,
    }
    widened = observed_from(role, inline_policies={"ecsrole-permissions": seed_trust(Action="*")})
    assert only(diff.diff(role, widened)).delta == model.InlinePolicyDelta(
        replace={"ecsrole-permissions": role.inline_policies["ecsrole-permissions"]}
    )
    assert only(diff.diff(role, None)).delta == model.RoleMissingDelta(role)


def test_ignore_aspects_skips_them() -> None:
    role = desired_role()
    drifts = diff.diff(
        role, everything_drifted(role), ignore_aspects={Aspect.TrustPolicy, Aspect.Tags}
    )
    assert [d.aspect for d in drifts] == [
        Aspect.ManagedPolicy,
        Aspect.InlinePolicy,
        Aspect.PermissionsBoundary,
        Aspect.Description,
        Aspect.MaxSessionDuration,
    ]


def test_messages_never_mention_other_tenants() -> None:
    role = desired_role()
    for drift in diff.diff(role, everything_drifted(role)):
        assert "team-b" not in drift.message


# -- deltas ----------------------------------------------------------------------------------


def test_tag_delta_parts() -> None:
    delta = diff.tag_delta(
        {"a": "1", "B": "2", "c": "3", "ignored": "x"},
        {"a": "1", "b": "9", "d": "4", "IGNORED": "y"},
        {"ignored"},
    )
    assert delta.missing == ("c",)
    assert delta.recased == (("b", "B"),)
    assert delta.changed == (("B", "9", "2"),)
    assert delta.extra == ("d",)
    assert delta.to_remove == ("b", "d")
    assert delta.to_set == {"B": "2", "c": "3"}
    assert delta
    assert not diff.tag_delta({"a": "1"}, {"A": "1"}, {"a"})


def test_boundary_delta_never_removes() -> None:
    plain, bounded = desired_role(), desired_role(permissionsBoundaryArn=BOUNDARY)
    assert diff.boundary_delta(
        plain, observed_from(plain, permissions_boundary_arn=BOUNDARY)
    ) == model.BoundaryDelta(put=None)
    assert diff.boundary_delta(
        bounded, observed_from(bounded, permissions_boundary_arn=None)
    ) == model.BoundaryDelta(put=BOUNDARY)
    assert diff.boundary_delta(bounded, observed_from(bounded)) is None
