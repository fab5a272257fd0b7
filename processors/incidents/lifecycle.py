"""Incident lifecycle for one establishment: open, attach, escalate, resolve.

Pure functions over ``IncidentState`` dicts (what the Faust table stores as JSON), and
``IncidentStage``, the stage that applies one detection or one tick to an establishment's
incidents. Determinism is the design rule: an incident's id is derived from the detection that
opened it, attaching a detection it already holds changes nothing, and severity depends only on
the evidence, never on the clock. So a processor that restarts and re-reads detections
converges to the same incidents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from processors.incidents.campaigns import indicator_of, sighting
from processors.incidents.config import ScoringConfig
from processors.incidents.scoring import assess
from processors.incidents.state import (
    EstablishmentIncidents,
    IncidentState,
    Sighting,
    organization_record,
)
from schemas.detection import Detection
from schemas.identity import stable_id
from schemas.incident import MAX_LINKS, Counts, Impacts, Incident, Scope, Status
from schemas.organization import Organization
from schemas.taxonomy import Category, Severity, origin_of

#: Detection ids remembered per incident for de-duplication (published: the first MAX_LINKS).
MAX_REMEMBERED = 20_000
#: Resolved incidents stay in the table this long (their final state is already published).
KEEP_RESOLVED = timedelta(days=7)


def incident_id(establishment_id: str, opening_detection_id: str) -> str:
    return stable_id("incident", establishment_id, opening_detection_id)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def qualifies(detection: Detection, config: ScoringConfig) -> bool:
    """Whether a detection is strong enough to open an incident on its own."""
    return detection.rule.level.rank >= config.open_min_level.rank


def related(state: IncidentState, detection: Detection, config: ScoringConfig) -> bool:
    """Same establishment (by keying), open, compatible category, shared host or user, and
    within the inactivity window of the incident's evidence."""
    if state["status"] != Status.OPEN or state["organization"]["id"] != detection.organization.id:
        return False
    if not config.compatible(Category(state["category"]), detection.category):
        return False
    shared = (detection.host_name and detection.host_name in state["hosts"]) or (
        detection.user_name and detection.user_name in state["users"])
    if not shared and (detection.host_name or detection.user_name):
        return False
    window = timedelta(minutes=config.windows.inactivity_minutes)
    when = detection.timestamp
    return _ts(state["first_seen"]) - window <= when <= _ts(state["last_seen"]) + window


def open_incident(detection: Detection) -> IncidentState:
    when = detection.timestamp.isoformat()
    return {
        "id": incident_id(detection.organization.id, detection.id),
        "organization": organization_record(detection.organization),
        "category": detection.category.value,
        "status": Status.OPEN.value,
        "severity": Severity.INFORMATIONAL.value,
        "first_seen": when,
        "last_seen": when,
        "hosts": [],
        "users": [],
        "detection_ids": [],
        "event_ids": [],
        "levels": {},
        "rules": {},
        "techniques": [],
        "title": detection.rule.title,
        "version": 0,
    }


def attach(state: IncidentState, detection: Detection, config: ScoringConfig) -> bool:
    """Add the detection's evidence; returns False if the incident already had it."""
    if detection.id in state["detection_ids"]:
        return False
    if len(state["detection_ids"]) < MAX_REMEMBERED:
        state["detection_ids"].append(detection.id)
    if detection.event_id not in state["event_ids"] and len(state["event_ids"]) < MAX_REMEMBERED:
        state["event_ids"].append(detection.event_id)
    _remember(state["hosts"], detection.host_name)
    _remember(state["users"], detection.user_name)
    level = detection.rule.level.value
    state["levels"][level] = state["levels"].get(level, 0) + 1
    state["rules"][detection.rule.id] = state["rules"].get(detection.rule.id, 0) + 1
    for technique in detection.threat.techniques:
        if technique not in state["techniques"]:
            state["techniques"].append(technique)
    when = detection.timestamp
    state["first_seen"] = min(_ts(state["first_seen"]), when).isoformat()
    state["last_seen"] = max(_ts(state["last_seen"]), when).isoformat()
    current = Category(state["category"])
    if detection.category != current:
        # An attempt that succeeds is an intrusion: the pair's second member wins.
        for first, second in config.compatible_categories:
            if {current, detection.category} == {first, second}:
                state["category"] = second.value
    assessed = assess(state, config)
    if assessed.severity.rank > Severity(state["severity"]).rank:
        state["severity"] = assessed.severity.value  # severity only ever rises
    state["version"] += 1
    return True


def _remember(linked: list[str], value: str | None) -> None:
    """Add a host or user to an incident's list, once, up to the published bound."""
    if value and value not in linked and len(linked) < MAX_LINKS:
        linked.append(value)


def correlate(states: list[IncidentState], detection: Detection,
              config: ScoringConfig) -> IncidentState | None:
    """Attach ``detection`` to its incident (opening one if it qualifies).

    Returns the changed incident state, or None when nothing changed (a replayed detection,
    or a weak one with no open incident to join). ``states`` is updated in place.
    """
    for state in states:
        if detection.id in state["detection_ids"]:
            return None
    for state in states:
        if related(state, detection, config):
            return state if attach(state, detection, config) else None
    if not qualifies(detection, config):
        return None
    state = open_incident(detection)
    attach(state, detection, config)
    states.append(state)
    return state


def resolve_stale(states: list[IncidentState], now: datetime,
                  config: ScoringConfig) -> list[IncidentState]:
    """Resolve open incidents without new evidence for the configured time."""
    limit = timedelta(minutes=config.windows.resolve_after_minutes)
    changed = []
    for state in states:
        if state["status"] == Status.OPEN and now - _ts(state["last_seen"]) > limit:
            state["status"] = Status.RESOLVED.value
            state["version"] += 1
            changed.append(state)
    return changed


def prune(states: list[IncidentState], now: datetime, keep: timedelta) -> list[IncidentState]:
    """Forget resolved incidents long after resolution (their final state is published)."""
    return [s for s in states
            if s["status"] == Status.OPEN or now - _ts(s["last_seen"]) < keep]


def to_incident(state: IncidentState, config: ScoringConfig) -> Incident:
    """The published form of a state."""
    assessed = assess(state, config)
    category = Category(state["category"])
    return Incident(
        id=state["id"],
        scope=Scope.ESTABLISHMENT,
        status=Status(state["status"]),
        severity=Severity(state["severity"]),
        category=category,
        origin=origin_of(category),
        title=state["title"],
        organizations=[Organization.model_validate(state["organization"])],
        impacts=assessed.impacts,
        declarable=assessed.declarable,
        declarable_reasons=assessed.reasons,
        techniques=state["techniques"][:64],
        first_seen=_ts(state["first_seen"]),
        last_seen=_ts(state["last_seen"]),
        counts=Counts(detections=sum(state["levels"].values()),
                      events=len(state["event_ids"]), hosts=len(state["hosts"])),
        detection_ids=state["detection_ids"][:MAX_LINKS],
        version=max(1, state["version"]),
    )


@dataclass(frozen=True)
class Tick:
    """Time passed for an establishment (its incidents may have gone quiet)."""

    now: datetime


@dataclass
class IncidentChanges:
    """What one detection or tick did to an establishment's incidents."""

    #: Incident states to publish on ``incidents``, in order (keyed by incident id).
    incidents: list[Incident] = field(default_factory=list)
    #: Sightings to publish on ``vigie.indicators`` (keyed by ``sighting["indicator"]``).
    sightings: list[Sighting] = field(default_factory=list)
    #: The establishment's new table value; None when the table needs no write.
    stored: EstablishmentIncidents | None = None


class IncidentStage:
    """Detections of one establishment → its incidents (opened, extended, resolved).

    ``handle`` takes the establishment's stored incidents and one input: a detection attaches
    to its incident or opens one (with a sighting for the national campaigns when the opening
    detection carries an indicator); a tick resolves incidents without evidence for
    ``resolve_after_minutes`` and forgets those resolved ``keep_resolved`` ago. The stored
    incident dicts are updated in place (they are large: copying them per detection would
    cost more than the rest of the stage) and the list to store is returned.
    """

    def __init__(self, config: ScoringConfig, keep_resolved: timedelta = KEEP_RESOLVED) -> None:
        self.config = config
        self.keep_resolved = keep_resolved

    def handle(self, stored: EstablishmentIncidents,
               received: Detection | Tick) -> IncidentChanges:
        if isinstance(received, Tick):
            return self._tick(list(stored), received.now)
        return self._detection(list(stored), received)

    def _detection(self, states: EstablishmentIncidents,
                   detection: Detection) -> IncidentChanges:
        state = correlate(states, detection, self.config)
        if state is None:
            return IncidentChanges()  # a replay, or a weak detection with nothing to join
        incident = to_incident(state, self.config)
        changes = IncidentChanges(incidents=[incident], stored=states)
        opened = len(state["detection_ids"]) == 1
        indicator = indicator_of(detection, self.config) if opened else None
        if indicator:
            changes.sightings.append(sighting(indicator, incident))
        return changes

    def _tick(self, states: EstablishmentIncidents, now: datetime) -> IncidentChanges:
        resolved = resolve_stale(states, now, self.config)
        kept = prune(states, now, self.keep_resolved)
        changed = bool(resolved) or len(kept) != len(states)
        return IncidentChanges(incidents=[to_incident(s, self.config) for s in resolved],
                               stored=kept if changed else None)

    @staticmethod
    def needs_tick(stored: EstablishmentIncidents) -> bool:
        """Whether the establishment has incidents that time alone can resolve."""
        return any(s["status"] == Status.OPEN for s in stored)


__all__ = ["KEEP_RESOLVED", "Impacts", "IncidentChanges", "IncidentStage", "IncidentState",
           "Tick", "attach", "correlate", "open_incident", "resolve_stale", "to_incident"]
