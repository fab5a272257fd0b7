"""Incident lifecycle for one establishment: open, attach, escalate, resolve.

Pure functions over plain dicts (what a Faust table stores as JSON). Determinism is the design
rule: an incident's id is derived from the detection that opened it, attaching a detection it
already holds changes nothing, and severity depends only on the evidence, never on the clock.
So a processor that restarts and re-reads detections converges to the same incidents.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from processors.incidents.config import ScoringConfig
from processors.incidents.scoring import assess
from schemas.detection import Detection
from schemas.identity import stable_id
from schemas.incident import MAX_LINKS, Counts, Impacts, Incident, Scope, Status
from schemas.organization import Organization
from schemas.taxonomy import Category, Severity, origin_of

State = dict[str, Any]
#: Detection ids remembered per incident for de-duplication (published: the first MAX_LINKS).
MAX_REMEMBERED = 20_000


def incident_id(establishment_id: str, opening_detection_id: str) -> str:
    return stable_id("incident", establishment_id, opening_detection_id)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def qualifies(detection: Detection, config: ScoringConfig) -> bool:
    """Whether a detection is strong enough to open an incident on its own."""
    return detection.rule.level.rank >= config.open_min_level.rank


def related(state: State, detection: Detection, config: ScoringConfig) -> bool:
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


def open_incident(detection: Detection) -> State:
    when = detection.timestamp.isoformat()
    return {
        "id": incident_id(detection.organization.id, detection.id),
        "organization": detection.organization.model_dump(mode="json"),
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


def attach(state: State, detection: Detection, config: ScoringConfig) -> bool:
    """Add the detection's evidence; returns False if the incident already had it."""
    if detection.id in state["detection_ids"]:
        return False
    if len(state["detection_ids"]) < MAX_REMEMBERED:
        state["detection_ids"].append(detection.id)
    if detection.event_id not in state["event_ids"] and len(state["event_ids"]) < MAX_REMEMBERED:
        state["event_ids"].append(detection.event_id)
    for key, value in (("hosts", detection.host_name), ("users", detection.user_name)):
        if value and value not in state[key] and len(state[key]) < MAX_LINKS:
            state[key].append(value)
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


def correlate(states: list[State], detection: Detection,
              config: ScoringConfig) -> State | None:
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


def resolve_stale(states: list[State], now: datetime, config: ScoringConfig) -> list[State]:
    """Resolve open incidents without new evidence for the configured time."""
    limit = timedelta(minutes=config.windows.resolve_after_minutes)
    changed = []
    for state in states:
        if state["status"] == Status.OPEN and now - _ts(state["last_seen"]) > limit:
            state["status"] = Status.RESOLVED.value
            state["version"] += 1
            changed.append(state)
    return changed


def prune(states: list[State], now: datetime, keep: timedelta) -> list[State]:
    """Forget resolved incidents long after resolution (their final state is published)."""
    return [s for s in states
            if s["status"] == Status.OPEN or now - _ts(s["last_seen"]) < keep]


def to_incident(state: State, config: ScoringConfig) -> Incident:
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


__all__ = ["Impacts", "State", "attach", "correlate", "open_incident", "resolve_stale",
           "to_incident"]
