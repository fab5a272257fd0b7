"""The whole path on the real stack: simulator → Kafka → Faust → sink → Elasticsearch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from deploy.local.pipeline import Service
from runtime.settings import Settings
from schemas.organization import Organization
from soc.reconcile import event_id_counts
from tests.integration.support import Run, produce_run, wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _assert_reconciled(run: Run, counts: dict[str, int], letters: list[dict]) -> None:
    valid = set(run.report.valid_ids)
    assert len(valid) == run.report.valid
    missing = valid - set(counts)
    assert not missing, f"{len(missing)} valid events not in vigie-events"
    duplicated = {i: n for i, n in counts.items() if n != 1}
    assert not duplicated, f"{len(duplicated)} events indexed more than once"
    assert set(counts) == valid
    expected = {(t["partition"], t["offset"], t["index"]): t["expected_reason"]
                for t in run.truth if t["kind"] == "malformed"}
    found = {(d["origin"]["partition"], d["origin"]["offset"],
              d["origin"].get("index")): d["reason"] for d in letters}
    assert found == expected, "dead letters must be exactly the malformed records, by reason"
    assert all(d["detail"] for d in letters)


def test_ten_thousand_events_reconcile(stack: Settings, es: Elasticsearch,
                                       national_registry: list[Organization],
                                       services: dict[str, Service], tmp_path: Path) -> None:
    run = produce_run(stack, national_registry, tmp_path, seed=int(time.time()), events=10_000,
                      malformed=300)
    assert sum(run.report.malformed.values()) == 300
    counts, letters = wait_for_run(es, run, services)
    _assert_reconciled(run, counts, letters)
    reasons = {d["reason"] for d in letters}
    assert {"invalid_json", "schema", "unknown_establishment", "oversize"} <= reasons


def test_sink_killed_mid_run_converges(stack: Settings, es: Elasticsearch,
                                       national_registry: list[Organization],
                                       services: dict[str, Service], tmp_path: Path) -> None:
    run = produce_run(stack, national_registry, tmp_path, seed=int(time.time()) + 1,
                      events=10_000, malformed=40)
    sink = services["sink"]
    deadline = time.monotonic() + 300
    while len(event_id_counts(es, run.report.valid_ids)) < 1000:
        assert time.monotonic() < deadline, f"sink made no progress:\n{sink.tail(40)}"
        time.sleep(0.5)
    sink.kill()
    indexed_at_kill = len(event_id_counts(es, run.report.valid_ids))
    assert indexed_at_kill < run.report.valid, "the kill must happen mid-run"
    services["sink"] = Service("sink", ["sink"], tmp_path / "restarted").start()
    counts, letters = wait_for_run(es, run, services)
    _assert_reconciled(run, counts, letters)
