"""The incident stage without Faust: what one detection or one tick does to an establishment's
incidents, as a SOC analyst sees it (opened, extended, severity, resolved)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from processors.incidents.config import ScoringConfig, load_scoring
from processors.incidents.lifecycle import IncidentStage, Tick
from processors.incidents.state import IncidentState, organization_record
from schemas.incident import Status
from schemas.taxonomy import Severity
from tests.unit.incident_support import CHU, START, detection, organization

#: A value of ``incidents-by-establishment`` exactly as the previous version (stages.py with
#: plain dicts) wrote it to the changelog: the new stage must read it and carry on.
WRITTEN_BEFORE = """[{"id": "e961aa01bd759c34d3ff813a15c09a29", "organization": {"id": "750000001",
"name": "CH 1", "type": "hospital", "region": "ile-de-france"}, "category": "malicious_code",
"status": "open", "severity": "high", "first_seen": "2026-11-29T08:00:00+00:00",
"last_seen": "2026-11-29T08:00:00+00:00", "hosts": ["pc-1"], "users": ["alice"],
"detection_ids": ["e1d55257490280ee38cc4d4259c7ea9a"],
"event_ids": ["3e3aac666bc516f933bc82028e5b37b6"], "levels": {"high": 1},
"rules": {"rule-high": 1}, "techniques": ["T1059"], "title": "Rule high", "version": 1}]"""


@pytest.fixture(scope="module")
def scoring() -> ScoringConfig:
    return load_scoring()


@pytest.fixture()
def stage(scoring: ScoringConfig) -> IncidentStage:
    return IncidentStage(scoring)


def opened(stage: IncidentStage, **kwargs: Any) -> list[IncidentState]:
    changes = stage.handle([], detection(1, **kwargs))
    assert changes.stored is not None
    return changes.stored


def test_a_serious_detection_opens_an_incident(stage: IncidentStage) -> None:
    changes = stage.handle([], detection(1, "high"))
    [incident] = changes.incidents
    assert incident.status == Status.OPEN and incident.severity == Severity.HIGH
    assert incident.organizations == [CHU] and incident.counts.detections == 1
    assert changes.stored is not None and [s["id"] for s in changes.stored] == [incident.id]


def test_a_weak_detection_alone_opens_nothing(stage: IncidentStage) -> None:
    changes = stage.handle([], detection(1, "low"))
    assert changes.incidents == [] and changes.stored is None and changes.sightings == []


def test_related_evidence_extends_the_same_incident(stage: IncidentStage) -> None:
    stored = opened(stage)
    changes = stage.handle(stored, detection(2, "low", minute=30))
    [incident] = changes.incidents
    assert incident.id == stored[0]["id"] and incident.counts.detections == 2
    assert incident.version == 2 and changes.stored is not None and len(changes.stored) == 1


def test_evidence_after_the_inactivity_window_opens_a_new_incident(
        stage: IncidentStage, scoring: ScoringConfig) -> None:
    stored = opened(stage)
    later = scoring.windows.inactivity_minutes + 1
    changes = stage.handle(stored, detection(2, "high", minute=later))
    assert changes.stored is not None and len(changes.stored) == 2
    assert changes.incidents[0].id != stored[0]["id"]


def test_a_replayed_detection_changes_nothing(stage: IncidentStage) -> None:
    stored = opened(stage)
    changes = stage.handle(stored, detection(1))
    assert changes.incidents == [] and changes.stored is None


def test_severity_rises_with_evidence_and_never_falls(scoring: ScoringConfig) -> None:
    stage = IncidentStage(scoring)
    stored = opened(stage, level="medium", host="pc-0042")
    assert stored[0]["severity"] == Severity.MEDIUM
    # A critical detection on an electronic health record server: the incident escalates.
    [escalated] = stage.handle(stored, detection(2, "critical", 5, "srv-dpi-01")).incidents
    assert escalated.severity == Severity.CRITICAL
    # The SOC retunes scoring.yaml so that the same evidence scores far lower: the incident
    # already paged as critical stays critical.
    stricter = scoring.model_copy(update={"severity_thresholds": {
        Severity.CRITICAL: 900, Severity.HIGH: 800, Severity.MEDIUM: 700, Severity.LOW: 600}})
    [after] = IncidentStage(stricter).handle(stored, detection(3, "low", 10)).incidents
    assert after.severity == Severity.CRITICAL and after.version == escalated.version + 1


def test_resolved_after_inactivity_then_forgotten(stage: IncidentStage,
                                                  scoring: ScoringConfig) -> None:
    stored = opened(stage)
    quiet = timedelta(minutes=scoring.windows.resolve_after_minutes)
    assert IncidentStage.needs_tick(stored)
    early = stage.handle(stored, Tick(START + quiet - timedelta(minutes=1)))
    assert early.incidents == [] and early.stored is None
    resolved = stage.handle(stored, Tick(START + quiet + timedelta(minutes=1)))
    [incident] = resolved.incidents
    assert incident.status == Status.RESOLVED and incident.version == 2
    assert resolved.stored is not None and not IncidentStage.needs_tick(resolved.stored)
    # A week after, the resolved incident leaves the table (its final state is published).
    gone = stage.handle(resolved.stored, Tick(START + timedelta(days=8)))
    assert gone.incidents == [] and gone.stored == []


def test_an_incident_opened_with_an_indicator_is_reported_for_campaigns(
        stage: IncidentStage) -> None:
    changes = stage.handle([], detection(1, matched={"Hashes": "SHA256=ABC"}))
    [seen] = changes.sightings
    assert seen["indicator"] == "file_hash:sha256=abc"
    assert seen["incident_id"] == changes.incidents[0].id
    assert json.loads(json.dumps(seen)) == seen  # what goes on vigie.indicators
    assert changes.stored is not None
    extended = stage.handle(changes.stored, detection(2, matched={"Hashes": "SHA256=DEF"}))
    assert extended.sightings == []  # one indicator per incident: the opening detection's


def test_reads_what_the_previous_version_stored(stage: IncidentStage) -> None:
    stored: list[IncidentState] = json.loads(WRITTEN_BEFORE)
    more = detection(2, "low", minute=3, host="pc-1", org=organization(1))
    changes = stage.handle(stored, more)
    [incident] = changes.incidents
    assert incident.id == "e961aa01bd759c34d3ff813a15c09a29" and incident.version == 2
    assert changes.stored is not None
    rewritten = json.loads(json.dumps(changes.stored))
    assert [list(s) for s in rewritten] == [list(s) for s in json.loads(WRITTEN_BEFORE)]


def test_organization_record_is_the_organization_as_json() -> None:
    assert organization_record(CHU) == CHU.model_dump(mode="json")

