"""``vigie simulate``: produce a simulation to ``events.raw`` and write its ground truth.

Each establishment's events leave in envelopes (:mod:`producers.simulator.envelopes`), as its
agent would send them; the report and the truth still count events, so every reconciliation
(events indexed, dead letters) holds event by event.
"""

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

from producers.simulator.envelopes import Envelopes, Outgoing
from producers.simulator.fleet import register_simulated_agents, simulated_agents
from producers.simulator.registry import DEFAULT_COUNT, generate_registry
from producers.simulator.simulation import Simulation
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
    """Events handed to Kafka (in envelopes or alone)."""
    records: int = 0
    """Kafka records those events made (envelopes, and events sent alone)."""
    valid: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    by_scenario: Counter[str] = field(default_factory=Counter)
    valid_ids: list[str] = field(default_factory=list)
    """The national ids of the valid events: ``event.id`` in Elasticsearch."""
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    """Counted in EVENTS: an acknowledged envelope of 30 events counts 30 delivered."""
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
    envelopes = Envelopes(signers)

    def send(outgoing: list[Outgoing]) -> None:
        for sent in outgoing:
            _produce(producer, sent, report, truth_out)
            produced_counter.inc(len(sent.records))
        if progress and outgoing and report.produced // 500 != shown[0]:
            shown[0] = report.produced // 500
            progress(report.produced, total)

    shown = [0]
    began = time.monotonic()
    try:
        for record in sim:
            if duration is not None:
                _wait_until(began + duration * record.slot / total, envelopes, send)
            send(envelopes.add(record))
            send(envelopes.due())
        send(envelopes.flush())
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


def _wait_until(deadline: float, envelopes: Envelopes,
                send: Callable[[list[Outgoing]], None]) -> None:
    """Sleep until ``deadline`` (monotonic), sending the envelopes that fall due meanwhile:
    a paced run at a low rate must not hold an establishment's events beyond a second."""
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        due = envelopes.next_deadline()
        time.sleep(max(0.0, min(deadline, due if due is not None else deadline) - now))
        send(envelopes.due())


def _produce(producer: Producer, sent: Outgoing, report: SimulationReport,
             truth_out: TextIO | None) -> None:
    count = len(sent.records)

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        # The delivery report counts events, not records: the reconciliations compare it
        # with the events indexed and dead-lettered.
        if err is not None:
            report.delivery.failed += count
            report.delivery.errors[err.str()] = report.delivery.errors.get(err.str(), 0) + count
            return
        report.delivery.delivered += count
        if truth_out is None:
            return
        for position, record in enumerate(sent.records):
            if record.event_id is None:
                truth_out.write(json.dumps({
                    "kind": "malformed", "malformed": record.malformed_kind,
                    "expected_reason": str(record.expected_reason),
                    "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                    "index": sent.index(position),
                }) + "\n")

    # Every record is signed as sent, malformed events too: they must fail for their own
    # reason, not for a missing signature.
    produce_blocking(producer, EVENTS_RAW.name, sent.key, sent.value, on_delivery,
                     sent.headers)
    producer.poll(0)
    report.records += 1
    for record in sent.records:
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
        "records": report.records,
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
