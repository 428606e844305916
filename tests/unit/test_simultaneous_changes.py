"""Any set of spec changes made at once is applied by ONE reconcile, and the status says so.

The bug this guards: one UpdateRole repairs Description and MaxSessionDuration together, but it
named only Description, so after changing both fields in one edit the status said Drifted=True
("max session duration ...") and `ecsrole_drifted` was 1 until the next sweep read the role
again. Here the reconciler runs against the in-memory IAM (tests/unit/fake_iam.py, which
validates every call against botocore's model and reads documents back mangled as IAM does):
a role is created from one spec, the spec is changed in any combination of fields, and one
reconcile must leave the role matching the spec, Drifted=False and `ecsrole_drifted` 0.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecsrole import metrics, report
from ecsrole.aws.iam import CallerIdentity
from ecsrole.context import OperatorContext
from ecsrole.core import desired as desired_module
from ecsrole.core import diff, model
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.spec import parse_spec
from ecsrole.reconciler import Observation, Reconciler, Resource, Result
from ecsrole.status import patch_for
from tests.unit import factories

from .fake_iam import FakeIam

pytestmark = pytest.mark.unit

ACCOUNT_ID = factories.ACCOUNT_ID


class _FakeIamAdapter:
    """The IAM adapter's two methods the reconciler uses, on the in-memory IAM."""

    def __init__(self, iam: FakeIam) -> None:
        self.iam = iam

    def read_role(self, role_name: str, **_: Any) -> model.ObservedRole | None:
        return self.iam.observe(role_name)

    def apply(self, operations: Iterable[model.Operation]) -> dict[str, Any] | None:
        operations = list(operations)
        self.iam.apply(operations)
        if operations and operations[0].action == "CreateRole":
            created = self.iam.observe(str(operations[0].params["RoleName"]))
            assert created is not None
            return {"Arn": created.arn, "RoleId": created.role_id}
        return None


class _Context(OperatorContext):
    fake: _FakeIamAdapter

    def adapter(self, account: AccountConfig) -> Any:
        return self.fake

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        return CallerIdentity(ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:role/ecsrole", "AROAOP")


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown()


_words = st.text(alphabet="abcdefghij -", min_size=0, max_size=30)
_tags = st.dictionaries(
    st.sampled_from(["team", "env", "Owner", "cost", "app"]),
    st.text(alphabet="abcxyz01", min_size=0, max_size=8),
    max_size=4,
)


@st.composite
def _specs(draw: st.DrawFn, *, with_boundary: bool) -> dict[str, Any]:
    """A valid spec; every optional field independently present, absent or changed."""
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["description"] = draw(_words)
    if draw(st.booleans()):
        fields["maxSessionDuration"] = draw(st.integers(3600, 43200))
    if draw(st.booleans()):
        fields["tags"] = draw(_tags)
    if draw(st.booleans()):
        fields["trust"] = {
            "sourceAccounts": [ACCOUNT_ID],
            **({"sourceArns": [factories.ECS_SOURCE_ARN]} if draw(st.booleans()) else {}),
        }
    permissions: dict[str, Any] = {}
    for key, arn in (
        ("secretArns", factories.SECRET),
        ("parameterArns", factories.PARAMETER),
        ("kmsKeyArns", factories.KMS_KEY),
    ):
        if draw(st.booleans()):
            permissions[key] = [arn]
    if draw(st.booleans()):
        permissions["createLogGroups"] = True
    if permissions:
        fields["permissions"] = permissions
    if draw(st.booleans()):
        fields["additionalPolicyArns"] = [factories.READONLY_POLICY]
    # A boundary is only ever added: the operator has no DeleteRolePermissionsBoundary, so one
    # dropped from the spec stays reported as drift on purpose.
    if with_boundary and draw(st.booleans()):
        fields["permissionsBoundaryArn"] = factories.BOUNDARY
    return factories.spec_dict(**fields)


def _drifted_gauge(resource: Resource) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "ecsrole_drifted",
        {
            "namespace": resource.namespace,
            "name": resource.name,
            "account_id": ACCOUNT_ID,
            "role_name": str(resource.spec["roleName"]),
        },
    )


def _reconcile(context: _Context, resource: Resource) -> tuple[Result, dict[str, Any]]:
    """One reconcile as the handler runs it: the result, its metrics, the status afterwards."""
    result = Reconciler(context).reconcile(resource, conflicting=False)
    report.record_metrics(result, resource)
    patch = patch_for(result.outcome, generation=resource.generation, status=resource.status)
    return result, {**resource.status, **patch}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    before=_specs(with_boundary=False),
    after=_specs(with_boundary=True),
    seed=st.integers(0, 2**16),
)
def test_one_reconcile_applies_every_simultaneous_spec_change(
    pool: ThreadPoolExecutor, before: dict[str, Any], after: dict[str, Any], seed: int
) -> None:
    iam = FakeIam(ACCOUNT_ID, "aws", rng=random.Random(seed))
    config = OperatorConfig(
        cluster_name=factories.OWNER.cluster,
        drift_check_interval=60.0,
        accounts={ACCOUNT_ID: factories.account()},
    )
    context = _Context(config=config, clients=None, pool=pool)  # type: ignore[arg-type]
    context.fake = _FakeIamAdapter(iam)
    created = Resource(
        namespace=factories.NAMESPACE,
        name=factories.OWNER.name,
        uid=factories.OWNER.uid,
        generation=1,
        created=None,
        spec=before,
        annotations={},
        status={"observedGeneration": 0},
    )
    _, status = _reconcile(context, created)
    assert status["roleId"], "the first reconcile creates the role"

    # The edit, made while nothing reconciled: generation 2, the status of generation 1.
    edited = dataclasses.replace(created, generation=2, spec=after, status=status)
    result, status = _reconcile(context, edited)

    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Drifted"]["status"] == "False", conditions["Drifted"]["message"]
    assert conditions["Ready"]["status"] == "True", conditions["Ready"]["message"]
    assert status.get("drift", []) == []
    assert _drifted_gauge(edited) == 0
    # And it is true in IAM: a fresh read finds nothing to repair.
    desired = desired_module.build_desired(
        parse_spec(after),
        factories.account(),
        namespace=factories.NAMESPACE,
        partition="aws",
        owner=factories.OWNER,
    )
    assert isinstance(desired, model.DesiredRole)
    observed = iam.observe(desired.role_name)
    assert observed is not None
    assert diff.diff(desired, observed) == ()
    assert result.done


def test_a_sweep_inside_the_settle_window_still_applies_a_pending_spec_change(
    pool: ThreadPoolExecutor,
) -> None:
    """Found under load (test_reliability, throttled spec change): the change handler's
    attempt for generation 2 failed, and a sweep read the role within the settle window of
    generation 1's creation. The written aspects were skipped as "settling", so the sweep
    reported Ready=True for generation 2 while AWS still held generation 1's description."""
    iam = FakeIam(ACCOUNT_ID, "aws", rng=random.Random(0))
    config = OperatorConfig(
        cluster_name=factories.OWNER.cluster,
        drift_check_interval=60.0,
        settle_window=15.0,
        accounts={ACCOUNT_ID: factories.account()},
    )
    now = [1000.0]
    context = _Context(config=config, clients=None, pool=pool, clock=lambda: now[0])  # type: ignore[arg-type]
    context.fake = _FakeIamAdapter(iam)
    created = Resource(
        namespace=factories.NAMESPACE,
        name=factories.OWNER.name,
        uid=factories.OWNER.uid,
        generation=1,
        created=None,
        spec=factories.spec_dict(description="one"),
        annotations={},
        status={"observedGeneration": 0},
    )
    _, status = _reconcile(context, created)
    role_name = str(created.spec["roleName"])
    now[0] += 5  # well inside the 15 s window of the creation's writes

    edited = dataclasses.replace(
        created, generation=2, spec=factories.spec_dict(description="two"), status=status
    )
    sweep = Observation(iam.observe(role_name), "sweep")
    result = Reconciler(context).reconcile(edited, conflicting=False, observation=sweep)
    status = {**status, **patch_for(result.outcome, generation=2, status=status)}

    observed = iam.observe(role_name)
    assert observed is not None
    assert observed.description == "two"
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["observedGeneration"]) == ("True", 2)

    # The same generation read again inside the window: its own fresh write settles.
    again = dataclasses.replace(edited, status=status)
    assert context.settling(ACCOUNT_ID, role_name, again.version) >= {model.Aspect.Description}
