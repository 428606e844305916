"""`ecsrole diff` and the operator decide alike (issue 18): same decision, message and calls.

For each generated situation (a manifest, the operator's configuration, the role in IAM, an
earlier claim, the credentials' account) the diff judges the manifest over a read-only view of
a fake IAM, then the Reconciler reconciles the same resource, newly applied, against that IAM.
The diff must have predicted exactly what the operator then did: the same refusal or pause
with the same reason and message, the same IAM calls in the same order with the same
parameters, and the same drift left reported.

The inputs stay clear of the diff's two documented differences (a manifest has no uid, and no
status): the resource is new (empty status), and a role never carries this resource's cluster,
namespace and name tags with another uid. The uid the diff cannot know appears in its planned
calls as `diff.UID_PLACEHOLDER`, and is compared as the uid the resource got.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecsrole.aws.errors import AwsCallError, FailureKind, NotFoundError
from ecsrole.aws.iam import CallerIdentity
from ecsrole.context import OperatorContext
from ecsrole.core import claims, constants, desired, model, plan, spec
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.reconciler import Reconciler, Resource, Result
from ecsrole.tools import diff, manifests
from tests.stack.resources import EC2_TRUST, SEED_TRUST
from tests.unit import factories
from tests.unit.fake_iam import EPOCH, FakeIam, IamError, StoredRole

pytestmark = pytest.mark.unit

ACCOUNT = factories.ACCOUNT_ID
CLUSTER = "prod-eu-1"
UID = "uid-applied-1"
CREATED = EPOCH + datetime.timedelta(days=1)
OPERATOR_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/ecsrole-operator/session"
SEED_POLICY = factories.SEED_POLICY

#: Role names: an ordinary one, one listed in protectedRoleNames, the operator's own.
ROLE_NAMES = ("web-exec", "break-glass", "ecsrole-operator")
#: What is in IAM under the role name before the resource is applied.
ROLES = ("none", "unowned", "ec2-trust", "other-cluster", "ours-before-crash", "elsewhere")
#: Changes made to an existing role outside the spec.
CHANGES = ("admin-attached", "extra-inline", "description", "team-tag", "ignored-tag", "boundary")


@dataclasses.dataclass(frozen=True)
class Situation:
    namespace: str
    account_id: str
    identity_account: str
    role_name: str
    spec_extra: dict[str, Any]
    paused: bool
    earlier_claim: bool
    allow_adoption: bool
    role: str
    changes: frozenset[str]


SPEC_EXTRAS = st.sampled_from(
    [
        {},
        {"adopt": True},
        {"adopt": True, "driftPolicy": "Report"},
        {"driftPolicy": "Report"},
        {"description": "the web tier"},
        {"maxSessionDuration": "long"},  # InvalidSpec
        {"path": "/other/"},  # outside the account's role path prefix
        {"additionalPolicyArns": [factories.ADMIN_POLICY]},  # PolicyNotAllowed
        {"additionalPolicyArns": [factories.READONLY_POLICY], "adopt": True},
        {"permissions": {"secretArns": [factories.SECRET]}, "tags": {"team": "a"}},
    ]
)

SITUATIONS = st.builds(
    Situation,
    # Weighted towards resources that pass the checks, so the later decisions get their share.
    namespace=st.sampled_from(["team-a"] * 6 + ["team-b-web", "rogue"]),
    account_id=st.sampled_from([ACCOUNT] * 7 + [factories.OTHER_ACCOUNT_ID]),
    identity_account=st.sampled_from([ACCOUNT] * 9 + [factories.OTHER_ACCOUNT_ID]),
    role_name=st.sampled_from([ROLE_NAMES[0]] * 4 + list(ROLE_NAMES[1:])),
    spec_extra=SPEC_EXTRAS,
    paused=st.sampled_from([False] * 3 + [True]),
    earlier_claim=st.sampled_from([False] * 5 + [True]),
    allow_adoption=st.sampled_from([True] * 3 + [False]),
    role=st.sampled_from([*ROLES, "unowned", "ours-before-crash"]),
    changes=st.frozensets(st.sampled_from(CHANGES), max_size=3),
)


def operator_config(situation: Situation) -> OperatorConfig:
    entry = factories.account(
        allow_adoption=situation.allow_adoption, ignored_tag_keys=("CostCentre",)
    )
    return OperatorConfig(
        cluster_name=CLUSTER, accounts={ACCOUNT: entry}, protected_role_names=("break-glass",)
    )


def spec_of(situation: Situation) -> dict[str, Any]:
    return factories.spec_dict(
        accountId=situation.account_id, roleName=situation.role_name, **situation.spec_extra
    )


def annotations_of(situation: Situation) -> dict[str, str]:
    return {constants.PAUSED_ANNOTATION: "true"} if situation.paused else {}


# -- the IAM both see --------------------------------------------------------------------------


def seeded_iam(situation: Situation, config: OperatorConfig) -> FakeIam:
    """The account's IAM with the situation's role in it (if any), changed as it says."""
    fake = FakeIam(ACCOUNT, "aws", clock=lambda: CREATED + datetime.timedelta(minutes=1))
    name = situation.role_name
    if situation.role == "none":
        return fake
    if situation.role == "ours-before-crash" and _create_as_the_operator(fake, situation, config):
        stored = fake.roles[name.lower()]
    else:
        tags = {"team": "a"}
        if situation.role == "other-cluster":
            tags.update(
                {
                    constants.TAG_CLUSTER: "another-cluster",
                    constants.TAG_NAMESPACE: situation.namespace,
                    constants.TAG_NAME: "web",
                    constants.TAG_UID: "uid-elsewhere",
                }
            )
        stored = StoredRole(
            name=name,
            path="/legacy/" if situation.role == "elsewhere" else "/ecs/",
            role_id=fake.new_role_id(),
            trust=json.loads(
                json.dumps(EC2_TRUST if situation.role == "ec2-trust" else SEED_TRUST)
            ),
            managed={SEED_POLICY},
            tags=tags,
            create_date=EPOCH,
        )
        fake.roles[name.lower()] = stored
    _change(stored, situation.changes)
    return fake


def _create_as_the_operator(fake: FakeIam, situation: Situation, config: OperatorConfig) -> bool:
    """CreateRole and the policies as the resource's own reconcile made them, then a crash."""
    try:
        parsed = spec.parse_spec(spec_of(situation))
    except spec.SpecError:
        return False
    account = config.account(parsed.account_id)
    if account is None:
        return False
    owner = model.Owner(CLUSTER, situation.namespace, "web", UID)
    role = desired.build_desired(
        parsed, account, namespace=situation.namespace, partition="aws", owner=owner
    )
    if not isinstance(role, model.DesiredRole):
        return False
    fake.apply(plan.plan_create(role))
    fake.calls.clear()
    return True


def _change(stored: StoredRole, changes: frozenset[str]) -> None:
    if "admin-attached" in changes:
        stored.managed.add(factories.ADMIN_POLICY)
    if "extra-inline" in changes:
        stored.inline["extra"] = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
    if "description" in changes:
        stored.description = "changed by hand"
    if "team-tag" in changes:
        stored.tags["team"] = "b"
    if "ignored-tag" in changes:
        stored.tags["CostCentre"] = "42"
    if "boundary" in changes:
        stored.boundary = factories.BOUNDARY


# -- the two sides -----------------------------------------------------------------------------


class FakeReader:
    """The diff's read-only view: the same reads, nothing else."""

    def __init__(self, fake: FakeIam, identity: CallerIdentity) -> None:
        self.fake = fake
        self.identity = identity

    def caller_identity(self) -> CallerIdentity:
        return self.identity

    def read_role(self, role_name: str) -> model.ObservedRole | None:
        return self.fake.observe(role_name)


class FakeAdapter:
    """The IAM adapter's interface over the fake IAM, errors translated as the adapter does."""

    def __init__(self, fake: FakeIam) -> None:
        self.fake = fake

    def read_role(self, role_name: str, **_: Any) -> model.ObservedRole | None:
        return self.fake.observe(role_name)

    def apply(self, operations: Any) -> dict[str, Any] | None:
        created = None
        for operation in operations:
            try:
                self.fake.call(operation)
            except IamError as error:
                if error.code == "NoSuchEntity" and operation.absent_target_means_done:
                    continue
                kind = NotFoundError if error.code == "NoSuchEntity" else AwsCallError
                raise kind(
                    FailureKind.AWS_ERROR, operation.action, error.code, str(error)
                ) from error
            if operation.action == "CreateRole":
                role = self.fake.roles[operation.params["RoleName"].lower()]
                created = {
                    "Arn": f"arn:aws:iam::{ACCOUNT}:role{role.path}{role.name}",
                    "RoleId": role.role_id,
                }
        return created


class Context(OperatorContext):
    """The operator's context with its AWS side on the fake IAM."""

    fake_adapter: FakeAdapter
    identity: CallerIdentity

    def adapter(self, account: AccountConfig) -> Any:
        return self.fake_adapter

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        return self.identity


@pytest.fixture(scope="module")
def pool() -> Any:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown()


def judge_with_diff(
    situation: Situation, config: OperatorConfig, fake: FakeIam, identity: CallerIdentity
) -> diff.RoleDiff:
    earlier = manifests.Manifest(
        source="earlier.yaml",
        namespace="team-a",
        name="older",
        spec=factories.spec_dict(roleName=situation.role_name.upper()),
        annotations={},
    )
    item = manifests.Manifest(
        source="web.yaml",
        namespace=situation.namespace,
        name="web",
        spec=spec_of(situation),
        annotations=annotations_of(situation),
    )
    items = [earlier, item] if situation.earlier_claim else [item]
    reader = FakeReader(fake, identity)
    results = diff.evaluate_all(items, config=config, reader=lambda _account: reader)
    return results[-1]


def reconcile_with_operator(
    situation: Situation,
    config: OperatorConfig,
    fake: FakeIam,
    identity: CallerIdentity,
    pool: ThreadPoolExecutor,
) -> Result:
    context = Context(config=config, clients=None, pool=pool)  # type: ignore[arg-type]
    context.fake_adapter = FakeAdapter(fake)
    context.identity = identity
    created = "2026-01-02T00:00:00Z"
    own = claims.claim_of(
        config,
        namespace=situation.namespace,
        uid=UID,
        created=created,
        spec=spec_of(situation),
        status={},
    )
    rivals = []
    if situation.earlier_claim:
        rivals.append(
            claims.claim_of(
                config,
                namespace="team-a",
                uid="uid-older",
                created="2026-01-01T00:00:00Z",
                spec=factories.spec_dict(roleName=situation.role_name.upper()),
                status={},
            )
        )
    on_key = [c for c in (*rivals, own) if c is not None and own is not None and c.key == own.key]
    resource = Resource(
        namespace=situation.namespace,
        name="web",
        uid=UID,
        generation=1,
        created=CREATED,
        spec=spec_of(situation),
        annotations=annotations_of(situation),
        status={},
    )
    conflicting = claims.is_conflicting(on_key, UID) if own is not None else bool(rivals)
    return Reconciler(context).reconcile(resource, conflicting=conflicting)


def _known_uid(value: Any) -> Any:
    """The diff's planned parameters with the placeholder replaced by the applied uid."""
    return json.loads(json.dumps(value).replace(diff.UID_PLACEHOLDER, UID))


def calls(operations: Any) -> list[tuple[str, Any]]:
    return [(op.action, _known_uid(dict(op.params))) for op in operations]


# -- the property ------------------------------------------------------------------------------


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(situation=SITUATIONS)
def test_diff_predicts_exactly_what_the_operator_does(
    situation: Situation, pool: ThreadPoolExecutor
) -> None:
    check(situation, pool)


BASE = Situation(
    namespace="team-a",
    account_id=ACCOUNT,
    identity_account=ACCOUNT,
    role_name="web-exec",
    spec_extra={},
    paused=False,
    earlier_claim=False,
    allow_adoption=True,
    role="none",
    changes=frozenset(),
)


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, diff.Outcome.Create),
        ({"paused": True}, diff.Outcome.Paused),
        ({"role": "ours-before-crash"}, diff.Outcome.InSync),
        ({"role": "ours-before-crash", "changes": frozenset({"admin-attached"})}, "Update"),
        ({"role": "ours-before-crash", "changes": frozenset({"boundary"})}, "ReportOnly"),
        (
            {
                "role": "ours-before-crash",
                "spec_extra": {"driftPolicy": "Report"},
                "changes": frozenset({"description", "team-tag"}),
            },
            "ReportOnly",
        ),
        ({"role": "unowned", "spec_extra": {"adopt": True}}, diff.Outcome.Adopt),
        (
            {
                "role": "unowned",
                "spec_extra": {"adopt": True},
                "changes": frozenset({"extra-inline", "ignored-tag"}),
            },
            diff.Outcome.Adopt,
        ),
        ({"role": "unowned", "spec_extra": {"adopt": True}, "paused": True}, "Paused"),
        ({"role": "unowned"}, "Refused"),
        ({"role": "other-cluster", "spec_extra": {"adopt": True}}, "Refused"),
        ({"role": "ours-before-crash", "identity_account": factories.OTHER_ACCOUNT_ID}, "Error"),
        ({"earlier_claim": True}, "Refused"),
        ({"namespace": "rogue"}, "Refused"),
        ({"account_id": factories.OTHER_ACCOUNT_ID}, "Refused"),
    ],
)
def test_each_kind_of_decision_is_predicted(
    changes: dict[str, Any], outcome: str, pool: ThreadPoolExecutor
) -> None:
    """The property's cases one by one, so none of the decisions can go untried."""
    assert check(dataclasses.replace(BASE, **changes), pool) == outcome


def check(situation: Situation, pool: ThreadPoolExecutor) -> diff.Outcome:
    """Judge with the diff, reconcile with the operator, and compare; the diff's outcome."""
    config = operator_config(situation)
    fake = seeded_iam(situation, config)
    identity = CallerIdentity(situation.identity_account, OPERATOR_ARN, "AROAOPERATOR")
    predicted = judge_with_diff(situation, config, fake, identity)
    assert fake.calls == []  # the diff wrote nothing
    result = reconcile_with_operator(situation, config, fake, identity, pool)
    outcome = result.outcome

    # The same IAM calls, in the same order, with the same parameters.
    assert calls(predicted.operations) == calls(fake.calls)

    if predicted.outcome == diff.Outcome.Error:
        # The diff cannot judge an account its own credentials do not reach: the operator
        # refuses the same resource for that reason.
        assert (predicted.reason, outcome.ready_reason) == ("AccountMismatch", "AccountMismatch")
        assert outcome.stalled
        return predicted.outcome
    if predicted.outcome in (diff.Outcome.Refused, diff.Outcome.Paused):
        expected = "Paused" if predicted.outcome == diff.Outcome.Paused else predicted.reason
        assert outcome.ready_reason == expected
        assert outcome.ready_message == predicted.message
        assert outcome.stalled == (predicted.outcome == diff.Outcome.Refused)
        return predicted.outcome

    # Created, adopted, repaired, reported or in sync: Ready=True, and the drift the operator
    # leaves reported is the drift the diff found minus what the planned calls repair.
    assert outcome.is_ready
    repaired = {aspect for op in predicted.operations for aspect in op.aspects}
    found = [
        (d.aspect, _known_uid(d.message))
        for d in predicted.drifts
        if predicted.outcome != diff.Outcome.Create and d.aspect not in repaired
    ]
    assert [(d.aspect, d.message) for d in outcome.drifts] == found
    reasons = [event.reason for event in result.events]
    assert ("Adopted" in reasons) == (predicted.outcome == diff.Outcome.Adopt)
    created = [e for e in result.events if e.message.startswith("Created IAM role")]
    assert bool(created) == (predicted.outcome == diff.Outcome.Create)
    if predicted.outcome in (diff.Outcome.InSync, diff.Outcome.ReportOnly):
        assert fake.calls == []
    if predicted.outcome == diff.Outcome.ReportOnly:
        assert outcome.drifts
    return predicted.outcome
