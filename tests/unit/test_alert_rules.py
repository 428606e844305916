"""The shipped alert rules, their promtool tests, the dashboard and docs/alerts.md agree with each
other and with the metric contract (DESIGN section 5). promtool itself and a real Prometheus run
in tests/e2e/test_prometheus.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack.prometheus import (
    ALERT_RULE_TESTS,
    ALERT_RULES,
    METRICS_CONTRACT,
    dashboard_queries,
    exposed_series_names,
    load_dashboard,
    metric_names,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO_ROOT / "docs" / "alerts.md"
ALERTS = {
    "EcsExecutionRoleDrifted",
    "EcsExecutionRoleDriftRepaired",
    "EcsExecutionRoleNotReady",
    "EcsExecutionRoleDriftSweepStale",
    "EcsExecutionRoleAwsThrottling",
}
# A selector: a series name and its braces; the label names it matches on.
SELECTOR = re.compile(r"\b(ecsrole_[A-Za-z0-9_:]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Labels Prometheus adds when it scrapes (static configs, the ServiceMonitor, external labels).
TARGET_LABELS = {"job", "instance", "pod", "service", "endpoint", "container", "cluster"}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _labels_of(series: str) -> set[str]:
    metric = exposed_series_names()[series]
    labels = set(METRICS_CONTRACT[metric][1])
    return labels | {"le"} if series.endswith("_bucket") else labels


def _selector_problems(where: str, expr: str) -> list[str]:
    """Series outside the contract, and label matchers naming labels the series lacks."""
    problems = []
    allowed = exposed_series_names()
    for name in metric_names(expr):
        if name not in allowed:
            problems.append(f"{where}: {name} is not a series of DESIGN section 5")
    for name, matchers in SELECTOR.findall(expr):
        if name not in allowed:
            continue
        for label in MATCHER.findall(matchers):
            if label not in _labels_of(name):
                problems.append(f"{where}: {name} has no label {label}")
    used = set().union(*(_labels_of(n) for n in metric_names(expr) if n in allowed))
    for grouping in GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            if label not in used | TARGET_LABELS:
                problems.append(f"{where}: groups by {label}, which none of its series has")
    return problems


def test_the_five_alerts_with_severity_annotations_and_runbook() -> None:
    rules = _rules()
    assert {rule["alert"] for rule in rules} == ALERTS
    runbooks = RUNBOOKS.read_text()
    headings = {
        line.removeprefix("## ").strip().lower()
        for line in runbooks.splitlines()
        if line.startswith("## ")
    }
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert "$labels." in annotations["summary"], name
        assert "$labels." in annotations["description"], name
        assert annotations["runbook_url"] == f"docs/alerts.md#{name.lower()}", name
        assert name.lower() in headings, f"docs/alerts.md has no section {name}"


def test_rules_use_only_contract_series_and_their_labels() -> None:
    problems = []
    for rule in _rules():
        problems += _selector_problems(rule["alert"], rule["expr"])
    assert problems == []


def test_privilege_drift_alert_watches_the_aspects_design_names() -> None:
    (rule,) = [r for r in _rules() if r["alert"] == "EcsExecutionRoleDriftRepaired"]
    assert (
        'increase(ecsrole_drift_events_total{aspect=~"TrustPolicy|ManagedPolicy|InlinePolicy"}[15m])'
        in rule["expr"]
    )


def test_promtool_tests_cover_each_alert_firing_and_silent() -> None:
    document = yaml.safe_load(ALERT_RULE_TESTS.read_text())
    # promtool resolves rule files relative to the test file: the shipped file, not a copy.
    assert [(ALERT_RULE_TESTS.parent / f).resolve() for f in document["rule_files"]] == [
        ALERT_RULES
    ]
    firing: set[str] = set()
    silent: set[str] = set()
    for test in document["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    assert firing == ALERTS
    assert silent == ALERTS


def test_each_runbook_says_what_it_means_how_to_investigate_fix_and_silence() -> None:
    sections = re.split(r"^## ", RUNBOOKS.read_text(), flags=re.MULTILINE)
    by_title = {section.split("\n", 1)[0].strip(): section for section in sections}
    for name in ALERTS:
        section = by_title[name]
        for part in (
            "**What it means.**",
            "**How to investigate.**",
            "**How to fix.**",
            "**How to silence safely.**",
        ):
            assert part in section, f"{name}: {part}"
        assert "kubectl " in section or "aws " in section, name


def test_dashboard_is_templated_and_uses_only_contract_series() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "account"} <= set(variables)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    problems = []
    for where, query in dashboard_queries(dashboard):
        problems += _selector_problems(where, query)
        # The namespace filter is the EcsExecutionRole's: only per-object series have it.
        for name, matchers in SELECTOR.findall(query):
            if "$namespace" in matchers and name not in {"ecsrole_ready", "ecsrole_drifted"}:
                problems.append(f"{where}: {name} filtered by the object namespace")
    assert problems == []


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    queries = [query for _, query in dashboard_queries(load_dashboard())]
    used = set().union(*(metric_names(q) for q in queries))
    assert {
        "ecsrole_ready",  # fleet readiness
        "ecsrole_drift_events_total",  # drift over time by aspect
        "ecsrole_drift_sweep_last_success_timestamp_seconds",  # sweep freshness
        "ecsrole_drift_sweep_duration_seconds_bucket",  # sweep duration
        "ecsrole_aws_api_calls_total",  # AWS calls and throttles
        "ecsrole_drift_detection_latency_seconds_bucket",  # detection latency
        "ecsrole_reconcile_errors_total",  # reconcile errors
    } <= used
    assert any(
        "histogram_quantile(" in q and "ecsrole_drift_detection_latency_seconds_bucket" in q
        for q in queries
    )
    assert any("sum by (aspect)" in q and "ecsrole_drift_events_total" in q for q in queries)
    assert any('outcome="throttled"' in q for q in queries)
    assert any("by (account_id" in q and "sweep_duration" in q for q in queries)
