"""The log pipeline: one JSON shape for ecsrole and kopf lines, and no credential ever printed."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ecsrole import logs

pytestmark = pytest.mark.unit

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - a fake key to hunt for
TOKEN = "FQoGZXIvYXdzEBYaDExampleSessionToken0123456789"  # noqa: S105


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    logs.configure_logging(level="DEBUG", log_format="json", stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_lines_are_json_with_bound_fields(captured: io.StringIO) -> None:
    with logs.bound(
        namespace="team-a", name="web", account_id="111111111111", role_name="web-exec"
    ):
        logs.get_logger("ecsrole.test").info("reconciled", ready="Reconciled")
    (line,) = _lines(captured)
    assert line["event"] == "reconciled"
    assert line["level"] == "info"
    assert (line["namespace"], line["name"]) == ("team-a", "web")
    assert (line["account_id"], line["role_name"]) == ("111111111111", "web-exec")
    assert "timestamp" in line


def test_kopf_per_object_lines_carry_the_object(captured: io.StringIO) -> None:
    kopf_logger = logging.getLogger("kopf.objects")
    kopf_logger.info(
        "Handler 'reconcile' succeeded.",
        extra={"k8s_ref": {"namespace": "team-a", "name": "web", "uid": "u"}, "k8s_skip": False},
    )
    (line,) = _lines(captured)
    assert line["event"] == "Handler 'reconcile' succeeded."
    assert (line["namespace"], line["name"]) == ("team-a", "web")
    assert line["logger"] == "kopf.objects"


def test_credentials_never_reach_the_output(captured: io.StringIO) -> None:
    log = logs.get_logger("ecsrole.test")
    log.debug("credentials", aws_secret_access_key=SECRET, session_token=TOKEN)
    log.debug(f"text with aws_secret_access_key={SECRET} and X-Amz-Security-Token: {TOKEN}")
    log.debug("key id AKIAIOSFODNN7EXAMPLE in text")
    logging.getLogger("ecsrole.stdlib").debug("Authorization: AWS4-HMAC-SHA256 Credential=abc")
    out = captured.getvalue()
    assert SECRET not in out
    assert TOKEN not in out
    assert "AKIAIOSFODNN7EXAMPLE" not in out
    assert "AWS4-HMAC-SHA256" not in out
    assert "[REDACTED]" in out


def test_botocore_and_urllib3_stay_at_warning_even_at_debug(captured: io.StringIO) -> None:
    for name in ("botocore", "botocore.endpoint", "urllib3", "urllib3.connectionpool"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name


def test_quiet_kopf_success_drops_only_the_named_handlers_successes(
    captured: io.StringIO,
) -> None:
    logs.quiet_kopf_success("claims_changed")
    kopf_objects = logging.getLogger("kopf.objects")
    kopf_objects.info("Handler 'claims_changed' succeeded.")
    kopf_objects.info("Handler 'create' succeeded.")
    kopf_objects.error("Handler 'claims_changed' failed with an exception and will try again.")
    logs.quiet_kopf_success("claims_changed")  # idempotent: one filter, not two
    assert [line["event"] for line in _lines(captured)] == [
        "Handler 'create' succeeded.",
        "Handler 'claims_changed' failed with an exception and will try again.",
    ]
    assert len(kopf_objects.filters) == 1
