"""One log pipeline for ecsrole, kopf and libraries: structlog, JSON lines or console.

Everything, including kopf's stdlib logging, goes through the same processors, so every line
has the same shape, kopf's per-object lines carry the object's namespace and name, and the
redaction processor sees every line before it is written. botocore and urllib3 are pinned at
WARNING because at DEBUG they print request headers, which carry credentials.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]

# Loggers that print request/response headers or bodies at DEBUG: never below WARNING.
CHATTY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "aiohttp.access")

REDACTED = "[REDACTED]"
_SECRET_KEY_NAMES = re.compile(
    r"(secret|token|password|passwd|credential|authorization|signature|session_?key|private_?key)",
    re.IGNORECASE,
)
# Access key ids, and any "name = value" pair whose name says it is secret, inside free text.
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12}([A-Z0-9]{4})\b")
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)((?:aws_)?(?:secret_?access_?key|session_?token|security[-_]?token|x-amz-security-token"
    r"|authorization|password|bearer)[\"']?\s*[:=]?\s*[\"']?)([^\s\"',}]+)"
)
_PEM_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
)


def redact_text(text: str) -> str:
    """Mask credentials that may appear inside a message or exception text."""
    text = _PEM_BLOCK.sub(REDACTED, text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + REDACTED, text)
    return _ACCESS_KEY_ID.sub(lambda m: f"{m.group(1)}...{m.group(2)}", text)


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY_NAMES.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the last line of defence against a credential in a log line."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def _kopf_object_reference(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Lift kopf's per-object `k8s_ref` (from its LoggerAdapter's extra) to namespace/name."""
    record = event_dict.get("_record")
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping):
        if ref.get("namespace"):
            event_dict.setdefault("namespace", ref["namespace"])
        if ref.get("name"):
            event_dict.setdefault("name", ref["name"])
    return event_dict


def _use_json(log_format: LogFormat, stream: TextIO) -> bool:
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


def configure_logging(
    *, level: str | int = "INFO", log_format: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging into one handler on `stream` (stderr by default)."""
    stream = stream or sys.stderr
    numeric_level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if _use_json(log_format, stream)
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _kopf_object_reference],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric_level))

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class _RoutineSuccess(logging.Filter):
    """Drops kopf's INFO "Handler '<id>' succeeded." for the handlers named in `handler_ids`."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO or record.getMessage() not in self.messages


_routine_success = _RoutineSuccess()


def quiet_kopf_success(*handler_ids: str) -> None:
    """Stop kopf logging each success of these handlers; their failures are still logged.

    kopf logs a success line per run of every handler. An event handler runs on every watch
    event of every object (each status patch is one), so at a few thousand objects its lines
    would bury the ones that say something.
    """
    _routine_success.messages.update(
        f"Handler {handler_id!r} succeeded." for handler_id in handler_ids
    )
    kopf_objects = logging.getLogger("kopf.objects")
    if _routine_success not in kopf_objects.filters:
        kopf_objects.addFilter(_routine_success)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bound(**values: Any) -> AbstractContextManager[None]:
    """Bind fields (namespace, name, account_id, role_name) to every line logged inside."""
    return structlog.contextvars.bound_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    )
