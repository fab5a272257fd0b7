"""The national report on a calibrated year reproduces the 2019 article's figures.

The declarations go the whole way: produced to the compacted ``incidents`` topic, indexed by
the real sink (upsert path), counted by ``vigie report`` from Elasticsearch. The year is 2018,
which no other test or simulation writes, and ids are deterministic for (year, seed), so
running the test again overwrites the same incidents.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from producers.simulator.declarations import declarations, produce_declarations
from runtime.settings import Settings
from schemas import indices
from schemas.organization import Organization
from schemas.topics import INCIDENTS
from tests.integration.sinking import fresh_group, run_sink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

YEAR, SEED = 2018, 0
# The article: 693 incidents in two years, 43 % malicious, 84 % from health establishments,
# 250-300 structures reporting.
ARTICLE = {"incidents": 693 / 2, "malicious_share": 43.0, "health_establishment_share": 84.0}


def _vigie(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "vigie.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_report_on_the_calibrated_year_matches_the_article(
        stack: Settings, es: Elasticsearch, national_registry: list[Organization],
        tmp_path: Path) -> None:
    year = declarations(national_registry, YEAR, SEED)
    group = fresh_group(stack.kafka, [INCIDENTS.name])
    produced = produce_declarations(stack.kafka, year.incidents)
    assert produced.delivery.delivered == len(year.incidents) == 346
    run_sink(stack, es, [INCIDENTS.name], group)
    es.indices.refresh(index=indices.INCIDENTS.alias)
    held = es.count(index=indices.INCIDENTS.alias, query={"terms": {"id": produced.ids}})
    assert held["count"] == len(produced.ids)

    figures = json.loads(_vigie("report", "--from", f"{YEAR}-01-01", "--to",
                                f"{YEAR + 1}-01-01", "--format", "json"))
    assert abs(figures["incidents"] - ARTICLE["incidents"]) <= 2
    for name in ("malicious_share", "health_establishment_share"):
        assert abs(figures[name] - ARTICLE[name]) <= 2, (name, figures[name])
    assert 250 <= figures["reporting_structures"] <= 300
    assert figures["by_reported_via"] == {"declaration": 346}
    assert len(figures["monthly"]) == 12
    assert sum(m["incidents"] for m in figures["monthly"]) == figures["incidents"]
    assert sum(figures["by_region"].values()) == figures["incidents"]
    assert figures["top_techniques"] and set(figures["by_impact"]) == {
        "care_safety", "confidentiality", "integrity", "availability"}

    out = tmp_path / "report.html"
    _vigie("report", "--from", f"{YEAR}-01-01", "--to", f"{YEAR + 1}-01-01", "--out", str(out))
    html = out.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 8
    assert f"<b>{figures['incidents']}</b>incidents" in html
