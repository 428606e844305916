"""Health as GitOps tools compute it, by their own code: the ecsrole-health helper (hack/health).

`judge(resource)` runs, on one object: kstatus (sigs.k8s.io/cli-utils `status.Compute`), Flux's
kstatus fork (what `wait: true` runs without healthCheckExprs), Flux's CEL evaluator with the
`healthCheckExprs` documented in docs/gitops.md, and the Argo CD Lua health check documented
there, in gopher-lua set up as Argo CD sets it up. The documented checks are read from the doc
itself, so the doc and the tests cannot disagree.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "health" / "build.sh"
GITOPS_DOC = REPO_ROOT / "docs" / "gitops.md"
LUA_BEGIN = "-- BEGIN ecsrole health check"
LUA_END = "-- END ecsrole health check"
KIND = "EcsExecutionRole"


@functools.cache
def health_binary() -> Path:
    """ecsrole-health, built once per pin from hack/health (or HEALTH_BIN)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1]) / "ecsrole-health"


def documented_lua(text: str | None = None) -> str:
    """The Argo CD health script of docs/gitops.md, between its BEGIN and END markers."""
    text = GITOPS_DOC.read_text() if text is None else text
    begin = text.index(LUA_BEGIN)
    end = text.index(LUA_END)
    lines = text[begin:end].splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines[1:] if line.strip())
    return "\n".join(line[indent:] for line in lines[1:]) + "\n"


def documented_flux_exprs(text: str | None = None) -> dict[str, str]:
    """The `healthCheckExprs` entry for EcsExecutionRole in docs/gitops.md's Flux example."""
    text = GITOPS_DOC.read_text() if text is None else text
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
        for document in yaml.safe_load_all(block):
            if not isinstance(document, Mapping):
                continue
            for entry in (document.get("spec") or {}).get("healthCheckExprs") or []:
                if entry.get("kind") == KIND:
                    return {
                        key: entry[key]
                        for key in ("current", "inProgress", "failed")
                        if key in entry
                    }
    raise AssertionError(f"{GITOPS_DOC.name} documents no healthCheckExprs for {KIND}")


@dataclass(frozen=True)
class Verdict:
    """One tool's judgement: status (kstatus: InProgress, Current, Failed, Terminating, ...;
    Argo CD: Progressing, Healthy, Degraded, Suspended, ...), message, or the tool's error."""

    status: str
    message: str = ""
    error: str = ""


@dataclass(frozen=True)
class Judgement:
    kstatus: Verdict
    flux_wait: Verdict
    flux_cel: Verdict
    argo: Verdict

    def summary(self) -> dict[str, str]:
        return {
            "kstatus": self.kstatus.status,
            "fluxWait": self.flux_wait.status,
            "fluxCEL": self.flux_cel.status,
            "argo": self.argo.status,
        }


def _verdict(raw: Mapping[str, Any] | None) -> Verdict:
    raw = raw or {}
    return Verdict(
        str(raw.get("status", "")), str(raw.get("message", "")), str(raw.get("error", ""))
    )


def judge(resource: Mapping[str, Any], *, doc_text: str | None = None) -> Judgement:
    """What the four judges say about `resource` (an object as the API server returned it)."""
    with tempfile.TemporaryDirectory(prefix="ecsrole-health-") as folder:
        exprs = Path(folder) / "flux-exprs.json"
        exprs.write_text(json.dumps(documented_flux_exprs(doc_text)))
        lua = Path(folder) / "argo.lua"
        lua.write_text(documented_lua(doc_text))
        result = subprocess.run(
            [str(health_binary()), f"--flux-exprs={exprs}", f"--argo-lua={lua}", "-"],
            input=json.dumps(resource),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        raise AssertionError(f"ecsrole-health failed ({result.returncode}): {result.stderr}")
    raw = json.loads(result.stdout)
    return Judgement(
        kstatus=_verdict(raw.get("kstatus")),
        flux_wait=_verdict(raw.get("fluxWait")),
        flux_cel=_verdict(raw.get("fluxCEL")),
        argo=_verdict(raw.get("argo")),
    )
