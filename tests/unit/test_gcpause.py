"""The cyclic collector is off while bulk reads run, back on after the last, and a pause that
overlapping reads keep alive for too long still collects."""

from __future__ import annotations

import gc

import pytest

from ecsrole import gcpause

pytestmark = pytest.mark.unit


def test_the_collector_is_off_during_a_read_and_on_after() -> None:
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        assert gcpause.holders() == 1
    assert gc.isenabled()
    assert gcpause.holders() == 0


def test_overlapping_reads_keep_it_off_until_the_last_ends() -> None:
    first, second = gcpause.paused(), gcpause.paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_failed_read_turns_it_back_on() -> None:
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("AccessDenied")
    assert gc.isenabled()


def test_a_long_overlapping_pause_collects_cyclic_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(1) or 0)
    outer = gcpause.paused(lambda: now[0])
    outer.__enter__()
    with gcpause.paused(lambda: now[0]):
        now[0] += gcpause.MAX_PAUSE_SECONDS + 1
    assert collected == [1]  # the overlapping read ended a pause older than the bound
    outer.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_switched_off_by_someone_else_stays_off() -> None:
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
