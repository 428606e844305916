"""The SQS consumer of CloudTrail IAM events, against a fake SQS client and a real event loop
running in its own thread (as in the operator: the consumer thread blocks, the loop never does).

What a user relies on: a role change is handed to the loop and its message deleted once handled;
a message that was not handled (the handler said no, failed or timed out) stays in the queue so
SQS delivers it again; irrelevant messages are deleted unread; a failing queue is retried after
a pause and never ends the consumer; stop() ends it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from structlog.testing import capture_logs

from ecsrole.aws import events
from ecsrole.aws.events import EventConsumer
from ecsrole.core.cloudtrail import RoleChange

pytestmark = pytest.mark.unit

QUEUE = "https://sqs.us-east-1.amazonaws.com/111111111111/ecsrole-events"
DEADLINE = 30.0  # generous: the machine may be loaded


def cloudtrail(role_name: str = "web-exec", **detail: Any) -> str:
    return json.dumps(
        {
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.iam",
            "detail": {
                "eventName": "AttachRolePolicy",
                "eventTime": "2026-11-29T05:00:00Z",
                "requestParameters": {"roleName": role_name},
                "recipientAccountId": "111111111111",
                "userIdentity": {"arn": "arn:aws:sts::111111111111:assumed-role/Admin/alice"},
                **detail,
            },
        }
    )


def message(body: str, receipt: str) -> dict[str, Any]:
    return {"MessageId": receipt, "ReceiptHandle": receipt, "Body": body}


class FakeSqs:
    """Answers each receive_message from a script: a list of messages or an exception; once the
    script is spent, it calls `when_empty` (a test's way to stop) and returns no messages."""

    def __init__(self, *script: list[dict[str, Any]] | Exception) -> None:
        self.script = list(script)
        self.receives: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.when_empty: Callable[[], None] | None = None
        self.drained = threading.Event()

    def receive_message(self, **params: Any) -> dict[str, Any]:
        self.receives.append(params)
        if not self.script:
            if self.when_empty is not None:
                self.when_empty()
            self.drained.set()
            return {}
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return {"Messages": step}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> None:  # noqa: N803 - boto3
        assert QueueUrl == QUEUE
        self.deleted.append(ReceiptHandle)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The operator's event loop, running in a thread of its own."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(DEADLINE)
    running.close()


class Handler:
    """Records the role changes handed to the loop; answers with `result` (or raises it)."""

    def __init__(self, result: bool | Exception = True, *, hang: bool = False) -> None:
        self.result = result
        self.hang = hang
        self.changes: list[RoleChange] = []
        self.on_loop: list[bool] = []

    async def __call__(self, change: RoleChange) -> bool:
        self.changes.append(change)
        self.on_loop.append(threading.current_thread() is not threading.main_thread())
        if self.hang:
            await asyncio.Event().wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def consumer(sqs: FakeSqs, handle: Handler, loop: asyncio.AbstractEventLoop) -> EventConsumer:
    return EventConsumer(sqs, QUEUE, handle, loop)  # type: ignore[arg-type]


def test_a_role_change_is_handed_to_the_loop_and_its_message_deleted(
    loop: asyncio.AbstractEventLoop,
) -> None:
    sqs = FakeSqs([message(cloudtrail("web-exec"), "r1"), message(cloudtrail("api-exec"), "r2")])
    handle = Handler()
    assert consumer(sqs, handle, loop).poll_once() == 2
    assert [c.role_name for c in handle.changes] == ["web-exec", "api-exec"]
    assert handle.on_loop == [True, True]  # run on the loop's thread, not the consumer's
    assert sqs.deleted == ["r1", "r2"]
    assert sqs.receives == [
        {"QueueUrl": QUEUE, "MaxNumberOfMessages": 10, "WaitTimeSeconds": events.WAIT_SECONDS}
    ]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"source": "aws.s3"}),
        cloudtrail(errorCode="AccessDenied"),
        cloudtrail(eventName="GetRole"),
    ],
    ids=["not-json", "other-source", "failed-call", "read-only-call"],
)
def test_messages_that_change_no_role_are_deleted_without_a_read(
    body: str, loop: asyncio.AbstractEventLoop
) -> None:
    sqs = FakeSqs([message(body, "r1")])
    handle = Handler()
    assert consumer(sqs, handle, loop).poll_once() == 1  # dealt with: nothing to read
    assert handle.changes == []
    assert sqs.deleted == ["r1"]


def test_a_message_the_handler_did_not_deal_with_stays_in_the_queue(
    loop: asyncio.AbstractEventLoop,
) -> None:
    sqs = FakeSqs([message(cloudtrail(), "r1")])
    handle = Handler(result=False)  # e.g. the account is not configured yet
    assert consumer(sqs, handle, loop).poll_once() == 0
    assert len(handle.changes) == 1
    assert sqs.deleted == []


def test_a_failing_handler_leaves_the_message_and_the_next_one_is_still_handled(
    loop: asyncio.AbstractEventLoop,
) -> None:
    failing = Handler(result=RuntimeError("IAM unreachable"))
    sqs = FakeSqs([message(cloudtrail("a"), "r1"), message(cloudtrail("b"), "r2")])
    with capture_logs() as logs:
        assert consumer(sqs, failing, loop).poll_once() == 0
    assert [c.role_name for c in failing.changes] == ["a", "b"]
    assert sqs.deleted == []
    failures = [line for line in logs if line["event"] == "handling an event failed"]
    assert [line["role_name"] for line in failures] == ["a", "b"]


def test_a_handler_that_hangs_is_cancelled_after_the_timeout_and_its_message_kept(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "HANDLE_TIMEOUT", 0.05)
    hanging = Handler(hang=True)
    sqs = FakeSqs([message(cloudtrail("stuck"), "r1")])
    with capture_logs() as logs:
        assert consumer(sqs, hanging, loop).poll_once() == 0
    assert sqs.deleted == []
    # The coroutine does not linger on the loop (whether it had started or not when cut off).
    assert wait_until(lambda: tasks_on(loop) == 0)
    assert {"event": "handling an event timed out", "role_name": "stuck"}.items() <= logs[0].items()


def tasks_on(loop: asyncio.AbstractEventLoop) -> int:
    async def others() -> int:
        return len(asyncio.all_tasks() - {asyncio.current_task()})

    return asyncio.run_coroutine_threadsafe(others(), loop).result(DEADLINE)


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_consumer_thread_survives_queue_errors_and_ends_on_stop(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "ERROR_PAUSE", 0.01)
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "ReceiveMessage"
    )
    sqs = FakeSqs(
        throttled,
        EndpointConnectionError(endpoint_url=QUEUE),
        ValueError("a bug"),
        [message(cloudtrail("after-the-errors"), "r1")],
    )
    handle = Handler()
    running = consumer(sqs, handle, loop)
    sqs.when_empty = running.stop
    with capture_logs() as logs:
        running.start()
        running.thread.join(DEADLINE)
    assert not running.thread.is_alive()
    assert running.thread.daemon
    assert running.thread.name == "sqs-events"
    assert [c.role_name for c in handle.changes] == ["after-the-errors"]
    assert sqs.deleted == ["r1"]
    assert [line["event"] for line in logs if line["log_level"] in ("warning", "error")] == [
        "reading the event queue failed",
        "reading the event queue failed",
        "the event consumer failed",
    ]


def test_stop_before_the_first_poll_reads_nothing(loop: asyncio.AbstractEventLoop) -> None:
    sqs = FakeSqs([message(cloudtrail(), "r1")])
    stopped = consumer(sqs, Handler(), loop)
    stopped.stop()
    stopped.start()
    stopped.thread.join(DEADLINE)
    assert not stopped.thread.is_alive()
    assert sqs.receives == []
