"""The end-to-end bench's workload and report: envelopes sized like an agent's second at the
peak, accepted by the processor; headline figures computed from the run's own measures, and
a missed aim explained by them."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.e2e import report
from bench.e2e.workload import ENVELOPE_EVENTS, Registry, event_count, records
from processors.classify import Classified, ClassifyStage, PassThrough
from processors.replay import EstablishmentSequences
from processors.validate import Coordinates, Validator
from processors.verify import Verifier
from producers.simulator.fleet import simulated_agents
from schemas.envelope import unpack
from schemas.organization import Organization


def test_envelopes_hold_one_establishments_second_at_the_peak(
        registry: list[Organization], tmp_path: Path) -> None:
    assert ENVELOPE_EVENTS == 30  # 90,000 events/s over 3,036 establishments
    entries, signers = simulated_agents(registry)
    reg = Registry(len(registry), tmp_path / "registry.jsonl", registry, signers)
    batch = records(reg, seed=4, total=3000)
    assert event_count(batch) == 3000
    sizes = Counter(rec.count for rec in batch)
    # Full but for the few a scenario event interrupted (sent short at the end).
    assert sizes[30] >= 0.8 * len(batch) and max(sizes) == 30
    ids = [i for rec in batch for i in rec.event_ids]
    assert len(set(ids)) == 3000
    stage = ClassifyStage(
        Validator({o.id: o for o in registry}, timedelta(minutes=5), timedelta(days=30)),
        PassThrough(), Verifier(entries))
    table: dict[str, EstablishmentSequences] = {}
    accepted = []
    for offset, rec in enumerate(batch):
        header, _ = unpack(rec.value)
        assert header.establishment.encode() == rec.key
        judged = stage.handle(rec.value, Coordinates("events.raw", 0, offset, rec.key),
                              rec.headers, table.get)
        assert judged.sequences is not None and judged.establishment_id is not None
        table[judged.establishment_id] = judged.sequences
        assert all(isinstance(r, Classified) for r in judged.results), judged.results
        accepted += [r.verdict.event.id for r in judged.results if isinstance(r, Classified)]
    assert accepted == ids  # every event, in order, under the id the bench looks for
    single = records(reg, seed=4, total=50, envelope_events=1)
    assert [rec.count for rec in single] == [1] * 50


def _result(processor_cpu_s: float) -> dict[str, Any]:
    rep = {"events": 60_000, "records": 2000, "seconds": 30.0, "eps": 2000.0,
           "cpu_seconds": {"processor-0": processor_cpu_s, "sink": 0.3, "kafka": 2.0},
           "cores_used": {"processor-0": processor_cpu_s / 30, "sink": 0.01}}
    runs = [{"p50_s": 1.4, "p99_s": 2.3, "from_send_p50_s": 0.9, "from_send_p99_s": 1.5}]
    return {
        "machine": {"cores": 2, "python": "3.11"}, "events_per_repetition": 60_000,
        "repeats": 1, "envelope_events": 30,
        "ceilings": {"es_bulk": {"median": 12_000.0, "min": 11_000.0, "max": 13_000.0,
                                 "spread_pct": 16.7, "n": 3}},
        "grid": [{"name": "baseline", "workers": 1, "establishments": 3036, "rules": "all",
                  "repetitions": [rep],
                  "latency": {"50pct": {"rate_eps": 1000, "runs": runs}},
                  "profile": {"processor-0": {
                      "samples": 100, "self": [("processors/classify.py:_event", 30.0)],
                      "inclusive_project": [("processors/detection/engine.py:match", 55.0)]}}}],
    }


def test_headline_figures_and_why_an_aim_is_missed() -> None:
    result = _result(processor_cpu_s=6.0)
    result.update(report.headline(result))
    assert result["pipeline_events_per_s"] == 2000.0
    assert result["ceiling_es_bulk_docs_per_s"] == 12_000.0
    assert result["ratio_pipeline_to_ceiling"] == round(2000 / 12_000, 3)
    assert result["processor_cpu_us_per_event"] == 100.0  # 6 s over 60,000 events
    assert result["sink_cpu_us_per_event"] == 5.0
    assert result["latency_half_load_p99_s"] == 2.3
    assert result["fixed_latency_share_of_run"] == 0.03  # 0.9 s of 30 s
    aims = result["aims"]
    assert aims["processor_cpu_us_per_event"]["met"] is False
    assert aims["sink_cpu_us_per_event"]["met"] is True
    assert aims["latency_half_load_p99_s"]["met"] is False
    page = report.markdown(result)
    assert "processors/detection/engine.py:match" in page  # the hot spot is named
    assert "10,000 events/s" in page  # one core's bound at 100 µs/event
    assert "**missed**" in page


def test_nothing_is_said_missed_when_the_aims_are_met() -> None:
    result = _result(processor_cpu_s=1.8)  # 30 µs/event
    result["grid"][0]["repetitions"][0]["eps"] = 7000.0
    result["grid"][0]["latency"]["50pct"]["runs"][0]["p99_s"] = 1.8
    result.update(report.headline(result))
    assert all(aim["met"] for aim in result["aims"].values())
    assert "**missed**" not in report.markdown(result)
