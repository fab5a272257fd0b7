"""Operator-side logic without a server: retention plans, queries, calibration, report HTML."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from producers.simulator.declarations import declarations, summary
from producers.simulator.registry import generate_registry
from schemas import indices
from schemas.organization import EstablishmentType, is_health_establishment
from schemas.taxonomy import Severity
from soc.incidents import IncidentFilter, build_query, severities_at_least
from soc.report import MonthCount, NationalReport, _months
from soc.report_html import render_html
from soc.retention import MonthlyIndex, parse_duration, parse_index, plan


# ------------------------------------------------------------------------ retention
def test_durations() -> None:
    assert parse_duration("180d") == timedelta(days=180)
    assert parse_duration("26w") == timedelta(weeks=26)
    assert parse_duration(" 48h ") == timedelta(hours=48)
    for bad in ("6m", "180", "d", "-1d", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_only_monthly_index_names_of_the_family_parse() -> None:
    assert parse_index("vigie-events-2026.03", indices.EVENTS) == MonthlyIndex(
        "vigie-events-2026.03", "vigie-events", 2026, 3)
    for name in ("vigie-events-bretagne", "vigie-events-2026.13", "vigie-events-2026.3",
                 "vigie-events-2026.03-restored", "vigie-detections-2026.03"):
        assert parse_index(name, indices.EVENTS) is None


def test_plan_deletes_whole_months_older_than_the_cutoff_never_the_current() -> None:
    names = ["2025.12", "2026.01", "2026.02", "2026.07", "2026.08"]
    candidates = [MonthlyIndex(f"vigie-alerts-{n}", "vigie-alerts", int(n[:4]), int(n[5:]))
                  for n in names]
    now = datetime(2026, 8, 15, tzinfo=UTC)
    result = plan(candidates, timedelta(days=180), now)  # cutoff 2026-02-16
    assert [i.name for i in result.delete] == ["vigie-alerts-2025.12", "vigie-alerts-2026.01"]
    assert "vigie-alerts-2026.02" in [i.name for i in result.keep]  # ends after the cutoff
    assert [i.name for i in plan(candidates, timedelta(0), now).delete] == [
        "vigie-alerts-2025.12", "vigie-alerts-2026.01", "vigie-alerts-2026.02",
        "vigie-alerts-2026.07"]  # even a zero limit spares the current month


# ------------------------------------------------------------------------ queries
def test_min_severity_and_filters_become_filter_clauses() -> None:
    assert severities_at_least(Severity.HIGH) == ["high", "critical"]
    query = build_query(IncidentFilter(region="bretagne", min_severity=Severity.HIGH,
                                       status="open", declarable=False,
                                       since=datetime(2026, 1, 1, tzinfo=UTC)))
    clauses = query["bool"]["filter"]
    assert {"term": {"organizations.region": "bretagne"}} in clauses
    assert {"terms": {"severity": ["high", "critical"]}} in clauses
    assert {"term": {"declarable": False}} in clauses
    assert {"range": {"last_seen": {"gte": "2026-01-01T00:00:00+00:00"}}} in clauses
    assert query["bool"]["must"] == [{"match_all": {}}]
    text = build_query(IncidentFilter(), "ransomware T1486")["bool"]["must"][0]
    assert text["simple_query_string"]["query"] == "ransomware T1486"


# ------------------------------------------------------------------------ calibration
def test_declared_year_hits_the_article_figures_and_is_deterministic() -> None:
    registry = generate_registry()
    year = declarations(registry, 2019, seed=0)
    figures = dict(summary(year.incidents))
    assert figures["incidents"] == 346  # 693 over two years
    assert abs(figures["malicious_share"] - 43) <= 1
    assert abs(figures["health_establishment_share"] - 84) <= 1
    assert 250 <= figures["reporting_structures"] <= 300
    assert [i.id for i in declarations(registry, 2019, seed=0).incidents] == [
        i.id for i in year.incidents]
    assert all(i.first_seen.year == 2019 and i.reported_via == "declaration"
               and i.declarable and i.declarable_reasons for i in year.incidents)
    others = {i.organizations[0].id for i in year.incidents
              if not i.organizations[0].type.is_health_establishment}
    assert others.isdisjoint({o.id for o in registry})


def test_health_establishment_helper() -> None:
    assert is_health_establishment("hospital")
    assert not is_health_establishment(EstablishmentType.HEALTH_PROFESSIONAL)
    assert not is_health_establishment("no_such_type")


# ------------------------------------------------------------------------ report
def test_months_of_a_period() -> None:
    assert _months(date(2019, 1, 1), date(2020, 1, 1)) == [f"2019-{m:02d}" for m in
                                                          range(1, 13)]
    assert _months(date(2019, 11, 15), date(2020, 1, 2)) == ["2019-11", "2019-12", "2020-01"]


def test_html_report_is_self_contained_with_png_charts() -> None:
    report = NationalReport(
        "2019-01-01", "2020-01-01", incidents=10, malicious=4, malicious_share=40.0,
        from_health_establishments=8, health_establishment_share=80.0,
        other_structures_share=20.0, reporting_structures=7, reporting_health_establishments=5,
        declarable=10, national_campaigns=1,
        by_origin={"malicious": 4, "non_malicious": 6}, by_region={"bretagne": 10},
        by_category={"malicious_code": 4, "human_error": 6},
        by_establishment_type={"hospital": 8, "health_professional": 2},
        by_impact={"availability": 7, "care_safety": 1}, by_reported_via={"declaration": 10},
        top_techniques={"T1486": 3},
        monthly=[MonthCount("2019-01", 6, 2), MonthCount("2019-02", 4, 2)],
        )
    html = render_html(report)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 8
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "40.0 %" in html and "80.0 %" in html
