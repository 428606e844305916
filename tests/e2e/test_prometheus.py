"""The shipped alert rules and dashboard against promtool and a real Prometheus scraping a real
operator: rules valid and unit-tested, Report-mode drift firing EcsExecutionRoleDrifted and
resolving it when put back, every dashboard query answered from live series, the metric
contract of DESIGN section 5 on the wire, and per-object series gone with their objects."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import OperatorFactory
from tests.stack.kube import Kubectl, wait_for_condition
from tests.stack.moto import DEFAULT_ACCOUNT_ID
from tests.stack.operator import OperatorProcess, dev_config
from tests.stack.processes import eventually
from tests.stack.prometheus import (
    ALERT_RULE_TESTS,
    ALERT_RULES,
    METRICS_CONTRACT,
    PrometheusServer,
    dashboard_queries,
    exposed_series_names,
    load_dashboard,
    metric_names,
    prometheus_binary,
    rules_for_tests,
)
from tests.stack.resources import role_manifest

pytestmark = pytest.mark.e2e

T = TypeVar("T")

ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
# Configured, but not for the test's namespace: a role there is refused with zero AWS calls,
# and the account has nothing to sweep.
REFUSED_ACCOUNT_ID = "555555555555"
# Grafana's variables, as the dashboard's "All" and a range would expand them.
GRAFANA_VARIABLES = {
    "$namespace": ".*",
    "$account": ".*",
    "$__rate_interval": "1m",
    "$__range": "5m",
}


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n{output}"
    return output


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    promtool = prometheus_binary("promtool")
    assert "SUCCESS: 5 rules found" in _run(promtool, "check", "rules", str(ALERT_RULES))
    assert "SUCCESS" in _run(promtool, "test", "rules", str(ALERT_RULE_TESTS))


def _role(name: str, **spec: Any) -> dict[str, Any]:
    return role_manifest(name, f"prom-{name}-{uuid.uuid4().hex[:10]}", **spec)


def _object_series(text: str, namespace: str) -> dict[tuple[str, str], dict[str, float]]:
    """{(metric, name): labels+value} of ecsrole_ready/ecsrole_drifted in `namespace`."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("ecsrole_ready", "ecsrole_drifted") and (
                sample.labels.get("namespace") == namespace
            ):
                found[(sample.name, sample.labels["name"])] = {"value": sample.value}
    return found


def _contract_problems(text: str) -> list[str]:
    """Where the scrape differs from DESIGN section 5: missing, wrong type or labels, never fed."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    problems = []
    for name, (type_, labels) in METRICS_CONTRACT.items():
        family = families.get(name.removesuffix("_total") if type_ == "counter" else name)
        if family is None:
            problems.append(f"{name}: not exported")
            continue
        if family.type != type_:
            problems.append(f"{name}: type {family.type}, not {type_}")
        if not family.samples:
            problems.append(f"{name}: no series: never fed")
        for sample in family.samples:
            if set(sample.labels) - {"le"} != labels:
                problems.append(
                    f"{sample.name}: labels {sorted(sample.labels)}, not {sorted(labels)}"
                )
                break
    return problems


def _alert(prometheus: PrometheusServer, alertname: str, /, **labels: str) -> dict[str, Any] | None:
    """The firing alert `alertname` whose labels include `labels`, else None."""
    for alert in prometheus.alerts(alertname):
        if all(alert["labels"].get(key) == value for key, value in labels.items()):
            return alert
    return None


@pytest.fixture
def monitored(
    operator_factory: OperatorFactory, own_namespace: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, PrometheusServer, str]]:
    """An operator sweeping every second, and a Prometheus scraping it with the shipped rules
    (every `for:` at 0s) evaluated every second."""
    config = dev_config(
        "e2e-prometheus",
        {
            DEFAULT_ACCOUNT_ID: {"namespaces": [own_namespace]},
            REFUSED_ACCOUNT_ID: {
                "roleArn": f"arn:aws:iam::{REFUSED_ACCOUNT_ID}:role/ecsrole-operator",
                "namespaces": ["nobody-*"],
            },
        },
        driftCheckInterval="1s",
        # moto is strongly consistent: the operator judges its own writes at once, so a change
        # right after Ready is drift and no test waits out a settle window.
        settleWindow="0s",
    )
    operator = operator_factory(config, namespaces=[own_namespace])
    rules = rules_for_tests(ALERT_RULES, tmp_path / "prometheus" / "rules.yaml")
    prometheus = PrometheusServer(
        tmp_path / "prometheus", metrics_urls=[operator.metrics_url], rule_files=[rules]
    ).start()
    try:
        yield operator, prometheus, own_namespace
    finally:
        prometheus.stop()


def test_report_mode_drift_fires_and_resolves_the_alert_and_the_dashboard_has_its_series(
    monitored: tuple[OperatorProcess, PrometheusServer, str],
    kubectl: Kubectl,
    aws: Callable[..., Any],
) -> None:
    operator, prometheus, namespace = monitored
    manifests = {
        "reported": _role("reported", driftPolicy="Report"),
        "enforced": _role("enforced"),
        "refused": _role("refused", accountId=REFUSED_ACCOUNT_ID),
        "paused": _role("paused", annotations={"ecsrole.dev/paused": "true"}),
    }
    for manifest in manifests.values():
        kubectl.apply(manifest, namespace=namespace)
    for name in ("reported", "enforced"):
        wait_for_condition(kubectl, namespace, name, "Ready", timeout=120)
    wait_for_condition(kubectl, namespace, "refused", "Stalled", reason="AccountNotAllowed")
    wait_for_condition(kubectl, namespace, "paused", "Ready", "False", reason="Paused")
    eventually(prometheus.targets_up, timeout=90, what="prometheus scrapes the operator")

    iam = aws("iam")
    for name in ("reported", "enforced"):
        role = manifests[name]["spec"]["roleName"]
        iam.attach_role_policy(RoleName=role, PolicyArn=ADMIN_POLICY)

    drifted = eventually(
        lambda: _alert(prometheus, "EcsExecutionRoleDrifted", namespace=namespace, name="reported"),
        timeout=90,
        what="EcsExecutionRoleDrifted firing for the Report-mode role",
    )
    reported_role = manifests["reported"]["spec"]["roleName"]
    assert drifted["labels"]["severity"] == "warning"
    assert drifted["labels"]["role_name"] == reported_role
    assert drifted["labels"]["account_id"] == DEFAULT_ACCOUNT_ID
    assert f"{namespace}/reported" in drifted["annotations"]["summary"]
    assert drifted["annotations"]["runbook_url"] == "docs/alerts.md#ecsexecutionroledrifted"
    # The first privilege drift of the account is seen: its counters start at 0.
    repaired = eventually(
        lambda: _alert(
            prometheus,
            "EcsExecutionRoleDriftRepaired",
            account_id=DEFAULT_ACCOUNT_ID,
            aspect="ManagedPolicy",
        ),
        timeout=90,
        what="EcsExecutionRoleDriftRepaired firing for the attached AdministratorAccess",
    )
    assert repaired["labels"]["severity"] == "critical"
    # Enforce put its role back: drifted never stayed 1, so no Drifted alert for it.
    enforced_role = manifests["enforced"]["spec"]["roleName"]
    eventually(
        lambda: (
            ADMIN_POLICY
            not in {
                p["PolicyArn"]
                for p in iam.list_attached_role_policies(RoleName=enforced_role)["AttachedPolicies"]
            }
        ),
        timeout=90,
        what="the Enforce role put back",
    )
    assert _alert(prometheus, "EcsExecutionRoleDrifted", name="enforced") is None

    # Not Ready: the refused and the paused role; a drifted Report-mode role stays Ready.
    def not_ready() -> set[str]:
        return {a["labels"]["name"] for a in prometheus.alerts("EcsExecutionRoleNotReady")}

    eventually(
        lambda: not_ready() >= {"refused", "paused"},
        timeout=90,
        what="EcsExecutionRoleNotReady for the refused and paused roles",
    )
    assert not_ready() == {"refused", "paused"}
    # Both accounts swept, the one without roles included: nothing stale; nothing throttled.
    eventually(
        lambda: not prometheus.alerts("EcsExecutionRoleDriftSweepStale"),
        timeout=90,
        what="EcsExecutionRoleDriftSweepStale silent",
    )
    assert prometheus.query(
        f'ecsrole_drift_sweep_last_success_timestamp_seconds{{account_id="{REFUSED_ACCOUNT_ID}"}}'
    ), "an account with nothing to sweep still reports completed sweeps"
    assert not prometheus.alerts("EcsExecutionRoleAwsThrottling")
    assert set(prometheus.rule_health().values()) == {"ok"}, prometheus.rule_health()

    # The operator has created, swept, detected, repaired and refused: every metric of the
    # contract is on the wire with its type and labels, and every dashboard query is answered.
    scrape = operator.metrics_text()
    assert _contract_problems(scrape) == []
    assert "ecsrole_leader 1.0" in scrape
    scraped = {
        sample.name
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }
    allowed = exposed_series_names()
    queries = []
    for where, query in dashboard_queries(load_dashboard()):
        for name in metric_names(query):
            assert name in allowed, f"{where} uses {name}, which is not in DESIGN section 5"
            assert name in scraped, f"{where} uses {name}, which the operator does not export"
        if not query.startswith("label_values("):
            for variable, value in GRAFANA_VARIABLES.items():
                query = query.replace(variable, value)
            queries.append((where, query))

    def unanswered() -> list[str]:
        # Nothing is throttled here; any other query has data once rates have two samples.
        return [
            f"{where}: {query}"
            for where, query in queries
            if not prometheus.query(query) and 'outcome="throttled"' not in query
        ]

    missing = unanswered()
    deadline = time.monotonic() + 90
    while missing and time.monotonic() < deadline:
        time.sleep(0.5)
        missing = unanswered()
    assert missing == [], "dashboard queries without data:\n" + "\n".join(missing)

    # Put back by hand: the alert resolves.
    iam.detach_role_policy(RoleName=reported_role, PolicyArn=ADMIN_POLICY)
    eventually(
        lambda: _alert(prometheus, "EcsExecutionRoleDrifted", name="reported") is None,
        timeout=90,
        what="EcsExecutionRoleDrifted resolved after the policy was detached",
    )

    # Per-object series go with their objects, whatever the deletion path (deleted role,
    # refused resource, paused resource: role left untouched).
    assert set(_object_series(operator.metrics_text(), namespace)) == {
        (metric, name) for metric in ("ecsrole_ready", "ecsrole_drifted") for name in manifests
    }
    kubectl("delete", "ecsexecutionroles", "--all", "-n", namespace, "--wait=false")
    deadline = time.monotonic() + 60
    while _object_series(operator.metrics_text(), namespace) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _object_series(operator.metrics_text(), namespace) == {}, "left after deletion"
