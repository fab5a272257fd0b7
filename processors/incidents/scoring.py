"""Severity, the four impacts and the declaration decision, from an incident's evidence.

The weights are in ``scoring.yaml``; this module only adds them up, so that a reviewer can
follow any incident's severity back to the lines of that file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from processors.incidents.config import ScoringConfig
from processors.incidents.state import IncidentState
from schemas.incident import Impacts
from schemas.taxonomy import Category, Severity

REASONS = {
    "care_safety": "patient care safety is at risk (availability or integrity of care systems)",
    "confidentiality": "confidentiality of health data may be breached",
    "integrity": "integrity of health data may be affected",
    "availability": "normal functioning of the establishment is affected",
}


@dataclass
class Assessment:
    score: float
    severity: Severity
    impacts: Impacts
    declarable: bool
    reasons: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)


def assess(state: IncidentState, config: ScoringConfig) -> Assessment:
    levels = {Severity(level): n for level, n in state["levels"].items()}
    detections = sum(levels.values())
    top = max(levels, key=lambda s: s.rank) if levels else Severity.INFORMATIONAL
    score = config.level_points.get(top, 0.0)
    if detections > 1:
        score += min(config.count_points_max,
                     config.count_points_per_doubling * math.log2(detections))
    hosts = len(state["hosts"])
    score += min(config.hosts_points_max, config.points_per_extra_host * max(0, hosts - 1))
    assets = sorted({config.asset_of(h) for h in state["hosts"]})
    score += max((config.asset_points.get(a, 0.0) for a in assets), default=0.0)

    category = Category(state["category"])
    impacted = set(config.impacts_by_category.get(category, []))
    holds_health_data = bool(set(assets) & set(config.health_data_assets))
    if category is not Category.INTRUSION and not holds_health_data:
        # Confidentiality of *health data* needs a system that holds some; an intrusion
        # counts anyway, since the intruder can reach further than the first host.
        impacted.discard("confidentiality")
    if {"availability", "integrity"} & impacted and set(assets) & set(config.care_safety_assets):
        impacted.add("care_safety")
    score += sum(config.impact_points.get(i, 0.0) for i in impacted)
    impacts = Impacts(**{i: i in impacted for i in Impacts.model_fields})

    severity = Severity.INFORMATIONAL
    for level, threshold in sorted(config.severity_thresholds.items(),
                                   key=lambda kv: kv[1], reverse=True):
        if score >= threshold:
            severity = level
            break
    reasons = [REASONS[i] for i in ("care_safety", "confidentiality", "integrity",
                                    "availability") if i in impacted]
    if category in config.spreading_categories:
        reasons.append("the threat may spread to other structures (malicious code)")
    declarable = bool(reasons) and severity.rank >= config.declarable_min_severity.rank
    return Assessment(score, severity, impacts, declarable, reasons if declarable else [],
                      assets)
