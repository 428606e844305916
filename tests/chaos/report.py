"""bench/results/chaos-*.json (one per scenario, written by `make chaos`) -> docs/reliability.md.

`python -m tests.chaos.report` re-renders the page from the JSON files without running anything.
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results"
DOC = REPO_ROOT / "docs" / "reliability.md"

INTRO = """\
# Reliability: faults, crashes, outages, bad input and hostile tenants

Every figure below was measured by `make chaos` (tests/chaos/, scenario code in
tests/chaos/scenarios.py) against a real kube-apiserver and etcd, a real moto server behind a
fault proxy (tests/stack/faults.py), and the operator as a real process running as the Helm
chart's ServiceAccount. The page is generated from bench/results/chaos-*.json by the run itself
(`python -m tests.chaos.report` re-renders it); nothing here is typed by hand.

How faults are made:

- IAM faults come from a proxy between the operator and moto (`AWS_ENDPOINT_URL` points at it).
  It answers a chosen share of IAM calls with IAM's own Throttling 400 (`<Code>Throttling</Code>`,
  `Rate exceeded`), a 500 `InternalFailure`, added latency, a connection closed before the call
  reached IAM (`drop`), or closed after IAM applied it (`drop_response`: the operator does not
  know its write happened). AWS calls are counted at the proxy, so they include every retry and
  survive SIGKILLs.
- Crashes are SIGKILLs of the operator's process group at random moments once it leads; each is
  followed by a restart (the Lease is then waited out, as after a real crash).
- Scenario 1's no-fault reference run goes beside its faulted run, with its own operator,
  namespace and proxy (one that never injects a fault); each proxy counts only its own
  operator's calls, so neither run's figures include the other's.
- API outages stop kube-apiserver and start it again on the same port, certificates and etcd.

`make test` runs short versions of scenarios 2, 4, 5 and 7 (tests/e2e/test_reliability.py) through
the same code; scenario 7 is a check at the end of every test session over every operator log the
session produced (all at DEBUG).

Scenario 8 is different: a stateful model (hypothesis, tests/unit/claims_model.py) that drives the
operator's own decision code (the Reconciler, core.claims, core.ownership, the Sweeper's sweep,
CloudTrail and take-over paths) against the strict fake IAM of tests/unit/fake_iam.py and a fake
view of the cluster; `make test` runs its default profile (derandomized), `make chaos` both.
Before each reconcile of a resource that has recorded nothing yet, the model also asks
`ecsrole diff`'s inputs and read-only port (core/decide.py, the same decision sequence) what the
operator will do, and checks that the operator then makes exactly the planned IAM calls with the
same refusal or pause message (issue 18; about 1,300 such predictions in the default profile).
"""


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"chaos-{name}.json"
    document = {
        **result,
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()}, python {platform.python_version()}",
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    return path


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def render() -> str:
    results = []
    for path in sorted(RESULTS.glob("chaos-*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except ValueError:
            continue
    results.sort(key=lambda r: (str(r.get("order", "")), str(r.get("scenario", ""))))
    lines = [INTRO, "## Results", ""]
    lines.append("| scenario | load | faults injected | outcome | held | reproduce |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for result in results:
        lines.append(
            "| "
            + " | ".join(
                _cell(result.get(key, "")) for key in ("scenario", "load", "faults", "outcome")
            )
            + f" | {'yes' if result.get('passed') else '**no**'} | `{result.get('command', '')}` |"
        )
    lines += ["", "## Details", ""]
    for result in results:
        lines.append(f"### {result.get('scenario', '')}")
        lines.append("")
        lines.append(f"Measured {result.get('measured_at', '')} on {result.get('machine', '')}.")
        if result.get("notes"):
            lines += ["", str(result["notes"])]
        lines += ["", "```json", json.dumps(result.get("figures", {}), indent=2), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_doc() -> Path:
    DOC.write_text(render())
    return DOC


if __name__ == "__main__":
    print(write_doc())
