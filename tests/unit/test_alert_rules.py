"""Every alert rule file's own examples, and the step/resolve logic of ``decide``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from processors.alerting.decide import decide
from processors.alerting.rules import AlertRule, load_alert_rules
from schemas.incident import Impacts, Incident
from schemas.organization import Organization

RULES = load_alert_rules()
ORG = Organization(id="750000001", name="CHU Paris 0001", type="university_hospital",
                   region="ile-de-france")


def incident(**overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "a" * 32, "severity": "medium", "category": "malicious_code",
        "origin": "malicious", "title": "t", "organizations": [ORG],
        "first_seen": datetime(2026, 1, 1, tzinfo=UTC),
        "last_seen": datetime(2026, 1, 1, tzinfo=UTC),
    }
    if "impacts" in overrides:
        overrides["impacts"] = Impacts(**overrides["impacts"])
    fields.update(overrides)
    return Incident.model_validate(fields, strict=False)


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_rule_examples(rule: AlertRule) -> None:
    assert rule.examples.get("match") and rule.examples.get("no_match"), "a rule needs examples"
    for example in rule.examples["match"]:
        assert rule.matches(incident(**example)), example
    for example in rule.examples["no_match"]:
        assert not rule.matches(incident(**example)), example


def test_one_alert_per_step_then_resolves() -> None:
    alerts, memory = decide(incident(severity="high", declarable=True), RULES, None)
    assert {a.rule for a in alerts} == {"VigieIncidentHighSeverity", "VigieDeclarableIncident"}
    again, memory = decide(incident(severity="high", declarable=True, version=2), RULES, memory)
    assert again == []
    worse, memory = decide(incident(severity="critical", declarable=True, version=3), RULES,
                           memory)
    assert {(a.rule, a.severity.value) for a in worse} == {
        ("VigieIncidentHighSeverity", "critical"), ("VigieDeclarableIncident", "critical")}
    assert worse[0].labels["region"] == "ile-de-france"
    resolved, memory = decide(incident(severity="critical", status="resolved", version=4),
                              RULES, memory)
    assert len(resolved) == 4 and {a.status.value for a in resolved} == {"resolved"}
    assert {a.id for a in resolved} == {a.id for a in alerts + worse}
