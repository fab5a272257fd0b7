"""Detections → incidents → national campaigns on the real stack (issue 5's must-shows)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from deploy.local.pipeline import Service
from producers.simulator.simulation import Simulation
from runtime.settings import Settings
from schemas.organization import Organization
from soc.truth import evaluate
from tests.integration.incidents_support import (
    campaigns_linking,
    expected_incidents,
    incidents_in_es,
)
from tests.integration.support import Run, produce_run, wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
SCENARIOS = ["brute_force", "malware", "phishing"]


def _replay(run: Run, registry: list[Organization], scenarios: list[str]):  # type: ignore[no-untyped-def]
    summary = next(t for t in run.truth if t["kind"] == "summary")
    sim = Simulation(registry, seed=summary["seed"], total=summary["produced"],
                     start=datetime.fromisoformat(summary["start"]),
                     span=timedelta(seconds=summary["span_seconds"]), scenarios=scenarios,
                     malformed=sum(summary["malformed"].values()))
    return expected_incidents(list(sim), registry)


def _wait_incidents(es: Elasticsearch, expected: dict[str, tuple[str, int, int]],
                    services: dict[str, Service], timeout: float = 240) -> dict[str, dict]:
    """Until every expected incident is in ES with its final counts (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = incidents_in_es(es, set(expected))
        final = {i: (d["severity"], d["counts"]["detections"], d["counts"]["events"])
                 for i, d in found.items()}
        if final == expected or time.monotonic() > deadline:
            return found
        for service in services.values():
            assert service.alive, f"{service.name} died:\n{service.tail(40)}"
        time.sleep(2)


def test_scenarios_become_incidents_and_a_campaign(
    stack: Settings, es: Elasticsearch, national_registry: list[Organization],
    services: dict[str, Service], tmp_path: Path,
) -> None:
    run = produce_run(stack, national_registry, tmp_path, seed=int(time.time()) % 10**6,
                      events=6000, malformed=0)
    wait_for_run(es, run, services)
    expected = _replay(run, national_registry, SCENARIOS)
    found = _wait_incidents(es, expected, services)
    assert {i: (d["severity"], d["counts"]["detections"], d["counts"]["events"])
            for i, d in found.items()} == expected

    report = evaluate(es, tmp_path / "truth.jsonl")
    for name in SCENARIOS:
        assert report["scenarios"][name]["recall"] == 1.0, report
    assert report["overall"]["false_positive_incidents"] == 0, report

    phishing = next(t for t in run.truth if t.get("scenario") == "phishing")
    phishing_incidents = {i for i, d in found.items()
                          if d["organizations"][0]["id"] in phishing["establishments"]}
    assert len(phishing_incidents) == 5
    deadline = time.monotonic() + 60
    while True:
        campaigns = campaigns_linking(es, phishing_incidents)
        if (len(campaigns) == 1 and set(campaigns[0]["linked_incident_ids"])
                >= phishing_incidents) or time.monotonic() > deadline:
            break
        time.sleep(2)
    # One campaign links all five, whatever the order in which their incidents reached the
    # campaign table (the services fixture's fresh tables hold no earlier run's sightings).
    assert len(campaigns) == 1, campaigns
    assert set(campaigns[0]["linked_incident_ids"]) >= phishing_incidents
    assert {o["id"] for o in campaigns[0]["organizations"]} >= set(phishing["establishments"])
    assert campaigns[0]["declarable"] is True


def test_benign_only_run_opens_no_incident(
    stack: Settings, es: Elasticsearch, national_registry: list[Organization],
    services: dict[str, Service], tmp_path: Path,
) -> None:
    from producers.simulator.run import simulate

    truth = tmp_path / "truth.jsonl"
    report = simulate(kafka=stack.kafka, registry=national_registry,
                      seed=int(time.time()) % 10**6 + 7, events=6000, duration=None, rate=None,
                      scenarios=[], malformed=0, truth=truth)
    run = Run(report, {}, [])
    wait_for_run(es, run, services)
    time.sleep(10)  # detections and incidents trail the events by a few batches
    result = evaluate(es, truth)
    assert result["overall"]["incidents"] == 0, result


def test_processor_killed_mid_run_converges_to_the_same_incidents(
    stack: Settings, es: Elasticsearch, national_registry: list[Organization],
    services: dict[str, Service], tmp_path: Path,
) -> None:
    processor = services["processor"]
    time.sleep(8)  # let it join the group, so the kill lands in the middle of real work
    run = produce_run(stack, national_registry, tmp_path, seed=int(time.time()) % 10**6 + 13,
                      events=20_000, malformed=20)
    from soc.reconcile import event_id_counts

    deadline = time.monotonic() + 300
    while len(event_id_counts(es, run.report.valid_ids)) < 3000:
        assert time.monotonic() < deadline, processor.tail(40)
        time.sleep(0.5)
    processor.kill()
    assert len(event_id_counts(es, run.report.valid_ids)) < run.report.valid
    services["processor"] = Service("processor", ["process", "--demo"],
                                    tmp_path / "restarted").start()
    wait_for_run(es, run, services)
    expected = _replay(run, national_registry, SCENARIOS)
    found = _wait_incidents(es, expected, services)
    assert {i: (d["severity"], d["counts"]["detections"], d["counts"]["events"])
            for i, d in found.items()} == expected
