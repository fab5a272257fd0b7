"""Between the wire and the evaluator: base detections in, correlation detections out.

A *signal* travels as a ``Detection`` of the referenced rule on the internal topic
``vigie.correlation-inputs`` (keyed by establishment, co-partitioned with ``detections``), its
``matched`` map extended with the event fields the correlations group or count by (a rule's
matched fields rarely include ``IpAddress``). Reusing ``Detection`` keeps one validated wire
format and gives the correlation output everything it needs (establishment, host, user).

``SigmaCorrelationStage`` is the whole stage without Faust: a signal or a tick in, the
correlation detections to publish and the window states to write back out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from processors.categorize import categorize
from processors.detection.correlation.evaluate import (
    DEFAULT_LATENESS_S,
    CorrelationMatch,
    Correlator,
    Outcome,
    Signal,
)
from processors.detection.correlation.model import CorrelationSet
from processors.detection.correlation.state import WindowState
from processors.detection.fieldmap import FieldMap
from runtime import metrics
from schemas.detection import Detection, RuleRef, Threat
from schemas.organization import Organization
from schemas.taxonomy import Severity, origin_of

log = logging.getLogger(__name__)

#: Carried with every signal: a count of failures is an intrusion *attempt* (``categorize``).
OUTCOME = "event.outcome"
#: Ids of the events behind a correlation detection, kept in ``matched`` for the analyst.
MAX_LISTED_EVENTS = 50
#: A rule's ``level`` (free text, or none) as a severity, when it names one.
_SEVERITY_OF_LEVEL: dict[str | None, Severity] = {level.value: level for level in Severity}
#: Keys named in one tick record (the rest wait for the next tick).
MAX_KEYS_PER_TICK = 500


def signal_fields(correlations: CorrelationSet, fieldmap: FieldMap, rule_id: str,
                  doc: Mapping[str, Any]) -> dict[str, Any]:
    """The event fields ``rule_id``'s correlations need, resolved like rule fields are."""
    fields: dict[str, Any] = {}
    for name in [*correlations.signal_fields(rule_id), OUTCOME]:
        values = [v for v in fieldmap.resolver(name)(doc) if v is not None]
        if values:
            value = values[0]
            fields[name] = value if isinstance(value, str | int | float | bool) else str(value)
    return fields


def as_signal(detection: Detection) -> Signal:
    return Signal(
        rule_id=detection.rule.id,
        event_id=detection.event_id,
        ts=detection.timestamp.timestamp(),
        fields=detection.matched,
        context={
            "organization": detection.organization.model_dump(mode="json"),
            "host_name": detection.host_name,
            "user_name": detection.user_name,
            "failed": detection.matched.get(OUTCOME) == "failure",
        },
    )


def to_detection(match: CorrelationMatch) -> Detection:
    """The published record of a correlation match: the correlation rule's title, level and
    tags; the event that completed it; the group and the evidence in ``matched``."""
    info = match.correlation.info
    context = match.context
    category = categorize(info.techniques, info.tactics,
                          "failure" if context.get("failed") else None)
    level = _SEVERITY_OF_LEVEL.get(info.level, Severity.MEDIUM)
    matched: dict[str, Any] = dict(match.group_fields)
    matched.update({
        "correlation.type": match.correlation.type,
        "correlation.count": match.count,
        "correlation.timespan_s": match.correlation.timespan_s,
        "correlation.first": _iso(match.first_ts),
        "correlation.last": _iso(match.last_ts),
        "correlation.events": len(match.event_ids),
        "correlation.event_ids": list(match.event_ids[:MAX_LISTED_EVENTS]),
    })
    return Detection(
        id=match.id,
        timestamp=datetime.fromtimestamp(match.last_ts, UTC),
        rule=RuleRef(id=info.id, title=info.title[:8000], level=level, status=info.status,
                     author=(info.author or "")[:8000] or None, tags=list(info.tags)[:64]),
        threat=Threat(tactics=info.tactics[:32], techniques=info.techniques[:64]),
        category=category,
        origin=origin_of(category),
        event_id=match.trigger_event_id,
        organization=Organization.model_validate(context["organization"]),
        host_name=context.get("host_name"),
        user_name=context.get("user_name"),
        matched=matched,
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class WindowTick:
    """The wall clock reached ``at`` (epoch seconds) for these window keys of one
    establishment: windows it left behind close, old events are forgotten. On the wire:
    ``{"tick": at, "keys": [...]}`` on ``vigie.correlation-inputs``, keyed by establishment."""

    at: float
    keys: list[str]

    def to_json_bytes(self) -> bytes:
        return json.dumps({"tick": self.at, "keys": self.keys}).encode()


@dataclass(frozen=True)
class WindowChanges:
    """What one signal or tick did: publish ``detections`` (keyed by establishment) first,
    then write ``updates`` (window key → new state, None: delete) once they are acknowledged."""

    detections: list[Detection]
    updates: dict[str, WindowState | None]


#: How the stage reads the stored windows: the table's ``get``.
Windows = Callable[[str], WindowState | None]


class SigmaCorrelationStage:
    """Signals of Sigma correlation rules → windows per (establishment, rule, group) →
    correlation detections. Holds no state: windows are read through ``windows`` and the
    changes returned."""

    def __init__(self, correlations: CorrelationSet,
                 lateness_s: float = DEFAULT_LATENESS_S) -> None:
        self.correlator = Correlator(correlations, lateness_s)

    @staticmethod
    def read(value: bytes) -> Signal | WindowTick:
        """A record of ``vigie.correlation-inputs``: ticks are tiny JSON objects, signals are
        ``Detection``s (strict: parsed from JSON). Raises ValueError (pydantic's
        ValidationError is one), TypeError or KeyError when unreadable."""
        if value.startswith(b'{"tick"'):
            body = json.loads(value)
            return WindowTick(float(body["tick"]), list(body.get("keys", [])))
        return as_signal(Detection.model_validate_json(value))

    def handle(self, organization_id: str, received: Signal | WindowTick,
               windows: Windows) -> WindowChanges:
        if isinstance(received, WindowTick):
            outcome = self._expire(organization_id, received, windows)
        else:
            outcome = self.correlator.feed(organization_id, received, windows)
        return WindowChanges(_publishable(outcome), outcome.updates)

    def _expire(self, organization_id: str, tick: WindowTick, windows: Windows) -> Outcome:
        outcome = Outcome()
        for key in tick.keys:
            state = outcome.updates.get(key, windows(key))
            if state is None or not key.startswith(f"{organization_id}|"):
                continue  # gone since the tick was sent, or not this establishment's
            step = self.correlator.expire(key, state, tick.at, windows)
            outcome.updates.update(step.updates)
            outcome.matches.extend(step.matches)
        return outcome

    def ticks_due(self, stored: Iterable[tuple[str, WindowState | None]],
                  now: float) -> dict[str, WindowTick]:
        """Establishment id → the tick its windows need at ``now`` (to close and forget even
        when the establishment falls silent); establishments with nothing due are absent."""
        due: dict[str, list[str]] = {}
        for key, state in stored:
            if state is not None and self.correlator.due(key, state, now):
                due.setdefault(key.split("|", 1)[0], []).append(key)
        return {org: WindowTick(now, keys[:MAX_KEYS_PER_TICK]) for org, keys in due.items()}


def _publishable(outcome: Outcome) -> list[Detection]:
    """The matches to publish as detections: chain steps stay in-process, and a match that
    cannot make a valid ``Detection`` is logged and counted, not published."""
    out: list[Detection] = []
    for match in outcome.matches:
        if not match.correlation.published:
            continue  # a step of a chain: it fed the next correlation, in-process
        try:
            out.append(to_detection(match))
        except (ValidationError, KeyError, ValueError) as exc:
            metrics.ERRORS.labels("processor", "correlation_output").inc()
            log.error("correlation %s: match %s not publishable: %s",
                      match.correlation.info.id, match.id, exc)
    return out
