"""The kopf glue (handlers.py) called as kopf calls it, without a cluster: kopf's Body and Patch,
an in-memory IAM (tests/unit/fake_iam.py) behind the real Reconciler, kopf.event recorded.

What a user relies on: kopf's bookkeeping lives under ecsrole.dev and the user's switches still
count as changes; a new resource gets its role, its status and its Events; a failure is retried
(kopf.TemporaryError) with the status saying why; the younger of two resources claiming one role
is refused without an AWS call; a deletion removes the role and the resource's metric series,
or is blocked with the way out in the message.
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import kopf
import pytest

from ecsrole import handlers, metrics
from ecsrole.aws.errors import AwsCallError, FailureKind
from ecsrole.core import constants
from ecsrole.core.config import OperatorConfig
from ecsrole.core.model import ObservedRole, Operation
from ecsrole.reconciler import Observation, Resource
from ecsrole.sweeper import NUDGE_ANNOTATION
from tests.unit import factories
from tests.unit.fake_iam import FakeIam
from tests.unit.fakes import Clock, FakeContext

pytestmark = pytest.mark.unit

ACCOUNT_ID = factories.ACCOUNT_ID


class Adapter:
    """IamAdapter's interface over the in-memory IAM; `fail` makes writes fail."""

    def __init__(self, iam: FakeIam) -> None:
        self.iam = iam
        self.reads = 0
        self.fail: AwsCallError | None = None

    def read_role(self, role_name: str, **_: Any) -> ObservedRole | None:
        self.reads += 1
        return self.iam.observe(role_name)

    def apply(self, operations: Iterable[Operation]) -> dict[str, Any] | None:
        if self.fail is not None:
            raise self.fail
        operations = list(operations)
        self.iam.apply(operations)
        if operations and operations[0].action == "CreateRole":
            role = self.iam.observe(str(operations[0].params["RoleName"]))
            assert role is not None
            return {"Arn": role.arn, "RoleId": role.role_id}
        return None


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """(object name, type, reason) of every Event the handlers post through kopf."""
    events: list[tuple[str, str, str]] = []

    def record(body: kopf.Body, *, type: str, reason: str, message: str) -> None:
        events.append((body["metadata"]["name"], type, reason))

    monkeypatch.setattr(kopf, "event", record)
    return events


@pytest.fixture
def memo(pool: ThreadPoolExecutor) -> FakeContext:
    config = OperatorConfig(
        cluster_name=factories.OWNER.cluster,
        settle_window=0.0,
        accounts={ACCOUNT_ID: factories.account()},
    )
    context = FakeContext(config=config, clients=None, pool=pool)  # type: ignore[arg-type]
    context.fake = Adapter(FakeIam(ACCOUNT_ID, "aws"))
    return context


def body(
    name: str = "web",
    *,
    created: str = "2026-12-01T10:00:00Z",
    status: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND,
            "metadata": {
                "name": name,
                "namespace": factories.NAMESPACE,
                "uid": f"uid-{name}",
                "generation": 1,
                "creationTimestamp": created,
                "annotations": dict(annotations or {}),
            },
            "spec": factories.spec_dict(**{"roleName": f"{name}-exec", **spec}),
            "status": dict(status or {}),
        }
    )


def _claims_memo() -> Any:
    """What the index function reads of the memo: the configuration (the fixture's)."""
    return types.SimpleNamespace(
        config=OperatorConfig(
            cluster_name=factories.OWNER.cluster,
            settle_window=0.0,
            accounts={ACCOUNT_ID: factories.account()},
        )
    )


def claims(*bodies: kopf.Body, memo: FakeContext | None = None) -> dict[Any, list[Any]]:
    """kopf's role_claims index over these objects, built by the index function itself."""
    index: dict[Any, list[Any]] = {}
    for item in bodies:
        entries = asyncio.run(
            handlers.role_claims(
                uid=item["metadata"]["uid"],
                spec=item["spec"],
                meta=item["metadata"],
                status=item["status"],
                namespace=item["metadata"].get("namespace"),
                memo=memo if memo is not None else _claims_memo(),
            )
        )
        for key, value in entries.items():
            index.setdefault(key, []).append(value)
    return index


def reconcile(
    memo: FakeContext,
    item: kopf.Body,
    *,
    reason: str = "create",
    retry: int = 0,
    index: Mapping[Any, Any] | None = None,
) -> kopf.Patch:
    patch = kopf.Patch()
    asyncio.run(
        handlers.reconcile(
            body=item,
            patch=patch,
            memo=memo,
            retry=retry,
            reason=reason,
            role_claims=claims(item) if index is None else index,
        )
    )
    return patch


def conditions(patch: kopf.Patch) -> dict[str, Mapping[str, Any]]:
    return {c["type"]: c for c in patch.status["conditions"]}


def sample(metric: str, /, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(metric, labels)


def object_labels(item: kopf.Body) -> dict[str, str]:
    return {
        "namespace": factories.NAMESPACE,
        "name": item["metadata"]["name"],
        "account_id": ACCOUNT_ID,
        "role_name": item["spec"]["roleName"],
    }


# -- kopf's settings and storage -------------------------------------------------------------------


def test_kopfs_bookkeeping_lives_under_the_ecsrole_prefix(memo: FakeContext) -> None:
    settings = kopf.OperatorSettings()
    index: dict[str, Any] = {}
    handlers.configure(settings=settings, memo=memo, resource_index=index, role_claims={})
    assert settings.persistence.finalizer == "ecsrole.dev/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.persistence.progress_storage.prefix == constants.PREFIX
    assert settings.persistence.diffbase_storage.prefix == constants.PREFIX
    assert tuple(settings.queueing.error_delays) == (1, 2, 5, 10, 30, 60)
    assert memo.resources is index  # the sweeps read kopf's own index


def test_setting_or_removing_a_switch_is_a_change_kopf_sees() -> None:
    storage = handlers._DiffBaseStorage(prefix=constants.PREFIX, key="last-handled-configuration")
    bookkeeping = {f"{constants.PREFIX}/last-handled-configuration": "{}"}
    plain = storage.build(body=body(annotations=bookkeeping))
    paused = storage.build(
        body=body(annotations={**bookkeeping, constants.PAUSED_ANNOTATION: "true"})
    )
    assert plain != paused  # unpausing must create the role: it has to be an update
    assert paused["metadata"]["annotations"] == {constants.PAUSED_ANNOTATION: "true"}


def test_clearing_kopfs_progress_keeps_the_users_switches() -> None:
    storage = handlers._ProgressStorage(prefix=constants.PREFIX)
    essence = kopf.BodyEssence(
        {
            "metadata": {
                "annotations": {
                    constants.ABANDON_ANNOTATION: "true",
                    f"{constants.PREFIX}/reconcile": "{}",
                }
            }
        }
    )
    cleared = storage.clear(essence=essence)
    assert cleared["metadata"]["annotations"] == {constants.ABANDON_ANNOTATION: "true"}


def test_the_sweep_index_holds_each_resource_under_its_account_and_its_uid() -> None:
    item = body()
    entries = asyncio.run(handlers.resource_index(body=item, spec=item["spec"]))
    assert set(entries) == {ACCOUNT_ID, "uid:uid-web"}
    assert len({id(copy) for copy in entries.values()}) == 1  # one copy under both keys
    resource = entries[ACCOUNT_ID]
    assert isinstance(resource, Resource)
    assert (resource.name, resource.uid) == ("web", "uid-web")


# -- reconcile ---------------------------------------------------------------------------------------


def test_a_new_resource_gets_its_role_its_status_and_its_events(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    item = body()
    creates = sample("ecsrole_reconcile_duration_seconds_count", operation="create") or 0
    patch = reconcile(memo, item)
    role = memo.fake.iam.observe("web-exec")
    assert role is not None
    assert role.tags[constants.TAG_UID] == "uid-web"
    assert patch.status["roleId"] == role.role_id
    assert patch.status["arn"] == role.arn
    assert conditions(patch)["Ready"]["status"] == "True"
    assert ("web", "Normal", "Created") in posted
    assert sample("ecsrole_ready", **object_labels(item)) == 1
    assert sample("ecsrole_reconcile_duration_seconds_count", operation="create") == creates + 1
    assert json.dumps(dict(patch))  # only plain JSON goes to the API server


def test_a_failed_reconcile_is_retried_with_the_reason_in_status(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    memo.fake.fail = AwsCallError(
        FailureKind.THROTTLED, "CreateRole", "Throttling", "Rate exceeded"
    )
    patch = kopf.Patch()
    with pytest.raises(kopf.TemporaryError) as retried:
        asyncio.run(
            handlers.reconcile(
                body=body(),
                patch=patch,
                memo=memo,
                retry=0,
                reason="create",
                role_claims=claims(body()),
            )
        )
    assert retried.value.delay is not None
    assert retried.value.delay <= 60  # throttling retries within a minute
    assert conditions(patch)["Synced"]["reason"] == "Throttled"
    assert memo.fake.iam.observe("web-exec") is None


def test_the_younger_of_two_resources_claiming_one_role_is_refused_without_an_aws_call(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    older = body("web", created="2026-12-01T09:00:00Z")
    younger = body("copy", created="2026-12-01T10:00:00Z", roleName="WEB-EXEC")
    patch = reconcile(memo, younger, index=claims(older, younger))
    assert conditions(patch)["Ready"]["reason"] == "ConflictingResource"
    assert "web" not in conditions(patch)["Ready"]["message"]  # never names the other tenant
    assert memo.fake.reads == 0
    assert memo.fake.iam.calls == []


def test_a_resumed_resource_is_answered_from_the_seed_read(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    item = body()
    created = reconcile(memo, item)
    resumed_body = body(status=dict(created.status))
    seen: list[str] = []

    class Seeds:
        async def observation(self, resource: Resource) -> Observation:
            seen.append(resource.name)
            return Observation(memo.fake.iam.observe("web-exec"), "sweep")

    memo.seeds = Seeds()
    reads = memo.fake.reads
    patch = reconcile(memo, resumed_body, reason="resume")
    assert seen == ["web"]
    assert memo.fake.reads == reads  # no read of its own
    assert "conditions" not in patch.status  # in sync, as recorded: nothing to write
    memo.seeds = None


# -- delete ------------------------------------------------------------------------------------------


def test_deleting_removes_the_role_and_the_resources_series(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    created = reconcile(memo, body())
    item = body(status=dict(created.status))
    assert sample("ecsrole_ready", **object_labels(item)) == 1
    asyncio.run(handlers.delete(body=item, patch=kopf.Patch(), memo=memo, retry=0))
    assert memo.fake.iam.observe("web-exec") is None
    assert sample("ecsrole_ready", **object_labels(item)) is None


def test_a_blocked_deletion_is_retried_and_names_the_way_out(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    created = reconcile(memo, body())
    item = body(status=dict(created.status))
    memo.fake.fail = AwsCallError(FailureKind.ACCESS_DENIED, "DeleteRole", "AccessDenied", "no")
    patch = kopf.Patch()
    with pytest.raises(kopf.TemporaryError, match=constants.ABANDON_ANNOTATION):
        asyncio.run(handlers.delete(body=item, patch=patch, memo=memo, retry=0))
    assert conditions(patch)["Ready"]["reason"] == "DeletionBlocked"
    assert ("web", "Warning", "DeletionBlocked") in posted
    assert memo.fake.iam.observe("web-exec") is not None
    assert sample("ecsrole_ready", **object_labels(item)) == 0


# -- leading: kopf, the sweeps, the event consumer and the lease together -----------------------------


class Elector:
    """Stands in for LeaderElector while leading: `keep` holds until told to stop, or loses."""

    def __init__(self, *, loses: bool = False) -> None:
        self.is_leader = True
        self.loses = loses
        self.released = False

    async def keep(self, stop: asyncio.Event) -> None:
        if self.loses:
            self.is_leader = False  # renewal failed past the renew deadline
            return
        await stop.wait()

    async def release(self) -> None:
        self.released = True


class Consumer:
    instances: ClassVar[list[Consumer]] = []

    def __init__(self, sqs: Any, queue_url: str, handle: Any, loop: Any) -> None:
        self.queue_url, self.handle = queue_url, handle
        self.started = self.stopped = False
        Consumer.instances.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


class Kopf:
    """kopf.operator: records how it was started; returns by itself or when told to stop."""

    def __init__(self, *, returns_by_itself: bool) -> None:
        self.returns_by_itself = returns_by_itself
        self.runs: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.runs.append(kwargs)
        if not self.returns_by_itself:
            await kwargs["stop_flag"].wait()


@pytest.fixture
def leading(memo: FakeContext, monkeypatch: pytest.MonkeyPatch) -> FakeContext:
    """The CRD is served, SQS events are configured, kopf and the consumer are stand-ins."""
    from ecsrole import crdgate

    class Served:
        def __init__(self, kube: Any) -> None:
            pass

        async def state(self) -> crdgate.CrdState:
            return crdgate.CrdState(uid="crd-uid", established=True, served=True)

    class Clients:
        def base_sqs(self) -> str:
            return "sqs-client"

    monkeypatch.setattr(crdgate, "KubeCrdProbe", Served)
    monkeypatch.setattr(handlers, "EventConsumer", Consumer)
    Consumer.instances.clear()
    memo.config = OperatorConfig(
        cluster_name=memo.config.cluster_name,
        events_sqs_queue_url="https://sqs.us-east-1.amazonaws.com/111111111111/events",
        accounts=memo.config.accounts,
    )
    memo.clients = Clients()  # type: ignore[assignment]
    return memo


def lead(
    context: FakeContext,
    elector: Elector,
    namespaces: tuple[str, ...] = (),
    *,
    signalled: bool = False,
) -> int:
    async def run() -> int:
        stop = asyncio.Event()
        if signalled:
            stop.set()
        return await handlers._lead(context, None, elector, namespaces, signalled=stop)  # type: ignore[arg-type]

    return asyncio.run(asyncio.wait_for(run(), timeout=30))


def test_when_kopf_stops_by_itself_everything_stops_and_the_lease_is_released(
    leading: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    kopf_run = Kopf(returns_by_itself=True)  # as on SIGTERM: kopf stops by itself
    monkeypatch.setattr(kopf, "operator", kopf_run)
    elector = Elector()
    assert lead(leading, elector) == 0
    (run,) = kopf_run.runs
    assert run["registry"] is handlers.registry
    assert run["memo"] is leading
    assert (run["standalone"], run["clusterwide"], run["namespaces"]) == (True, True, ())
    assert elector.released  # a standby takes over at once
    (consumer,) = Consumer.instances
    assert (consumer.started, consumer.stopped) == (True, True)
    assert consumer.queue_url == leading.config.events_sqs_queue_url
    assert leading.seeds is not None  # resumes of this term are seeded
    assert leading.resources is None  # that run's index is no longer kept up to date


def test_a_signal_during_the_lease_acquisition_stops_at_once_and_releases_the_lease(
    leading: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM came while the lease was being won: it must not be lost once leading begins.
    kopf_run = Kopf(returns_by_itself=False)
    monkeypatch.setattr(kopf, "operator", kopf_run)
    elector = Elector()
    assert lead(leading, elector, signalled=True) == 0
    assert kopf_run.runs == []
    assert elector.released


def test_a_lost_lease_stops_kopf_and_ends_with_status_1_without_releasing(
    leading: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    kopf_run = Kopf(returns_by_itself=False)
    monkeypatch.setattr(kopf, "operator", kopf_run)
    elector = Elector(loses=True)
    assert lead(leading, elector, ("team-a",)) == 1  # the process restarts as a standby
    (run,) = kopf_run.runs
    assert run["stop_flag"].is_set()
    assert (run["clusterwide"], run["namespaces"]) == (False, ("team-a",))
    assert not elector.released  # it is not ours any more
    assert Consumer.instances[0].stopped


# -- a CRD being deleted: the operator finishes the deletions kopf no longer serves ----------


class FakeKube:
    """The KubeClient calls the finalizer makes: one list, status and metadata merge-patches."""

    def __init__(self, items: list[Mapping[str, Any]]) -> None:
        self.items = items
        self.object_patches: list[tuple[str, Mapping[str, Any]]] = []
        self.status_patches: list[tuple[str, Mapping[str, Any]]] = []
        self.events: list[tuple[str, str]] = []
        self.lists = 0

    async def request(self, method: str, path: str, *_: Any, **__: Any) -> tuple[int, Any]:
        assert (method, path) == ("GET", f"/apis/{constants.API_VERSION}/{constants.PLURAL}")
        self.lists += 1
        return 200, {"items": self.items}

    async def patch_object(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.object_patches.append((name, patch))

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.status_patches.append((name, status))

    async def post_event(self, *, name: str, reason: str, **_: Any) -> None:
        self.events.append((name, reason))


def being_deleted(
    item: kopf.Body, *, finalizers: tuple[str, ...] = (handlers.FINALIZER,)
) -> dict[str, Any]:
    document = dict(item)
    document["metadata"] = {
        **item["metadata"],
        "deletionTimestamp": "2026-12-01T11:00:00Z",
        "finalizers": list(finalizers),
        "resourceVersion": "42",
    }
    return document


def test_a_terminating_crd_s_objects_lose_their_roles_then_their_finalizers(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    created = reconcile(memo, body())
    kept = being_deleted(body("other"), finalizers=("someone.else/finalizer",))
    kube = FakeKube([being_deleted(body(status=dict(created.status))), kept, dict(body("alive"))])
    finalize = handlers.TerminatingCrdFinalizer(memo, kube, ())  # type: ignore[arg-type]

    asyncio.run(finalize())

    assert memo.fake.iam.observe("web-exec") is None  # Delete: the role it created is gone
    assert kube.object_patches == [
        ("web", {"metadata": {"finalizers": [], "resourceVersion": "42"}})
    ]  # only its own finalizer, and only on the object being deleted
    assert ("web", "Deleted") in kube.events


def test_a_blocked_deletion_while_the_crd_terminates_keeps_the_finalizer_and_backs_off(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    created = reconcile(memo, body())
    kube = FakeKube([being_deleted(body(status=dict(created.status)))])
    memo.fake.fail = AwsCallError(FailureKind.ACCESS_DENIED, "DeleteRole", "AccessDenied", "no")
    finalize = handlers.TerminatingCrdFinalizer(memo, kube, ())  # type: ignore[arg-type]

    asyncio.run(finalize())
    asyncio.run(finalize())  # the next look comes before the backoff: no second attempt

    assert kube.object_patches == []
    assert memo.fake.iam.observe("web-exec") is not None
    assert [name for name, _ in kube.status_patches] == ["web"]
    assert kube.status_patches[0][1]["conditions"][0]["reason"] == "DeletionBlocked"
    assert kube.events.count(("web", "DeletionBlocked")) == 1


def test_objects_outside_the_watched_namespaces_are_left_to_their_own_operator(
    memo: FakeContext, posted: list[tuple[str, str, str]]
) -> None:
    created = reconcile(memo, body())
    kube = FakeKube([being_deleted(body(status=dict(created.status)))])
    finalize = handlers.TerminatingCrdFinalizer(memo, kube, ("team-elsewhere-*",))  # type: ignore[arg-type]

    asyncio.run(finalize())

    assert kube.object_patches == []
    assert memo.fake.iam.observe("web-exec") is not None


def test_kopfs_requests_have_no_total_timeout_and_the_nudge_is_kopfs_own_touch(
    memo: FakeContext,
) -> None:
    """A total timeout would count the wait at the request gate (kube.RequestGate bounds each
    request once let in); a nudge writes the key kopf's progress storage touches and clears."""
    settings = kopf.OperatorSettings()
    handlers.configure(settings=settings, memo=memo, resource_index={}, role_claims={})
    assert settings.networking.request_timeout is None
    storage = settings.persistence.progress_storage
    assert isinstance(storage, kopf.AnnotationsProgressStorage)
    assert f"{storage.prefix}/{storage.touch_key}" == NUDGE_ANNOTATION


def test_indexing_an_event_is_kopf_working_on_the_object(memo: FakeContext) -> None:
    clock = Clock()
    memo.clock = clock
    memo.kopf_saw("uid-web")
    clock.now += 50
    assert memo.kopf_quiet_for("uid-web") == 50
    item = body()
    asyncio.run(handlers.resource_index(body=item, spec=item["spec"], memo=memo))
    assert memo.kopf_quiet_for("uid-web") == 0
