"""`make chaos`, scenario 8: the stateful model of claims and ownership, deep profile.

The model (tests/unit/claims_model.py) runs its default profile in `make test`
(tests/unit/test_claims_model.py); here both profiles run, the deep one with fresh random
sequences, and what they tried is recorded in bench/results/chaos-8-model.json and
docs/reliability.md. No cluster is needed: the model drives the operator's decision code
against the strict fake IAM.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.chaos import report
from tests.unit import claims_model

pytestmark = pytest.mark.chaos

INVARIANTS = [
    "after every step: the operator writes only to roles it owns (recorded id and ownership "
    "tags, or its own CreateRole, or an allowed adoption, or the crash-recovery claim while no "
    "id is recorded)",
    "after every step: a resource records only a role it created or adopted (or recovered "
    "after a crash while it had no id); a recorded id is replaced only by its own re-creation",
    "after every step: at most one resource records a role id for a given account and role name",
    "after every step: a refused resource (Stalled) caused no AWS write; a resource in a "
    "namespace its account does not list caused no AWS call, reads included, and records nothing",
    "after every step: a ConflictingResource message names no other object",
    "at a fixpoint (adversary stopped, operator run until a round changes nothing): the first "
    "valid claim on each role is Ready (its role exists with the recorded id and tags), or rests "
    "with a reason that needs a human (RoleExistsNotOwned, AdoptionRefused, Paused when paused, "
    "RoleMissing under Report, ...); every other valid claim is Stalled",
    "at a fixpoint: no role carrying this cluster's ownership tags (created or adopted by the "
    "operator, tags not rewritten by the adversary) is without its resource unless it was "
    "deleted paused or abandoned; a ConflictingResource loser made no AWS call in the last round",
]


def _run(profile: settings) -> dict[str, Any]:
    before = dataclasses.replace(claims_model.TOTALS, rules=dict(claims_model.TOTALS.rules))
    started = time.monotonic()
    with claims_model.quiet_logs():
        run_state_machine_as_test(claims_model.ClaimsModel, settings=profile)
    after = claims_model.TOTALS
    return {
        "max_examples": profile.max_examples,
        "stateful_step_count": profile.stateful_step_count,
        "derandomize": profile.derandomize,
        "seconds": round(time.monotonic() - started, 1),
        "sequences": after.sequences - before.sequences,
        "steps": after.steps - before.steps,
        "aws_calls": after.aws_calls - before.aws_calls,
        "aws_writes": after.aws_writes - before.aws_writes,
        "crashes": after.crashes - before.crashes,
        "fixpoints": after.fixpoints - before.fixpoints,
        "rules": {k: v - before.rules.get(k, 0) for k, v in sorted(after.rules.items())},
    }


def test_8_claims_and_ownership_hold_in_the_stateful_model() -> None:
    figures: dict[str, Any] = {"invariants": INVARIANTS}
    passed = False
    try:
        figures["default"] = _run(claims_model.DEFAULT_PROFILE)
        figures["deep"] = _run(claims_model.DEEP_PROFILE)
        passed = True
    except Exception as error:
        figures["error"] = str(error)[:4000]
        raise
    finally:
        default, deep = figures.get("default", {}), figures.get("deep", {})
        report.write_result(
            "8-model",
            {
                "order": "8",
                "passed": passed,
                "scenario": "8. stateful model of claims and ownership (hypothesis)",
                "load": "tenants (create, update, delete; allowed and unlisted namespaces; "
                "case-variant names; adopt; Retain/Delete; paused, abandon), an IAM adversary "
                "(delete/re-create roles, copy ownership tags, attach policies, edit trust), "
                "the operator (kopf handling, sweeps, CloudTrail events, take-overs)",
                "faults": "a crash between any two AWS calls of a plan, then a restart that "
                "resumes every object",
                "outcome": (
                    f"default profile (make test): {default.get('sequences')} sequences, "
                    f"{default.get('steps')} steps in {default.get('seconds')} s; deep profile: "
                    f"{deep.get('sequences')} sequences, {deep.get('steps')} steps, "
                    f"{deep.get('crashes')} crashes, {deep.get('fixpoints')} fixpoints in "
                    f"{deep.get('seconds')} s; invariant violations: "
                    + ("0" if passed else "see figures")
                ),
                "command": "make chaos PYTEST_ARGS='-k test_8_'",
                "notes": "Invariants checked:\n\n" + "\n".join(f"- {i}" for i in INVARIANTS),
                "figures": figures,
            },
        )
        report.write_doc()
