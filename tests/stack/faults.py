"""Fault injection for the local stack: an HTTP proxy between the operator and moto, and helpers.

`FaultProxy` listens on 127.0.0.1 only and forwards every request to moto. For IAM (and, when
asked, STS) requests it answers, at chosen rates that can change while it runs:

- `throttle`: the exact 400 IAM returns when throttling
  (`<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded
  </Message></Error><RequestId>..</RequestId></ErrorResponse>`), without forwarding;
- `error`: a 500 InternalFailure, without forwarding;
- `deny`: the 403 AccessDenied IAM returns when a policy denies the call, without forwarding;
- `latency`: forwards after sleeping `latency_seconds`;
- `drop`: closes the connection without an answer, without forwarding;
- `drop_response`: forwards (moto applies the call) and then closes the connection without an
  answer, so the caller does not know that its write happened (the hard case for retries).

The service is read from the SigV4 credential scope and the Action from the form body (IAM and
STS use the query protocol), so only the chosen services' calls are faulted; moto's own
endpoints and other services pass through. Every injected fault is counted by kind and action.

Run it in-process (`FaultProxy(upstream).start()`, then `set_rates(...)`, `counts()`), or
control it over HTTP: `GET /__faults__` returns the counts and rates, `POST /__faults__` with a
JSON object of rates changes them.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CONTROL_PATH = "/__faults__"
FAULT_KINDS = ("throttle", "error", "latency", "drop", "drop_response", "deny")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")


def throttling_body(request_id: str) -> bytes:
    """The XML body IAM sends with a 400 when it throttles a caller."""
    return (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def access_denied_body(request_id: str, action: str) -> bytes:
    """The XML body IAM sends with a 403 when a policy denies the call."""
    return (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>User is not authorized to perform: iam:{action}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def internal_failure_body(request_id: str) -> bytes:
    """The XML body of a 500 from IAM."""
    return (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<Error><Type>Receiver</Type><Code>InternalFailure</Code>"
        "<Message>We encountered an internal error. Please try again.</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


@dataclass
class FaultRates:
    """Probabilities (0..1) per faulted request; at most one fault is drawn per request."""

    throttle: float = 0.0
    error: float = 0.0
    latency: float = 0.0
    drop: float = 0.0
    drop_response: float = 0.0
    deny: float = 0.0
    latency_seconds: float = 0.5
    services: tuple[str, ...] = ("iam",)

    def total(self) -> float:
        return (
            self.throttle + self.error + self.latency + self.drop + self.drop_response + self.deny
        )


@dataclass
class _State:
    rates: FaultRates = field(default_factory=FaultRates)
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    by_action: collections.Counter[str] = field(default_factory=collections.Counter)
    forwarded: collections.Counter[str] = field(default_factory=collections.Counter)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def request_service(headers: Any) -> str:
    """The AWS service a SigV4-signed request is for ('' when unsigned)."""
    match = _SCOPE.search(headers.get("Authorization", "") or "")
    return match.group(1) if match else ""


def request_action(body: bytes) -> str:
    """The Action of a query-protocol (form-encoded) request, '' otherwise."""
    return request_params(body).get("Action", "")


def request_params(body: bytes) -> dict[str, str]:
    """The first value of each parameter of a query-protocol (form-encoded) request."""
    try:
        parsed = parse_qs(body.decode("ascii", errors="replace"))
    except ValueError:
        return {}
    return {key: values[0] for key, values in parsed.items() if values}


def is_write(action: str) -> bool:
    """An IAM action that changes something (everything but reads)."""
    return bool(action) and not action.startswith(("Get", "List", "Simulate"))


@dataclass(frozen=True)
class Call:
    """One signed AWS request that reached the proxy, and the fault it got (None: forwarded)."""

    at: float
    service: str
    action: str
    role_name: str
    fault: str | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: bytes, content_type: str = "text/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        # An abrupt close: the client sees its connection reset or closed with no response.
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _control(self, body: bytes) -> None:
        proxy = self.server.proxy
        if self.command == "POST":
            proxy.set_rates(**json.loads(body or b"{}"))
        self._answer(200, json.dumps(proxy.report()).encode(), "application/json")

    def _handle(self) -> None:
        body = self._body()
        if urlsplit(self.path).path == CONTROL_PATH:
            self._control(body)
            return
        proxy = self.server.proxy
        service = request_service(self.headers)
        params = request_params(body) if service else {}
        fault = proxy.draw(service, params.get("Action", ""), params.get("RoleName", ""))
        if fault == "throttle":
            self._answer(400, throttling_body(str(uuid.uuid4())))
            return
        if fault == "error":
            self._answer(500, internal_failure_body(str(uuid.uuid4())))
            return
        if fault == "deny":
            self._answer(403, access_denied_body(str(uuid.uuid4()), params.get("Action", "")))
            return
        if fault == "drop":
            self._drop()
            return
        if fault == "latency":
            time.sleep(proxy.rates.latency_seconds)
        status, headers, answer = proxy.forward(self.command, self.path, self.headers, body)
        if fault == "drop_response":
            self._drop()
            return
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a SIGKILLed operator) is expected; anything else is shown."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class FaultProxy:
    """The fault proxy, served from a thread of the test process (see the module docstring)."""

    def __init__(self, upstream: str, *, seed: int | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self._state = _State()
        self._random = random.Random(seed)
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rates(self) -> FaultRates:
        return self._state.rates

    def start(self) -> FaultProxy:
        server = _ProxyServer(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def aws_env(self, base: dict[str, str]) -> dict[str, str]:
        """An AWS environment (see MotoServer.aws_env) pointed at this proxy."""
        return {**base, "AWS_ENDPOINT_URL": self.url}

    def set_rates(self, **rates: Any) -> None:
        """Replace the rates (unnamed ones go back to zero); takes effect for the next request."""
        if "services" in rates:
            rates["services"] = tuple(rates["services"])
        new = FaultRates(**rates)
        if new.total() > 1.0:
            raise ValueError(f"fault rates add up to {new.total()} > 1")
        with self._state.lock:
            self._state.rates = new

    def clear(self) -> None:
        self.set_rates()

    def draw(self, service: str, action: str, role_name: str = "") -> str | None:
        """Pick the fault for one request (None: forward untouched), count and record it."""
        with self._state.lock:
            fault = self._draw_locked(service, action)
            if service:
                self._state.forwarded[service] += 1
                self._state.calls.append(Call(time.time(), service, action, role_name, fault))
            return fault

    def _draw_locked(self, service: str, action: str) -> str | None:
        rates = self._state.rates
        if not service or service not in rates.services:
            return None
        roll = self._random.random()
        for kind in FAULT_KINDS:
            chance = float(getattr(rates, kind))
            if roll < chance:
                self._state.injected[kind] += 1
                self._state.by_action[f"{kind}:{action or '?'}"] += 1
                return kind
            roll -= chance
        return None

    def calls(self, since: int = 0) -> list[Call]:
        """Signed requests in arrival order, from index `since` (see `mark`)."""
        with self._state.lock:
            return list(self._state.calls[since:])

    def mark(self) -> int:
        """An index for `calls(since=...)`: what arrives from now on."""
        with self._state.lock:
            return len(self._state.calls)

    def writes(self, since: int = 0, role_names: set[str] | None = None) -> list[Call]:
        """IAM writes that reached moto (not faulted before forwarding) from `since`."""
        return [
            call
            for call in self.calls(since)
            if call.service == "iam"
            and is_write(call.action)
            and call.fault not in ("throttle", "error", "drop")
            and (role_names is None or call.role_name in role_names)
        ]

    def counts(self) -> dict[str, int]:
        """Injected faults by kind (every kind present, zero when none)."""
        with self._state.lock:
            return {kind: self._state.injected[kind] for kind in FAULT_KINDS}

    def requests(self) -> dict[str, int]:
        """Signed requests seen, by service (faulted or not)."""
        with self._state.lock:
            return dict(self._state.forwarded)

    def report(self) -> dict[str, Any]:
        with self._state.lock:
            rates = asdict(self._state.rates)
            rates["services"] = list(rates["services"])
            return {
                "rates": rates,
                "injected": {kind: self._state.injected[kind] for kind in FAULT_KINDS},
                "by_action": dict(self._state.by_action),
                "requests": dict(self._state.forwarded),
            }

    def reset_counts(self) -> None:
        with self._state.lock:
            self._state.injected.clear()
            self._state.by_action.clear()
            self._state.forwarded.clear()
            self._state.calls.clear()

    def forward(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        for attempt in range(2):
            if connection is None:
                connection = http.client.HTTPConnection(
                    self.upstream_host, self.upstream_port, timeout=120
                )
                self._local.connection = connection
            try:
                # The Host header stays: it is part of the SigV4 signature moto may check.
                forwarded = {k: v for k, v in headers.items() if k.lower() != "connection"}
                connection.request(method, path, body=body or None, headers=forwarded)
                response = connection.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (http.client.HTTPException, OSError):
                connection.close()
                connection = None
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")
