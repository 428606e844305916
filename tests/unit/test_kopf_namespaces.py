"""kopf's namespace observer takes in the namespaces a listing of its watch brings
(handlers._namespace_event): one created between kopf's two listings at start, or while the
namespace watch was down and then listed again, is served at once, not only after it changes.

kopf's own observer runs here with its listing and its watch stream faked, no network."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
from kopf._cogs.clients import fetching, watching
from kopf._cogs.configs import configuration
from kopf._cogs.structs import references
from kopf._core.reactor import observation

from ecsrole import handlers
from tests.unit.fakes import WakeUps

pytestmark = pytest.mark.unit

NAMESPACES = references.Resource(
    group="",
    version="v1",
    plural="namespaces",
    namespaced=False,
    verbs=frozenset({"list", "watch"}),
)
PATTERNS = ["shared-*"]


def namespace(name: str, **metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}", **metadata}}


def listing(*names: str) -> list[Any]:
    """What kopf's watch yields when it (re)lists: each object as type None, then LISTED."""
    return [{"type": None, "object": namespace(n)} for n in names] + [watching.Bookmark.LISTED]


async def observe(
    monkeypatch: pytest.MonkeyPatch, first_listing: Iterable[str], stream: list[Any]
) -> tuple[set[str], int]:
    """Run kopf's namespace observer: its own listing gives `first_listing`, then its watch
    yields `stream`. Returns the namespaces it serves and how often it woke the orchestrator."""

    async def fetch_objs(**_: Any) -> AsyncIterator[tuple[list[Any], str]]:
        yield [namespace(n) for n in first_listing], "1"

    done = asyncio.Event()

    async def infinite_watch(**_: Any) -> AsyncIterator[Any]:
        for item in stream:
            yield item
        done.set()
        await asyncio.Event().wait()  # the watch goes on, with nothing more to say

    monkeypatch.setattr(fetching, "fetch_objs", fetch_objs)
    monkeypatch.setattr(watching, "infinite_watch", infinite_watch)
    settings = configuration.OperatorSettings()
    settings.queueing.exit_timeout = 0.5
    insights = references.Insights()
    await insights.backbone.fill(resources=[NAMESPACES])
    wakeups = WakeUps(insights.revised)
    task = asyncio.create_task(
        observation.namespace_observer(
            clusterwide=False, namespaces=PATTERNS, insights=insights, settings=settings
        )
    )
    await asyncio.wait_for(done.wait(), timeout=30)
    # Each namespace's event is handled by a worker of its own, which needs only a few turns of
    # the event loop (no timer): give them 200 turns, however slow the machine.
    for _ in range(200):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return {str(n) for n in insights.namespaces}, wakeups.count


# At start kopf's observer lists (shared-a), then its watch lists once more: shared-b was
# created in between. Later shared-c arrives as an event; then the watch restarts (410 Gone)
# and lists again: shared-d was created while it was down. `other` never matches.
FIRST = ("shared-a", "other")
STREAM = [
    *listing("shared-a", "other", "shared-b"),
    {"type": "ADDED", "object": namespace("shared-c")},
    *listing("shared-a", "other", "shared-b", "shared-c", "shared-d"),
]


def test_the_pinned_kopf_is_patched() -> None:
    # Fails on a kopf upgrade: check whether its namespace observer still skips listed
    # namespaces (test_kopf_alone_serves_only_namespaces_it_saw_an_event_of), then move
    # KOPF_CHECKED.
    assert handlers._serve_listed_namespaces()
    assert handlers.SERVES_LISTED_NAMESPACES
    assert observation.process_discovered_namespace_event is handlers._namespace_event


def test_namespaces_known_only_from_a_listing_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    served, wakeups = asyncio.run(observe(monkeypatch, FIRST, STREAM))
    assert served == {"shared-a", "shared-b", "shared-c", "shared-d"}
    # One wake-up for the first listing, then one per namespace new to kopf: a listing of
    # namespaces it knows, or that do not match, wakes nothing.
    assert wakeups == 4


def test_kopf_alone_serves_only_namespaces_it_saw_an_event_of(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the patch is for. When this fails, kopf has changed: the patch may go."""
    monkeypatch.setattr(
        observation, "process_discovered_namespace_event", handlers._kopf_namespace_event
    )
    served, _ = asyncio.run(observe(monkeypatch, FIRST, STREAM))
    assert served == {"shared-a", "shared-c"}


@pytest.mark.parametrize(
    ("event", "known", "expected"),
    [
        pytest.param(None, set(), {"shared-x"}, id="listed-new"),
        pytest.param(None, {"shared-x"}, {"shared-x"}, id="listed-known"),
        pytest.param("ADDED", set(), {"shared-x"}, id="added"),
        pytest.param("MODIFIED", set(), {"shared-x"}, id="modified"),
        pytest.param("DELETED", {"shared-x"}, set(), id="deleted"),
    ],
)
def test_one_event(event: str | None, known: set[str], expected: set[str]) -> None:
    assert asyncio.run(_one(event, known, "shared-x")) == expected


def test_a_listed_namespace_that_does_not_match_is_left_out() -> None:
    assert asyncio.run(_one(None, set(), "team-y")) == set()


def test_a_listed_namespace_finished_deleting_is_left_out() -> None:
    terminating = namespace(
        "shared-z",
        deletionTimestamp="2026-01-01T00:00:00Z",
    )
    terminating["status"] = {
        "conditions": [{"type": "NamespaceContentRemaining", "status": "False"}]
    }
    assert asyncio.run(_one(None, set(), "shared-z", body=terminating)) == set()


async def _one(
    event: str | None, known: set[str], name: str, body: dict[str, Any] | None = None
) -> set[str]:
    insights = references.Insights()
    insights.namespaces.update(references.NamespaceName(n) for n in known)
    process: Callable[..., Any] = handlers._namespace_event
    await process(
        raw_event={"type": event, "object": body or namespace(name)},
        namespaces=PATTERNS,
        insights=insights,
    )
    return {str(n) for n in insights.namespaces}
