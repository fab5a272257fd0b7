"""The alert stage without Faust: a page per incident and severity step, never twice for the
same step (replays after a restart), and a resolve for each page when the incident resolves."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from processors.alerting.decide import AlertMemory, AlertStage
from processors.alerting.rules import load_alert_rules
from schemas.alert import AlertStatus
from schemas.incident import Incident
from schemas.organization import Organization

ORG = Organization(id="750000001", name="CHU Paris 0001", type="university_hospital",
                   region="ile-de-france")
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def incident(version: int, **overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "b" * 32, "severity": "high", "category": "malicious_code", "declarable": True,
        "origin": "malicious", "title": "Ransomware on the EHR", "organizations": [ORG],
        "first_seen": NOW, "last_seen": NOW, "version": version, **overrides}
    return Incident.model_validate(fields, strict=False)


def stored(memory: AlertMemory | None) -> AlertMemory:
    """Through JSON, as the ``alert-memory`` changelog gives it back after a restart."""
    assert memory is not None
    decoded: AlertMemory = json.loads(json.dumps(memory))
    return decoded


def test_an_alert_fires_once_per_step_then_resolves() -> None:
    stage = AlertStage(load_alert_rules())
    fired = stage.handle(None, incident(1), NOW)
    assert fired.alerts and {a.status for a in fired.alerts} == {AlertStatus.FIRING}
    memory = stored(fired.stored)

    replay = stage.handle(memory, incident(1), NOW)
    assert replay.alerts == [] and replay.stored is None  # nothing to write either

    same_step = stage.handle(memory, incident(2), NOW)
    assert same_step.alerts == [] and same_step.stored is not None
    memory = stored(same_step.stored)

    worse = stage.handle(memory, incident(3, severity="critical"), NOW)
    assert {a.severity.value for a in worse.alerts} == {"critical"}
    memory = stored(worse.stored)

    resolved = stage.handle(memory, incident(4, severity="critical", status="resolved"), NOW)
    assert {a.status for a in resolved.alerts} == {AlertStatus.RESOLVED}
    assert {a.id for a in resolved.alerts} == {a.id for a in fired.alerts + worse.alerts}
    # The resolve carries the labels the page was routed with (Alertmanager matches on them).
    assert {a.labels["region"] for a in resolved.alerts} == {"ile-de-france"}
    assert resolved.stored is not None and resolved.stored.get("resolved") is True


def test_a_minor_incident_pages_nobody() -> None:
    changes = AlertStage(load_alert_rules()).handle(
        None, incident(1, severity="low", declarable=False), NOW)
    assert changes.alerts == [] and changes.stored is not None
