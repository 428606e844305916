"""The metrics of DESIGN section 5: names, types and labels as registered, and the paths that
feed them where an e2e test cannot reach (a failing repair write, a deletion racing a sweep)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import prometheus_client
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from ecsrole import metrics, report
from ecsrole.aws.errors import AwsCallError, FailureKind
from ecsrole.aws.iam import CallerIdentity
from ecsrole.context import OperatorContext
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.constants import ABANDON_ANNOTATION, PAUSED_ANNOTATION
from ecsrole.core.model import Aspect, ObservedRole, Operation
from ecsrole.reconciler import (
    Observation,
    Reconciler,
    Resource,
    Target,
)
from ecsrole.sweeper import Sweeper
from tests.stack.prometheus import METRICS_CONTRACT
from tests.unit import factories

pytestmark = pytest.mark.unit

ADMIN_POLICY = factories.ADMIN_POLICY
ACCOUNT_ID = factories.ACCOUNT_ID
ROLE_ID = "AROAEXAMPLEID"


def test_every_metric_has_the_contract_type_and_labels() -> None:
    exposed = {
        family.name: family.type
        for family in text_string_to_metric_families(
            prometheus_client.generate_latest(metrics.REGISTRY).decode()
        )
    }
    labelnames = {
        value._name: set(value._labelnames)  # the registered base name (no _total)
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
    } | {
        family.name: set(metrics.ObjectStates.labelnames)
        for family in metrics.object_states.collect()
    }
    contract = {
        name.removesuffix("_total") if type_ == "counter" else name: (type_, labels)
        for name, (type_, labels) in METRICS_CONTRACT.items()
    }
    assert set(labelnames) == set(contract), "metrics.py and DESIGN section 5 differ"
    for name, (type_, labels) in contract.items():
        assert exposed[name] == type_, name
        assert labelnames[name] == labels, name


def test_detection_latency_buckets_span_one_second_to_a_day() -> None:
    buckets = metrics.drift_detection_latency._upper_bounds
    assert buckets[0] == 1
    assert buckets[-2] == 24 * 3600  # then +Inf


def _sample(metric: str, /, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(metric, labels)
    return 0.0 if value is None else value


def test_account_counters_start_at_zero_so_the_first_increase_is_seen() -> None:
    metrics.init_account("777777777777")
    for aspect in Aspect:
        assert (
            metrics.REGISTRY.get_sample_value(
                "ecsrole_drift_events_total", {"account_id": "777777777777", "aspect": aspect.value}
            )
            == 0
        )


class _Adapter:
    """The IAM adapter as the reconciler uses it: the role to read, writes that may fail."""

    def __init__(self, role: ObservedRole | None, fail: AwsCallError | None = None) -> None:
        self.role = role
        self.fail = fail
        self.applied: list[Operation] = []
        self.reads = 0

    def read_role(self, role_name: str, **_: Any) -> ObservedRole | None:
        self.reads += 1
        return self.role

    def read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
        self.reads += 1
        return {} if self.role is None else {self.role.role_name.lower(): self.role}

    def apply(self, operations: Iterable[Operation]) -> None:
        operations = list(operations)
        if self.fail is not None:
            raise self.fail
        self.applied.extend(operations)


class _Context(OperatorContext):
    fake: _Adapter

    def adapter(self, account: AccountConfig) -> Any:
        return self.fake

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        return CallerIdentity(ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:role/ecsrole", "AROAOP")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown()


def _context(pool: ThreadPoolExecutor, adapter: _Adapter) -> _Context:
    config = OperatorConfig(
        cluster_name=factories.OWNER.cluster,
        drift_check_interval=1.0,
        accounts={ACCOUNT_ID: factories.account()},
    )
    context = _Context(config=config, clients=None, pool=pool)  # type: ignore[arg-type]
    context.fake = adapter
    return context


def _resource(name: str = factories.OWNER.name, **spec: Any) -> Resource:
    """A resource whose role was created and is in sync with its generation."""
    annotations = spec.pop("annotations", {})
    return Resource(
        namespace=factories.NAMESPACE,
        name=name,
        uid=factories.OWNER.uid,
        generation=1,
        created=None,
        spec=factories.spec_dict(**spec),
        annotations=annotations,
        status={"roleId": ROLE_ID, "observedGeneration": 1},
    )


def _with_admin_policy(**spec: Any) -> ObservedRole:
    """The resource's role as created, then AdministratorAccess attached by hand."""
    desired = factories.desired_role(**spec)
    return factories.observed_from(
        desired,
        role_id=ROLE_ID,
        managed_policy_arns=frozenset({*desired.managed_policy_arns, ADMIN_POLICY}),
    )


def _object_labels(resource: Resource) -> dict[str, str]:
    return {
        "namespace": resource.namespace,
        "name": resource.name,
        "account_id": ACCOUNT_ID,
        "role_name": str(resource.spec["roleName"]),
    }


def test_a_failed_repair_counts_the_drift_and_an_error_and_stays_drifted(
    pool: ThreadPoolExecutor,
) -> None:
    denied = AwsCallError(FailureKind.ACCESS_DENIED, "DetachRolePolicy", "AccessDenied", "no")
    context = _context(pool, _Adapter(_with_admin_policy(), fail=denied))
    resource = _resource()
    labels = {"account_id": ACCOUNT_ID, "aspect": "ManagedPolicy"}
    events_before = _sample("ecsrole_drift_events_total", **labels)
    errors_before = _sample("ecsrole_drift_remediations_total", **labels, outcome="error")
    successes_before = _sample("ecsrole_drift_remediations_total", **labels, outcome="success")

    result = Reconciler(context).reconcile(
        resource, conflicting=False, observation=Observation(_with_admin_policy(), "sweep")
    )
    report.record_metrics(result, resource)

    assert result.remediation_failed == (Aspect.ManagedPolicy,)
    assert [d.aspect for d in result.detected] == [Aspect.ManagedPolicy]
    assert not result.done  # retried with backoff
    assert _sample("ecsrole_drift_events_total", **labels) == events_before + 1
    assert (
        _sample("ecsrole_drift_remediations_total", **labels, outcome="error") == errors_before + 1
    )
    assert (
        _sample("ecsrole_drift_remediations_total", **labels, outcome="success") == successes_before
    )
    assert _sample("ecsrole_drifted", **_object_labels(resource)) == 1
    # The status says the same: drifted, the sync failed, Ready as it was.
    patch = report.status_patch(result, resource)
    conditions = {c["type"]: c for c in patch["conditions"]}
    assert conditions["Drifted"]["status"] == "True"
    assert conditions["Drifted"]["reason"] == "ManagedPolicy"
    assert conditions["Synced"]["reason"] == "AccessDenied"
    assert [d["aspect"] for d in patch["drift"]] == ["ManagedPolicy"]
    reasons = [e.reason for e in result.events]
    assert "DriftDetected" in reasons
    assert "AccessDenied" in reasons
    assert "DriftRepaired" not in reasons


def test_a_repair_counts_success(pool: ThreadPoolExecutor) -> None:
    adapter = _Adapter(_with_admin_policy())
    context = _context(pool, adapter)
    resource = _resource()
    labels = {"account_id": ACCOUNT_ID, "aspect": "ManagedPolicy"}
    before = _sample("ecsrole_drift_remediations_total", **labels, outcome="success")

    result = Reconciler(context).reconcile(
        resource, conflicting=False, observation=Observation(_with_admin_policy(), "sweep")
    )
    report.record_metrics(result, resource)

    assert adapter.applied
    assert result.remediation_failed == ()
    assert _sample("ecsrole_drift_remediations_total", **labels, outcome="success") == before + 1
    assert _sample("ecsrole_drifted", **_object_labels(resource)) == 0


@pytest.mark.parametrize("annotation", [ABANDON_ANNOTATION, PAUSED_ANNOTATION])
def test_deletions_that_leave_aws_alone_still_name_their_series(
    pool: ThreadPoolExecutor, annotation: str
) -> None:
    """handlers.delete forgets the series of `result.target`: None would leave them behind."""
    adapter = _Adapter(None)
    resource = _resource(annotations={annotation: "true"})
    result = Reconciler(_context(pool, adapter)).delete(resource)
    assert result.target == Target(ACCOUNT_ID, str(resource.spec["roleName"]))
    assert adapter.reads == 0
    assert adapter.applied == []


def test_forget_object_removes_both_series() -> None:
    labels = {"namespace": "ns", "name": "gone", "account_id": ACCOUNT_ID, "role_name": "r"}
    metrics.set_object_state(**labels, is_ready=True, is_drifted=True)
    assert _sample("ecsrole_ready", **labels) == 1
    metrics.forget_object(**labels)
    assert metrics.REGISTRY.get_sample_value("ecsrole_ready", labels) is None
    assert metrics.REGISTRY.get_sample_value("ecsrole_drifted", labels) is None
    metrics.forget_object(**labels)  # twice is fine


def test_an_account_without_roles_completes_its_sweep_without_aws_calls(
    pool: ThreadPoolExecutor,
) -> None:
    adapter = _Adapter(None)
    context = _context(pool, adapter)
    context.resources = {}
    account = context.config.accounts[ACCOUNT_ID]

    assert asyncio.run(Sweeper(context, kube=None).sweep_account(account)) == 0  # type: ignore[arg-type]

    assert adapter.reads == 0
    assert _sample("ecsrole_drift_sweep_last_success_timestamp_seconds", account_id=ACCOUNT_ID) > 0
    assert _sample("ecsrole_managed_roles", account_id=ACCOUNT_ID) == 0


def test_a_resource_deleted_during_a_sweep_is_not_reconciled(pool: ThreadPoolExecutor) -> None:
    """The sweep read AWS, then the object went (and with it its series): nothing comes back."""
    adapter = _Adapter(_with_admin_policy())
    context = _context(pool, adapter)
    context.resources = {}  # kopf's index no longer has it
    resource = _resource(name="deleted-meanwhile")
    sweeper = Sweeper(context, kube=None)  # type: ignore[arg-type]

    asyncio.run(sweeper.check(resource, Observation(_with_admin_policy(), "sweep")))

    assert adapter.applied == []
    assert metrics.REGISTRY.get_sample_value("ecsrole_ready", _object_labels(resource)) is None
