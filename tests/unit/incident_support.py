"""Detections and incidents for the stage tests: one establishment's evidence, by minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.detection import Detection
from schemas.identity import detection_id, stable_id
from schemas.organization import Organization

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
CHU = Organization(id="750000001", name="CHU Paris 0001", type="university_hospital",
                   region="ile-de-france")


def organization(n: int) -> Organization:
    return Organization(id=f"75000000{n}", name=f"CH {n}", type="hospital",
                        region="ile-de-france")


def detection(n: int, level: str = "high", minute: float = 0, host: str | None = "pc-0042",
              category: str = "malicious_code", org: Organization = CHU,
              matched: dict[str, Any] | None = None, rule: str | None = None) -> Detection:
    """Detection of rule ``rule`` (default: one rule per level) on event number ``n``."""
    event_id = stable_id("event", org.id, n)
    rule_id = rule or f"rule-{level}"
    return Detection.model_validate({
        "id": detection_id(org.id, rule_id, event_id),
        "@timestamp": (START + timedelta(minutes=minute)).isoformat(),
        "rule": {"id": rule_id, "title": f"Suspicious {level} activity", "level": level},
        "threat": {"tactics": ["execution"], "techniques": ["T1059"]},
        "category": category, "origin": "malicious", "event_id": event_id,
        "organization": org.model_dump(mode="json"), "host_name": host, "user_name": "alice",
        "matched": matched or {},
    }, strict=False)
