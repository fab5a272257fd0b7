"""Helpers for pipeline tests: produce a run, wait until Elasticsearch accounts for it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from deploy.local.pipeline import Service
from producers.simulator.run import SimulationReport, simulate
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas.organization import Organization
from schemas.topics import EVENTS_RAW
from soc.reconcile import dead_letters_for_offsets, event_id_counts


@dataclass
class Run:
    """A simulated run and the Kafka offsets it occupies on events.raw."""

    report: SimulationReport
    ranges: dict[int, tuple[int, int]]
    truth: list[dict]


def produce_run(settings: Settings, registry: list[Organization], tmp_path: Path, *,
                seed: int, events: int, malformed: int) -> Run:
    before = end_offsets(settings.kafka, EVENTS_RAW.name)
    truth_path = tmp_path / "truth.jsonl"
    report = simulate(kafka=settings.kafka, registry=registry, seed=seed,
                      events=events, duration=None, rate=None,
                      scenarios=["brute_force", "malware", "phishing"], malformed=malformed,
                      truth=truth_path)
    assert report.delivery.failed == 0, report.delivery.errors
    after = end_offsets(settings.kafka, EVENTS_RAW.name)
    ranges = {p: (before.get(p, 0), hi) for p, hi in after.items()}
    truth = [json.loads(line) for line in truth_path.read_text().splitlines()]
    return Run(report, ranges, truth)


def wait_for_run(es: Elasticsearch, run: Run, services: dict[str, Service],
                 timeout: float = 420) -> tuple[dict[str, int], list[dict]]:
    """Poll Elasticsearch until every record of the run is accounted for (or timeout)."""
    expected = run.report.valid + sum(run.report.malformed.values())
    deadline = time.monotonic() + timeout
    while True:
        for service in services.values():
            assert service.alive, f"{service.name} died:\n{service.tail(40)}"
        counts = event_id_counts(es, run.report.valid_ids)
        letters = dead_letters_for_offsets(es, run.ranges)
        if len(counts) + len(letters) >= expected or time.monotonic() > deadline:
            time.sleep(3)  # let any late duplicate show up before we count for good
            return (dict(event_id_counts(es, run.report.valid_ids)),
                    dead_letters_for_offsets(es, run.ranges))
        time.sleep(2)


def run_vigie(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``vigie ARGV`` in this process: (exit code, stdout, stderr)."""
    from vigie.cli import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as exited:
        code = exited.code if isinstance(exited.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
