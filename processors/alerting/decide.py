"""From incident changes to alerts: one per incident and severity step, then resolves.

The per-incident memory (which severities already paged) lives in a Faust table
(``alert-memory``, incident id → ``AlertMemory``); this module is the pure decision and the
stage around it (``AlertStage``), so both can be tested without Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NotRequired, TypedDict

from processors.alerting.rules import AlertRule
from schemas.alert import Alert, AlertStatus
from schemas.identity import stable_id
from schemas.incident import Incident, Scope, Status
from schemas.taxonomy import Severity


class AlertMemory(TypedDict):
    """What the alert stage remembers of one incident, as stored in ``alert-memory``."""

    #: ``[rule, severity]`` pairs already paged (JSON arrays: a pair per firing alert).
    fired: list[list[str]]
    #: ``"rule/severity"`` → the labels that alert was sent with (a resolve must repeat them).
    labels: NotRequired[dict[str, dict[str, str]]]
    #: Set when the incident resolved and its alerts were resolved.
    resolved: NotRequired[bool]
    #: The newest incident version handled: older or equal ones are replays.
    version: NotRequired[int]


def alert_labels(rule: AlertRule, incident: Incident) -> dict[str, str]:
    """Labels Alertmanager routes on (region, severity) and groups on (incident)."""
    org = incident.organizations[0]
    national = incident.scope == Scope.NATIONAL_CAMPAIGN
    return {
        "alertname": rule.name,
        "severity": incident.severity.value,
        "region": "national" if national else org.region.value,
        "establishment": "national" if national else org.id,
        "establishment_type": "national" if national else org.type.value,
        "incident_id": incident.id,
        "category": incident.category.value,
        "scope": incident.scope.value,
        **rule.labels,
    }


def decide(incident: Incident, rules: list[AlertRule], memory: AlertMemory | None,
           now: datetime | None = None) -> tuple[list[Alert], AlertMemory]:
    """Alerts to emit for this incident state, and the updated memory."""
    now = now or datetime.now(UTC)
    memory = memory or {"fired": []}  # [[rule, severity], ...] already paged
    out: list[Alert] = []
    if incident.status == Status.RESOLVED:
        for rule_name, severity in memory["fired"]:
            labels = memory.get("labels", {}).get(f"{rule_name}/{severity}", {})
            out.append(Alert(
                id=stable_id("alert", incident.id, rule_name, severity), timestamp=now,
                rule=rule_name, incident_id=incident.id, status=AlertStatus.RESOLVED,
                severity=Severity(severity), summary=f"resolved: {incident.title}"[:8000],
                labels=labels))
        memory = {"fired": [], "resolved": True}
        return out, memory
    for rule in rules:
        if not rule.matches(incident):
            continue
        step = [rule.name, incident.severity.value]
        if step in memory["fired"]:
            continue  # this incident already paged at this severity for this rule
        labels = alert_labels(rule, incident)
        memory["fired"].append(step)
        memory.setdefault("labels", {})[f"{rule.name}/{incident.severity.value}"] = labels
        out.append(Alert(
            id=stable_id("alert", incident.id, rule.name, incident.severity.value),
            timestamp=now, rule=rule.name, incident_id=incident.id, status=AlertStatus.FIRING,
            severity=incident.severity, summary=rule.render_summary(incident)[:8000],
            labels=labels))
    return out, memory


@dataclass(frozen=True)
class AlertChanges:
    """What one incident state did to its alerts."""

    #: Alerts to send on ``alerts`` (keyed by incident id): firing steps, or resolves.
    alerts: list[Alert] = field(default_factory=list)
    #: The incident's new memory; None when this state was already handled (a replay).
    stored: AlertMemory | None = None


class AlertStage:
    """Incident states → alerts: one per rule and severity step, then one resolve each.

    Incident states are re-read after a restart: a version not newer than the last one handled
    changes nothing, so a page is never sent twice for the same step.
    """

    def __init__(self, rules: list[AlertRule]) -> None:
        self.rules = rules

    def handle(self, stored: AlertMemory | None, incident: Incident,
               now: datetime | None = None) -> AlertChanges:
        if stored and incident.version <= stored.get("version", 0):
            return AlertChanges()
        alerts, memory = decide(incident, self.rules, stored, now)
        memory["version"] = incident.version
        return AlertChanges(alerts, memory)
