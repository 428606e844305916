"""The stateful model of claims and ownership (tests/unit/claims_model.py), default profile.

Deterministic (derandomized, no example database), so `make test` never flakes on it; the deep
profile, with fresh random sequences, runs in `make chaos` (tests/chaos/test_claims_model.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.unit import claims_model

pytestmark = pytest.mark.unit


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    with claims_model.quiet_logs():
        yield


@pytest.mark.usefixtures("quiet_logs")
def test_claims_and_ownership_hold_for_every_sequence_tried() -> None:
    totals = claims_model.TOTALS
    before = totals.sequences
    run_state_machine_as_test(claims_model.ClaimsModel, settings=claims_model.DEFAULT_PROFILE)
    assert totals.sequences - before >= claims_model.DEFAULT_PROFILE.max_examples
    assert totals.aws_writes > 0
    assert totals.crashes > 0
    assert totals.fixpoints > 0
    # The diff's decision was checked against what the operator then did (issue 18).
    assert totals.predictions > 0
