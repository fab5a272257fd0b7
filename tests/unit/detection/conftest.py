"""Helpers to write engine tests from Sigma detections, as the specification shows them."""

from __future__ import annotations

from typing import Any

import pytest
from sigma.rule import SigmaRule

from processors.detection import Engine

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def make_rule(
    detection: dict[str, Any],
    logsource: dict[str, str] | None = None,
    rule_id: str = "00000000-0000-0000-0000-000000000001",
    **extra: Any,
) -> SigmaRule:
    return SigmaRule.from_dict(
        {
            "title": extra.pop("title", "test rule"),
            "id": rule_id,
            "status": "test",
            "level": extra.pop("level", "high"),
            "logsource": logsource or {"product": "windows", "category": "process_creation"},
            "detection": detection,
            **extra,
        }
    )


def make_event(
    channel: str = SYSMON,
    event_id: int = 1,
    user_data: dict[str, Any] | None = None,
    **event_data: Any,
) -> dict[str, Any]:
    return {
        "@timestamp": "2025-01-01T00:00:00Z",
        "winlog": {
            "channel": channel,
            "event_id": event_id,
            "provider_name": "Microsoft-Windows-Sysmon",
            "computer_name": "ws01.example.org",
            "record_id": 1,
            "event_data": event_data,
            "user_data": user_data,
        },
    }


def matches(detection: dict[str, Any], event: dict[str, Any] | None = None, **fields: Any) -> bool:
    """Does a process_creation rule with ``detection`` match a Sysmon 1 event with ``fields``?"""
    engine = Engine([make_rule(detection)])
    assert not engine.skipped, engine.skipped
    return bool(engine.evaluate(event if event is not None else make_event(**fields)))


@pytest.fixture
def rule_factory() -> Any:
    return make_rule
