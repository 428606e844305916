"""Semantic policy comparison, in both directions: no false drift, no missed change."""

from __future__ import annotations

import copy
import json
import random
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecsrole.core import policy

from .factories import seed_trust

pytestmark = pytest.mark.unit

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# -- examples: equal ---------------------------------------------------------------------------


def test_seed_trust_equals_its_url_encoded_form_as_iam_returns_it() -> None:
    encoded = (
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow"
        "%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ecs-tasks.amazonaws.com%22%7D%2C%22Action"
        "%22%3A%22sts%3AAssumeRole%22%7D%5D%7D"
    )
    assert policy.equivalent(seed_trust(), encoded)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(seed_trust(Action=["sts:AssumeRole"]), id="action-list-vs-scalar"),
        pytest.param(
            seed_trust(Principal={"Service": ["ecs-tasks.amazonaws.com"]}), id="principal-list"
        ),
        pytest.param(
            {"Statement": seed_trust()["Statement"]}, id="version-absent-equals-2012-10-17"
        ),
        pytest.param(
            {"Version": "2012-10-17", "Statement": seed_trust()["Statement"][0]},
            id="single-statement-object",
        ),
        pytest.param(
            {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                        "Effect": "Allow",
                    }
                ],
                "Version": "2012-10-17",
            },
            id="key-order-and-sid-dropped",
        ),
        pytest.param(seed_trust(Action="STS:assumeRole"), id="action-case"),
        pytest.param(
            seed_trust(Action=["sts:AssumeRole", "sts:AssumeRole"]), id="duplicate-action"
        ),
        pytest.param(
            {"Version": "2012-10-17", "Statement": seed_trust()["Statement"] * 2},
            id="duplicate-statement",
        ),
        pytest.param(seed_trust(Condition={}), id="empty-condition"),
        pytest.param(json.dumps(seed_trust(), indent=4), id="pretty-printed-json"),
    ],
)
def test_reformatted_trust_is_equivalent(variant: Any) -> None:
    assert policy.equivalent(seed_trust(), variant)
    assert policy.equivalent(variant, seed_trust())


def test_condition_operators_and_keys_compare_case_insensitively() -> None:
    a = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": "111111111111"}})
    b = seed_trust(Condition={"stringequals": {"AWS:SOURCEACCOUNT": ["111111111111"]}})
    assert policy.equivalent(a, b)


def test_condition_values_and_multiple_operators_are_sets() -> None:
    a = seed_trust(
        Condition={
            "StringEquals": {"aws:SourceAccount": ["1", "2"]},
            "ArnLike": {"aws:SourceArn": "arn:aws:ecs:us-east-1:1:*"},
        }
    )
    b = seed_trust(
        Condition={
            "ArnLike": {"aws:SourceArn": ["arn:aws:ecs:us-east-1:1:*"]},
            "StringEquals": {"aws:SourceAccount": ["2", "1", "2"]},
        }
    )
    assert policy.equivalent(a, b)


def test_account_id_principal_equals_its_root_arn_in_any_partition() -> None:
    by_id = seed_trust(Principal={"AWS": "999999999999"})
    assert policy.equivalent(by_id, seed_trust(Principal={"AWS": "arn:aws:iam::999999999999:root"}))
    assert policy.equivalent(
        by_id, seed_trust(Principal={"AWS": ["arn:aws-cn:iam::999999999999:root"]})
    )
    assert not policy.equivalent(
        by_id, seed_trust(Principal={"AWS": "arn:aws:iam::999999999999:role/x"})
    )


def test_star_principal_equals_aws_star() -> None:
    assert policy.equivalent(seed_trust(Principal="*"), seed_trust(Principal={"AWS": "*"}))


def test_non_string_condition_values_compare_by_json_spelling() -> None:
    a = seed_trust(Condition={"Bool": {"aws:SecureTransport": True}})
    assert policy.equivalent(a, seed_trust(Condition={"Bool": {"aws:SecureTransport": [True]}}))
    assert policy.equivalent(a, seed_trust(Condition={"Bool": {"aws:SecureTransport": "true"}}))


def test_normalize_is_hashable_and_stable() -> None:
    assert hash(policy.normalize(seed_trust())) == hash(
        policy.normalize(urllib.parse.quote(json.dumps(seed_trust())))
    )


# -- examples: different -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(
            seed_trust(
                Principal={
                    "Service": "ecs-tasks.amazonaws.com",
                    "AWS": "arn:aws:iam::999999999999:root",
                }
            ),
            id="added-principal",
        ),
        pytest.param(seed_trust(Principal={"Service": "ec2.amazonaws.com"}), id="other-principal"),
        pytest.param(seed_trust(Principal="*"), id="everyone"),
        pytest.param(seed_trust(Action=["sts:AssumeRole", "sts:TagSession"]), id="added-action"),
        pytest.param(seed_trust(Effect="Deny"), id="effect"),
        pytest.param(seed_trust(Sid="Named"), id="named-sid"),
        pytest.param(
            seed_trust(Condition={"StringEquals": {"aws:SourceAccount": "111111111111"}}),
            id="added-condition",
        ),
        pytest.param(seed_trust(Resource="*"), id="added-resource"),
        pytest.param(
            {
                "Version": "2012-10-17",
                "Statement": [
                    *seed_trust()["Statement"],
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                        "Action": "sts:AssumeRole",
                    },
                ],
            },
            id="added-statement",
        ),
        pytest.param({"Version": "2012-10-17", "Statement": []}, id="removed-statement"),
        pytest.param({**seed_trust(), "Version": "2008-10-17"}, id="old-version"),
        pytest.param({**seed_trust(), "Id": "x"}, id="added-id"),
        pytest.param(seed_trust(NotAction="iam:*"), id="unknown-to-seed-element"),
        pytest.param(
            seed_trust(Principal={"Service": "ECS-TASKS.amazonaws.com"}), id="principal-case"
        ),
    ],
)
def test_semantic_change_is_not_equivalent(variant: Any) -> None:
    assert not policy.equivalent(seed_trust(), variant)
    assert not policy.equivalent(variant, seed_trust())


def test_condition_value_change_differs() -> None:
    a = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": "111111111111"}})
    b = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": ["111111111111", "2"]}})
    c = seed_trust(Condition={"StringLike": {"aws:SourceAccount": "111111111111"}})
    assert not policy.equivalent(a, b)
    assert not policy.equivalent(a, c)


def test_resource_values_compare_case_sensitively() -> None:
    a = {"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k"}}
    b = {"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/K"}}
    assert not policy.equivalent(a, b)


# -- decode and errors -------------------------------------------------------------------------


def test_decode_accepts_dict_json_and_url_encoded_json() -> None:
    doc = seed_trust()
    assert policy.decode(doc) == doc
    assert policy.decode(json.dumps(doc)) == doc
    assert policy.decode(urllib.parse.quote(json.dumps(doc))) == doc


def test_decode_keeps_plus_signs_literal() -> None:
    doc = {"Statement": {"Effect": "Allow", "Action": "a:b", "Resource": "arn:aws:iam::1:role/a+b"}}
    assert policy.decode(urllib.parse.quote(json.dumps(doc)))["Statement"]["Resource"].endswith(
        "a+b"
    )


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "[1, 2]",
        {"Version": 1, "Statement": []},
        {"Statement": "x"},
        {"Statement": ["x"]},
        {"Statement": [{"Effect": 1}]},
        {"Statement": [{"Effect": "Allow", "Sid": 3}]},
        {"Statement": [{"Effect": "Allow", "Principal": "someone"}]},
        {"Statement": [{"Effect": "Allow", "Action": {"a": 1}}]},
        {"Statement": [{"Effect": "Allow", "Condition": "x"}]},
        {"Statement": [{"Effect": "Allow", "Condition": {"StringEquals": "x"}}]},
        {"Id": 3, "Statement": []},
    ],
)
def test_malformed_documents_raise_and_are_never_equivalent(document: Any) -> None:
    with pytest.raises(policy.PolicyDocumentError):
        policy.normalize(document)
    assert not policy.equivalent(document, document)
    assert "cannot be read" in policy.describe_difference(seed_trust(), document)


def test_decode_refuses_non_documents() -> None:
    with pytest.raises(policy.PolicyDocumentError):
        policy.decode(42)  # type: ignore[arg-type]


def test_dumps_is_compact_and_keeps_key_order() -> None:
    assert policy.dumps(seed_trust()) == (
        '{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":'
        '{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    )


# -- trusted principals ------------------------------------------------------------------------


def test_trusted_principals_of_seed_trust() -> None:
    assert policy.trusted_principals(seed_trust()) == frozenset(
        {("Service", "ecs-tasks.amazonaws.com")}
    )


def test_trusted_principals_ignores_deny_and_refuses_not_principal() -> None:
    deny = {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    with_deny = {"Statement": [*seed_trust()["Statement"], deny]}
    assert policy.trusted_principals(with_deny) == frozenset(
        {("Service", "ecs-tasks.amazonaws.com")}
    )
    not_principal = {"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "1"}}]}
    assert policy.trusted_principals(not_principal) is None
    assert policy.trusted_principals({"Statement": [{"Effect": "Allow"}]}) is None
    assert policy.trusted_principals("garbage") is None


# -- describe_difference -----------------------------------------------------------------------


def test_describe_added_principal() -> None:
    widened = seed_trust(
        Principal={"Service": "ecs-tasks.amazonaws.com", "AWS": "arn:aws:iam::999999999999:root"}
    )
    assert policy.describe_difference(seed_trust(), widened) == (
        "also allows AWS account 999999999999"
    )


def test_describe_principal_action_resource_effect_and_condition_changes() -> None:
    want = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": "1"}})
    got = seed_trust(
        Effect="Deny",
        Principal={"Service": "ec2.amazonaws.com"},
        Action=["sts:AssumeRole", "sts:TagSession"],
        Resource="*",
        Condition={"ArnLike": {"aws:SourceArn": "x"}},
    )
    text = policy.describe_difference(want, got)
    for fragment in (
        "has Effect Deny instead of Allow",
        "also allows Service ec2.amazonaws.com",
        "no longer allows Service ecs-tasks.amazonaws.com",
        "also denies action sts:tagsession",
        "also covers *",
        "adds condition ArnLike aws:SourceArn x",
        "drops condition StringEquals aws:SourceAccount",
    ):
        assert fragment in text


def test_describe_condition_value_changes() -> None:
    want = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": ["1", "2"]}})
    got = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": ["2", "3"]}})
    text = policy.describe_difference(want, got)
    assert "condition StringEquals aws:SourceAccount also accepts 3" in text
    assert "condition StringEquals aws:SourceAccount no longer accepts 1" in text


def test_describe_extra_and_missing_statements() -> None:
    extra = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:role/x"},
        "Action": "sts:TagSession",
    }
    widened = {"Version": "2012-10-17", "Statement": [*seed_trust()["Statement"], extra]}
    assert policy.describe_difference(seed_trust(), widened) == (
        "has an extra statement: Allow sts:tagsession to AWS arn:aws:iam::999999999999:role/x"
    )
    assert policy.describe_difference(widened, seed_trust()) == (
        "lacks the statement: Allow sts:tagsession to AWS arn:aws:iam::999999999999:role/x"
    )


def test_describe_version_id_and_unknown_elements() -> None:
    text = policy.describe_difference(
        seed_trust(), {**seed_trust(), "Version": "2008-10-17", "Id": "x", "Other": 1}
    )
    assert "has Version 2008-10-17 instead of 2012-10-17" in text
    assert "has Id 'x' instead of None" in text
    assert "other top-level elements" in text


def test_describe_limits_long_lists() -> None:
    got = seed_trust(Action=[f"sts:Action{i}" for i in range(10)])
    text = policy.describe_difference(seed_trust(), got)
    assert "and 7 more" in text


def test_describe_has_a_fallback_for_differences_without_a_summary() -> None:
    split = seed_trust(
        Condition={
            "StringEquals": {"aws:SourceAccount": "1"},
            "stringequals": {"aws:SourceAccount": "2"},
        }
    )
    joined = seed_trust(Condition={"StringEquals": {"aws:SourceAccount": ["1", "2"]}})
    assert not policy.equivalent(split, joined)  # AND of two keys is not OR of two values
    assert policy.describe_difference(joined, split) == "differs from the declared document"


def test_describe_equivalent_documents() -> None:
    assert policy.describe_difference(seed_trust(), seed_trust()) == "has no semantic difference"


# -- properties --------------------------------------------------------------------------------

_ACCOUNT_IDS = st.sampled_from(["111111111111", "222222222222", "333333333333"])
_AWS_PRINCIPALS = st.one_of(
    _ACCOUNT_IDS,
    _ACCOUNT_IDS.map(lambda account: f"arn:aws:iam::{account}:root"),
    st.builds(
        "arn:aws:iam::{}:role/{}".format, _ACCOUNT_IDS, st.sampled_from(["deploy", "ci", "Admin"])
    ),
)
_SERVICES = st.sampled_from(
    ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com", "lambda.amazonaws.com"]
)
_ACTIONS = st.sampled_from(
    ["sts:AssumeRole", "sts:TagSession", "s3:GetObject", "s3:PutObject", "kms:Decrypt", "ecr:*"]
)
_RESOURCES = st.sampled_from(
    ["*", "arn:aws:s3:::bucket/*", "arn:aws:s3:::Bucket/*", "arn:aws:kms:us-east-1:1:key/k"]
)
_CONDITION_OPERATORS = st.sampled_from(["StringEquals", "StringLike", "ArnLike", "Bool"])
_CONDITION_KEYS = st.sampled_from(["aws:SourceAccount", "aws:SourceArn", "aws:PrincipalTag/team"])
_CONDITION_VALUES = st.sampled_from(["111111111111", "arn:aws:ecs:us-east-1:1:*", "true", "A"])


def _values(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """A scalar or a non-empty list: both shapes IAM produces."""
    return st.one_of(strategy, st.lists(strategy, min_size=1, max_size=3))


_PRINCIPAL = st.one_of(
    st.fixed_dictionaries({"Service": _values(_SERVICES)}),
    st.fixed_dictionaries({"AWS": _values(_AWS_PRINCIPALS)}),
    st.fixed_dictionaries({"Service": _values(_SERVICES), "AWS": _values(_AWS_PRINCIPALS)}),
)
_CONDITION = st.dictionaries(
    _CONDITION_OPERATORS,
    st.dictionaries(_CONDITION_KEYS, _values(_CONDITION_VALUES), min_size=1, max_size=2),
    min_size=1,
    max_size=2,
)
_STATEMENT = st.fixed_dictionaries(
    {"Effect": st.sampled_from(["Allow", "Deny"]), "Action": _values(_ACTIONS)},
    optional={
        "Sid": st.sampled_from(["", "One", "Two"]),
        "Principal": _PRINCIPAL,
        "Resource": _values(_RESOURCES),
        "Condition": _CONDITION,
    },
)
DOCUMENTS = st.fixed_dictionaries(
    {"Statement": st.lists(_STATEMENT, min_size=1, max_size=4)},
    optional={"Version": st.just("2012-10-17")},
)


def _flip_case(text: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def _as_values(value: Any, rng: random.Random) -> Any:
    values = list(value) if isinstance(value, list) else [value]
    rng.shuffle(values)
    if rng.random() < 0.2:
        values.append(rng.choice(values))  # duplicates mean nothing in a set
    if len(values) == 1 and rng.random() < 0.5:
        return values[0]
    return values


def _shuffled(items: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    keys = list(items)
    rng.shuffle(keys)
    return {key: items[key] for key in keys}


def _account_principal(value: str, rng: random.Random) -> str:
    if value.isdigit():
        return f"arn:aws:iam::{value}:root" if rng.random() < 0.5 else value
    if value.endswith(":root") and rng.random() < 0.5:
        return value.split(":")[4]
    return value


def equivalent_variant(document: dict[str, Any], rng: random.Random) -> Any:
    """Every rewriting the module promises to see through, applied at random."""
    statements = []
    for original in document["Statement"]:
        statement = dict(original)
        if statement.get("Sid") == "" and rng.random() < 0.5:
            del statement["Sid"]
        elif "Sid" not in statement and rng.random() < 0.3:
            statement["Sid"] = ""
        statement["Action"] = _as_values(
            [
                _flip_case(a, rng)
                for a in (
                    original["Action"]
                    if isinstance(original["Action"], list)
                    else [original["Action"]]
                )
            ],
            rng,
        )
        if "Resource" in statement:
            statement["Resource"] = _as_values(statement["Resource"], rng)
        if "Principal" in statement:
            principal = {}
            for principal_type, values in statement["Principal"].items():
                values = _as_values(values, rng)
                if principal_type == "AWS":
                    values = (
                        [_account_principal(v, rng) for v in values]
                        if isinstance(values, list)
                        else _account_principal(values, rng)
                    )
                principal[principal_type] = values
            statement["Principal"] = _shuffled(principal, rng)
        if "Condition" in statement:
            statement["Condition"] = _shuffled(
                {
                    _flip_case(operator, rng): {
                        _flip_case(key, rng): _as_values(values, rng)
                        for key, values in block.items()
                    }
                    for operator, block in statement["Condition"].items()
                },
                rng,
            )
        statements.append(_shuffled(statement, rng))
    rng.shuffle(statements)
    variant: dict[str, Any] = {
        "Statement": statements[0] if len(statements) == 1 and rng.random() < 0.3 else statements
    }
    if "Version" in document or rng.random() < 0.5:
        variant["Version"] = "2012-10-17"  # IAM inserts it
    variant = _shuffled(variant, rng)
    form = rng.randrange(3)
    if form == 0:
        return variant
    text = json.dumps(variant)
    return text if form == 1 else urllib.parse.quote(text, safe="")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _distinct(document: dict[str, Any]) -> dict[str, Any]:
    """Give each statement a unique action, so that no two statements can ever coincide.

    Changing or removing one statement then always changes the set of statements, and the
    properties below need no knowledge of the module under test to know that they did.
    """
    for index, statement in enumerate(document["Statement"]):
        statement["Action"] = [*_as_list(statement["Action"]), f"unique:Statement{index}"]
    return document


DISTINCT_DOCUMENTS = DOCUMENTS.map(_distinct)


def semantic_change(document: dict[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One change IAM would evaluate differently; added values come from outside every pool."""
    changed = copy.deepcopy(document)
    statements = changed["Statement"]
    target = rng.choice(statements)
    kind = rng.choice(
        [
            "add-principal",
            "add-action",
            "add-resource",
            "add-statement",
            "remove-statement",
            "add-condition",
            "add-condition-value",
            "flip-effect",
            "remove-action",
            "remove-principal",
        ]
    )
    if kind == "add-principal":
        principal = target.setdefault("Principal", {})
        principal["AWS"] = [*_as_list(principal.get("AWS", [])), "arn:aws:iam::4:role/added"]
    elif kind == "add-action":
        target["Action"] = [*_as_list(target["Action"]), "added:Action"]
    elif kind == "add-resource":
        target["Resource"] = [*_as_list(target.get("Resource", [])), "arn:aws:s3:::added/*"]
    elif kind == "add-statement":
        statements.append({"Effect": "Allow", "Action": "added:Statement", "Resource": "*"})
    elif kind == "remove-statement":
        statements.remove(target)
    elif kind == "add-condition":
        target.setdefault("Condition", {}).setdefault("StringEquals", {})["added:Key"] = "v"
    elif kind == "add-condition-value":
        condition = target.setdefault("Condition", {"StringEquals": {"aws:SourceAccount": "1"}})
        block = next(iter(condition.values()))
        key = next(iter(block))
        block[key] = [*_as_list(block[key]), "added-value"]
    elif kind == "flip-effect":
        target["Effect"] = "Deny" if target["Effect"] == "Allow" else "Allow"
    elif kind == "remove-action":
        # The unique marker is the last action; drop the first (and any case variant of it).
        actions = _as_list(target["Action"])
        target["Action"] = [a for a in actions if a.lower() != actions[0].lower()]
    else:  # remove-principal
        principal = target.get("Principal")
        if not principal:
            target["Principal"] = {"Service": "added.amazonaws.com"}
        else:
            target["Principal"] = {k: v for k, v in principal.items() if k != next(iter(principal))}
            if not target["Principal"]:
                del target["Principal"]
    return kind, changed


@PROPERTY_SETTINGS
@given(document=DOCUMENTS, rng=st.randoms(use_true_random=False))
def test_property_equivalent_variants_never_diff(
    document: dict[str, Any], rng: random.Random
) -> None:
    variant = equivalent_variant(document, rng)
    assert policy.equivalent(document, variant)
    assert policy.equivalent(variant, document)
    assert policy.normalize(document) == policy.normalize(variant)
    assert policy.describe_difference(document, variant) == "has no semantic difference"


@PROPERTY_SETTINGS
@given(document=DISTINCT_DOCUMENTS, rng=st.randoms(use_true_random=False))
def test_property_semantic_changes_always_diff(
    document: dict[str, Any], rng: random.Random
) -> None:
    kind, changed = semantic_change(document, rng)
    assert not policy.equivalent(document, changed), kind
    assert not policy.equivalent(changed, document), kind
    assert not policy.equivalent(
        equivalent_variant(document, rng), equivalent_variant(changed, rng)
    ), kind
    description = policy.describe_difference(document, changed)
    assert description
    assert description != "has no semantic difference"
