"""The national report: the observatory's figures for a period, computed by Elasticsearch.

The figures are those the 2019 article quotes, so that a calibrated year can be checked
against them: how many incidents, what share had a malicious origin, what share was reported
by health establishments rather than other structures, how many structures reported. Only
establishment-scope incidents are counted: a national campaign links incidents that are
already counted, and counting it too would count them twice (campaigns are reported apart).
Every figure comes from one aggregation request, not from pulling documents.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from elasticsearch import AuthorizationException, Elasticsearch

from schemas import indices
from schemas.incident import Impacts, Scope
from schemas.organization import HEALTH_ESTABLISHMENT_TYPES
from schemas.taxonomy import Origin

TOP_TECHNIQUES = 10
_IMPACTS = list(Impacts.model_fields)


@dataclass
class MonthCount:
    month: str  # YYYY-MM
    incidents: int
    malicious: int


@dataclass
class NationalReport:
    """What ``vigie report --format json`` prints; shares are percentages of ``incidents``."""

    period_from: str
    period_to: str
    incidents: int
    malicious: int
    malicious_share: float
    from_health_establishments: int
    health_establishment_share: float
    other_structures_share: float
    reporting_structures: int
    reporting_health_establishments: int
    declarable: int
    national_campaigns: int
    by_origin: dict[str, int] = field(default_factory=dict)
    by_region: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    by_establishment_type: dict[str, int] = field(default_factory=dict)
    by_impact: dict[str, int] = field(default_factory=dict)
    by_reported_via: dict[str, int] = field(default_factory=dict)
    top_techniques: dict[str, int] = field(default_factory=dict)
    monthly: list[MonthCount] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _buckets(agg: dict[str, Any]) -> dict[str, int]:
    return {str(b["key"]): int(b["doc_count"]) for b in agg["buckets"]}


def _bounds(start: date, end: date) -> tuple[str, str]:
    """[start, end) as UTC instants: the report covers whole days, end excluded."""
    return (datetime.combine(start, time.min, UTC).isoformat(),
            datetime.combine(end, time.min, UTC).isoformat())


def _months(start: date, end: date) -> list[str]:
    months, y, m = [], start.year, start.month
    while (y, m) < (end.year, end.month) or (
            (y, m) == (end.year, end.month) and end.day > 1):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def aggregations() -> dict[str, Any]:
    health = {"terms": {"organizations.type": sorted(t.value for t in
                                                      HEALTH_ESTABLISHMENT_TYPES)}}
    return {
        "origin": {"terms": {"field": "origin", "size": 10}},
        "region": {"terms": {"field": "organizations.region", "size": 50}},
        "category": {"terms": {"field": "category", "size": 50}},
        "type": {"terms": {"field": "organizations.type", "size": 50}},
        "reported_via": {"terms": {"field": "reported_via", "size": 10, "missing": "sensor"}},
        "techniques": {"terms": {"field": "techniques", "size": TOP_TECHNIQUES}},
        "impacts": {"filters": {"filters": {
            name: {"term": {f"impacts.{name}": True}} for name in _IMPACTS}}},
        "declarable": {"filter": {"term": {"declarable": True}}},
        # Exact below 40,000 distinct values, far above the number of French structures.
        "structures": {"cardinality": {"field": "organizations.id",
                                       "precision_threshold": 40000}},
        "health": {"filter": health, "aggs": {"structures": {"cardinality": {
            "field": "organizations.id", "precision_threshold": 40000}}}},
        "monthly": {"date_histogram": {"field": "first_seen", "calendar_interval": "month",
                                       "format": "yyyy-MM", "time_zone": "UTC"},
                    "aggs": {"malicious": {"filter": {"term": {"origin": "malicious"}}}}},
    }


def national_report(es: Elasticsearch, start: date, end: date,
                    index: str = indices.INCIDENTS.alias) -> NationalReport:
    """Figures for incidents first seen in [start, end)."""
    gte, lt = _bounds(start, end)
    period = {"range": {"first_seen": {"gte": gte, "lt": lt}}}
    scope = {"term": {"scope": Scope.ESTABLISHMENT.value}}
    # See the latest writes when allowed; the vigie_report role only reads (at most 1 s late).
    with contextlib.suppress(AuthorizationException):
        es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
    response = es.search(index=index, size=0, track_total_hits=True,
                         query={"bool": {"filter": [period, scope]}}, aggs=aggregations(),
                         ignore_unavailable=True, allow_no_indices=True)
    campaigns = es.count(index=index, ignore_unavailable=True, allow_no_indices=True, query={
        "bool": {"filter": [period, {"term": {"scope": Scope.NATIONAL_CAMPAIGN.value}}]}})
    total = int(response["hits"]["total"]["value"])
    aggs = response.get("aggregations") or {}
    if not aggs:  # no index at all yet
        return NationalReport(start.isoformat(), end.isoformat(), 0, 0, 0.0, 0, 0.0, 0.0, 0, 0,
                              0, int(campaigns["count"]))
    by_origin = _buckets(aggs["origin"])
    malicious = by_origin.get(Origin.MALICIOUS.value, 0)
    from_health = int(aggs["health"]["doc_count"])
    monthly_hits = {b["key_as_string"]: (int(b["doc_count"]), int(b["malicious"]["doc_count"]))
                    for b in aggs["monthly"]["buckets"]}
    return NationalReport(
        period_from=start.isoformat(),
        period_to=end.isoformat(),
        incidents=total,
        malicious=malicious,
        malicious_share=_share(malicious, total),
        from_health_establishments=from_health,
        health_establishment_share=_share(from_health, total),
        other_structures_share=_share(total - from_health, total),
        reporting_structures=int(aggs["structures"]["value"]),
        reporting_health_establishments=int(aggs["health"]["structures"]["value"]),
        declarable=int(aggs["declarable"]["doc_count"]),
        national_campaigns=int(campaigns["count"]),
        by_origin=by_origin,
        by_region=_buckets(aggs["region"]),
        by_category=_buckets(aggs["category"]),
        by_establishment_type=_buckets(aggs["type"]),
        by_impact={k: int(v["doc_count"]) for k, v in aggs["impacts"]["buckets"].items()},
        by_reported_via=_buckets(aggs["reported_via"]),
        top_techniques=_buckets(aggs["techniques"]),
        monthly=[MonthCount(m, *monthly_hits.get(m, (0, 0))) for m in _months(start, end)],
    )
