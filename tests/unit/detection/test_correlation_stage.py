"""The Sigma correlation stage without Faust: wire records in (signals and ticks), correlation
detections and window writes out, as the agent applies them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from processors.detection.correlation.evaluate import Signal
from processors.detection.correlation.signals import (
    SigmaCorrelationStage,
    WindowChanges,
    WindowTick,
)
from processors.detection.correlation.state import WindowState
from schemas.detection import Detection
from tests.unit.detection.test_correlation import CORR, A, compile_set, correlation
from tests.unit.incident_support import CHU, START, detection

BRUTE_FORCE = compile_set(correlation("event_count", [A], group_by=["IpAddress"],
                                      condition={"gte": 3}))


class Table:
    """A dict standing for the Faust table, written as the agent writes it (through JSON, as
    the changelog stores it)."""

    def __init__(self) -> None:
        self.values: dict[str, WindowState] = {}

    def apply(self, changes: WindowChanges) -> list[Detection]:
        for key, state in changes.updates.items():
            if state is None:
                self.values.pop(key, None)
            else:
                self.values[key] = json.loads(json.dumps(state))
        return changes.detections


def failed_logon(n: int, ip: str = "203.0.113.7") -> bytes:
    """A signal of the base rule on event ``n`` (second ``n``), as the processor sends it."""
    base = detection(n, "low", minute=n / 60, rule=A, category="intrusion_attempts",
                     matched={"IpAddress": ip, "event.outcome": "failure"})
    return base.to_json_bytes()


def feed(stage: SigmaCorrelationStage, table: Table, record: bytes) -> list[Detection]:
    return table.apply(stage.handle(CHU.id, stage.read(record), table.values.get))


def test_the_threshold_publishes_one_correlation_detection() -> None:
    stage, table = SigmaCorrelationStage(BRUTE_FORCE, lateness_s=60), Table()
    assert feed(stage, table, failed_logon(1)) == []
    assert feed(stage, table, failed_logon(2)) == []
    [found] = feed(stage, table, failed_logon(3))
    assert found.rule.id == CORR and found.organization == CHU
    assert found.matched["IpAddress"] == "203.0.113.7" and found.matched["correlation.count"] == 3
    assert len(found.matched["correlation.event_ids"]) == 3
    # A replay after a crash (the same signal again) fires nothing and counts nothing.
    assert feed(stage, table, failed_logon(3)) == []
    assert feed(stage, table, failed_logon(4)) == [] and feed(stage, table, failed_logon(5)) == []


def test_other_groups_do_not_help() -> None:
    stage, table = SigmaCorrelationStage(BRUTE_FORCE, lateness_s=60), Table()
    for n in range(1, 3):
        feed(stage, table, failed_logon(n))
    assert feed(stage, table, failed_logon(3, ip="198.51.100.1")) == []
    assert len(table.values) == 2


def test_a_silent_establishment_gets_a_tick_that_forgets_its_old_windows() -> None:
    stage, table = SigmaCorrelationStage(BRUTE_FORCE, lateness_s=60), Table()
    feed(stage, table, failed_logon(1))
    now = START.timestamp() + 86_400
    ticks = stage.ticks_due(table.values.items(), now)
    assert list(ticks) == [CHU.id] and ticks[CHU.id].keys == list(table.values)
    assert feed(stage, table, ticks[CHU.id].to_json_bytes()) == []
    assert table.values == {}
    assert stage.ticks_due(table.values.items(), now) == {}


def test_a_tick_ignores_keys_of_another_establishment() -> None:
    stage, table = SigmaCorrelationStage(BRUTE_FORCE, lateness_s=60), Table()
    feed(stage, table, failed_logon(1))
    [key] = table.values
    tick = WindowTick(START.timestamp() + 86_400, [key])
    changes = stage.handle("750000002", tick, table.values.get)
    assert changes.updates == {} and changes.detections == []


def test_reading_the_wire() -> None:
    assert isinstance(SigmaCorrelationStage.read(failed_logon(1)), Signal)
    tick = WindowTick(1.5, ["k"])
    assert SigmaCorrelationStage.read(tick.to_json_bytes()) == tick
    bad: list[Any] = [b'{"not": "a detection"}', b"\xff", b'{"tick": "soon"}']
    for record in bad:
        with pytest.raises((ValueError, ValidationError)):
            SigmaCorrelationStage.read(record)
