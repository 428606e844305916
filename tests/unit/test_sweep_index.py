"""The sweep finds each resource's latest copy by uid, not by scanning its account's list (which
made a sweep quadratic: 0.99 s of event-loop time per sweep of a 5,000-role account)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ecsrole.aws.iam import CallerIdentity
from ecsrole.context import OperatorContext
from ecsrole.core import desired
from ecsrole.core.config import AccountConfig, OperatorConfig
from ecsrole.core.model import DesiredRole, ObservedRole, Owner
from ecsrole.reconciler import Resource
from ecsrole.sweeper import Sweeper, account_key, uid_key
from tests.unit import factories

pytestmark = pytest.mark.unit

ACCOUNT_ID = factories.ACCOUNT_ID


class CountingStore(list[Resource]):
    """An account's entry in kopf's index, counting how often it is walked."""

    walks = 0

    def __iter__(self) -> Iterator[Resource]:
        type(self).walks += 1
        return super().__iter__()


class _Adapter:
    def __init__(self, roles: Mapping[str, ObservedRole]) -> None:
        self.roles = dict(roles)

    def read_roles_bulk(self, path_prefix: str) -> dict[str, ObservedRole]:
        return self.roles


class _Context(OperatorContext):
    fake: _Adapter

    def adapter(self, account: AccountConfig) -> Any:
        return self.fake

    def caller_identity(self, account: AccountConfig) -> CallerIdentity:
        return CallerIdentity(ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:role/ecsrole", "AROAOP")


class _Kube:
    """Records the status patches a sweep writes."""

    def __init__(self) -> None:
        self.patched: list[str] = []

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.patched.append(name)

    async def post_event(self, **_: Any) -> None:
        return None


def _resource_and_role(number: int) -> tuple[Resource, ObservedRole]:
    name, uid, role_id = f"web-{number}", f"uid-{number}", f"AROA{number:08d}"
    role_name = f"web-{number}-exec"
    want = desired.build_desired(
        factories.role_spec(roleName=role_name),
        factories.account(),
        namespace=factories.NAMESPACE,
        partition="aws",
        owner=Owner(
            cluster=factories.OWNER.cluster, namespace=factories.NAMESPACE, name=name, uid=uid
        ),
    )
    assert isinstance(want, DesiredRole), want
    resource = Resource(
        namespace=factories.NAMESPACE,
        name=name,
        uid=uid,
        generation=1,
        created=None,
        spec=factories.spec_dict(roleName=role_name),
        annotations={},
        status={"roleId": role_id, "observedGeneration": 1},
    )
    return resource, factories.observed_from(want, role_id=role_id)


def _index(resources: list[Resource]) -> dict[str, list[Resource]]:
    """The shape of handlers.resource_index: one copy under its account and under its uid."""
    index: dict[str, list[Resource]] = {account_key(ACCOUNT_ID): CountingStore(resources)}
    for resource in resources:
        index[uid_key(resource.uid)] = [resource]
    return index


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown()


def _context(pool: ThreadPoolExecutor, roles: Mapping[str, ObservedRole]) -> _Context:
    config = OperatorConfig(
        cluster_name=factories.OWNER.cluster,
        drift_check_interval=60.0,
        accounts={ACCOUNT_ID: factories.account()},
    )
    context = _Context(config=config, clients=None, pool=pool)  # type: ignore[arg-type]
    context.fake = _Adapter(roles)
    return context


def test_a_sweep_walks_its_account_once_and_checks_every_resource(
    pool: ThreadPoolExecutor,
) -> None:
    pairs = [_resource_and_role(n) for n in range(400)]
    context = _context(pool, {role.role_name.lower(): role for _, role in pairs})
    context.resources = _index([resource for resource, _ in pairs])
    kube = _Kube()
    CountingStore.walks = 0

    checked = asyncio.run(Sweeper(context, kube).sweep_account(factories.account()))  # type: ignore[arg-type]

    assert checked == 400
    assert sorted(kube.patched) == sorted(resource.name for resource, _ in pairs)
    assert CountingStore.walks == 1  # was once per resource on top: 400 walks of 400


def test_the_latest_copy_is_found_by_uid_and_a_removed_object_is_gone(
    pool: ThreadPoolExecutor,
) -> None:
    (first, _), (second, _) = _resource_and_role(1), _resource_and_role(2)
    context = _context(pool, {})
    context.resources = _index([first, second])
    sweeper = Sweeper(context, _Kube())  # type: ignore[arg-type]
    newer = dataclasses.replace(second, status={**second.status, "lastSyncTime": "now"})
    context.resources[uid_key(second.uid)] = [newer]
    del context.resources[uid_key(first.uid)]

    assert sweeper._latest(second.uid) is newer
    assert sweeper._latest(first.uid) is None
