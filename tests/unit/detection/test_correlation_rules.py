"""Vigie's shipped correlation rules (``processors/detection/rules/vigie``), each with its
test: the attack it describes fires it, the simulator's benign background does not.

Events go through the real path minus Kafka: engine → ``SigmaClassifier`` (publication and
signals) → ``Correlator``.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.classify import Document, SigmaClassifier
from processors.detection.correlation import Correlator
from processors.detection.correlation.signals import as_signal, to_detection
from processors.detection.engine import Engine
from processors.detection.loader import VIGIE_RULES, default_rule_dirs
from producers.simulator import events as ev
from producers.simulator.simulation import Simulation
from schemas.detection import Detection
from schemas.event import SecurityEvent
from schemas.identity import event_id
from schemas.organization import Organization

BRUTE_FORCE = "ab18263f-b4e0-4faa-ba6e-156338b65682"
SPRAY = "bc4c8f7c-b65e-4275-991f-d3593dfcbde6"
BRUTE_THEN_LOGON = "306c50a2-8cf9-4a62-a645-77bff1083a43"
RANSOMWARE_PRELUDE = "8f5ae3af-acbc-461c-bc91-b2c03481a639"


@pytest.fixture(scope="module")
def classifier() -> SigmaClassifier:
    return SigmaClassifier(Engine.from_paths([VIGIE_RULES]))


def run(classifier: SigmaClassifier, docs: list[bytes]) -> tuple[list[Detection], Counter[str]]:
    """Published base detections and correlation detections (by rule id)."""
    correlator = Correlator(classifier.correlations)
    table: dict[str, Any] = {}
    published: list[Detection] = []
    fired: Counter[str] = Counter()
    for raw in docs:
        event = SecurityEvent.model_validate_json(raw)
        verdict = classifier.classify(Document(event, json.loads(raw)))
        published.extend(verdict.detections)
        for signal in verdict.signals:
            wire = Detection.model_validate_json(signal.to_json_bytes())  # as Kafka carries it
            outcome = correlator.feed(event.organization.id, as_signal(wire), table.get)
            table.update(outcome.updates)
            for match in outcome.matches:
                if match.correlation.published:
                    published.append(to_detection(match))
                    fired[match.correlation.info.id] += 1
    return published, fired


def scenario_docs(registry: list[Organization], scenario: str) -> list[bytes]:
    sim = Simulation(registry, seed=7, total=400, start=datetime.now(UTC) - timedelta(minutes=20),
                     span=timedelta(minutes=5), scenarios=[scenario])
    return [r.value for r in sim if r.scenario == scenario]


def test_the_vigie_folder_is_a_default_rule_folder() -> None:
    assert VIGIE_RULES in default_rule_dirs()


def test_every_vigie_correlation_compiles(classifier: SigmaClassifier) -> None:
    assert classifier.correlations.skipped == []
    ids = {c.info.id for c in classifier.correlations.correlations if c.published}
    assert ids == {BRUTE_FORCE, SPRAY, BRUTE_THEN_LOGON, RANSOMWARE_PRELUDE}


def test_brute_force_then_logon(classifier: SigmaClassifier,
                                registry: list[Organization]) -> None:
    published, fired = run(classifier, scenario_docs(registry, "brute_force"))
    assert fired == Counter({BRUTE_FORCE: 1, BRUTE_THEN_LOGON: 1})
    # the single failed and successful logons only feed correlations (generate: false)
    assert {d.rule.id for d in published} == {BRUTE_FORCE, BRUTE_THEN_LOGON}
    brute = next(d for d in published if d.rule.id == BRUTE_FORCE)
    assert brute.rule.level.value == "high" and brute.category.value == "intrusion_attempts"
    assert brute.matched["TargetUserName"] == "admin.dpi"
    assert brute.matched["correlation.count"] == 20
    chained = next(d for d in published if d.rule.id == BRUTE_THEN_LOGON)
    assert chained.rule.level.value == "critical" and chained.category.value == "intrusion"


def test_ransomware_prelude_fires_once_per_host(classifier: SigmaClassifier,
                                                registry: list[Organization]) -> None:
    published, fired = run(classifier, scenario_docs(registry, "malware"))
    assert fired == Counter({RANSOMWARE_PRELUDE: 3})
    hosts = {d.matched["Computer"] for d in published if d.rule.id == RANSOMWARE_PRELUDE}
    assert len(hosts) == 3
    assert all(d.category.value == "malicious_code" for d in published)


def test_password_spray(classifier: SigmaClassifier, registry: list[Organization]) -> None:
    org, start = registry[0], datetime.now(UTC) - timedelta(minutes=30)
    docs = [
        json.dumps(ev.windows_logon(
            org, start + timedelta(seconds=20 * n), event_id(org.id, "spray", n), success=False,
            host="SRV-AD-01", user=f"user.{n}", source_ip="203.0.113.9", logon_type=3,
            record=n)).encode()
        for n in range(12)
    ]
    _, fired = run(classifier, docs)
    assert fired == Counter({SPRAY: 1})


def test_benign_background_fires_nothing(classifier: SigmaClassifier,
                                         registry: list[Organization]) -> None:
    sim = Simulation(registry, seed=23, total=5000, start=datetime.now(UTC) - timedelta(hours=1),
                     span=timedelta(minutes=30), scenarios=[])
    published, fired = run(classifier, [r.value for r in sim if r.event_id])
    assert published == [] and fired == Counter()
