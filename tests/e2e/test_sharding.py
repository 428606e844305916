"""Sharding by label selector (`ecsrole run --selector`): two shards over one API server and one
moto each serve exactly the resources labelled for them, each under a Lease of its own, and
neither calls AWS about the other's roles, not even in its sweeps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsrole import selector as selector_module
from tests.conftest import OperatorFactory
from tests.stack import manifests
from tests.stack.faults import FaultProxy
from tests.stack.kube import KIND, Kubectl, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID, MotoServer
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import wait_until
from tests.stack.resources import SEED_POLICY, role_manifest

pytestmark = pytest.mark.e2e

SHARD_LABEL = "ecsrole.dev/shard"
SWEEP_SECONDS = 2
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"


@pytest.fixture
def proxies(moto: MotoServer) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """One recording proxy in front of moto per shard: what each shard asked AWS, role by role."""
    first, second = FaultProxy(moto.url).start(), FaultProxy(moto.url).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _labelled(name: str, role_name: str, shard: str | None, prefix: str) -> dict[str, Any]:
    manifest = role_manifest(name, role_name, path=prefix)
    if shard is not None:
        manifest["metadata"]["labels"] = {SHARD_LABEL: shard}
    return manifest


def _attached(moto: MotoServer, role_name: str) -> set[str]:
    iam = moto.client("iam")
    pages = iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name)
    return {p["PolicyArn"] for page in pages for p in page["AttachedPolicies"]}


def test_two_shards_each_serve_exactly_their_own_resources(
    operator_factory: OperatorFactory,
    own_namespace: str,
    kubectl: Kubectl,
    moto: MotoServer,
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    tag = uuid.uuid4().hex[:8]
    prefix = f"/shard-{tag}/"
    shards = {"a": f"a-{tag}", "b": f"b-{tag}"}
    config = dev_config(
        "e2e-shards",
        {DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace], "rolePathPrefix": prefix}},
        driftCheckInterval=f"{SWEEP_SECONDS}s",
    )
    roles = {
        shard: {f"{shard}-{n}": f"shard-{tag}-{shard}-{n}" for n in range(3)} for shard in shards
    }
    unlabelled_role = f"shard-{tag}-nobody"

    # Created before the shards start: a shard's first list must already leave it out.
    kubectl.apply(_labelled("nobody", unlabelled_role, None, prefix), namespace=own_namespace)
    operators: dict[str, OperatorProcess] = {}
    for (shard, value), proxy in zip(shards.items(), proxies, strict=True):
        operators[shard] = operator_factory(
            config,
            namespaces=[own_namespace],
            aws_env=proxy.aws_env(moto.aws_env()),
            selector=f"{SHARD_LABEL}={value}",
        )
    for shard, value in shards.items():
        for name, role_name in roles[shard].items():
            kubectl.apply(_labelled(name, role_name, value, prefix), namespace=own_namespace)
    for shard in shards:
        for name in roles[shard]:
            wait_for_condition(kubectl, own_namespace, name, "Ready", timeout=120)

    # Each shard created exactly its own roles, and exports series for exactly its own objects.
    for (shard, operator), proxy in zip(operators.items(), proxies, strict=True):
        created = {c.role_name for c in proxy.calls() if c.action == "CreateRole"}
        assert created == set(roles[shard].values()), shard
        assert operator.metric("ecsrole_aws_api_calls_total", operation="CreateRole") == 3
        served = {
            name
            for name in [*roles["a"], *roles["b"], "nobody"]
            if f'name="{name}"' in operator.metrics_text()
        }
        assert served == set(roles[shard]), shard

    # The unlabelled resource matches neither selector: no shard wrote to it or created its role.
    nobody = kubectl.get_json(KIND, "nobody", own_namespace)
    assert nobody is not None
    # Only the CRD's schema default: nobody judged it (docs/gitops.md, "just created").
    assert nobody.get("status") == {"observedGeneration": 0}, nobody.get("status")
    assert not nobody["metadata"].get("finalizers"), "a shard took the unlabelled resource"
    assert moto.client("iam").list_roles(PathPrefix=prefix)["Roles"], "the shards made roles"
    assert all(c.role_name != unlabelled_role for p in proxies for c in p.calls())

    # Drift on one of b's roles: b repairs it in its sweep, a never touches it.
    victim = roles["b"]["b-0"]
    marks = [proxy.mark() for proxy in proxies]
    moto.client("iam").attach_role_policy(RoleName=victim, PolicyArn=ADMIN_POLICY)
    wait_until(
        lambda: _attached(moto, victim) == {SEED_POLICY},
        timeout=90,
        what="shard b to detach the out-of-band policy",
    )
    # Several sweeps of each shard have run since (interval 2 s; the repair took at least one).
    wait_until(
        lambda: (
            sum(c.action == "GetAccountAuthorizationDetails" for c in proxies[0].calls(marks[0]))
            >= 2
        ),
        timeout=60,
        what="two sweeps of shard a after the drift",
    )
    repaired = [c for c in proxies[1].calls(marks[1]) if c.action == "DetachRolePolicy"]
    assert [c.role_name for c in repaired] == [victim]
    for shard, proxy in zip(shards, proxies, strict=True):
        named = {c.role_name for c in proxy.calls() if c.role_name}
        assert named <= set(roles[shard].values()), f"shard {shard} called AWS about {named}"

    # Each shard holds a Lease of its own, named after its selector.
    for shard, value in shards.items():
        lease_name = selector_module.lease_name(f"{SHARD_LABEL}={value}")
        lease = kubectl.get_json("lease", lease_name, operators[shard].lease_namespace)
        assert lease is not None, f"no Lease {lease_name} for shard {shard}"
        assert lease["spec"].get("holderIdentity"), lease
    assert selector_module.lease_name(f"{SHARD_LABEL}={shards['a']}") != (
        selector_module.lease_name(f"{SHARD_LABEL}={shards['b']}")
    )


SHARDS_VALUES = manifests.CHART / "ci" / "shards-values.yaml"


def test_the_chart_installs_one_deployment_per_shard(
    helm: Path, kubectl: Kubectl, own_namespace: str
) -> None:
    documents = manifests.render_chart(helm, namespace=own_namespace, values=[SHARDS_VALUES])
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {
        "ecsrole",
        "ecsrole-team-a",
        "ecsrole-team-b",
        "ecsrole-batch",
    }

    def shape(name: str) -> tuple[int, str | None, str | None, str | None]:
        spec = deployments[name]["spec"]
        args = spec["template"]["spec"]["containers"][0]["args"]
        flag = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
        pod_shard = spec["template"]["metadata"]["labels"].get(SHARD_LABEL)
        assert spec["selector"]["matchLabels"].get(SHARD_LABEL) == pod_shard
        return spec["replicas"], flag.get("--selector"), flag.get("--lease-name"), pod_shard

    assert shape("ecsrole") == (2, f"!{SHARD_LABEL}", "ecsrole-leader", None)
    assert shape("ecsrole-team-a") == (
        2,
        f"{SHARD_LABEL}=team-a",
        "ecsrole-leader-team-a",
        "team-a",
    )
    assert shape("ecsrole-team-b") == (
        1,
        f"{SHARD_LABEL}=team-b",
        "ecsrole-leader-team-b",
        "team-b",
    )
    assert shape("ecsrole-batch")[:2] == (0, f"{SHARD_LABEL}=batch")
    # Every selector is one the operator accepts.
    for name in deployments:
        selector_module.parse(str(shape(name)[1]))
    # The API server accepts them as rendered.
    result = kubectl(
        "apply",
        "--dry-run=server",
        "--server-side",
        "--field-manager=shards-dry-run",
        "--validate=strict",
        "-f",
        "-",
        input=yaml.safe_dump_all(deployments.values(), sort_keys=False),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == 4, result.stdout


def test_the_chart_refuses_a_shard_named_twice(helm: Path) -> None:
    result = manifests.helm_template(
        helm,
        values=[SHARDS_VALUES],
        set_values={"shards.deployments[0].name": "team-b"},
    )
    assert result.returncode != 0
    assert 'the shard name "team-b" appears twice' in result.stderr
