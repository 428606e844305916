"""Round trips through a strict fake IAM, for generated specs.

- create: whatever IAM does to the documents on the way back, a freshly created role has no drift;
- update: whatever an outsider changed, one diff drives one plan that puts the role back (except
  an undeclared boundary, which is reported and never removed), touching no ignored tag;
- crash: a plan cut off after any call converges when recomputed from a fresh observation;
- deltas: for any observed role, the plan made from the drifts' deltas alone (no desired, no
  observed role, no ignored keys) puts it back when applied to that role.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecsrole.core import config, desired, diff, model, plan, policy, spec

from .applied import applied
from .fake_iam import FakeIam, StoredRole, iam_format

pytestmark = pytest.mark.unit

Aspect = model.Aspect
ROUNDTRIP_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
REGIONS = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}
NAMESPACE = "team-a"
IGNORED_TAG = "CostCenter"

_DESCRIPTION_CHARS = "\t\n" + string.printable[:94] + " " + "".join(map(chr, range(0xA1, 0x100)))
_TAG_CHARS = string.ascii_letters + string.digits + " _.:/=+-@é"
_ROLE_NAME_CHARS = string.ascii_letters + string.digits + "+=,.@_-"


@dataclass(frozen=True)
class Scenario:
    """One generated spec with an account configuration that allows it."""

    role_spec: spec.RoleSpec
    account: config.AccountConfig
    partition: str
    owner: model.Owner

    def desired(self) -> model.DesiredRole:
        result = desired.build_desired(
            self.role_spec,
            self.account,
            namespace=NAMESPACE,
            partition=self.partition,
            owner=self.owner,
        )
        assert isinstance(result, model.DesiredRole), result
        return result


def _tag_key_ok(key: str) -> bool:
    return (
        not key.lower().startswith(("aws:", "ecsrole.dev/")) and key.lower() != IGNORED_TAG.lower()
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    partition = draw(st.sampled_from(sorted(REGIONS)))
    region = REGIONS[partition]
    account_id = draw(st.from_regex(r"[0-9]{12}", fullmatch=True))
    prefix = draw(st.sampled_from(["/", "/ecs/", "/ecs/team-a/"]))
    path = prefix + draw(st.sampled_from(["", "web/", "a.b/"]))
    arn = f"{partition}:%s:{region}:{account_id}"

    def arn_of(service: str, resource: str) -> str:
        return f"arn:{arn % service}:{resource}"

    names = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=12)
    secrets = st.lists(
        st.builds(
            lambda name, suffix: arn_of("secretsmanager", f"secret:team-a/{name}{suffix}"),
            names,
            st.sampled_from(["", "-??????", "-AbCdEf"]),
        ),
        max_size=3,
    )
    parameters = st.lists(names.map(lambda n: arn_of("ssm", f"parameter/team-a/{n}")), max_size=3)
    keys = st.lists(
        st.from_regex(r"[0-9a-f]{8}-[0-9a-f]{4}", fullmatch=True).map(
            lambda k: arn_of("kms", f"key/{k}")
        ),
        max_size=2,
    )
    source_arns = st.lists(
        st.sampled_from(["*", "cluster/prod", "task/prod/*"]).map(lambda r: arn_of("ecs", r)),
        max_size=2,
    )
    tag_keys = st.text(alphabet=_TAG_CHARS, min_size=1, max_size=16).filter(_tag_key_ok)
    tag_values = st.text(alphabet=_TAG_CHARS, max_size=16)
    tags = draw(
        st.lists(st.tuples(tag_keys, tag_values), max_size=8, unique_by=lambda kv: kv[0].lower())
    )
    seed_policies = [
        f"arn:{partition}:iam::aws:policy/ReadOnlyAccess",
        f"arn:{partition}:iam::{account_id}:policy/team-a/read",
        f"arn:{partition}:iam::{account_id}:policy/team-a/write",
    ]
    account_boundary = draw(
        st.sampled_from([None, f"arn:{partition}:iam::{account_id}:policy/bound"])
    )
    spec_boundary = (
        draw(st.sampled_from([None, account_boundary]))
        if account_boundary
        else draw(st.sampled_from([None, f"arn:{partition}:iam::aws:policy/PowerUserAccess"]))
    )
    role_spec = spec.parse_spec(
        {
            "accountId": account_id,
            "roleName": draw(st.text(alphabet=_ROLE_NAME_CHARS, min_size=1, max_size=64)),
            "path": path,
            "description": draw(st.text(alphabet=_DESCRIPTION_CHARS, max_size=40)),
            "maxSessionDuration": draw(st.integers(3600, 43200)),
            "permissionsBoundaryArn": spec_boundary,
            "tags": dict(tags),
            "trust": {
                "sourceAccounts": draw(st.sampled_from([[], [account_id]])),
                "sourceArns": draw(source_arns),
            },
            "permissions": {
                "secretArns": draw(secrets),
                "parameterArns": draw(parameters),
                "kmsKeyArns": draw(keys),
                "createLogGroups": draw(st.booleans()),
            },
            "additionalPolicyArns": draw(st.lists(st.sampled_from(seed_policies), max_size=3)),
        }
    )
    account = config.AccountConfig(
        account_id=account_id,
        namespaces=(NAMESPACE,),
        role_path_prefix=prefix,
        permissions_boundary_arn=account_boundary,
        allowed_policy_arns=(
            f"arn:{partition}:iam::aws:policy/ReadOnlyAccess",
            f"arn:{partition}:iam::{account_id}:policy/team-a/*",
        ),
        allowed_resource_patterns={
            "team-*": (
                f"arn:{partition}:secretsmanager:*:{account_id}:secret:team-a/*",
                f"arn:{partition}:ssm:*:{account_id}:parameter/team-a/*",
                f"arn:{partition}:kms:*:{account_id}:key/*",
            )
        },
        ignored_tag_keys=draw(st.sampled_from([(), (IGNORED_TAG,)])),
    )
    owner = model.Owner(
        cluster=draw(st.sampled_from(["prod-eu-1", "dev"])),
        namespace=NAMESPACE,
        name=draw(names),
        uid=draw(st.uuids()).hex,
    )
    return Scenario(role_spec, account, partition, owner)


# -- outsider edits --------------------------------------------------------------------------

Edit = Callable[[StoredRole, Scenario, random.Random], None]


def _admin(scenario: Scenario) -> str:
    return f"arn:{scenario.partition}:iam::aws:policy/AdministratorAccess"


def attach_admin(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    role.managed.add(_admin(scenario))


def detach_something(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    if role.managed:
        role.managed.remove(rng.choice(sorted(role.managed)))


def add_inline_backdoor(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    role.inline["backdoor"] = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def widen_or_drop_inline(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    if "ecsrole-permissions" not in role.inline:
        return
    if rng.random() < 0.5:
        del role.inline["ecsrole-permissions"]
    else:
        role.inline["ecsrole-permissions"]["Statement"][0]["Resource"] = "*"


def widen_trust(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    statement = role.trust["Statement"][0]
    choice = rng.randrange(3)
    if choice == 0 and isinstance(statement["Principal"], dict):
        statement["Principal"] = {**statement["Principal"], "AWS": "999999999999"}
    elif choice == 1:
        statement.pop("Condition", None)
        statement["Principal"] = "*"
    else:
        role.trust["Statement"].append(
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        )


def edit_tags(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    declared = [k for k in role.tags if not k.startswith("ecsrole.dev/")]
    choice = rng.randrange(4)
    if choice == 0:
        role.tags["extra"] = "x"
    elif choice == 1 and declared:
        key = rng.choice(declared)
        role.tags[key] = role.tags[key] + "-changed"
    elif choice == 2 and declared:
        key = rng.choice(declared)
        if key.swapcase() != key:
            role.tags[key.swapcase()] = role.tags.pop(key)
    else:
        role.tags.pop(rng.choice(sorted(k for k in role.tags if k.startswith("ecsrole.dev/"))))


def add_ignored_tag(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    for key in [k for k in role.tags if k.lower() == IGNORED_TAG.lower()]:
        del role.tags[key]  # IAM keeps one spelling of a key
    role.tags[rng.choice([IGNORED_TAG, IGNORED_TAG.lower()])] = "org-automation"


def edit_description(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    role.description = rng.choice([None, "hand edit"])


def edit_session(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    role.max_session_duration = rng.choice([3600, 7200, 43200])


def edit_boundary(role: StoredRole, scenario: Scenario, rng: random.Random) -> None:
    role.boundary = rng.choice([None, f"arn:{scenario.partition}:iam::aws:policy/Other"])


EDITS: tuple[Edit, ...] = (
    attach_admin,
    detach_something,
    add_inline_backdoor,
    widen_or_drop_inline,
    widen_trust,
    edit_tags,
    add_ignored_tag,
    edit_description,
    edit_session,
    edit_boundary,
)


def created(scenario: Scenario, rng: random.Random) -> tuple[model.DesiredRole, FakeIam]:
    role = scenario.desired()
    iam = FakeIam(role.account_id, role.partition, rng)
    iam.apply(plan.plan_create(role))
    return role, iam


def observe(iam: FakeIam, role: model.DesiredRole) -> model.ObservedRole:
    observed = iam.observe(role.role_name)
    assert observed is not None
    return observed


def assert_stored_as_declared(iam: FakeIam, role: model.DesiredRole) -> None:
    """Check the fake's state directly, so that a blind spot in diff cannot hide itself."""
    stored = iam.roles[role.role_name.lower()]
    assert stored.managed == role.managed_policy_arns
    assert stored.inline.keys() == role.inline_policies.keys()
    for name, document in role.inline_policies.items():
        assert policy.equivalent(stored.inline[name], document)
    assert policy.equivalent(stored.trust, role.trust_policy)
    assert (stored.description or "") == role.description
    assert stored.max_session_duration == role.max_session_duration
    if role.permissions_boundary_arn is not None:
        assert stored.boundary == role.permissions_boundary_arn
    ignored = {key.lower() for key in role.ignored_tag_keys}
    assert {k: v for k, v in stored.tags.items() if k.lower() not in ignored} == {
        k: v for k, v in role.tags.items() if k.lower() not in ignored
    }


def unfixable(role: model.DesiredRole, drifts: tuple[model.Drift, ...]) -> bool:
    """Only an undeclared boundary may remain: the operator never removes one."""
    return role.permissions_boundary_arn is None and [d.aspect for d in drifts] == [
        Aspect.PermissionsBoundary
    ]


# -- properties ------------------------------------------------------------------------------


@ROUNDTRIP_SETTINGS
@given(scenario=scenarios(), rng=st.randoms(use_true_random=False))
def test_created_role_reads_back_without_drift(scenario: Scenario, rng: random.Random) -> None:
    role, iam = created(scenario, rng)
    assert_stored_as_declared(iam, role)
    for _ in range(3):  # IAM may format the documents differently on every read
        assert diff.diff(role, observe(iam, role)) == ()


@ROUNDTRIP_SETTINGS
@given(
    scenario=scenarios(),
    edits=st.lists(st.sampled_from(EDITS), min_size=1, max_size=5),
    rng=st.randoms(use_true_random=False),
)
def test_one_diff_drives_an_update_that_removes_all_drift(
    scenario: Scenario, edits: list[Edit], rng: random.Random
) -> None:
    role, iam = created(scenario, rng)
    stored = iam.roles[role.role_name.lower()]
    for edit in edits:
        edit(stored, scenario, rng)
    ignored_before = {k: v for k, v in stored.tags.items() if k.lower() == IGNORED_TAG.lower()}

    observed = observe(iam, role)
    drifts = diff.diff(role, observed)
    operations = plan.plan_update(observed.role_name, drifts)
    assert {a for op in operations for a in op.aspects} <= {d.aspect for d in drifts}
    _assert_restrictive_first(operations)
    iam.apply(operations)

    after = observe(iam, role)
    remaining = diff.diff(role, after)
    assert remaining == () or unfixable(role, remaining), remaining
    assert_stored_as_declared(iam, role)
    assert plan.plan_update(after.role_name, remaining) == ()
    ignored = {k: v for k, v in after.tags.items() if k.lower() == IGNORED_TAG.lower()}
    if scenario.account.ignored_tag_keys:
        assert ignored == ignored_before
    else:
        assert ignored == {}


@ROUNDTRIP_SETTINGS
@given(
    scenario=scenarios(),
    edits=st.lists(st.sampled_from(EDITS), min_size=1, max_size=5),
    cut=st.integers(min_value=0, max_value=20),
    rng=st.randoms(use_true_random=False),
)
def test_plan_cut_off_by_a_crash_converges_when_recomputed(
    scenario: Scenario, edits: list[Edit], cut: int, rng: random.Random
) -> None:
    role, iam = created(scenario, rng)
    for edit in edits:
        edit(iam.roles[role.role_name.lower()], scenario, rng)
    observed = observe(iam, role)
    iam.apply(plan.plan_update(observed.role_name, diff.diff(role, observed))[:cut])

    observed = observe(iam, role)
    iam.apply(plan.plan_update(observed.role_name, diff.diff(role, observed)))
    remaining = diff.diff(role, observe(iam, role))
    assert remaining == () or unfixable(role, remaining), remaining
    assert_stored_as_declared(iam, role)


@ROUNDTRIP_SETTINGS
@given(
    scenario=scenarios(),
    cut=st.integers(min_value=1, max_value=6),
    rng=st.randoms(use_true_random=False),
)
def test_create_cut_off_by_a_crash_converges(
    scenario: Scenario, cut: int, rng: random.Random
) -> None:
    role = scenario.desired()
    iam = FakeIam(role.account_id, role.partition, rng)
    iam.apply(plan.plan_create(role)[:cut])
    observed = iam.observe(role.role_name)
    assert observed is not None
    assert (
        diff.diff(role, observed, ignore_aspects={Aspect.ManagedPolicy, Aspect.InlinePolicy}) == ()
    )
    iam.apply(plan.plan_update(observed.role_name, diff.diff(role, observed)))
    assert diff.diff(role, observe(iam, role)) == ()
    assert_stored_as_declared(iam, role)


@ROUNDTRIP_SETTINGS
@given(scenario=scenarios(), rng=st.randoms(use_true_random=False))
def test_delete_and_release_against_the_created_role(
    scenario: Scenario, rng: random.Random
) -> None:
    role, iam = created(scenario, rng)
    observed = observe(iam, role)
    iam.apply(plan.plan_release(observed))
    released = observe(iam, role)
    assert not any(k.startswith("ecsrole.dev/") for k in released.tags)
    assert dict(released.tags) == dict(scenario.role_spec.tags)
    iam.apply(plan.plan_delete(released))
    assert iam.observe(role.role_name) is None


@st.composite
def observed_roles(draw: st.DrawFn, role: model.DesiredRole) -> model.ObservedRole | None:
    """Any role IAM might hold under `role`'s name: each aspect as declared (in IAM's formatting),
    changed, missing or added to; tag keys in other letter cases; the ignored key in any case."""
    if draw(st.integers(0, 19)) == 0:
        return None
    rng = draw(st.randoms(use_true_random=False))
    partition, account = role.partition, role.account_id
    admin = f"arn:{partition}:iam::aws:policy/AdministratorAccess"
    other_boundary = f"arn:{partition}:iam::{account}:policy/other-bound"
    widened = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

    trust = draw(
        st.sampled_from(
            [
                iam_format(role.trust_policy, rng),
                {
                    **role.trust_policy,
                    "Statement": [{**_first(role.trust_policy), "Principal": "*"}],
                },
                {
                    **role.trust_policy,
                    "Statement": [_first(role.trust_policy), widened["Statement"][0]],
                },
            ]
        )
    )
    managed = draw(st.sets(st.sampled_from(sorted({*role.managed_policy_arns, admin}))))
    inline: dict[str, str | Mapping[str, Any]] = {}
    for name in sorted({*role.inline_policies, "backdoor"}):
        choice = draw(st.sampled_from(["absent", "declared", "widened"]))
        if choice == "declared" and name in role.inline_policies:
            inline[name] = iam_format(dict(role.inline_policies[name]), rng)
        elif choice == "widened":
            inline[name] = widened
    tags: dict[str, tuple[str, str]] = {}  # folded key -> (key as IAM holds it, value)
    for key, value in role.tags.items():
        choice = draw(st.sampled_from(["same", "absent", "value", "recased", "recased value"]))
        if choice == "absent":
            continue
        shown = key.swapcase() if choice.startswith("recased") else key
        tags[key.lower()] = (shown, value + "-changed" if choice.endswith("value") else value)
    for key in draw(st.lists(st.sampled_from(["extra", "Extra", "ecsrole.dev/Other"]), max_size=2)):
        tags.setdefault(key.lower(), (key, "x"))
    if draw(st.booleans()):
        ignored = draw(st.sampled_from([IGNORED_TAG, IGNORED_TAG.lower(), IGNORED_TAG.upper()]))
        tags[ignored.lower()] = (ignored, "org-automation")
    return model.ObservedRole(
        arn=role.arn,
        role_id="AROAGENERATED",
        role_name=draw(st.sampled_from([role.role_name, role.role_name.swapcase()])),
        path=role.path,
        trust_policy=trust,
        description=draw(st.sampled_from([role.description, "", "hand edit"])),
        max_session_duration=draw(st.sampled_from([role.max_session_duration, 3600, 43200])),
        permissions_boundary_arn=draw(
            st.sampled_from([role.permissions_boundary_arn, None, other_boundary])
        ),
        managed_policy_arns=managed,
        inline_policies=inline,
        tags=dict(tags.values()),
    )


def _first(document: Mapping[str, Any]) -> dict[str, Any]:
    statements = document["Statement"]
    return dict(statements[0] if isinstance(statements, list) else statements)


@ROUNDTRIP_SETTINGS
@given(data=st.data(), scenario=scenarios())
def test_the_deltas_alone_repair_any_observed_role(data: st.DataObject, scenario: Scenario) -> None:
    """Applying the plan made from the drifts' deltas to the observed role leaves no drift.

    The plan sees only the role's name and the drifts: whatever it needs to put the role back
    must be in the deltas. Ignored tag keys are left exactly as found (spelling and value): the
    desired role carries them, and they are applied once, in diff.
    """
    role = scenario.desired()
    observed = data.draw(observed_roles(role), label="observed")
    drifts = diff.diff(role, observed)
    if observed is None:
        operations = plan.plan_update(role.role_name, drifts)
        assert operations == plan.plan_create(role)
    else:
        operations = plan.plan_update(observed.role_name, drifts)
        assert {a for op in operations for a in op.aspects} <= {d.aspect for d in drifts}
        _assert_restrictive_first(operations)

    after = applied(observed, operations)
    remaining = diff.diff(role, after)
    assert remaining == () or unfixable(role, remaining), remaining
    assert plan.plan_update(after.role_name, remaining) == ()
    if scenario.account.ignored_tag_keys and observed is not None:

        def ignored(tags: Mapping[str, str]) -> dict[str, str]:
            return {k: v for k, v in tags.items() if k.lower() == IGNORED_TAG.lower()}

        assert ignored(after.tags) == ignored(observed.tags)


def _assert_restrictive_first(operations: tuple[model.Operation, ...]) -> None:
    additive = {"AttachRolePolicy", "TagRole", "UpdateRole"}
    restrictive = {
        "PutRolePermissionsBoundary",
        "UpdateAssumeRolePolicy",
        "DetachRolePolicy",
        "DeleteRolePolicy",
        "UntagRole",
    }
    seen_additive = False
    for operation in operations:
        if operation.action in additive:
            seen_additive = True
        assert not (seen_additive and operation.action in restrictive), [
            op.action for op in operations
        ]


def test_scenarios_cover_every_partition() -> None:
    """Guard against a strategy that silently stops generating a partition."""
    seen: set[str] = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(scenario=scenarios())
    def collect(scenario: Scenario) -> None:
        seen.add(scenario.partition)

    collect()
    assert seen == set(REGIONS)
