"""A stateful model of ownership, tenancy and claims (issue 16), shared by `make test` and
`make chaos`.

hypothesis drives the operator's real decision code (the Reconciler, `core.claims`,
`core.ownership`, the Sweeper's sweep, CloudTrail and take-over paths) against the strict fake
IAM of fake_iam.py and a fake view of the cluster, in sequences of:

- tenants creating, updating and deleting resources in allowed and disallowed namespaces, with
  the same and case-variant role names, adopt on and off, Retain and Delete, the paused and
  abandon annotations;
- an adversary with IAM rights (the ownership tags included) deleting and re-creating roles,
  copying ownership tags onto other roles, attaching policies, editing trust;
- the operator: kopf handling one pending object, a crash between any two AWS calls of a plan
  (the rest dropped, nothing the handler had not written kept) followed by a restart that
  resumes every object, sweeps and CloudTrail events at any time.

The fake cluster does what kopf does around the handlers: the finalizer before the first
handler, the claim index (built by the same `claims.claim_of` the kopf index calls), a
handler's status patch, retries of handlers that were not done, removal once the deletion
handler is done, and, after every change of an object, the watch event that
`handlers.claims_changed` turns into `Sweeper.claims_changed`.

The invariants are checked by an oracle written from DESIGN section 3, not by the code under
test (see `check_write` and `check_at_fixpoint`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import random
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ecsrole import report, sweeper
from ecsrole.aws import readonly
from ecsrole.aws.errors import AwsCallError, FailureKind, NotFoundError
from ecsrole.aws.iam import CallerIdentity
from ecsrole.context import OperatorContext
from ecsrole.core import claims, constants, decide, model, ownership
from ecsrole.core.config import AccountConfig, OperatorConfig, SweepMode
from ecsrole.core.model import ObservedRole, Operation
from ecsrole.core.spec import RoleSpec, SpecError, parse_spec
from ecsrole.reconciler import ABANDON_ANNOTATION, PAUSED_ANNOTATION, Reconciler, Resource
from ecsrole.sweeper import Sweeper
from ecsrole.tools import diff as diff_tool
from ecsrole.tools import manifests
from tests.stack.resources import EC2_TRUST, SEED_TRUST
from tests.unit.fake_iam import EPOCH, FakeIam, IamError, StoredRole

CLUSTER = "model-cluster"
BULK_ACCOUNT = "111111111111"  # team-a and team-b; adoption allowed; bulk sweeps
PER_ROLE_ACCOUNT = "222222222222"  # team-a only; no adoption; perRole sweeps
ACCOUNTS = {
    BULK_ACCOUNT: AccountConfig(
        account_id=BULK_ACCOUNT,
        namespaces=("team-a", "team-b"),
        role_path_prefix="/ecs/",
        allow_adoption=True,
    ),
    PER_ROLE_ACCOUNT: AccountConfig(
        account_id=PER_ROLE_ACCOUNT,
        namespaces=("team-a",),
        role_path_prefix="/ecs/",
        sweep_mode=SweepMode.PER_ROLE,
    ),
}
CONFIG = OperatorConfig(cluster_name=CLUSTER, accounts=ACCOUNTS)
NAMESPACES = ("team-a", "team-b", "rogue")  # rogue: listed for no account
ROLE_NAMES = ("web", "WEB", "api")  # web and WEB are one role name to IAM
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
CREATE_CLOCK_SKEW = datetime.timedelta(seconds=30)
#: Ready reasons that need a human (or are a human's choice): the winner may rest with them.
NEEDS_A_HUMAN = frozenset(
    {
        "RoleExistsNotOwned",
        "AdoptionRefused",
        "AccountMismatch",
        "PolicyNotAllowed",
        "PermissionNotAllowed",
        "Paused",
        "RoleMissing",
    }
)
MAX_ROUNDS = 8  # rounds of "handle everything pending, sweep every account" to a fixpoint

#: `make test`: the same sequences every run (derandomized, no example database).
DEFAULT_PROFILE = settings(
    max_examples=400,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
#: `make chaos`: fresh random sequences, more and longer.
DEEP_PROFILE = settings(
    max_examples=1500,
    stateful_step_count=100,
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Warnings only while the model runs: the reconciles log every step at info."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**saved)


class OperatorCrashed(BaseException):
    """The process died between two AWS calls (a BaseException: no handler may catch it)."""


@dataclass
class Totals:
    """What the model tried, across every sequence of a run (for docs/reliability.md)."""

    sequences: int = 0
    steps: int = 0
    aws_calls: int = 0
    aws_writes: int = 0
    crashes: int = 0
    fixpoints: int = 0
    predictions: int = 0  # reconciles whose decision `ecsrole diff` predicted (check_prediction)
    rules: dict[str, int] = field(default_factory=dict)


TOTALS = Totals()


@dataclass
class Obj:
    """One EcsExecutionRole as the API server holds it, plus kopf's view of it."""

    namespace: str
    name: str
    uid: str
    created: str
    spec: dict[str, Any]
    annotations: dict[str, str] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    generation: int = 1
    deleting: bool = False
    finalizer: bool = False
    pending: bool = True  # a create, update or resume kopf has not handled yet
    retry: bool = False  # the last handler was not done (kopf retries it)

    def body(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "generation": self.generation,
            "creationTimestamp": self.created,
            "annotations": dict(self.annotations),
        }
        if self.deleting:
            meta["deletionTimestamp"] = self.created
        return {"metadata": meta, "spec": dict(self.spec), "status": json_copy(self.status)}

    def resource(self) -> Resource:
        return Resource.from_body(self.body())

    @property
    def allowed(self) -> bool:
        return claims.account_for(CONFIG, self.namespace, self.spec["accountId"]) is not None

    def owner_tags(self) -> dict[str, str]:
        return model.Owner(CLUSTER, self.namespace, self.name, self.uid).tags()


def json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ModelAdapter:
    """The IAM adapter's interface over one FakeIam, with every call checked by the oracle."""

    def __init__(self, machine: ClaimsModel, account_id: str) -> None:
        self.machine = machine
        self.account_id = account_id
        self.fake = FakeIam(account_id, "aws", machine.rng, clock=machine.clock)

    def _read(self, operation: str) -> None:
        self.machine.count_call(self.account_id, operation, write=False)

    def caller_identity(self) -> CallerIdentity:
        self._read("GetCallerIdentity")
        return CallerIdentity(
            self.account_id, f"arn:aws:iam::{self.account_id}:role/ecsrole-operator", "AROAOP"
        )

    def read_role(self, role_name: str, **_: Any) -> ObservedRole | None:
        self._read("GetRole")
        return self.fake.observe(role_name)

    def _under(self, path_prefix: str) -> dict[str, ObservedRole]:
        observed = {}
        for key, role in self.fake.roles.items():
            if role.path.startswith(path_prefix):
                seen = self.fake.observe(role.name)
                assert seen is not None
                observed[key] = seen
        return observed

    def read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
        self._read("GetAccountAuthorizationDetails")
        return self._under(path_prefix)

    def read_roles_each(self, path_prefix: str, names: list[str]) -> dict[str, ObservedRole]:
        self._read("ListRoles")
        listed = self._under(path_prefix)
        return {name.lower(): listed[name.lower()] for name in names if name.lower() in listed}

    def apply(self, operations: Any) -> dict[str, Any] | None:
        created: dict[str, Any] | None = None
        for operation in operations:
            self.machine.before_write(self, operation)
            try:
                self.fake.call(operation)
            except IamError as error:
                if error.code == "NoSuchEntity":
                    if operation.absent_target_means_done:
                        continue
                    raise NotFoundError(
                        FailureKind.AWS_ERROR, operation.action, error.code, str(error)
                    ) from error
                raise AwsCallError(
                    FailureKind.AWS_ERROR, operation.action, error.code, str(error)
                ) from error
            if operation.action == "CreateRole":
                role = self.fake.roles[operation.params["RoleName"].lower()]
                self.machine.created_by[role.role_id] = self.machine.actor_uid()
                created = {
                    "Arn": f"arn:aws:iam::{self.account_id}:role{role.path}{role.name}",
                    "RoleId": role.role_id,
                }
        return created


class DiffReader:
    """`ecsrole diff`'s read-only view of a model account: the same reads, not counted as the
    operator's calls."""

    def __init__(self, adapter: ModelAdapter) -> None:
        self.adapter = adapter

    def caller_identity(self) -> CallerIdentity:
        account_id = self.adapter.account_id
        return CallerIdentity(
            account_id, f"arn:aws:iam::{account_id}:role/ecsrole-operator", "AROAOP"
        )

    def read_role(self, role_name: str) -> ObservedRole | None:
        return self.adapter.fake.observe(role_name)


@dataclass(frozen=True)
class Prediction:
    """The diff's decision for a resource, taken just before the operator handles it."""

    decision: decide.Decision
    planned: tuple[Operation, ...]
    calls_before: Mapping[str, int]  # account -> the fake IAM's calls so far


class ModelContext(OperatorContext):
    """The operator's context over the model: its adapters, synchronous work, no settle window.

    The fake IAM is strongly consistent, so the settle window (a guard against IAM's stale
    reads) is off; everything else is the real context (the caller identity cache included).
    """

    machine: ClaimsModel

    def adapter(self, account: AccountConfig) -> Any:
        return self.machine.adapters[account.account_id]

    async def in_worker(self, fn: Any, *, account_id: str | None = None) -> Any:
        return fn()

    def settling(
        self, account_id: str, role_name: str, judged_for: tuple[str, int]
    ) -> frozenset[model.Aspect]:
        return frozenset()


class ResourcesView:
    """kopf's `resource_index` index (by account and by uid), as a live view of the model cluster."""

    def __init__(self, machine: ClaimsModel) -> None:
        self.machine = machine

    def get(self, key: str, default: Any = ()) -> list[Resource]:
        found = [
            obj.resource().for_index()
            for obj in self.machine.objects.values()
            if key
            in (sweeper.account_key(str(obj.spec.get("accountId", ""))), sweeper.uid_key(obj.uid))
        ]
        return found or list(default)


class ClaimsView:
    """kopf's `role_claims` index: `claims.claim_of` for every object, as handlers.role_claims."""

    def __init__(self, machine: ClaimsModel) -> None:
        self.machine = machine

    def get(self, key: tuple[str, str], default: Any = ()) -> list[claims.Claim]:
        found = []
        for obj in self.machine.objects.values():
            claim = claims.claim_of(
                CONFIG,
                namespace=obj.namespace,
                uid=obj.uid,
                created=obj.created,
                spec=obj.spec,
                status=obj.status,
            )
            if claim is not None and claims.key_of(obj.spec) == key:
                found.append(claim)
        return found or list(default)


class FakeKube:
    """The sweeper's Kubernetes client: status patches land on the model's objects."""

    def __init__(self, machine: ClaimsModel) -> None:
        self.machine = machine

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        obj = self.machine.find(namespace, name)
        if obj is not None:
            self.machine.set_status(obj, patch)

    async def post_event(self, **_: Any) -> None:
        return None


class ClaimsModel(RuleBasedStateMachine):
    """Tenants, an adversary and the operator, with DESIGN section 3's invariants after each step."""

    def __init__(self) -> None:
        super().__init__()
        TOTALS.sequences += 1
        self.rng = random.Random(0)
        self.now = EPOCH
        self.adapters = {account: ModelAdapter(self, account) for account in ACCOUNTS}
        self.objects: dict[str, Obj] = {}
        self.serial = 0
        self.events: list[tuple[str, str]] = []
        self.crash_after: int | None = None
        self.writes_in_step = 0
        self.created_by: dict[str, str] = {}  # role id -> uid whose CreateRole made it
        self.adopted_by: dict[str, str] = {}  # role id -> uid whose TagRole adopted it
        self.adversary_made: set[str] = set()  # role ids the adversary created
        self.tampered: set[str] = set()  # role ids whose ownership tags the adversary wrote
        self.released: set[str] = set()  # uids deleted with paused or abandon (roles kept)
        self.seen_tags: list[dict[str, str]] = []  # ownership tag sets the adversary has read
        self.writers: dict[str, int] = {}  # uid -> AWS writes during the current operator step
        self.steps_since_fixpoint = 0
        self.calls_by: dict[str, int] = {}  # uid -> AWS calls in the current fixpoint round
        self.history: list[str] = []  # what happened, for the message of a failed invariant
        self.loop = asyncio.new_event_loop()  # one per sequence: asyncio.run per step is slow
        self.start_operator()

    # -- the operator process --------------------------------------------------------------

    def start_operator(self) -> None:
        self.context = ModelContext(config=CONFIG, clients=None, pool=None)  # type: ignore[arg-type]
        self.context.machine = self
        self.context.resources = ResourcesView(self)
        self.context.claims = ClaimsView(self)
        self.sweeper = Sweeper(self.context, FakeKube(self))  # type: ignore[arg-type]
        self.context.sweeper = self.sweeper

    def clock(self) -> datetime.datetime:
        return self.now

    def find(self, namespace: str, name: str) -> Obj | None:
        return next(
            (o for o in self.objects.values() if o.namespace == namespace and o.name == name),
            None,
        )

    def actor(self) -> Obj | None:
        """The resource whose reconcile is running: the real code binds its log fields."""
        bound = structlog.contextvars.get_contextvars()
        if "namespace" not in bound or "name" not in bound:
            return None
        return self.find(str(bound["namespace"]), str(bound["name"]))

    def actor_uid(self) -> str:
        actor = self.actor()
        return actor.uid if actor is not None else ""

    def count_call(self, account_id: str, operation: str, *, write: bool) -> None:
        TOTALS.aws_calls += 1
        actor = self.actor()
        if actor is None:
            return
        self.calls_by[actor.uid] = self.calls_by.get(actor.uid, 0) + 1
        assert actor.spec["accountId"] == account_id, (actor, operation)
        # A namespace not allowed for the account causes no AWS call for it, reads included.
        assert actor.allowed, f"{operation} for {actor.namespace}/{actor.name}, not allowed"

    def before_write(self, adapter: ModelAdapter, operation: Operation) -> None:
        if self.crash_after is not None:
            if self.crash_after == 0:
                self.crash_after = None
                TOTALS.crashes += 1
                raise OperatorCrashed(operation.action)
            self.crash_after -= 1
        self.count_call(adapter.account_id, operation.action, write=True)
        TOTALS.aws_writes += 1
        actor = self.actor()
        assert actor is not None, f"{operation.action} outside any resource's reconcile"
        self.writers[actor.uid] = self.writers.get(actor.uid, 0) + 1
        role = adapter.fake.roles.get(str(operation.params.get("RoleName", "")).lower())
        self.history.append(
            f"{actor.uid}: {operation.action} {operation.params.get('RoleName')} "
            f"({role.role_id if role else '-'}) recorded={actor.status.get('roleId')}"
        )
        self.check_write(adapter, actor, operation)

    def check_write(self, adapter: ModelAdapter, actor: Obj, operation: Operation) -> None:
        """The operator writes only to roles it owns (DESIGN section 3), by this oracle:

        the role's id is the one the resource recorded and its ownership tags name it; or the
        resource's own CreateRole made it; or the resource adopted it (a TagRole of its own
        ownership tags onto a role without any, with adopt set where the account allows it)
        and has no id recorded yet; or, while no id is recorded, the role carries the
        resource's four ownership tags and is no older than it (the crash-recovery claim
        DESIGN accepts; the SCP in docs/ keeps anyone else from writing those tags).
        """
        name = str(operation.params.get("RoleName", ""))
        assert name.lower() == str(actor.spec["roleName"]).lower(), (actor, operation)
        if operation.action == "CreateRole":
            assert operation.params["Path"] == actor.spec["path"]
            return
        role = adapter.fake.roles.get(name.lower())
        if role is None:
            return  # IAM answers NoSuchEntity: nothing is written
        recorded = actor.status.get("roleId")
        tags_name_it = all(role.tags.get(k) == v for k, v in actor.owner_tags().items())
        if recorded == role.role_id and tags_name_it:
            return
        if self.created_by.get(role.role_id) == actor.uid:
            return
        if not recorded and self.adopted_by.get(role.role_id) == actor.uid:
            return
        if not recorded and self._is_adoption(adapter, actor, operation, role):
            self.adopted_by[role.role_id] = actor.uid
            return
        if (
            not recorded
            and tags_name_it
            and role.path == actor.spec["path"]
            and role.create_date >= _parse(actor.created) - CREATE_CLOCK_SKEW
        ):
            return
        raise AssertionError(
            f"{operation.action} on role {role.name} ({role.role_id}) for "
            f"{actor.namespace}/{actor.name} (recorded {recorded!r}), which does not own it"
        )

    def check_record(self, obj: Obj, role_id: str, before: str | None) -> None:
        """A resource records only a role it created or adopted, or, while it had no id yet,
        the role carrying its ownership tags in the crash window; a recorded id is replaced
        only by a role it created itself (RoleMissing repaired)."""
        if self.created_by.get(role_id) == obj.uid:
            return
        if not before and self.adopted_by.get(role_id) == obj.uid:
            return
        role = next(
            (
                r
                for r in self.adapters[obj.spec["accountId"]].fake.roles.values()
                if r.role_id == role_id
            ),
            None,
        )
        assert role is not None, (obj.uid, role_id)
        in_window = all(role.tags.get(k) == v for k, v in obj.owner_tags().items()) and (
            role.create_date >= _parse(obj.created) - CREATE_CLOCK_SKEW
        )
        assert not before, f"{obj.namespace}/{obj.name} replaced its record {before} by {role_id}"
        assert in_window, (
            f"{obj.namespace}/{obj.name} records {role_id} (had {before!r}): not a role it "
            "created or adopted"
        )

    def _is_adoption(
        self, adapter: ModelAdapter, actor: Obj, operation: Operation, role: StoredRole
    ) -> bool:
        if operation.action != "TagRole" or not actor.spec.get("adopt"):
            return False
        if not ACCOUNTS[adapter.account_id].allow_adoption:
            return False
        if any(k.lower().startswith(constants.OWNERSHIP_TAG_PREFIX) for k in role.tags):
            return False
        if not _trusts_only_ecs_tasks(role.trust) or not role.path.startswith("/ecs/"):
            return False
        tags = {t["Key"]: t["Value"] for t in operation.params["Tags"]}
        return tags == actor.owner_tags()

    # -- what kopf does around the handlers -----------------------------------------------

    def changed(self, obj: Obj) -> None:
        """A watch event for `obj`: kopf's event handler `claims_changed` runs for its key."""
        self.events.append(claims.key_of(obj.spec))

    def set_status(self, obj: Obj, patch: Mapping[str, Any]) -> None:
        if not patch:
            return
        if patch.get("roleId") and patch["roleId"] != obj.status.get("roleId"):
            self.check_record(obj, str(patch["roleId"]), obj.status.get("roleId"))
        obj.status.update(json_copy(dict(patch)))
        conditions = {c["type"]: c for c in obj.status.get("conditions") or []}
        ready = conditions.get("Ready", {})
        if ready.get("reason") == claims.CONFLICTING:
            # Never another tenant's object in a ConflictingResource message.
            for other in self.objects.values():
                if other.uid != obj.uid:
                    assert other.name not in ready["message"], ready["message"]
                    assert other.uid not in ready["message"], ready["message"]
        self.changed(obj)

    def drain_events(self) -> None:
        """Deliver the watch events: `Sweeper.claims_changed` and the take-overs it starts."""
        for _ in range(200):
            if not self.events:
                return
            key = self.events.pop(0)

            async def deliver(key: tuple[str, str] = key) -> None:
                self.sweeper.claims_changed(key)

            self.run(deliver())
        raise AssertionError(f"watch events keep coming: {self.events[:5]}")

    def run(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run sweeper work, then the follow-ups it started (take-overs, re-creations).

        A follow-up runs at once as far as it can; one that then waits out a backoff is
        stopped and its object marked for a retry, which the model's pending work (kopf's
        retries in the real operator) performs, so the model never sleeps.
        """

        async def main() -> None:
            await work
            tasks = dict(self.sweeper._waking)
            if not tasks:
                return
            for _ in range(10):  # nothing in them waits but their backoff sleeps
                await asyncio.sleep(0)
            for uid, task in tasks.items():
                if task.done():
                    task.result()  # a crash (or a failed assertion) surfaces here
                else:
                    task.cancel()
                    if uid in self.objects:
                        self.objects[uid].retry = True

        self.loop.run_until_complete(main())

    def handle(self, obj: Obj) -> None:
        """One kopf handler run for `obj`: the finalizer first, then delete or reconcile."""
        resource = obj.resource()
        fields = {"namespace": obj.namespace, "name": obj.name}
        if obj.deleting:
            if not obj.finalizer:
                self.remove(obj)
                return
            released = resource.annotated(PAUSED_ANNOTATION) or resource.annotated(
                ABANDON_ANNOTATION
            )
            with structlog.contextvars.bound_contextvars(**fields):
                result = Reconciler(self.context).delete(resource, retry=0)
            if result.done:
                if released:
                    self.released.add(obj.uid)
                self.remove(obj)
                return
            self.set_status(obj, report.status_patch(result, resource))
            obj.retry = True
            return
        obj.finalizer = True
        index = self.context.claims
        conflicting = claims.is_conflicting(index.get(claims.key_of(obj.spec)), obj.uid)
        prediction = self.predict(obj, conflicting)
        with structlog.contextvars.bound_contextvars(**fields):
            outcome = Reconciler(self.context).reconcile(resource, conflicting=conflicting)
        if prediction is not None:
            self.check_prediction(obj, prediction, outcome)
        obj.pending = False
        obj.retry = not outcome.done
        self.set_status(obj, report.status_patch(outcome, resource))

    def predict(self, obj: Obj, conflicting: bool) -> Prediction | None:
        """What `ecsrole diff` says the operator will do for `obj`, where the diff can know.

        Only for a resource that recorded nothing yet (a manifest has no status), with no crash
        armed, and not where the diff's ownership without uid differs on purpose (a role that
        carries the resource's cluster, namespace and name tags but is not its own by the
        operator's stricter rule, the uid and the creation time included).
        """
        if obj.status.get("roleId") or obj.status.get("drift") or self.crash_after is not None:
            return None
        adapter = self.adapters.get(str(obj.spec.get("accountId")))
        role = adapter.fake.observe(str(obj.spec["roleName"])) if adapter is not None else None
        if role is not None and ownership.ownership_tags_match_without_uid(
            role, model.Owner(CLUSTER, obj.namespace, obj.name, obj.uid)
        ):
            resource = obj.resource()
            crashed = ownership.created_before_crash(
                role,
                model.Owner(CLUSTER, obj.namespace, obj.name, obj.uid),
                resource_created=resource.created,
                path=str(obj.spec.get("path", "/")),
            )
            if not crashed:
                return None
        try:
            spec: RoleSpec | SpecError = parse_spec(obj.spec)
        except SpecError as error:
            spec = error
        item = manifests.Manifest(
            source="model",
            namespace=obj.namespace,
            name=obj.name,
            spec=obj.spec,
            annotations=dict(obj.annotations),
        )
        port = readonly.PlanningPort(lambda account: DiffReader(self.adapters[account.account_id]))
        decision = decide.decide(
            diff_tool.facts_of(item, spec, conflicting=conflicting), CONFIG, port
        )
        decide.carry_out(decision, port)
        calls_before = {account: len(a.fake.calls) for account, a in self.adapters.items()}
        return Prediction(decision, tuple(port.planned), calls_before)

    def check_prediction(self, obj: Obj, prediction: Prediction, result: Any) -> None:
        """The operator did what the diff predicted: same refusal or pause, same calls."""
        TOTALS.predictions += 1
        made = [
            op
            for account, adapter in self.adapters.items()
            for op in adapter.fake.calls[prediction.calls_before[account] :]
        ]
        planned = [
            json.loads(
                json.dumps([op.action, dict(op.params)]).replace(diff_tool.UID_PLACEHOLDER, obj.uid)
            )
            for op in prediction.planned
        ]
        done = [json_copy([op.action, dict(op.params)]) for op in made]
        if result.outcome.sync_error is not None:
            # A call IAM refused ends the plan there: what was made is where the plan stopped.
            assert done == planned[: len(done)], self.history
            return
        assert done == planned, self.history
        decision = prediction.decision
        if decision.refusal is not None:
            assert result.outcome.ready_reason == decision.refusal.reason
            assert result.outcome.ready_message == decision.refusal.message
        elif decision.action == decide.Action.PAUSED:
            assert result.outcome.ready_reason == model.ReadyReason.Paused
            assert result.outcome.ready_message == decision.message

    def remove(self, obj: Obj) -> None:
        self.history.append(f"{obj.uid}: gone")
        del self.objects[obj.uid]
        self.changed(obj)

    def operate(self, action: Any) -> None:
        """Run operator work; a crash drops the rest and restarts the process (resume all)."""
        self.writers = {}
        try:
            action()
            self.drain_events()
        except OperatorCrashed:
            self.history.append("crash")
            self.events.clear()
            self.crash_after = None
            self.start_operator()
            for obj in self.objects.values():
                obj.pending = True
            return
        for uid, count in self.writers.items():
            obj = self.objects.get(uid)
            if obj is None or not count:
                continue
            stalled = {c["type"]: c for c in obj.status.get("conditions") or []}.get("Stalled", {})
            # A refused resource causes no AWS write.
            assert stalled.get("status") != "True", (obj.uid, stalled, count)

    def pending(self) -> list[Obj]:
        return sorted(
            (o for o in self.objects.values() if o.pending or o.retry or o.deleting),
            key=lambda o: o.uid,
        )

    def sweep_all(self) -> None:
        for account in ACCOUNTS.values():
            self.run(self.sweeper.sweep_account(account))

    def state(self) -> str:
        roles = {
            account: {k: vars(r) for k, r in adapter.fake.roles.items()}
            for account, adapter in self.adapters.items()
        }
        objects = {uid: (o.status, o.finalizer, o.deleting) for uid, o in self.objects.items()}
        return json.dumps([roles, objects], sort_keys=True, default=str)

    def converge(self) -> None:
        """The adversary has stopped: run the operator until a round changes nothing."""
        TOTALS.fixpoints += 1
        self.steps_since_fixpoint = 0
        for _ in range(MAX_ROUNDS):
            self.calls_by = {}
            before = self.state()
            for obj in self.pending():
                if obj.uid in self.objects:
                    self.operate(lambda obj=obj: self.handle(obj))
            self.operate(self.sweep_all)
            if self.state() == before and not any(o.pending for o in self.objects.values()):
                break
        else:
            raise AssertionError("the operator did not reach a fixpoint")
        # At rest (a round that changed nothing, so wrote nothing to Kubernetes or AWS), a
        # conflict costs no AWS call either: losers are neither retried nor swept.
        for obj in self.objects.values():
            if _condition(obj, "Ready").get("reason") == claims.CONFLICTING:
                assert not self.calls_by.get(obj.uid), (obj.uid, self.calls_by)
        self.check_at_fixpoint()

    def check_at_fixpoint(self) -> None:
        """Every valid resource that is the first claim on its role is Ready, or rests with a
        reason that needs a human; every other valid claim is Stalled; no role
        carrying this cluster's ownership tags is without its resource (Retain drops the tags;
        paused and abandon deletions keep them on purpose)."""
        by_key: dict[tuple[str, str], list[Obj]] = {}
        for obj in self.objects.values():
            if obj.allowed:
                by_key.setdefault(claims.key_of(obj.spec), []).append(obj)
        for key, claimants in by_key.items():
            # The oracle's ranking, from DESIGN: holders of a recorded id first, then oldest.
            claimants.sort(key=lambda o: (not o.status.get("roleId"), o.created, o.uid))
            first, *others = claimants
            ready = _condition(first, "Ready")
            if ready.get("status") != "True":
                reason = ready.get("reason")
                assert reason in NEEDS_A_HUMAN, (key, first.uid, ready)
                if reason == "RoleMissing":  # reported, not repaired: only under Report
                    assert first.spec.get("driftPolicy") == "Report", (key, first.uid, ready)
                if reason == "Paused":
                    assert first.annotations.get(PAUSED_ANNOTATION) == "true", (key, first.uid)
            else:
                role = self.adapters[key[0]].fake.roles.get(key[1])
                assert role is not None, (key, first.uid)
                assert role.role_id == first.status.get("roleId"), (key, first.uid)
                assert all(role.tags.get(k) == v for k, v in first.owner_tags().items())
            for other in others:
                # ConflictingResource, or a refusal it met while it was first (a newer object
                # created in the same second can outrank it): never Ready, never recorded.
                ready = _condition(other, "Ready")
                assert ready.get("status") != "True", (key, other.uid, ready)
                assert _condition(other, "Stalled").get("status") == "True", (key, other.uid)
        for account, adapter in self.adapters.items():
            for role in adapter.fake.roles.values():
                if role.tags.get(constants.TAG_CLUSTER) != CLUSTER:
                    continue
                ours = role.role_id in self.created_by or role.role_id in self.adopted_by
                if not ours or role.role_id in self.tampered:
                    continue
                uid = role.tags.get(constants.TAG_UID, "")
                assert uid in self.objects or uid in self.released, (
                    f"role {role.name} ({role.role_id}) in {account} carries the ownership tags "
                    f"of {uid}, which is gone without Retain, paused or abandon; "
                    + " | ".join(self.history[-40:])
                )

    # -- invariants after every step ------------------------------------------------------

    @invariant()
    def one_resource_records_a_role(self) -> None:
        recorded: dict[tuple[str, str], str] = {}
        for obj in self.objects.values():
            if obj.status.get("roleId"):
                key = claims.key_of(obj.spec)
                assert key not in recorded, f"{recorded[key]} and {obj.uid} both record {key}"
                recorded[key] = obj.uid

    @invariant()
    def refused_resources_record_nothing(self) -> None:
        for obj in self.objects.values():
            if not obj.allowed:
                assert not obj.status.get("roleId"), obj.uid

    # -- tenants --------------------------------------------------------------------------

    def _step(self, name: str) -> None:
        self.steps_since_fixpoint += 1
        TOTALS.steps += 1
        TOTALS.rules[name] = TOTALS.rules.get(name, 0) + 1

    CREATE: ClassVar[dict[str, st.SearchStrategy[Any]]] = {
        "namespace": st.sampled_from(NAMESPACES),
        "account": st.sampled_from(sorted(ACCOUNTS)),
        "role_name": st.sampled_from(ROLE_NAMES),
        "adopt": st.booleans(),
        "deletion_policy": st.sampled_from([None, "Delete", "Retain"]),
        "drift_policy": st.sampled_from(["Enforce", "Report"]),
        "same_second": st.booleans(),
        "uid_rank": st.integers(0, 9),
    }

    @rule(**CREATE)
    def create(self, **values: Any) -> None:
        self._create(**values)

    # Rules are chosen about evenly; creating and handling twice as often keeps sequences busy.
    @rule(**CREATE)
    def create_more(self, **values: Any) -> None:
        self._create(**values)

    def _create(
        self,
        namespace: str,
        account: str,
        role_name: str,
        adopt: bool,
        deletion_policy: str | None,
        drift_policy: str,
        same_second: bool,
        uid_rank: int,
    ) -> None:
        self._step("create")
        if not same_second:
            self.now += datetime.timedelta(seconds=1)
        self.serial += 1
        spec: dict[str, Any] = {
            "accountId": account,
            "roleName": role_name,
            "path": "/ecs/",
            "adopt": adopt,
            "driftPolicy": drift_policy,
        }
        if deletion_policy is not None:
            spec["deletionPolicy"] = deletion_policy
        obj = Obj(
            namespace=namespace,
            name=f"res-{self.serial}",
            uid=f"{uid_rank}-uid-{self.serial}",
            created=_rfc3339(self.now),
            spec=spec,
        )
        self.objects[obj.uid] = obj
        self.changed(obj)
        self.operate(self.drain_events)

    def _obj(self, pick: int) -> Obj | None:
        if not self.objects:
            return None
        return sorted(self.objects.values(), key=lambda o: o.uid)[pick % len(self.objects)]

    @rule(
        pick=st.integers(0, 30),
        change=st.sampled_from(["description", "deletionPolicy", "driftPolicy", "adopt", "tags"]),
    )
    def update(self, pick: int, change: str) -> None:
        self._step("update")
        obj = self._obj(pick)
        if obj is None or obj.deleting:
            return
        if change == "description":
            obj.spec["description"] = f"v{obj.generation}"
        elif change == "deletionPolicy":
            obj.spec["deletionPolicy"] = (
                "Retain" if obj.spec.get("deletionPolicy") != "Retain" else "Delete"
            )
        elif change == "driftPolicy":
            obj.spec["driftPolicy"] = (
                "Report" if obj.spec.get("driftPolicy") != "Report" else "Enforce"
            )
        elif change == "adopt":
            obj.spec["adopt"] = not obj.spec.get("adopt")
        else:
            obj.spec["tags"] = {"team": f"t{obj.generation}"}
        obj.generation += 1
        obj.pending = True
        self.changed(obj)
        self.operate(self.drain_events)

    @rule(
        pick=st.integers(0, 30),
        annotation=st.sampled_from([PAUSED_ANNOTATION, ABANDON_ANNOTATION]),
        on=st.booleans(),
    )
    def annotate(self, pick: int, annotation: str, on: bool) -> None:
        self._step("annotate")
        obj = self._obj(pick)
        if obj is None:
            return
        if on:
            obj.annotations[annotation] = "true"
        else:
            obj.annotations.pop(annotation, None)
        obj.pending = obj.pending or not obj.deleting
        self.changed(obj)
        self.operate(self.drain_events)

    @rule(pick=st.integers(0, 30))
    def delete(self, pick: int) -> None:
        self._step("delete")
        obj = self._obj(pick)
        if obj is None or obj.deleting:
            return
        if not obj.finalizer:
            self.remove(obj)
        else:
            obj.deleting = True
            self.changed(obj)
        self.operate(self.drain_events)

    # -- the adversary (IAM rights, ownership tags included) --------------------------------

    def _role(self, account: str, role_name: str) -> StoredRole | None:
        return self.adapters[account].fake.roles.get(role_name.lower())

    def _remember_tags(self) -> None:
        for adapter in self.adapters.values():
            for role in adapter.fake.roles.values():
                tags = {
                    k: v
                    for k, v in role.tags.items()
                    if k.lower().startswith(constants.OWNERSHIP_TAG_PREFIX)
                }
                if tags and tags not in self.seen_tags:
                    self.seen_tags.append(tags)

    @rule(account=st.sampled_from(sorted(ACCOUNTS)), role_name=st.sampled_from(ROLE_NAMES))
    def adversary_deletes_role(self, account: str, role_name: str) -> None:
        self._step("adversary_deletes_role")
        self._remember_tags()
        self.adapters[account].fake.roles.pop(role_name.lower(), None)

    @rule(
        account=st.sampled_from(sorted(ACCOUNTS)),
        role_name=st.sampled_from(ROLE_NAMES),
        ec2=st.booleans(),
        copy=st.integers(-1, 5),
    )
    def adversary_creates_role(self, account: str, role_name: str, ec2: bool, copy: int) -> None:
        """A hand-made role, optionally with ownership tags read earlier from another role."""
        self._step("adversary_creates_role")
        self._remember_tags()
        fake = self.adapters[account].fake
        if role_name.lower() in fake.roles:
            return
        tags = (
            dict(self.seen_tags[copy % len(self.seen_tags)]) if copy >= 0 and self.seen_tags else {}
        )
        role = StoredRole(
            name=role_name,
            path="/ecs/",
            role_id=fake.new_role_id(),
            trust=json_copy(EC2_TRUST if ec2 else SEED_TRUST),
            tags=tags,
            create_date=self.now,
        )
        fake.roles[role_name.lower()] = role
        self.adversary_made.add(role.role_id)
        if tags:
            self.tampered.add(role.role_id)

    @rule(
        account=st.sampled_from(sorted(ACCOUNTS)),
        role_name=st.sampled_from(ROLE_NAMES),
        copy=st.integers(0, 5),
    )
    def adversary_copies_tags(self, account: str, role_name: str, copy: int) -> None:
        self._step("adversary_copies_tags")
        self._remember_tags()
        role = self._role(account, role_name)
        if role is None or not self.seen_tags:
            return
        role.tags.update(self.seen_tags[copy % len(self.seen_tags)])
        self.tampered.add(role.role_id)

    @rule(account=st.sampled_from(sorted(ACCOUNTS)), role_name=st.sampled_from(ROLE_NAMES))
    def adversary_attaches_policy(self, account: str, role_name: str) -> None:
        self._step("adversary_attaches_policy")
        role = self._role(account, role_name)
        if role is not None:
            role.managed.add(ADMIN_POLICY)

    @rule(account=st.sampled_from(sorted(ACCOUNTS)), role_name=st.sampled_from(ROLE_NAMES))
    def adversary_edits_trust(self, account: str, role_name: str) -> None:
        self._step("adversary_edits_trust")
        role = self._role(account, role_name)
        if role is not None:
            role.trust = json_copy(EC2_TRUST)

    # -- the operator ---------------------------------------------------------------------

    @precondition(lambda self: bool(self.pending()))
    @rule(pick=st.integers(0, 30))
    def kopf_handles(self, pick: int) -> None:
        self._step("kopf_handles")
        candidates = self.pending()
        obj = candidates[pick % len(candidates)]
        self.operate(lambda: self.handle(obj))

    @precondition(lambda self: bool(self.pending()))
    @rule(pick=st.integers(0, 30))
    def kopf_handles_more(self, pick: int) -> None:
        self.kopf_handles(pick)

    @rule(after=st.integers(0, 4))
    def crash_after_writes(self, after: int) -> None:
        """The next operator work dies after `after` more AWS writes (if it makes that many)."""
        self._step("crash_after_writes")
        self.crash_after = after

    @rule()
    def sweep(self) -> None:
        self._step("sweep")
        self.operate(self.sweep_all)

    @rule(account=st.sampled_from(sorted(ACCOUNTS)), role_name=st.sampled_from(ROLE_NAMES))
    def cloudtrail_event(self, account: str, role_name: str) -> None:
        self._step("cloudtrail_event")
        self.operate(lambda: self.run(self.sweeper.role_changed(account, role_name, None)))

    @precondition(lambda self: self.steps_since_fixpoint >= 4)
    @rule()
    def adversary_stops(self) -> None:
        """The adversary stops for a while; the operator runs to a fixpoint; then it may resume.

        An armed crash still fires (the operator restarts and converges from there)."""
        self._step("adversary_stops")
        self.converge()

    def teardown(self) -> None:
        try:
            self.converge()
        finally:
            self.loop.close()


def _trusts_only_ecs_tasks(trust: Mapping[str, Any]) -> bool:
    statements = trust.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = [s for s in statements if s.get("Effect") == "Allow"]
    return bool(allowed) and all(
        s.get("Principal") == {"Service": "ecs-tasks.amazonaws.com"} for s in allowed
    )


def _parse(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition(obj: Obj, type_: str) -> dict[str, Any]:
    for condition in obj.status.get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return {}


def rules_tried() -> Iterator[tuple[str, int]]:
    yield from sorted(TOTALS.rules.items())
