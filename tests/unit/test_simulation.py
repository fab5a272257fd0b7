"""The simulator: deterministic, realistic registry, scenarios where the truth says."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from producers.simulator.registry import DEFAULT_COUNT, generate_registry
from producers.simulator.simulation import Simulation
from schemas.event import SecurityEvent
from schemas.organization import HEALTH_ESTABLISHMENT_TYPES, EstablishmentType, Region


def test_default_registry_is_national_and_unique() -> None:
    registry = generate_registry()
    assert len(registry) == DEFAULT_COUNT
    assert len({o.id for o in registry}) == DEFAULT_COUNT
    assert {o.region for o in registry} == set(Region)
    assert {o.type for o in registry} == HEALTH_ESTABLISHMENT_TYPES
    types = Counter(o.type for o in registry)
    assert types[EstablishmentType.UNIVERSITY_HOSPITAL] == 32
    assert generate_registry(50, seed=9) == generate_registry(50, seed=9)
    assert generate_registry(50, seed=9) != generate_registry(50, seed=10)


def _run(registry, seed: int, start: datetime) -> list:  # type: ignore[no-untyped-def]
    sim = Simulation(registry, seed=seed, total=1500, start=start, span=timedelta(minutes=5),
                     scenarios=["brute_force", "malware", "phishing"], malformed=40)
    return list(sim)


def test_same_seed_same_records(registry) -> None:  # type: ignore[no-untyped-def]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    first, second = _run(registry, 5, start), _run(registry, 5, start)
    assert [r.value for r in first] == [r.value for r in second]
    other = _run(registry, 6, start)
    assert [r.event_id for r in first] != [r.event_id for r in other]
    later = _run(registry, 5, start + timedelta(days=1))
    assert [r.event_id for r in first] == [r.event_id for r in later]


def test_scenarios_follow_their_truth(simulation: Simulation) -> None:
    records = list(simulation)
    ids = [r.event_id for r in records if r.event_id]
    assert len(ids) == len(set(ids)), "event ids must be unique"
    by_id = {r.document_id: r for r in records if r.event_id}  # the truth has national ids
    for instance in simulation.instances:
        truth = instance.truth()
        events = [SecurityEvent.model_validate_json(by_id[i].value) for i in truth["event_ids"]]
        assert {e.organization.id for e in events} == set(truth["establishments"])
        if truth["scenario"] == "brute_force":
            failures = [e for e in events if e.event.outcome == "failure"]
            assert len(failures) == 30 and events[-1].event.outcome == "success"
            assert {str(e.source.ip) for e in events if e.source} == {truth["indicator"]}
        if truth["scenario"] == "phishing":
            assert len(truth["establishments"]) == 5
            senders = {e.email.from_.address[0] for e in events if e.email and e.email.from_}
            assert senders == {truth["indicator"]}
        if truth["scenario"] == "malware":
            assert len({e.host.name for e in events if e.host}) == 3


def test_benign_only_run_has_no_attack(registry) -> None:  # type: ignore[no-untyped-def]
    sim = Simulation(registry, seed=1, total=500, start=datetime.now(UTC),
                     span=timedelta(minutes=1), scenarios=[], malformed=0)
    records = list(sim)
    assert all(r.scenario is None and r.event_id for r in records)
    assert len(records) == 500
