"""The SQS consumer for CloudTrail IAM events: long-polls in its own thread, never the loop.

Each message is parsed by the pure core; a relevant one is handed to the event loop (which
re-reads the role and reconciles it) and deleted once handled. A message whose handling failed
is left in the queue, so SQS delivers it again after its visibility timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ecsrole import logs
from ecsrole.core.cloudtrail import RoleChange, Skipped, parse_message

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logs.get_logger(__name__)

WAIT_SECONDS = 20
HANDLE_TIMEOUT = 120.0
ERROR_PAUSE = 10.0

Handler = Callable[[RoleChange], Coroutine[Any, Any, bool]]


class EventConsumer:
    """Long-polls one queue and hands each role change to `handle` on the event loop.

    `handle` returns True when the message is dealt with (re-read or deliberately skipped).
    """

    def __init__(
        self, sqs: SQSClient, queue_url: str, handle: Handler, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handle = handle
        self.loop = loop
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sqs-events", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except (BotoCoreError, ClientError) as error:
                log.warning("reading the event queue failed", error=str(error))
                self.stopping.wait(ERROR_PAUSE)
            except Exception:
                log.exception("the event consumer failed")
                self.stopping.wait(ERROR_PAUSE)

    def poll_once(self) -> int:
        """One long poll; returns how many messages were handled and deleted."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=WAIT_SECONDS
        )
        handled = 0
        for message in response.get("Messages", []):
            if self._handle(message):
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                handled += 1
        return handled

    def _handle(self, message: MessageTypeDef) -> bool:
        parsed = parse_message(message.get("Body", ""))
        if isinstance(parsed, Skipped):
            log.debug("event skipped", reason=parsed.reason)
            return True
        received = time.time()
        future: Future[bool] = asyncio.run_coroutine_threadsafe(self.handle(parsed), self.loop)
        try:
            done: bool = future.result(timeout=HANDLE_TIMEOUT)
        except FutureTimeoutError:
            future.cancel()
            log.warning("handling an event timed out", role_name=parsed.role_name)
            return False
        except Exception:
            log.exception("handling an event failed", role_name=parsed.role_name)
            return False
        log.debug(
            "event handled",
            event_name=parsed.event_name,
            account_id=parsed.account_id,
            role_name=parsed.role_name,
            delivery_seconds=received - parsed.event_time if parsed.event_time else None,
        )
        return done
