"""AWS clients per account: shared loader, refreshing AssumeRole credentials, rate and call metrics.

Memory matters with hundreds of accounts: a boto3 Session per account costs about 6 MB per
iam+sts pair, while botocore sessions sharing one `data_loader` cost under 1 MB (DESIGN
section 6). So there is one base botocore session (the operator's own credentials, from the
standard chain: environment, IRSA web identity, EKS Pod Identity, ...) and one light session
per account whose credentials refresh themselves through STS AssumeRole. That one loader keeps
only what the operator's clients use (`LeanJSONFileLoader`): botocore's endpoints.json for
every AWS service was 7 MB of Python objects, the IAM model's documentation 1.8 MB.

Every HTTP attempt, retries included, passes two hooks registered here and nowhere else: the
per-account rate limiter (`before-send`) and the call counter (`needs-retry`, which botocore
emits once per attempt with either the response or the exception). The event loop also waits
for an account's limiter before it hands that account's work to a worker (context.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
import xml.etree.ElementTree as ETree
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import botocore.loaders
import botocore.parsers
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from ecsrole import metrics
from ecsrole.aws.errors import THROTTLING_CODES

if TYPE_CHECKING:  # the stubs are a dev dependency; the image has no need of them
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

# botocore's standard retry mode: exponential backoff with jitter, throttling-aware, bounded.
RETRY_ATTEMPTS = 5
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=16,
)
# Long polls hold the connection for up to 20 s.
SQS_CLIENT_CONFIG = CLIENT_CONFIG.merge(Config(read_timeout=40))


# The services the operator creates clients for; the loader drops the others' endpoint data.
SERVICES = frozenset({"iam", "sts", "sqs"})


def _without_documentation(model: Any) -> Any:
    """A service model without its "documentation" strings (only docstrings ever read them)."""
    if isinstance(model, dict):
        return {k: _without_documentation(v) for k, v in model.items() if k != "documentation"}
    if isinstance(model, list):
        return [_without_documentation(v) for v in model]
    return model


class LeanJSONFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's file loader, keeping in memory only what the operator's clients need.

    - endpoints.json (the legacy endpoint data of every AWS service in every partition, which
      a session loads for its endpoint resolver) keeps only SERVICES;
    - service models (service-2) lose their documentation.

    Both are loaded once per process and kept for its lifetime by the shared loader.
    """

    def load_file(self, file_path: str) -> Any:
        data = super().load_file(file_path)
        if data is None:
            return None
        name = file_path.rsplit("/", 1)[-1]
        if name == "endpoints" and isinstance(data.get("partitions"), list):
            for partition in data["partitions"]:
                services = partition.get("services") or {}
                partition["services"] = {k: v for k, v in services.items() if k in SERVICES}
        elif name == "service-2":
            data = _without_documentation(data)
        return data


def lean_loader() -> botocore.loaders.Loader:
    """A data loader like botocore's default (same search path), with the lean file loader."""
    return botocore.loaders.Loader(file_loader=LeanJSONFileLoader())


# Bytes of XML handed to expat at a time. expat runs in C with the GIL held for the whole of
# one feed: one 5 MB GetAccountAuthorizationDetails page in one feed held it for 50-100 ms,
# stalling the event loop; 64 KiB take about a millisecond each.
XML_SLICE_BYTES = 64 * 1024


class CooperativeQueryParser(botocore.parsers.QueryParser):
    """botocore's parser of IAM's and STS's XML responses, feeding expat in slices.

    Between two slices the worker thread runs Python again, so the interpreter can hand the
    GIL to the event loop thread (every `sys.getswitchinterval()`, 5 ms) instead of after the
    whole document. The tree built is the same; only the feeding differs.
    """

    def _parse_xml_string_to_dom(self, xml_string: bytes) -> Any:
        try:
            # The parser botocore itself uses for these responses (expat, entity expansion
            # bounded by Python's own limits): the slicing is the only difference.
            parser = ETree.XMLParser(target=ETree.TreeBuilder(), encoding=self.DEFAULT_ENCODING)  # noqa: S314
            for start in range(0, len(xml_string), XML_SLICE_BYTES):
                parser.feed(xml_string[start : start + XML_SLICE_BYTES])
            return parser.close()
        except ETree.ParseError as error:
            raise botocore.parsers.ResponseParserError(
                f"Unable to parse response ({error}), invalid XML received. Further retries "
                f"may succeed:\n{xml_string!r}"
            ) from error


class CooperativeParserFactory(botocore.parsers.ResponseParserFactory):
    """botocore's parser factory, with the cooperative parser for the query protocol."""

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "query":
            # The defaults botocore's factory was given (timestamp and blob parsers).
            return CooperativeQueryParser(**getattr(self, "_defaults", {}))
        return super().create_parser(protocol_name)


def _share_components(session: botocore.session.Session, loader: Any) -> None:
    session.register_component("data_loader", loader)
    session.register_component("response_parser_factory", CooperativeParserFactory())


class RateLimiter:
    """Token bucket shared by every thread calling one account: at most `rate` attempts a second.

    Every HTTP attempt takes a token in the calling worker thread (`acquire`, botocore's
    before-send hook), retries included. Before work is handed to a worker at all, the event
    loop waits for a token to be there (`wait_available`), so an account that has used up its
    rate waits on the event loop, not in a worker; together with the per-account worker share
    (ecsrole.shares) a slow account slows only its own calls.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def delay(self) -> float:
        """Seconds until a token is there (0 when one is there now); takes nothing."""
        with self._lock:
            self._refill()
            return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def try_acquire(self) -> float:
        """Take a token and return 0, or return the seconds until one is there."""
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self) -> None:
        """Take a token, blocking the calling (worker) thread until there is one."""
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)

    async def wait_available(self) -> None:
        """Wait on the event loop until a token is there, without taking it."""
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)


def _count_attempt(**kwargs: Any) -> None:
    """Count one HTTP attempt by service, operation and outcome (success, throttled, error).

    botocore emits "needs-retry.<service>.<Operation>" after every attempt, with either the
    (http_response, parsed) pair or the exception that ended the attempt.
    """
    _, service, operation = [*str(kwargs.get("event_name", "")).split(".", 2), "", ""][:3]
    response = kwargs.get("response")
    if kwargs.get("caught_exception") is not None or response is None:
        outcome = "error"
    else:
        http_response, parsed = response
        error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
        code = str(error.get("Code", ""))
        if code in THROTTLING_CODES:
            outcome = "throttled"
        elif http_response.status_code >= 400 or code:
            outcome = "error"
        else:
            outcome = "success"
    metrics.aws_api_calls.labels(service, operation, outcome).inc()


def _instrument(session: botocore.session.Session, limiter: RateLimiter | None) -> None:
    session.register("needs-retry", _count_attempt)
    if limiter is not None:
        session.register("before-send", lambda **_: limiter.acquire())


@dataclass(frozen=True)
class AccountAccess:
    """How to reach one account: its own role to assume, or the operator's own credentials."""

    account_id: str
    role_arn: str | None
    external_id: str | None
    max_calls_per_second: float


@dataclass
class AccountClients:
    """The iam and sts clients of one account, created once and reused by every thread."""

    access: AccountAccess
    iam: IAMClient
    sts: STSClient
    limiter: RateLimiter


class ClientFactory:
    """Creates and caches per-account clients from one shared base session.

    Thread-safe: handlers and sweeps ask for clients from worker threads concurrently.
    """

    def __init__(self, *, region: str, session_name: str) -> None:
        self.region = region
        self.session_name = session_name
        self._base = botocore.session.get_session()
        _share_components(self._base, lean_loader())
        self._base.set_config_variable("region", region)
        _instrument(self._base, None)
        self._base_sts: STSClient | None = None
        self._clients: dict[str, AccountClients] = {}
        self._lock = threading.Lock()

    def _light_session(self) -> botocore.session.Session:
        """A botocore session that reuses the base session's loaded service models."""
        session = botocore.session.Session()
        session.set_config_variable("region", self.region)
        _share_components(session, self._base.get_component("data_loader"))
        return session

    def base_sts(self) -> STSClient:
        with self._lock:
            if self._base_sts is None:
                self._base_sts = cast(
                    "STSClient",
                    self._base.create_client("sts", region_name=self.region, config=CLIENT_CONFIG),
                )
            return self._base_sts

    def base_sqs(self) -> SQSClient:
        """SQS with the operator's own credentials (the CloudTrail event queue)."""
        return cast(
            "SQSClient",
            self._base.create_client("sqs", region_name=self.region, config=SQS_CLIENT_CONFIG),
        )

    def for_account(self, access: AccountAccess) -> AccountClients:
        with self._lock:
            cached = self._clients.get(access.account_id)
            if cached is not None and cached.access == access:
                return cached
        clients = self._create(access)
        with self._lock:
            self._clients[access.account_id] = clients
        return clients

    def _create(self, access: AccountAccess) -> AccountClients:
        session = self._light_session()
        if access.role_arn:
            extra: dict[str, str] = {"RoleSessionName": self.session_name}
            if access.external_id:
                extra["ExternalId"] = access.external_id
            fetcher = AssumeRoleCredentialFetcher(
                client_creator=self._base.create_client,
                source_credentials=self._base.get_credentials(),
                role_arn=access.role_arn,
                extra_args=extra,
            )
            credentials: Any = DeferredRefreshableCredentials(
                refresh_using=fetcher.fetch_credentials, method="assume-role"
            )
        else:
            credentials = self._base.get_credentials()
        # botocore has no public setter for refreshable credentials; boto3 sets it the same way.
        session._credentials = credentials  # type: ignore[attr-defined]
        limiter = RateLimiter(access.max_calls_per_second)
        _instrument(session, limiter)
        iam = cast(
            "IAMClient", session.create_client("iam", region_name=self.region, config=CLIENT_CONFIG)
        )
        # The paginator model is otherwise loaded at the first paged read, which after a start or a
        # takeover is every account's seed read at once: each of those threads then walked the
        # data folder's every service (list_available_services) before its first request.
        iam.can_paginate("list_roles")
        return AccountClients(
            access=access,
            limiter=limiter,
            iam=iam,
            sts=cast(
                "STSClient",
                session.create_client("sts", region_name=self.region, config=CLIENT_CONFIG),
            ),
        )

    def limiter(self, account_id: str) -> RateLimiter | None:
        """The rate limiter of an account whose clients exist (None before its first use)."""
        with self._lock:
            cached = self._clients.get(account_id)
        return cached.limiter if cached is not None else None
