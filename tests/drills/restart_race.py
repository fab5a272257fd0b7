"""Restart and rebalance the processor over and over under load; report every raw record
that has no output.

    .venv/bin/python -m tests.drills.restart_race [--events 40000] [--seconds 120]

Kafka-level reconciliation, no sink, no Elasticsearch: every event of ``events.raw`` produced
during the run (the simulator sends envelopes) must have an output (its event in
``events.classified``, or a dead letter for its partition, offset and index in the envelope
in ``events.dlq``, or one for its whole envelope). While the simulator produces, the processor is
SIGKILLed, stopped with SIGTERM, and joined by a second worker that later leaves (each join
or leave is a rebalance that suspends Faust's flow with records in flight). This is the
hunt for record loss in Faust's start-up and rebalance paths (README, "Known issues"). Not
part of ``make test``: a hunt takes ~6 minutes and the loss it looks for is rare (it was
seen once in a CI run, and not in the hunts run since), so it could not be a test that
reliably fails; run it by hand after touching the processor's consumption or commits.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import TopicPartition

from deploy.local.pipeline import PROCESSOR_READY, Service
from producers.simulator.run import registry_for, simulate
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas.envelope import is_envelope, unpack
from schemas.identity import national_event_id
from schemas.topics import EVENTS_CLASSIFIED, EVENTS_DLQ, EVENTS_RAW
from tests.integration.fresh import FreshPipeline


@dataclass
class Outcome:
    """What the reconciliation found."""

    raw: int = 0
    answered: int = 0
    missing: list[tuple[int, int, str]] = field(default_factory=list)  # partition, offset, id
    hits: list[str] = field(default_factory=list)


def _read(kafka: KafkaConnection, topic: str, start: dict[int, int], end: dict[int, int]):
    """Every record of ``topic`` between two sets of offsets."""
    consumer = kafka.consumer("vigie-race-reader")
    todo = {p: hi for p, hi in end.items() if hi > start.get(p, 0)}
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in todo])
    try:
        while todo:
            for message in consumer.consume(1000, timeout=1.0):
                if message.error():
                    continue
                if message.offset() >= todo.get(message.partition(), -1) - 1:
                    todo.pop(message.partition(), None)
                yield message
    finally:
        consumer.close()


def _event_id(value: bytes) -> str | None:
    try:
        return str(json.loads(value)["event"]["id"])
    except (ValueError, KeyError, TypeError):
        return None


def _national_id(raw_value: bytes) -> str | None:
    """The id the processor gives a raw record's event (the classified ``event.id``)."""
    try:
        doc = json.loads(raw_value)
        return national_event_id(str(doc["organization"]["id"]), str(doc["event"]["id"]))
    except (ValueError, KeyError, TypeError):
        return None


def reconcile(settings: Settings, before: dict[str, dict[int, int]],
              after: dict[str, dict[int, int]]) -> Outcome:
    """Raw records without an output (by event id, or by coordinates for dead letters)."""
    kafka = settings.kafka
    answered_ids: set[str] = set()
    for message in _read(kafka, EVENTS_CLASSIFIED.name, before["classified"],
                         after["classified"]):
        if (event_id := _event_id(message.value())) is not None:
            answered_ids.add(event_id)
    # (partition, offset, index in the envelope; None: the record refused whole)
    dead: set[tuple[int, int, int | None]] = set()
    for message in _read(kafka, EVENTS_DLQ.name, before["dlq"], after["dlq"]):
        source = json.loads(message.value()).get("origin", {})
        if source.get("topic") == EVENTS_RAW.name:
            dead.add((int(source["partition"]), int(source["offset"]), source.get("index")))
    outcome = Outcome()
    for message in _read(kafka, EVENTS_RAW.name, before["raw"], after["raw"]):
        where = (message.partition(), message.offset())
        value = message.value() or b""
        events = unpack(value)[1] if is_envelope(value) else [value]
        for index, event in enumerate(events):
            outcome.raw += 1
            event_id = _national_id(event)
            if event_id in answered_ids or (*where, None) in dead or (
                    (*where, index if is_envelope(value) else None) in dead):
                outcome.answered += 1
            else:
                outcome.missing.append((*where, str(event_id)))
    return outcome


def _committed(settings: Settings, group: str, target: dict[int, int]) -> dict[int, int]:
    """The group's committed offsets on ``events.raw``, for the partitions of ``target``."""
    consumer = settings.kafka.consumer(group)
    try:
        found = consumer.committed([TopicPartition(EVENTS_RAW.name, p) for p in target],
                                   timeout=15)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def _offsets(settings: Settings) -> dict[str, dict[int, int]]:
    return {"raw": end_offsets(settings.kafka, EVENTS_RAW.name),
            "classified": end_offsets(settings.kafka, EVENTS_CLASSIFIED.name),
            "dlq": end_offsets(settings.kafka, EVENTS_DLQ.name)}


def hunt(settings: Settings, log_dir: Path, events: int, seconds: float, seed: int) -> Outcome:
    """Produce ``events`` over ``seconds`` while the processor is hit; reconcile."""
    rng = random.Random(seed)
    pipeline = FreshPipeline(settings, log_dir, "race")
    from runtime.topics import start_group_at_end

    start_group_at_end(settings.kafka, pipeline.app_id)
    before = _offsets(settings)
    first = pipeline.restart("processor")
    assert first.wait_for_log(PROCESSOR_READY), first.tail(40)
    outcome = Outcome()
    done = threading.Event()

    def produce() -> None:
        try:
            simulate(kafka=settings.kafka, registry=registry_for(settings.registry),
                     seed=seed, events=events, duration=seconds, rate=None,
                     scenarios=["brute_force", "malware"], malformed=events // 500, truth=None)
        finally:
            done.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    extra: Service | None = None
    generation = 100
    try:
        while not done.wait(rng.uniform(4, 12)):
            what = rng.choice(["kill", "term", "join", "leave"] if extra else
                              ["kill", "term", "join"])
            outcome.hits.append(f"{time.strftime('%H:%M:%S')} {what}")
            if what in ("kill", "term"):
                service = pipeline.services["processor"]
                service.kill() if what == "kill" else service.stop()
                pipeline.restart("processor")
            elif what == "join":
                generation += 1
                extra = Service("processor", ["process", "--demo"], log_dir / f"{generation}-extra",
                                pipeline.env()).start()
            elif extra is not None:
                extra.stop()
                extra = None
        if extra is not None:
            extra.stop()
        # Let the last worker catch up: its group commits the end of every partition.
        target = end_offsets(settings.kafka, EVENTS_RAW.name)
        deadline = time.monotonic() + 600
        while _committed(settings, pipeline.app_id, target) != target:
            assert time.monotonic() < deadline, "the processor never caught up"
            time.sleep(5)
        time.sleep(5)  # outputs are acknowledged before the commit; let readers see them
        after = _offsets(settings)
        result = reconcile(settings, before, after)
        result.hits = outcome.hits
        return result
    finally:
        pipeline.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10**6)
    args = parser.parse_args()
    settings = Settings()
    logs = Path(tempfile.mkdtemp(prefix="vigie-race-"))
    outcome = hunt(settings, logs, args.events, args.seconds, args.seed)
    print(f"logs: {logs}")
    print(f"hits: {outcome.hits}")
    print(f"raw records {outcome.raw}, answered {outcome.answered}, "
          f"missing {len(outcome.missing)}: {outcome.missing[:20]}")


if __name__ == "__main__":
    main()
