"""Between the wire and the evaluator: base detections in, correlation detections out.

A *signal* travels as a ``Detection`` of the referenced rule on the internal topic
``vigie.correlation-inputs`` (keyed by establishment, co-partitioned with ``detections``), its
``matched`` map extended with the event fields the correlations group or count by (a rule's
matched fields rarely include ``IpAddress``). Reusing ``Detection`` keeps one validated wire
format and gives the correlation output everything it needs (establishment, host, user).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from processors.categorize import categorize
from processors.detection.correlation.evaluate import CorrelationMatch, Signal
from processors.detection.correlation.model import CorrelationSet
from processors.detection.fieldmap import FieldMap
from schemas.detection import Detection, RuleRef, Threat
from schemas.organization import Organization
from schemas.taxonomy import Severity, origin_of

#: Carried with every signal: a count of failures is an intrusion *attempt* (``categorize``).
OUTCOME = "event.outcome"
#: Ids of the events behind a correlation detection, kept in ``matched`` for the analyst.
MAX_LISTED_EVENTS = 50
#: A rule's ``level`` (free text, or none) as a severity, when it names one.
_SEVERITY_OF_LEVEL: dict[str | None, Severity] = {level.value: level for level in Severity}


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
