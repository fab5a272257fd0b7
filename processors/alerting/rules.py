"""Alert rules: YAML files in ``rules/``, each carrying its own examples (its test).

Rules are data, like Elastic's detection-rules: adding a page for a new situation is a reviewed
YAML change, and ``tests/unit/test_alert_rules.py`` runs every file's examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from schemas.incident import Incident, Scope
from schemas.taxonomy import Category, Severity

RULES_DIR = Path(__file__).with_name("rules")


class Condition(BaseModel):
    """Every given clause must hold (AND)."""

    model_config = ConfigDict(extra="forbid")

    scope: Scope | None = None
    min_severity: Severity | None = None
    impacts_any: list[str] = Field(default_factory=list)
    declarable: bool | None = None
    categories: list[Category] = Field(default_factory=list)

    def holds(self, incident: Incident) -> bool:
        if self.scope is not None and incident.scope != self.scope:
            return False
        if self.min_severity is not None and incident.severity.rank < self.min_severity.rank:
            return False
        if self.impacts_any and not any(getattr(incident.impacts, i) for i in self.impacts_any):
            return False
        if self.declarable is not None and incident.declarable != self.declarable:
            return False
        return not self.categories or incident.category in self.categories


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    description: str
    when: Condition
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str
    examples: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)

    def matches(self, incident: Incident) -> bool:
        return self.when.holds(incident)

    def render_summary(self, incident: Incident) -> str:
        org = incident.organizations[0]
        establishment = (org.name if incident.scope == Scope.ESTABLISHMENT
                         else f"{len(incident.organizations)} establishments")
        return self.summary.format(severity=incident.severity.value, title=incident.title,
                                   establishment=establishment)


def load_alert_rules(directory: Path = RULES_DIR) -> list[AlertRule]:
    rules = []
    for path in sorted(directory.glob("*.yml")):
        rules.append(AlertRule.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))))
    names = [r.name for r in rules]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate alert rule names in {directory}")
    return rules
