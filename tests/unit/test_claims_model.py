"""The stateful model of claims and ownership (tests/unit/claims_model.py), default profile.

Deterministic (derandomized, no example database), so `make test` never flakes on it; the deep
profile, with fresh random sequences, runs in `make chaos` (tests/chaos/test_claims_model.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.unit import claims_model

pytestmark = pytest.mark.unit

DEFAULT = settings(
    max_examples=150,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def test_claims_and_ownership_hold_for_every_sequence_tried() -> None:
    run_state_machine_as_test(claims_model.ClaimsModel, settings=DEFAULT)
    totals = claims_model.TOTALS
    assert totals.sequences >= DEFAULT.max_examples
    assert totals.aws_writes > 0
    assert totals.crashes > 0
    assert totals.fixpoints > 0
