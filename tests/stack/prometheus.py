"""A real Prometheus (Debian's `prometheus` package) scraping the operator, for the e2e tests.

It listens on a free 127.0.0.1 port, scrapes the given metrics URLs every second, evaluates
rules every second, and keeps its data in a temporary folder. `rules_for_tests` writes a copy of
the shipped alert rules with every `for:` set to 0s, so an alert fires at its first evaluation.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.stack.processes import ChildProcess, free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERT_RULES = REPO_ROOT / "deploy" / "monitoring" / "ecsrole-alerts.yaml"
ALERT_RULE_TESTS = REPO_ROOT / "tests" / "prometheus" / "ecsrole-alerts.test.yaml"
DASHBOARD = REPO_ROOT / "deploy" / "monitoring" / "ecsrole-dashboard.json"


# DESIGN section 5: every metric's exposition type and label names (a public contract).
OBJECT_LABELS = frozenset({"namespace", "name", "account_id", "role_name"})
METRICS_CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "ecsrole_drifted": ("gauge", OBJECT_LABELS),
    "ecsrole_ready": ("gauge", OBJECT_LABELS),
    "ecsrole_drift_events_total": ("counter", frozenset({"account_id", "aspect"})),
    "ecsrole_drift_remediations_total": (
        "counter",
        frozenset({"account_id", "aspect", "outcome"}),
    ),
    "ecsrole_reconcile_duration_seconds": ("histogram", frozenset({"operation"})),
    "ecsrole_reconcile_errors_total": ("counter", frozenset({"reason"})),
    "ecsrole_aws_api_calls_total": ("counter", frozenset({"service", "operation", "outcome"})),
    "ecsrole_drift_sweep_duration_seconds": ("histogram", frozenset({"account_id"})),
    "ecsrole_drift_sweep_last_success_timestamp_seconds": ("gauge", frozenset({"account_id"})),
    "ecsrole_drift_detection_latency_seconds": ("histogram", frozenset({"source"})),
    "ecsrole_managed_roles": ("gauge", frozenset({"account_id"})),
    "ecsrole_event_loop_lag_seconds": ("histogram", frozenset()),
    "ecsrole_unjudged_nudges_total": ("counter", frozenset()),
    "ecsrole_leader": ("gauge", frozenset()),
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_NAME = re.compile(r"\becsrole_[A-Za-z0-9_:]+")


def exposed_series_names() -> dict[str, str]:
    """Every series name the contract lets a query use, and the contract metric it belongs to.

    Counters are queried with `_total`; a histogram only through `_bucket`, `_sum`, `_count`.
    """
    names = {}
    for name, (type_, _) in METRICS_CONTRACT.items():
        if type_ == "histogram":
            names.update({name + suffix: name for suffix in HISTOGRAM_SUFFIXES})
        else:
            names[name] = name
    return names


def metric_names(expr: str) -> set[str]:
    """The ecsrole_* series names a PromQL expression selects."""
    return set(METRIC_NAME.findall(expr))


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable, rows' panels included."""
    queries = []

    def walk(panels: Sequence[Mapping[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append((f"panel {panel.get('title')!r}", str(target["expr"])))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query") if isinstance(query, Mapping) else query
            queries.append((f"variable {variable.get('name')!r}", str(text)))
    return queries


def load_dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def prometheus_binary(name: str) -> str:
    """`prometheus` or `promtool` from PATH; a missing one is an install step not done."""
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(
            f"`{name}` is not installed: it comes from Debian's `prometheus` package "
            "(apt-get install prometheus; .ci/run installs it). The alert rule and Prometheus "
            "tests cannot run without it."
        )
    return found


def rules_for_tests(source: Path, target: Path) -> Path:
    """A copy of the rule file at `source` with every `for:` set to 0s."""
    document = yaml.safe_load(source.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


class PrometheusServer:
    """`prometheus` as a child process with a generated configuration."""

    def __init__(
        self,
        workdir: Path,
        *,
        metrics_urls: Sequence[str],
        rule_files: Sequence[Path] = (),
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(
            yaml.safe_dump(self._config(metrics_urls, rule_files), sort_keys=False)
        )
        argv = [
            prometheus_binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=info",
        ]
        self.child = ChildProcess("prometheus", argv, workdir / "prometheus.log", cwd=workdir)

    @staticmethod
    def _config(metrics_urls: Sequence[str], rule_files: Sequence[Path]) -> dict[str, Any]:
        scrape_configs = []
        for index, url in enumerate(metrics_urls):
            parsed = urllib.parse.urlsplit(url)
            scrape_configs.append(
                {
                    "job_name": f"ecsrole-{index}",
                    # Like the ServiceMonitor: the operator's namespace/name labels are the
                    # EcsExecutionRole's, not overwritten by target labels.
                    "honor_labels": True,
                    "scheme": parsed.scheme,
                    "metrics_path": parsed.path or "/metrics",
                    "static_configs": [{"targets": [parsed.netloc]}],
                }
            )
        return {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": scrape_configs,
        }

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.child.start()
        try:
            wait_until(self._ready, timeout=timeout, what=f"prometheus at {self.url}")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        self.child.ensure_alive()
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer (else AssertionError)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:  # noqa: S310
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"prometheus /api/v1/{path}{query}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def alerts(self, name: str | None = None, state: str = "firing") -> list[dict[str, Any]]:
        """Active alerts (pending or firing), optionally of one alert rule."""
        return [
            alert
            for alert in self.api("alerts")["alerts"]
            if alert["state"] == state and (name is None or alert["labels"]["alertname"] == name)
        ]

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)

    def rule_health(self) -> dict[str, str]:
        """Every rule's name and evaluation health ("ok", "err", "unknown")."""
        return {
            rule["name"]: rule["health"]
            for group in self.api("rules")["groups"]
            for rule in group["rules"]
        }

    def stop(self) -> None:
        self.child.stop()
