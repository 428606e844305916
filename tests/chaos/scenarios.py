"""The reliability scenarios of issue 8, parametrized by size, shared by `make chaos` and `make test`.

Each scenario drives the real stack (kube-apiserver, moto behind the fault proxy, the operator as
a process running as the chart's ServiceAccount) and returns the figures it measured, so a caller
can assert on them and the chaos run can write them to bench/results/chaos-*.json.

What is measured comes from outside the operator wherever possible: AWS calls are counted by the
fault proxy (so they survive SIGKILLs and include every retry), ownership is read back from moto,
convergence from the API server.
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from tests.stack.faults import FaultProxy
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import eventually
from tests.stack.resources import (  # also used as scenarios.role_manifest
    SEED_POLICY,
    SEED_TRUST,
    role_manifest,
)

Aws = Callable[..., Any]
StartOperator = Callable[..., OperatorProcess]

GROUP_PATH = "/apis/iam.ecsrole.dev/v1alpha1"
OWNERSHIP_PREFIX = "ecsrole.dev/"
#: Not in any operator's account map: a namespace naming it gets AccountNotAllowed.
UNLISTED_ACCOUNT_ID = "999999999999"


class ApiUnavailableError(RuntimeError):
    """The API server answered 429 or 5xx (e.g. right after a restart): try again."""


# -- the API server, directly (kubectl costs ~0.1 s of CPU a call) -------------------------------


class KubeApi:
    """A minimal HTTPS client for the API server from a kubeconfig (client certificate or token)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context_name = config.get("current-context")
        context = next(c for c in config["contexts"] if c["name"] == context_name)["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        parts = urlsplit(cluster["server"])
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 443
        self.ssl = ssl.create_default_context(cafile=cluster.get("certificate-authority"))
        if "client-certificate" in user:
            self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])
        self.token = user.get("token")
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(
                self.host, self.port, context=self.ssl, timeout=30
            )
            self._local.connection = connection
        return connection

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        if response.status == 429 or response.status >= 500:
            raise ApiUnavailableError(f"{method} {path}: {response.status} {raw[:300]!r}")
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    # EcsExecutionRole helpers

    @staticmethod
    def collection(namespace: str) -> str:
        return f"{GROUP_PATH}/namespaces/{namespace}/ecsexecutionroles"

    def create(self, namespace: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        return self.request("POST", f"{self.collection(namespace)}?fieldValidation=Strict", body)

    def apply(self, namespace: str, body: Mapping[str, Any]) -> None:
        """Server-side apply (create or update) as the field manager `chaos`."""
        name = body["metadata"]["name"]
        status, answer = self.request(
            "PATCH",
            f"{self.collection(namespace)}/{name}?fieldManager=chaos&force=true",
            body,
            content_type="application/apply-patch+yaml",
        )
        if status not in (200, 201):
            raise AssertionError(f"apply {namespace}/{name} failed ({status}): {answer}")

    def delete(self, namespace: str, name: str) -> None:
        status, answer = self.request("DELETE", f"{self.collection(namespace)}/{quote(name)}")
        if status not in (200, 202, 404):
            raise AssertionError(f"delete {namespace}/{name} failed ({status}): {answer}")

    def list(self, namespace: str) -> list[dict[str, Any]]:
        status, answer = self.request("GET", self.collection(namespace))
        if status != 200:
            raise AssertionError(f"list {namespace} failed ({status}): {answer}")
        items: list[dict[str, Any]] = answer["items"]
        return items

    def list_by_name(self, namespace: str) -> dict[str, dict[str, Any]]:
        return {item["metadata"]["name"]: item for item in self.list(namespace)}


def condition(resource: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for item in (resource.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


def verdict(resource: Mapping[str, Any]) -> str | None:
    """Ready's reason when the operator has judged the CURRENT generation, else None."""
    generation = resource["metadata"].get("generation")
    status = resource.get("status") or {}
    ready = condition(resource, "Ready")
    if ready is None or status.get("observedGeneration") != generation:
        return None
    if ready.get("observedGeneration") != generation:
        return None
    return str(ready.get("reason"))


def settled(resource: Mapping[str, Any]) -> bool:
    """Done with the current generation as kstatus sees it: Ready=True/Reconciled at this
    generation, the last attempt succeeded (Synced=True) and nothing is in progress.

    Ready alone is not enough: a failed attempt keeps Ready as it was (by design, so throttling
    does not flip Ready on hundreds of roles) and only Synced/Reconciling show the pending work.
    """
    synced = condition(resource, "Synced") or {}
    reconciling = condition(resource, "Reconciling") or {}
    return (
        verdict(resource) == "Reconciled"
        and synced.get("status") == "True"
        and reconciling.get("status") != "True"
    )


def wait_for(check: Callable[[], Any], *, what: str, timeout: float, interval: float = 1.0) -> Any:
    """`eventually`, with the API server's and HTTP's transient failures meaning "not yet"."""
    return eventually(
        check,
        what=what,
        timeout=timeout,
        interval=interval,
        tolerate=(OSError, http.client.HTTPException, ApiUnavailableError),
    )


def leads(operator: OperatorProcess) -> bool:
    try:
        with urllib.request.urlopen(operator.health_url, timeout=2) as response:  # noqa: S310
            return bool(json.load(response)["leader"])
    except (OSError, ValueError, KeyError):
        return False


def wait_leading(operator: OperatorProcess, timeout: float = 60.0) -> None:
    def check() -> bool:
        operator.child.ensure_alive()
        return leads(operator)

    wait_for(check, what="the operator holds its lease", timeout=timeout, interval=0.1)


# -- moto, read back ---------------------------------------------------------------------------


def roles_under(iam: Any, path: str) -> dict[str, dict[str, Any]]:
    """{role name: role with its `Tags` dict} for every role under `path`."""
    roles: dict[str, dict[str, Any]] = {}
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=path):
        for role in page["Roles"]:
            tags = iam.list_role_tags(RoleName=role["RoleName"])["Tags"]
            roles[role["RoleName"]] = {**role, "Tags": {t["Key"]: t["Value"] for t in tags}}
    return roles


def create_role_by_hand(
    iam: Any,
    role_name: str,
    *,
    path: str = "/",
    trust: Mapping[str, Any] = SEED_TRUST,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RoleName": role_name,
        "Path": path,
        "AssumeRolePolicyDocument": json.dumps(trust),
    }
    if tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    role: dict[str, Any] = iam.create_role(**params)["Role"]
    return role


def role_fingerprint(iam: Any, role_name: str) -> tuple[Any, ...] | None:
    """What a write to a role would change (None when the role is gone)."""
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None
    tags = sorted((t["Key"], t["Value"]) for t in iam.list_role_tags(RoleName=role_name)["Tags"])
    attached = sorted(
        p["PolicyArn"]
        for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    )
    inline = sorted(iam.list_role_policies(RoleName=role_name)["PolicyNames"])
    return (
        role["RoleId"],
        json.dumps(role["AssumeRolePolicyDocument"], sort_keys=True),
        role.get("Description"),
        role.get("MaxSessionDuration"),
        tuple(tags),
        tuple(attached),
        tuple(inline),
    )


# -- context ------------------------------------------------------------------------------------


@dataclass
class Stack:
    """What a scenario needs from the test session."""

    api: KubeApi
    aws: Aws
    proxy: FaultProxy
    start_operator: StartOperator  # operator_factory, pointed at the proxy by the caller

    def iam(self) -> Any:
        return self.aws("iam")


def operator_config(
    cluster: str, namespaces: list[str], **account: Any
) -> dict[str, Any]:  # one account
    settings = {"namespaces": namespaces, "maxCallsPerSecond": 50, **account}
    return dev_config(cluster, {DEFAULT_ACCOUNT_ID: settings}, driftCheckInterval="30s")


# -- scenarios 1 and 2: churn under IAM faults and SIGKILLs ----------------------------------------


class Killer(threading.Thread):
    """SIGKILLs the leading replica `count` times at random moments once it leads.

    Two replicas share the Lease, as with the chart's `replicas: 2`: the standby takes over
    from the killed leader, and the killed one is restarted (as Kubernetes would) to become the
    next standby. Every kill is still followed by a fresh process resuming every object.
    """

    def __init__(
        self, replicas: list[OperatorProcess], count: int, rng: random.Random, max_gap: float
    ) -> None:
        super().__init__(name="killer", daemon=True)
        self.replicas, self.count, self.rng, self.max_gap = replicas, count, rng, max_gap
        self.kills = 0
        #: Exits the operator chose (a lost lease under load exits 1, as it should); restarted
        #: like Kubernetes would, and reported.
        self.self_exits = 0
        self.error: BaseException | None = None
        self.done_at = 0.0

    def leader(self, timeout: float = 60.0) -> OperatorProcess:
        """The replica holding the Lease; a replica that exited on its own is restarted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for replica in self.replicas:
                if not replica.child.alive():
                    self.self_exits += 1
                    replica.start()
                elif leads(replica):
                    return replica
            time.sleep(0.1)
        raise TimeoutError(f"no replica took the lease within {timeout:.0f}s")

    def run(self) -> None:
        try:
            for _ in range(self.count):
                leader = self.leader()
                time.sleep(self.rng.uniform(0.0, self.max_gap))  # the random moment
                leader.kill()
                self.kills += 1
                leader.start()  # the next standby; meanwhile the other replica takes over
            self.leader()
        except BaseException as error:
            self.error = error
        finally:
            self.done_at = time.monotonic()


def churn(
    stack: Stack,
    namespace: str,
    *,
    size: int,
    faults: Mapping[str, float] | None = None,
    kills: int = 0,
    kill_gap: float = 3.0,
    lease_duration: float = 4.0,
    seed: int = 0,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Create `size` resources, update all, delete a third (a tenth with Retain), under IAM faults
    at `faults` rates and `kills` SIGKILLs; wait for convergence; audit IAM against the resources.

    Returns the figures; the caller asserts on them.
    """
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    cluster = f"chaos-{run}"
    path = f"/chaos-{run}/"
    iam = stack.iam()

    # Bystanders at the same path: an unowned role, one claimed by another cluster, and one
    # carrying this cluster's and namespace's ownership tags with a uid no resource has.
    bystanders = {
        f"bystander-{run}-plain": {},
        f"bystander-{run}-other-cluster": {
            "ecsrole.dev/cluster": "someone-else",
            "ecsrole.dev/namespace": namespace,
            "ecsrole.dev/name": "r-0000",
            "ecsrole.dev/uid": str(uuid.uuid4()),
        },
        f"bystander-{run}-copied-tags": {
            "ecsrole.dev/cluster": cluster,
            "ecsrole.dev/namespace": namespace,
            "ecsrole.dev/name": "r-0001",
            "ecsrole.dev/uid": str(uuid.uuid4()),
        },
    }
    for name, tags in bystanders.items():
        create_role_by_hand(iam, name, path=path, tags=tags)
    before = {name: role_fingerprint(iam, name) for name in bystanders}

    lease = f"ecsrole-{run}"
    replicas = [
        stack.start_operator(
            operator_config(cluster, [namespace]),
            namespaces=[namespace],
            lease_duration=lease_duration,
            lease_name=lease,
        )
        for _ in range(2 if kills else 1)
    ]
    killer = Killer(replicas, kills, rng, kill_gap)
    killer.leader()
    mark = stack.proxy.mark()
    injected_before = stack.proxy.counts()
    stack.proxy.set_rates(**(faults or {}))
    started = time.monotonic()

    names = [f"r-{i:04d}" for i in range(size)]
    role_names = {name: f"chaos-{run}-{name}" for name in names}
    retained = {name for i, name in enumerate(names) if i % 10 == 9}
    deleted = {name for i, name in enumerate(names) if i % 3 == 0}

    def spec_of(name: str, phase: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"path": path, "tags": {"phase": phase}}
        if name in retained:
            spec["deletionPolicy"] = "Retain"
        if phase == "update":
            spec["description"] = f"updated {name}"
            spec["maxSessionDuration"] = 7200
        return spec

    if kills:
        killer.start()
    for name in names:
        stack.api.apply(namespace, role_manifest(name, role_names[name], **spec_of(name, "create")))

    def half_recorded() -> bool:
        items = stack.api.list(namespace)
        return sum(1 for i in items if (i.get("status") or {}).get("roleId")) >= size // 2

    def kills_reached(share: float) -> Callable[[], bool]:
        # The churn is spread over the kills, so they land during each phase's work, not
        # after the churn is over.
        return lambda: killer.error is not None or killer.kills >= round(kills * share)

    wait_for(half_recorded, what="half the roles recorded", timeout=timeout, interval=0.5)
    wait_for(kills_reached(1 / 3), what="a third of the kills", timeout=timeout, interval=0.2)
    for name in names:
        stack.api.apply(namespace, role_manifest(name, role_names[name], **spec_of(name, "update")))
    time.sleep(rng.uniform(0.5, 2.0))
    wait_for(kills_reached(2 / 3), what="two thirds of the kills", timeout=timeout, interval=0.2)
    for name in sorted(deleted):
        stack.api.delete(namespace, name)
    churned_at = time.monotonic()
    if kills:
        killer.join(timeout)
        if killer.error is not None:
            raise killer.error
    last_kill_at = killer.done_at if kills else churned_at

    survivors = [n for n in names if n not in deleted]

    def converged() -> bool:
        items = stack.api.list_by_name(namespace)
        if any(name in items for name in deleted):
            return False
        return all(
            name in items and settled(items[name]) and (items[name]["status"] or {}).get("roleId")
            for name in survivors
        )

    wait_for(converged, what=f"{size} resources converge", timeout=timeout)
    converged_at = time.monotonic()
    stack.proxy.clear()
    calls = stack.proxy.calls(mark)
    injected = {k: v - injected_before.get(k, 0) for k, v in stack.proxy.counts().items()}

    # Audit: IAM against the resources that exist.
    items = stack.api.list_by_name(namespace)
    roles = roles_under(iam, path)
    by_uid = Counter(
        role["Tags"].get("ecsrole.dev/uid")
        for role in roles.values()
        if role["Tags"].get("ecsrole.dev/cluster") == cluster
    )
    live_uids = {items[n]["metadata"]["uid"] for n in survivors}
    problems: list[str] = []
    for name in survivors:
        item, role = items[name], roles.get(role_names[name])
        if role is None:
            problems.append(f"{name}: role missing")
            continue
        if role["RoleId"] != item["status"].get("roleId"):
            problems.append(f"{name}: status.roleId is not the role's id")
        if role.get("Description") != f"updated {name}" or role["Tags"].get("phase") != "update":
            problems.append(f"{name}: update not applied")
        if role["Tags"].get("ecsrole.dev/uid") != item["metadata"]["uid"]:
            problems.append(f"{name}: ownership tags do not name the resource")
    duplicates = sum(count - 1 for uid, count in by_uid.items() if uid and count > 1)
    orphans = sorted(
        name
        for name, role in roles.items()
        if role["Tags"].get("ecsrole.dev/cluster") == cluster
        and role["Tags"].get("ecsrole.dev/uid") not in live_uids
        and name not in bystanders
    )
    created_roles = {
        c.role_name
        for c in calls
        if c.action == "CreateRole" and c.fault in (None, "latency", "drop_response")
    }
    wrongly_deleted = sorted(
        # A Retain resource deleted before its CreateRole ever got through has nothing to keep.
        [
            role_names[n]
            for n in deleted & retained
            if role_names[n] not in roles and role_names[n] in created_roles
        ]
        + [role_names[n] for n in survivors if role_names[n] not in roles]
        + [name for name in bystanders if name not in roles]
    )
    left_behind = sorted(role_names[n] for n in deleted - retained if role_names[n] in roles)
    still_tagged_retained = sorted(
        role_names[n]
        for n in deleted & retained
        if role_names[n] in roles
        and any(k.startswith(OWNERSHIP_PREFIX) for k in roles[role_names[n]]["Tags"])
    )
    bystanders_changed = sorted(n for n in bystanders if role_fingerprint(iam, n) != before[n])
    stuck_finalizers = sum(1 for n in deleted if n in items)

    iam_calls = [c for c in calls if c.service == "iam"]
    figures = {
        "resources": size,
        "updated": size,
        "deleted": len(deleted),
        "retained_on_delete": len(deleted & retained),
        "kills": killer.kills if kills else 0,
        "operator_exits_on_its_own": killer.self_exits,
        "replicas": len(replicas),
        "operator_starts": len(replicas) + (killer.kills + killer.self_exits if kills else 0),
        "faults": dict(faults or {}),
        "injected": injected,
        "seconds_total": round(converged_at - started, 1),
        "seconds_to_converge_after_last_fault": round(
            converged_at - max(churned_at, last_kill_at), 1
        ),
        "iam_calls": len(iam_calls),
        "iam_calls_per_resource": round(len(iam_calls) / size, 2),
        "iam_writes": sum(
            1
            for c in iam_calls
            if c.fault not in ("throttle", "error", "drop") and _write(c.action)
        ),
        "calls_by_action": dict(Counter(c.action for c in iam_calls).most_common()),
        "all_ready": not problems,
        "problems": problems[:20],
        "duplicates": duplicates,
        "orphans": orphans,
        "wrongly_deleted": wrongly_deleted,
        "left_behind": left_behind,
        "retained_still_tagged": still_tagged_retained,
        "bystanders_changed": bystanders_changed,
        "stuck_finalizers": stuck_finalizers,
    }
    # Leave nothing behind: remove what remains (not measured).
    for name in survivors:
        stack.api.delete(namespace, name)
    wait_for(
        lambda: not stack.api.list(namespace), what="cleanup deletions finish", timeout=timeout
    )
    for replica in replicas:
        replica.stop()
    return figures


def _write(action: str) -> bool:
    return bool(action) and not action.startswith(("Get", "List", "Simulate"))


def assert_churn_sound(figures: Mapping[str, Any]) -> None:
    """What must hold after any churn run, faults or not."""
    assert figures["all_ready"], figures["problems"]
    assert figures["duplicates"] == 0, figures
    assert figures["orphans"] == [], figures["orphans"]
    assert figures["wrongly_deleted"] == [], figures["wrongly_deleted"]
    assert figures["left_behind"] == [], figures["left_behind"]
    assert figures["retained_still_tagged"] == [], figures["retained_still_tagged"]
    assert figures["bystanders_changed"] == [], figures["bystanders_changed"]
    assert figures["stuck_finalizers"] == 0, figures


# -- scenario 3: kube-apiserver restarts ------------------------------------------------------------


def apiserver_restarts(
    stack: Stack,
    namespace: str,
    plane: Any,
    *,
    restarts: int,
    outage: float,
    lease_duration: float,
    long_outage: float | None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Restart kube-apiserver `restarts` times with `outage` seconds down while the operator runs,
    then once for `long_outage` seconds (beyond the renew deadline) with a standby waiting."""
    run = uuid.uuid4().hex[:8]
    cluster = f"chaos-api-{run}"
    lease = f"chaos-{run}"
    config = operator_config(cluster, [namespace])
    leader = stack.start_operator(
        config, namespaces=[namespace], lease_name=lease, lease_duration=lease_duration
    )
    wait_leading(leader)
    pid = leader.child.pid

    def create_ready(name: str, watched_by: OperatorProcess | None = None) -> float:
        """Create a resource (retrying until the API server takes it); seconds until Ready.
        `watched_by` must stay alive meanwhile (fail at once when it exits)."""
        started = time.monotonic()
        body = role_manifest(name, f"chaos-api-{run}-{name}")

        def ready() -> bool:
            if watched_by is not None:
                watched_by.child.ensure_alive()
            item = stack.api.list_by_name(namespace).get(name, {"metadata": {}})
            return verdict(item) == "Reconciled"

        wait_for(
            lambda: stack.api.create(namespace, body)[0] in (201, 409),
            what=f"create {name}",
            timeout=timeout,
            interval=0.2,
        )
        wait_for(ready, what=f"{name} Ready", timeout=timeout, interval=0.2)
        return time.monotonic() - started

    create_ready("before", leader)
    rounds = []
    for index in range(restarts):
        down = plane.restart_apiserver(outage)
        recovery = create_ready(f"after-{index}", leader)
        leader.child.ensure_alive()
        rounds.append(
            {
                "outage_seconds": round(down, 1),
                "seconds_to_ready_after_restart": round(recovery, 1),
                "same_pid": leader.child.pid == pid,
                "leader": leads(leader),
            }
        )

    long: dict[str, Any] = {}
    standby: OperatorProcess | None = None
    if long_outage is not None:
        # A long outage: the leader cannot renew within the deadline and must stop (exit 1);
        # the standby takes over once the API server is back and the lease has run out.
        standby = stack.start_operator(
            config, namespaces=[namespace], lease_name=lease, lease_duration=lease_duration
        )
        assert not leads(standby)
        plane.stop_apiserver()
        stopped = time.monotonic()
        time.sleep(long_outage)
        plane.start_apiserver()
        back = time.monotonic()

        def exited() -> bool:
            return leader.child.process is not None and leader.child.process.poll() is not None

        wait_for(exited, what="the old leader exits", timeout=timeout, interval=0.2)
        assert leader.child.process is not None
        exit_code = leader.child.process.returncode
        wait_leading(standby, timeout=timeout)
        takeover = time.monotonic() - back
        recovery = create_ready("after-long-outage")
        long = {
            "long_outage_seconds": round(back - stopped, 1),
            "old_leader_exit_code": exit_code,
            "standby_took_over_seconds_after_apiserver_back": round(takeover, 1),
            "seconds_to_ready_after_takeover": round(recovery, 1),
        }
    figures = {
        "restarts": restarts,
        "lease_duration_seconds": lease_duration,
        "renew_deadline_seconds": round(lease_duration * 2 / 3, 1),
        "rounds": rounds,
        "max_outage_seconds": max(r["outage_seconds"] for r in rounds) if rounds else 0,
        "max_seconds_to_ready_after_restart": max(
            (r["seconds_to_ready_after_restart"] for r in rounds), default=0
        ),
        "operator_restarts_during_short_outages": sum(1 for r in rounds if not r["same_pid"]),
        **long,
    }
    for item in stack.api.list(namespace):
        stack.api.delete(namespace, item["metadata"]["name"])
    wait_for(lambda: not stack.api.list(namespace), what="cleanup", timeout=timeout)
    for process in (leader, standby):
        if process is not None:
            process.stop()
    return figures


# -- scenario 4: bad input -------------------------------------------------------------------------


def spec_strategy(counter: Iterable[int], allowed_secret_prefix: str) -> Any:
    """A hypothesis strategy of EcsExecutionRole specs, valid and invalid, each with a unique
    roleName stem (so AWS calls can be attributed to the example)."""
    from hypothesis import strategies as st

    numbers = iter(counter)
    own = DEFAULT_ACCOUNT_ID
    other = "210987654321"
    region = "us-east-1"
    name_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-"
    text = st.text(max_size=12)
    arn_secret = st.sampled_from(
        [
            f"arn:aws:secretsmanager:{region}:{own}:secret:{allowed_secret_prefix}db-??????",
            f"arn:aws:secretsmanager:{region}:{own}:secret:other-team/db-??????",
            f"arn:aws:secretsmanager:{region}:{other}:secret:{allowed_secret_prefix}db-??????",
            f"arn:aws:secretsmanager:{region}:{own}:secret:{allowed_secret_prefix}*",
            f"arn:aws:secretsmanager:{region}:*:secret:x-??????",
            "not-an-arn",
        ]
    )
    policy_arn = st.sampled_from(
        [
            "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess",
            "arn:aws:iam::aws:policy/AdministratorAccess",
            f"arn:aws:iam::{other}:policy/theirs",
            f"arn:aws:iam::{own}:policy/ours",
            SEED_POLICY,
            "arn:aws:iam::*:policy/x",
        ]
    )

    @st.composite
    def specs(draw: Any) -> dict[str, Any]:
        stem = f"hy{next(numbers):05d}"
        # hypothesis favours its simplest branches; a weighted coin keeps most names valid.
        if draw(st.sampled_from([True] * 8 + [False] * 2)):
            suffix = draw(st.text(alphabet=name_chars, max_size=8))
        else:
            suffix = draw(st.sampled_from([" space", "x" * 70, "slash/", "ümlaut"]))
        spec: dict[str, Any] = {
            "accountId": draw(
                st.sampled_from([own] * 6 + [UNLISTED_ACCOUNT_ID])
                if draw(st.sampled_from([True] * 8 + [False] * 2))
                else st.one_of(st.from_regex(r"\A[0-9]{12}\Z"), text)
            ),
            "roleName": stem + suffix,
        }
        optional = {
            "path": st.sampled_from(["/", "/team/", "no-slash", "//", "/a b/"]),
            "description": st.one_of(
                st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
                st.text(max_size=10),
            ),
            "maxSessionDuration": st.integers(min_value=0, max_value=50000),
            "tags": st.dictionaries(
                st.one_of(
                    st.text(alphabet=name_chars, min_size=1, max_size=8),
                    st.text(max_size=8),
                    st.sampled_from(["aws:x", "ECSROLE.DEV/cluster", "Team", "team"]),
                ),
                st.text(alphabet=name_chars, max_size=8),
                max_size=3,
            ),
            "trust": st.fixed_dictionaries(
                {},
                optional={
                    "sourceAccounts": st.lists(
                        st.sampled_from([own, other, "*"]), max_size=2, unique=True
                    ),
                    "sourceArns": st.lists(
                        st.sampled_from(
                            [
                                f"arn:aws:ecs:{region}:{own}:cluster/main",
                                f"arn:aws:ecs:{region}:{other}:cluster/main",
                                f"arn:aws:ecs:{region}:*:cluster/main",
                            ]
                        ),
                        max_size=2,
                        unique=True,
                    ),
                },
            ),
            "permissions": st.fixed_dictionaries(
                {},
                optional={
                    "secretArns": st.lists(arn_secret, max_size=2, unique=True),
                    "createLogGroups": st.booleans(),
                },
            ),
            "additionalPolicyArns": st.lists(policy_arn, max_size=2, unique=True),
            "driftPolicy": st.sampled_from(["Enforce", "Report", "Ignore"]),
            "deletionPolicy": st.sampled_from(["Delete", "Retain", "Never"]),
            "adopt": st.one_of(st.booleans(), st.just("yes")),
            "unknownField": st.just(1),
        }
        chosen = draw(st.lists(st.sampled_from(sorted(optional)), max_size=3, unique=True))
        for key in chosen:
            spec[key] = draw(optional[key])
        return spec

    return specs()


def refusal_names_a_field(answer: Any) -> bool:
    """The API server's refusal names a spec field (in its causes or its message)."""
    if not isinstance(answer, Mapping):
        return False
    causes = (answer.get("details") or {}).get("causes") or []
    if any(str(cause.get("field", "")).startswith("spec") for cause in causes):
        return True
    message = str(answer.get("message", ""))
    return "spec." in message or 'unknown field "spec' in message


def bad_input(
    stack: Stack, namespace: str, *, examples: int, seed: int = 0, timeout: float = 600.0
) -> dict[str, Any]:
    """Send `examples` hypothesis-generated specs to the API server; every refusal must name a
    field, every accepted one must get a verdict, Stalled ones must cost zero AWS writes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    run = uuid.uuid4().hex[:6]
    cluster = f"chaos-input-{run}"
    allowed_prefix = "team-a/"
    config = dev_config(
        cluster,
        {
            DEFAULT_ACCOUNT_ID: {
                "namespaces": [namespace],
                "maxCallsPerSecond": 50,
                "allowedPolicyArns": ["arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess"],
                "allowedResourcePatterns": {
                    namespace: [
                        f"arn:aws:secretsmanager:*:{DEFAULT_ACCOUNT_ID}:secret:{allowed_prefix}*"
                    ]
                },
            }
        },
        driftCheckInterval="1h",
    )
    operator = stack.start_operator(config, namespaces=[namespace])
    wait_leading(operator)
    pid = operator.child.pid
    mark = stack.proxy.mark()
    accepted: dict[str, str] = {}  # resource name -> roleName
    refused: list[dict[str, Any]] = []
    unnamed_refusals: list[Any] = []
    counter = iter(range(10**6))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(spec_strategy(counter, allowed_prefix))
    def send(spec: dict[str, Any]) -> None:
        name = f"in-{len(accepted) + len(refused):05d}-{run}"
        body = {
            "apiVersion": "iam.ecsrole.dev/v1alpha1",
            "kind": "EcsExecutionRole",
            "metadata": {"name": name},
            "spec": spec,
        }
        status, answer = stack.api.create(namespace, body)
        if status == 201:
            accepted[name] = str(spec["roleName"])
            return
        causes = (answer.get("details") or {}).get("causes") if isinstance(answer, dict) else None
        fields = sorted({str(c.get("field", "")).split("[")[0] for c in causes or []})
        refused.append({"status": status, "spec": spec, "fields": fields})
        if status not in (400, 422) or not refusal_names_a_field(answer):
            unnamed_refusals.append({"status": status, "answer": answer, "spec": spec})

    started = time.monotonic()
    send()
    sent_seconds = time.monotonic() - started

    def all_judged() -> bool | list[str]:
        # "Creating" is work in progress (a retry after a 5xx of an overloaded moto, IAM's
        # eventual consistency), not a verdict: wait for the outcome.
        items = stack.api.list_by_name(namespace)
        waiting = [n for n in accepted if verdict(items[n]) in (None, "Creating")]
        return not waiting

    wait_for(all_judged, what="a verdict on every accepted spec", timeout=timeout)
    items = stack.api.list_by_name(namespace)
    verdicts = Counter(verdict(items[n]) for n in accepted)
    stalled = {
        n
        for n in accepted
        if (condition(items[n], "Stalled") or {}).get("status") == "True"
        or verdict(items[n]) != "Reconciled"
    }
    stalled_roles = {accepted[n] for n in stalled}
    writes_for_stalled = stack.proxy.writes(mark, stalled_roles)
    operator.child.ensure_alive()
    same_process = operator.child.pid == pid

    # Every accepted resource can be deleted again: no finalizer gets stuck on odd input.
    for name in accepted:
        stack.api.delete(namespace, name)
    wait_for(lambda: not stack.api.list(namespace), what="every resource deleted", timeout=timeout)
    operator.child.ensure_alive()
    errors = [
        line
        for line in operator.log_lines()
        if line.get("_raw") and "Traceback" in str(line.get("event"))
    ]
    operator.stop()
    return {
        "examples": examples,
        "accepted": len(accepted),
        "refused": len(refused),
        "refused_without_field": len(unnamed_refusals),
        "refused_by_field": dict(
            Counter(field for r in refused for field in r["fields"]).most_common()
        ),
        "refusal_samples": unnamed_refusals[:5],
        "verdicts": dict(verdicts),
        "stalled_or_refused_by_operator": len(stalled),
        "aws_writes_for_stalled": len(writes_for_stalled),
        "aws_writes_for_stalled_samples": [c.__dict__ for c in writes_for_stalled[:5]],
        "operator_crashed": not same_process,
        "tracebacks_in_log": len(errors),
        "seconds_sending": round(sent_seconds, 1),
    }


# -- scenario 5: hostile tenants --------------------------------------------------------------------


@dataclass(frozen=True)
class HostileCase:
    name: str
    what: str
    namespace: str  # "a" or "b"
    spec: Mapping[str, Any]
    expect: str  # a Ready reason, or "refused:<field>" for the API server


def hostile_tenants(
    stack: Stack, namespace_a: str, namespace_b: str, *, timeout: float = 120.0
) -> dict[str, Any]:
    """Every hostile case of issue 8 scenario 5, against one operator watching two tenants."""
    run = uuid.uuid4().hex[:8]
    cluster = f"chaos-hostile-{run}"
    iam = stack.iam()
    own = DEFAULT_ACCOUNT_ID
    other = "210987654321"
    region = "us-east-1"
    protected = f"protected-{run}"
    config = dev_config(
        cluster,
        {
            own: {
                "namespaces": [namespace_a, namespace_b],
                "maxCallsPerSecond": 50,
                "allowAdoption": True,
                "allowedPolicyArns": ["arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess"],
                "allowedResourcePatterns": {
                    namespace_a: [f"arn:aws:secretsmanager:*:{own}:secret:team-a/*"],
                    namespace_b: [f"arn:aws:secretsmanager:*:{own}:secret:team-b/*"],
                },
            },
            # Listed, but for neither tenant's namespace.
            UNLISTED_ACCOUNT_ID: {
                "roleArn": f"arn:aws:iam::{UNLISTED_ACCOUNT_ID}:role/ecsrole-operator",
                "namespaces": ["somebody-else"],
            },
        },
        # A sweep every 10 s: after the verdicts, one full sweep is the follow-up the operator
        # might (wrongly) act on, and the scenario waits for it instead of a fixed pause.
        driftCheckInterval="10s",
        protectedRoleNames=[protected],
    )
    operator = stack.start_operator(config, namespaces=[namespace_a, namespace_b])
    wait_leading(operator)

    # Tenant A legitimately owns one role.
    owned_role = f"hostile-{run}-owned"
    stack.api.apply(namespace_a, role_manifest("owner", owned_role))
    wait_for(
        lambda: (
            verdict(stack.api.list_by_name(namespace_a).get("owner", {"metadata": {}}))
            == "Reconciled"
        ),
        what="tenant A's own role Ready",
        timeout=timeout,
        interval=0.3,
    )
    owner = stack.api.list_by_name(namespace_a)["owner"]
    owner_tags = {
        "ecsrole.dev/cluster": cluster,
        "ecsrole.dev/namespace": namespace_a,
        "ecsrole.dev/name": "owner",
        "ecsrole.dev/uid": owner["metadata"]["uid"],
    }

    # Roles that exist before the hostile resources do.
    unowned = f"hostile-{run}-unowned"
    sso = f"AWSReservedSSO_hostile_{run}"
    wide_trust = f"hostile-{run}-wide-trust"
    hand_tagged = f"hostile-{run}-hand-tagged"
    hand_tagged_2 = f"hostile-{run}-hand-tagged-2"
    create_role_by_hand(iam, unowned)
    create_role_by_hand(iam, sso)
    create_role_by_hand(iam, protected)
    create_role_by_hand(
        iam,
        wide_trust,
        trust={
            **SEED_TRUST,
            "Statement": [
                *SEED_TRUST["Statement"],
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{other}:root"},
                    "Action": "sts:AssumeRole",
                },
            ],
        },
    )
    create_role_by_hand(iam, hand_tagged, tags=owner_tags)
    create_role_by_hand(iam, hand_tagged_2, tags=owner_tags)
    existing = [owned_role, unowned, sso, protected, wide_trust, hand_tagged, hand_tagged_2]
    before = {name: role_fingerprint(iam, name) for name in existing}

    def secret(account: str, name: str) -> str:
        return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}"

    cases = [
        HostileCase(
            "unlisted-account",
            "a namespace naming an account it is not allowed",
            "b",
            {"accountId": UNLISTED_ACCOUNT_ID, "roleName": f"hostile-{run}-x1"},
            "AccountNotAllowed",
        ),
        HostileCase(
            "unconfigured-account",
            "a namespace naming an account the operator does not know",
            "b",
            {"accountId": other, "roleName": f"hostile-{run}-x2"},
            "AccountNotAllowed",
        ),
        HostileCase(
            "existing-unowned",
            "a resource naming an existing role it does not own",
            "b",
            {"roleName": unowned},
            "RoleExistsNotOwned",
        ),
        HostileCase(
            "adopt-sso",
            "adoption of a protected role (AWSReservedSSO_*)",
            "b",
            {"roleName": sso, "adopt": True},
            "AdoptionRefused",
        ),
        HostileCase(
            "adopt-configured-protected",
            "adoption of a role in protectedRoleNames",
            "b",
            {"roleName": protected, "adopt": True},
            "AdoptionRefused",
        ),
        HostileCase(
            "adopt-wide-trust",
            "adoption of a role that trusts another principal too",
            "b",
            {"roleName": wide_trust, "adopt": True},
            "AdoptionRefused",
        ),
        HostileCase(
            "other-tenants-role",
            "another namespace naming a role tenant A owns",
            "b",
            {"roleName": owned_role},
            "ConflictingResource",
        ),
        HostileCase(
            "other-tenants-role-adopt",
            "the same, asking to adopt it",
            "b",
            {"roleName": owned_role, "adopt": True},
            "ConflictingResource",
        ),
        HostileCase(
            "hand-tagged",
            "a role tagged by hand with tenant A's ownership tags",
            "b",
            {"roleName": hand_tagged},
            "RoleExistsNotOwned",
        ),
        HostileCase(
            "hand-tagged-adopt",
            "the same, asking to adopt it",
            "b",
            {"roleName": hand_tagged_2, "adopt": True},
            "AdoptionRefused",
        ),
        HostileCase(
            "policy-not-allowed",
            "additionalPolicyArns outside the allowlist",
            "b",
            {
                "roleName": f"hostile-{run}-x3",
                "additionalPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
            },
            "PolicyNotAllowed",
        ),
        HostileCase(
            "other-tenants-secret",
            "a secret ARN outside the namespace's patterns",
            "b",
            {
                "roleName": f"hostile-{run}-x4",
                "permissions": {"secretArns": [secret(own, "team-a/db-??????")]},
            },
            "PermissionNotAllowed",
        ),
        HostileCase(
            "secret-other-account",
            "a secret ARN in another account",
            "b",
            {
                "roleName": f"hostile-{run}-x5",
                "permissions": {"secretArns": [secret(other, "team-b/db-??????")]},
            },
            "refused:spec.permissions.secretArns",
        ),
        HostileCase(
            "secret-wildcard",
            "a secret ARN with a wildcard",
            "b",
            {
                "roleName": f"hostile-{run}-x6",
                "permissions": {"secretArns": [secret(own, "team-b/*")]},
            },
            "refused:spec.permissions.secretArns",
        ),
        HostileCase(
            "parameter-other-account",
            "a parameter ARN in another account",
            "b",
            {
                "roleName": f"hostile-{run}-x7",
                "permissions": {
                    "parameterArns": [f"arn:aws:ssm:{region}:{other}:parameter/team-b/x"]
                },
            },
            "refused:spec.permissions.parameterArns",
        ),
        HostileCase(
            "kms-wildcard-account",
            "a KMS key ARN with a wildcard account",
            "b",
            {
                "roleName": f"hostile-{run}-x8",
                "permissions": {
                    "kmsKeyArns": [
                        f"arn:aws:kms:{region}:*:key/0123abcd-0123-4567-89ab-0123456789ab"
                    ]
                },
            },
            "refused:spec.permissions.kmsKeyArns",
        ),
        HostileCase(
            "trust-other-account",
            "trust sourceAccounts naming another account",
            "b",
            {"roleName": f"hostile-{run}-x9", "trust": {"sourceAccounts": [other]}},
            "refused:spec.trust.sourceAccounts",
        ),
        HostileCase(
            "trust-wildcard-account",
            "trust sourceAccounts with a wildcard",
            "b",
            {"roleName": f"hostile-{run}-x10", "trust": {"sourceAccounts": ["*"]}},
            "refused:spec.trust.sourceAccounts",
        ),
        HostileCase(
            "trust-arn-other-account",
            "trust sourceArns in another account",
            "b",
            {
                "roleName": f"hostile-{run}-x11",
                "trust": {"sourceArns": [f"arn:aws:ecs:{region}:{other}:cluster/main"]},
            },
            "refused:spec.trust.sourceArns",
        ),
        HostileCase(
            "trust-arn-wildcard",
            "trust sourceArns with a wildcard account",
            "b",
            {
                "roleName": f"hostile-{run}-x12",
                "trust": {"sourceArns": [f"arn:aws:ecs:{region}:*:cluster/main"]},
            },
            "refused:spec.trust.sourceArns",
        ),
        HostileCase(
            "ownership-tag",
            "spec.tags setting an ownership tag key",
            "b",
            {"roleName": f"hostile-{run}-x13", "tags": {"ECSROLE.dev/cluster": cluster}},
            "refused:spec.tags",
        ),
        HostileCase(
            "policy-other-account",
            "a customer managed policy of another account",
            "b",
            {
                "roleName": f"hostile-{run}-x14",
                "additionalPolicyArns": [f"arn:aws:iam::{other}:policy/theirs"],
            },
            "refused:spec.additionalPolicyArns",
        ),
    ]
    namespaces = {"a": namespace_a, "b": namespace_b}
    hostile_roles = {str(case.spec["roleName"]) for case in cases}
    mark = stack.proxy.mark()
    outcomes: dict[str, dict[str, Any]] = {}
    for case in cases:
        body = {
            "apiVersion": "iam.ecsrole.dev/v1alpha1",
            "kind": "EcsExecutionRole",
            "metadata": {"name": case.name},
            "spec": {"accountId": own, **case.spec},
        }
        status, answer = stack.api.create(namespaces[case.namespace], body)
        outcomes[case.name] = {"what": case.what, "expected": case.expect, "http": status}
        if status != 201:
            message = answer.get("message", "") if isinstance(answer, Mapping) else str(answer)
            outcomes[case.name]["got"] = "refused"
            outcomes[case.name]["message"] = message
            outcomes[case.name]["names_field"] = refusal_names_a_field(answer) and (
                case.expect.removeprefix("refused:") in message
            )

    def judged() -> bool:
        items = stack.api.list_by_name(namespace_b)
        return all(
            verdict(items[c.name]) is not None for c in cases if outcomes[c.name]["http"] == 201
        )

    wait_for(judged, what="a verdict on every hostile resource", timeout=timeout)
    # Follow-up work the operator might (wrongly) do after its verdicts: a complete sweep that
    # looked at every role again (the writes are counted from `mark` on, through the proxy).
    operator.wait_sweeps(2, timeout=timeout)
    items = stack.api.list_by_name(namespace_b)
    for case in cases:
        if outcomes[case.name]["http"] != 201:
            continue
        item = items[case.name]
        ready = condition(item, "Ready") or {}
        stalled = condition(item, "Stalled") or {}
        outcomes[case.name].update(
            got=ready.get("reason"),
            message=ready.get("message", ""),
            stalled=stalled.get("status"),
            names_other_tenant=namespace_a in str(ready.get("message"))
            or "owner" in str(ready.get("message")).split(),
        )
    writes = stack.proxy.writes(mark)
    after = {name: role_fingerprint(iam, name) for name in existing}
    owner_after = verdict(stack.api.list_by_name(namespace_a)["owner"])
    created = sorted(n for n in hostile_roles if n not in existing and role_fingerprint(iam, n))

    for name in list(items):
        stack.api.delete(namespace_b, name)
    stack.api.delete(namespace_a, "owner")
    wait_for(
        lambda: not stack.api.list(namespace_b) and not stack.api.list(namespace_a),
        what="hostile resources deleted",
        timeout=timeout,
    )
    roles_after_delete = {name: role_fingerprint(iam, name) for name in existing}
    operator.stop()
    return {
        "cases": outcomes,
        "aws_writes_during_hostile_phase": len(writes),
        "aws_write_samples": [c.__dict__ for c in writes[:5]],
        "roles_changed": sorted(n for n in existing if after[n] != before[n]),
        "roles_created": created,
        "owner_still_ready": owner_after == "Reconciled",
        # Deleting the hostile resources must leave every pre-existing role (tenant A's role goes
        # only with tenant A's own resource).
        "roles_deleted_by_hostile_deletes": sorted(
            n for n in existing if n != owned_role and roles_after_delete[n] is None
        ),
        "owned_role_deleted_with_its_owner": roles_after_delete[owned_role] is None,
    }


def assert_hostile_refused(figures: Mapping[str, Any]) -> None:
    wrong = {
        name: outcome
        for name, outcome in figures["cases"].items()
        if not (
            (
                outcome["expected"].startswith("refused:")
                and outcome["got"] == "refused"
                and outcome["names_field"]
            )
            or (
                outcome["got"] == outcome["expected"]
                and outcome.get("stalled") == "True"
                and not outcome.get("names_other_tenant")
            )
        )
    }
    assert wrong == {}, json.dumps(wrong, indent=2)
    assert figures["aws_writes_during_hostile_phase"] == 0, figures["aws_write_samples"]
    assert figures["roles_changed"] == [], figures
    assert figures["roles_created"] == [], figures
    assert figures["owner_still_ready"], figures
    assert figures["roles_deleted_by_hostile_deletes"] == [], figures
    assert figures["owned_role_deleted_with_its_owner"], figures


def assert_bad_input_handled(figures: Mapping[str, Any]) -> None:
    assert figures["refused_without_field"] == 0, figures["refusal_samples"]
    assert figures["accepted"] > 0, figures
    assert figures["refused"] > 0, figures
    assert figures["aws_writes_for_stalled"] == 0, figures["aws_writes_for_stalled_samples"]
    assert not figures["operator_crashed"], figures
    assert figures["tracebacks_in_log"] == 0, figures
