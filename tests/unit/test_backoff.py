"""How long a failed reconcile waits: soon after a transient failure, longer for a denial."""

from __future__ import annotations

import pytest

from ecsrole.aws.errors import FailureKind
from ecsrole.reconciler import backoff


@pytest.mark.parametrize("kind", [FailureKind.THROTTLED, FailureKind.AWS_ERROR])
def test_transient_failures_are_retried_within_a_minute_however_long_they_last(
    kind: FailureKind,
) -> None:
    delays = [backoff(kind, retry) for retry in range(50)]

    assert 4.0 <= delays[0] <= 6.0  # never a hot loop
    assert all(later >= 0.8 * 60 for later in delays[10:])  # grows to the cap ...
    assert max(delays) <= 1.2 * 60  # ... and no further: converges soon after an episode


def test_access_denied_backs_off_further_because_a_person_must_act() -> None:
    delays = [backoff(FailureKind.ACCESS_DENIED, retry) for retry in range(50)]

    assert 12.0 <= delays[0] <= 18.0
    assert 0.8 * 900 <= max(delays) <= 1.2 * 900
