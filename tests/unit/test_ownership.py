"""Ownership and adoption rules (DESIGN section 3)."""

from __future__ import annotations

from typing import Any

import pytest

from ecsrole.core import model, ownership

from .factories import OWNER, account, desired_role, observed_from, seed_trust

pytestmark = pytest.mark.unit

RECORDED_ID = "AROAEXAMPLEID"


def observed(**overrides: Any) -> model.ObservedRole:
    return observed_from(desired_role(), **overrides)


def adoptable(**overrides: Any) -> model.ObservedRole:
    """A hand-made execution role: right trust, no ownership tags, under the prefix."""
    values: dict[str, Any] = {"tags": {"team": "a"}, "role_id": "AROAHANDMADE"}
    values.update(overrides)
    return observed(**values)


def refusal(role: model.ObservedRole, **kwargs: Any) -> model.Refusal | None:
    arguments: dict[str, Any] = {
        "account": account(allow_adoption=True),
        "config_protected_names": ("break-glass",),
        "caller_role_name": "ecsrole-operator",
        "account_map_role_names": ("ecsrole-access",),
    }
    arguments.update(kwargs)
    return ownership.adoption_refusal(role, **arguments)


# -- ownership -------------------------------------------------------------------------------


def test_owned_needs_matching_tags_and_the_recorded_role_id() -> None:
    role = observed()
    assert ownership.is_owned(role, OWNER, RECORDED_ID)
    assert not ownership.is_owned(role, OWNER, None)
    assert not ownership.is_owned(role, OWNER, "AROAOTHER")


@pytest.mark.parametrize("field", ["cluster", "namespace", "name", "uid"])
def test_any_ownership_tag_mismatch_means_not_owned(field: str) -> None:
    other = model.Owner(**{**OWNER.__dict__, field: "other"})
    assert not ownership.is_owned(observed(), other, RECORDED_ID)


def test_copied_tags_on_another_role_are_not_ownership() -> None:
    copy = observed(role_id="AROACOPIED")
    assert ownership.ownership_tags_match(copy, OWNER)
    assert not ownership.is_owned(copy, OWNER, RECORDED_ID)


def test_missing_ownership_tag_means_not_owned() -> None:
    tags = {k: v for k, v in OWNER.tags().items() if k != "ecsrole.dev/uid"}
    assert not ownership.is_owned(observed(tags=tags), OWNER, RECORDED_ID)


def test_has_ownership_tags_in_any_case() -> None:
    assert ownership.has_ownership_tags(observed(tags={"EcsRole.Dev/uid": "x"}))
    assert not ownership.has_ownership_tags(observed(tags={"team": "a"}))


# -- protection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "fragment"),
    [
        ("AWSServiceRoleForECS", "/aws-service-role/ecs.amazonaws.com/", "reserved for roles AWS"),
        ("anything", "/aws-service-role/", "reserved for roles AWS"),
        ("AWSReservedSSO_Admin_0123456789abcdef", "/aws-reserved/sso.amazonaws.com/", "reserved"),
        ("awsreservedsso_admin_0123", "/", "IAM Identity Center"),
        ("AWSServiceRoleForSupport", "/", "service-linked"),
        ("OrganizationAccountAccessRole", "/", "Organizations"),
        ("organizationaccountaccessrole", "/", "Organizations"),
        ("ECSROLE-OPERATOR", "/ecs/", "operator's own role"),
        ("EcsRole-Access", "/", "assumes it"),
        ("Break-Glass", "/", "protectedRoleNames"),
    ],
)
def test_protected_roles(name: str, path: str, fragment: str) -> None:
    kwargs: dict[str, Any] = {
        "config_protected_names": ["break-glass"],
        "caller_role_name": "ecsrole-operator",
        "account_map_role_names": ["ecsrole-access"],
    }
    reason = ownership.protection_reason(name, path, **kwargs)
    assert reason is not None
    assert fragment in reason


def test_ordinary_roles_are_not_protected() -> None:
    assert ownership.protection_reason("web-exec", "/ecs/", caller_role_name=None) is None


# -- adoption --------------------------------------------------------------------------------


def test_adoptable_role_is_not_refused() -> None:
    assert refusal(adoptable()) is None


def test_iam_formatted_trust_is_still_adoptable() -> None:
    trust = "%7B%22Statement%22%3A%7B%22Action%22%3A%22sts%3AAssumeRole%22%2C%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%5B%22ecs-tasks.amazonaws.com%22%5D%7D%7D%7D"
    assert refusal(adoptable(trust_policy=trust)) is None


def test_trust_with_conditions_or_deny_statements_is_adoptable() -> None:
    narrowed = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": "111111111111"}})
    assert refusal(adoptable(trust_policy=narrowed)) is None
    deny = {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    assert (
        refusal(adoptable(trust_policy={"Statement": [*seed_trust()["Statement"], deny]})) is None
    )


def test_adoption_needs_allow_adoption() -> None:
    result = refusal(adoptable(), account=account())
    assert result is not None
    assert result.reason == "AdoptionRefused"
    assert "allowAdoption" in result.message


@pytest.mark.parametrize(
    "trust",
    [
        seed_trust(Principal={"Service": ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]}),
        seed_trust(Principal={"Service": "ecs-tasks.amazonaws.com", "AWS": "111111111111"}),
        seed_trust(Principal="*"),
        seed_trust(Principal={"Service": "ec2.amazonaws.com"}),
        {
            "Statement": [
                {"Effect": "Allow", "NotPrincipal": {"AWS": "1"}, "Action": "sts:AssumeRole"}
            ]
        },
        {"Statement": []},
        {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]},
    ],
)
def test_adoption_needs_trust_naming_only_ecs_tasks(trust: Any) -> None:
    result = refusal(adoptable(trust_policy=trust))
    assert result is not None
    assert result.reason == "AdoptionRefused"
    assert "ecs-tasks.amazonaws.com and nothing else" in result.message


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"role_name": "ecsrole-operator"}, "operator's own role"),
        ({"role_name": "ECSROLE-ACCESS"}, "assumes it"),
        ({"role_name": "break-glass"}, "protectedRoleNames"),
        ({"role_name": "OrganizationAccountAccessRole"}, "Organizations"),
        ({"path": "/aws-service-role/ecs.amazonaws.com/"}, "reserved"),
    ],
)
def test_protected_roles_are_never_adopted(overrides: dict[str, Any], fragment: str) -> None:
    result = refusal(adoptable(**overrides))
    assert result is not None
    assert result.reason == "AdoptionRefused"
    assert "is protected" in result.message
    assert fragment in result.message


def test_role_owned_by_another_resource_is_refused_without_naming_it() -> None:
    other = model.Owner("other-cluster", "team-z", "secret-project", "uid-z")
    result = refusal(adoptable(tags=other.tags()))
    assert result is not None
    assert result.reason == "AdoptionRefused"
    assert "another EcsExecutionRole or cluster" in result.message
    for leak in ("other-cluster", "team-z", "secret-project", "uid-z"):
        assert leak not in result.message


def test_role_carrying_our_own_tags_is_adoptable_when_owner_is_given() -> None:
    ours = adoptable(tags=OWNER.tags())
    assert refusal(ours) is not None
    assert refusal(ours, owner=OWNER) is None


def test_role_outside_the_path_prefix_is_refused() -> None:
    result = refusal(adoptable(path="/other/"))
    assert result is not None
    assert "outside the account's role path prefix /ecs/" in result.message


def test_role_at_another_path_than_the_spec_is_refused() -> None:
    result = refusal(adoptable(path="/ecs/a/"), expected_path="/ecs/")
    assert result is not None
    assert "IAM cannot move a role" in result.message
    assert refusal(adoptable(path="/ecs/"), expected_path="/ecs/") is None
