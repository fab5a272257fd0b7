"""``vigie simulate``: produce a simulation to ``events.raw`` and write its ground truth."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from confluent_kafka import KafkaError, Message, Producer

from producers.signing import Signer
from producers.simulator.fleet import register_simulated_agents, simulated_agents
from producers.simulator.registry import DEFAULT_COUNT, generate_registry
from producers.simulator.simulation import SimRecord, Simulation
from runtime import metrics
from runtime.kafka import DeliveryReport, KafkaConnection, produce_blocking
from runtime.registry import load_registry, write_registry
from runtime.topics import ensure_topics
from schemas.organization import Organization
from schemas.topics import EVENTS_RAW

log = logging.getLogger(__name__)


@dataclass
class SimulationReport:
    """What was produced, for the summary, the truth file and tests."""

    produced: int = 0
    valid: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    by_scenario: Counter[str] = field(default_factory=Counter)
    valid_ids: list[str] = field(default_factory=list)
    """The national ids of the valid events: ``event.id`` in Elasticsearch."""
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    seconds: float = 0.0


def registry_for(path: Path, count: int = DEFAULT_COUNT, seed: int = 0) -> list[Organization]:
    """The registry of establishments at ``path``, generated there first if it does not exist
    yet. Their simulated agents are registered by :func:`simulate` (or
    ``fleet.register_simulated_agents``), on the simulated registry only."""
    if not path.exists():
        write_registry(path, generate_registry(count, seed))
        log.info("generated a registry of %d establishments at %s", count, path)
    return list(load_registry(path).values())


#: Seed of the simulated agents' keys: fixed, so the simulated registry matches every run.
AGENT_SEED = 0


def simulate(
    *,
    kafka: KafkaConnection,
    registry: list[Organization],
    seed: int,
    events: int | None,
    duration: float | None,
    rate: float | None,
    scenarios: list[str],
    malformed: int,
    truth: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Produce the run. With ``duration`` the run is paced in real time; otherwise it goes
    as fast as the broker takes it, with timestamps spread over the 10 minutes before now.
    """
    if duration is not None:
        per_second = rate or 200.0
        total = events or max(1, int(duration * per_second))
        span = timedelta(seconds=duration)
        start = datetime.now(UTC)
    else:
        total = events or 10_000
        span = timedelta(minutes=10)
        start = datetime.now(UTC) - span
    sim = Simulation(registry, seed=seed, total=total, start=start, span=span,
                     scenarios=scenarios, malformed=malformed)
    ensure_topics(kafka)
    register_simulated_agents(kafka, registry, AGENT_SEED)
    report = SimulationReport()
    report.delivery.keep_positions = False
    producer = kafka.producer(**{"message.max.bytes": 4 * 1024 * 1024})
    signers = simulated_agents(registry, AGENT_SEED)[1]
    truth_out = truth.open("w", encoding="utf-8") if truth else None
    produced_counter = metrics.EVENTS_OUT.labels("simulator", EVENTS_RAW.name)
    began = time.monotonic()
    try:
        for record in sim:
            if duration is not None:
                wait = began + duration * record.slot / total - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            _produce(producer, record, report, truth_out, signers)
            produced_counter.inc()
            if progress and report.produced % 500 == 0:
                progress(report.produced, total)
        remaining = producer.flush(120)
        if remaining:
            log.error("%d records still undelivered after 120 s", remaining)
    finally:
        report.seconds = time.monotonic() - began
        if truth_out:
            for inst in sim.instances:
                truth_out.write(json.dumps(inst.truth()) + "\n")
            truth_out.write(json.dumps(_summary(report, seed, sim)) + "\n")
            truth_out.close()
    if progress:
        progress(report.produced, total)
    return report


def _produce(producer: Producer, record: SimRecord, report: SimulationReport,
             truth_out: TextIO | None, signers: dict[str, Signer] | None = None) -> None:
    def on_delivery(err: KafkaError | None, msg: Message, record: SimRecord = record) -> None:
        report.delivery.on_delivery(err, msg)
        if err is None and record.event_id is None and truth_out is not None:
            truth_out.write(json.dumps({
                "kind": "malformed", "malformed": record.malformed_kind,
                "expected_reason": str(record.expected_reason),
                "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
            }) + "\n")

    # Every record is signed as sent, malformed ones too: they must fail for their own reason.
    signer = (signers or {}).get(record.key.decode("utf-8", "replace"))
    headers = signer.headers(record.value) if signer else None
    produce_blocking(producer, EVENTS_RAW.name, record.key, record.value, on_delivery,
                     headers)
    producer.poll(0)
    report.produced += 1
    if record.event_id is None:
        report.malformed[record.malformed_kind or "?"] += 1
    else:
        report.valid += 1
        report.valid_ids.append(record.document_id or "")
        if record.scenario:
            report.by_scenario[record.scenario] += 1


def _summary(report: SimulationReport, seed: int, sim: Simulation) -> dict[str, object]:
    return {
        "kind": "summary",
        "seed": seed,
        "produced": report.produced,
        "valid": report.valid,
        "malformed": dict(report.malformed),
        "scenario_events": dict(report.by_scenario),
        "delivered": report.delivery.delivered,
        "failed": report.delivery.failed,
        "establishments": len(sim.registry),
        # Every valid event id, so `vigie evaluate` can tell this run's incidents apart
        # from other runs' in a shared cluster.
        "event_ids": report.valid_ids,
        "start": sim.start.isoformat(),
        "span_seconds": sim.span.total_seconds(),
    }
