"""Ids are the platform's, not the agents': on the real stack, a validly signed event from
establishment A that reuses B's ``event.id`` leaves B's document untouched and is stored under
A's own id; a record replayed byte for byte and an event older than the horizon are
dead-lettered with their reasons (``replayed``, ``too_old``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from elasticsearch import Elasticsearch

from deploy.local.pipeline import Service
from producers.simulator.fleet import agent_id_for, simulated_agents
from producers.simulator.run import AGENT_SEED
from producers.simulator.simulation import Simulation
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas import indices
from schemas.identity import national_event_id
from schemas.organization import Organization
from schemas.topics import EVENTS_DLQ, EVENTS_RAW
from soc.reconcile import event_id_counts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _produce(stack: Settings, records: list[tuple[str, bytes, Any]]) -> list[tuple[int, int]]:
    """Produce in order, one at a time (each acknowledged before the next is sent)."""
    producer = stack.kafka.producer()
    positions: list[tuple[int, int]] = []
    for key, value, headers in records:
        producer.produce(EVENTS_RAW.name, key=key.encode(), value=value, headers=headers,
                         on_delivery=lambda err, msg: positions.append(
                             (msg.partition(), msg.offset())))
        assert producer.flush(30) == 0
    return positions


def _document(es: Elasticsearch, national_id: str) -> dict[str, Any]:
    es.indices.refresh(index=indices.EVENTS.alias)
    [hit] = es.search(index=indices.EVENTS.alias, query={"ids": {"values": [national_id]}},
                      version=True, seq_no_primary_term=True)["hits"]["hits"]
    return dict(hit)


def _letters(stack: Settings, start: dict[int, int],
             positions: list[tuple[int, int]]) -> dict[tuple[int, int], set[str]]:
    """Reasons given on ``events.dlq`` (since ``start``) to the raw records at ``positions``.

    Read from the topic, not the index: processors of other sessions sharing this cluster
    (under their own groups) write their own letter for the same raw record, under the same
    id (its coordinates), and the index keeps only the last one written."""
    consumer = stack.kafka.consumer(f"it-identity-{time.time_ns()}",
                                    **{"enable.partition.eof": True})
    found: dict[tuple[int, int], set[str]] = {}
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(EVENTS_DLQ.name, p),
                                                  timeout=15)[1] for p in start}
        todo = {p for p in start if ends[p] > start[p]}
        consumer.assign([TopicPartition(EVENTS_DLQ.name, p, start[p]) for p in todo])
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    todo.discard(msg.partition())
                continue
            if msg.offset() >= ends[msg.partition()] - 1:
                todo.discard(msg.partition())
            letter = json.loads(msg.value())
            where = (letter["origin"]["partition"], letter["origin"]["offset"])
            if letter["origin"]["topic"] == EVENTS_RAW.name and where in positions:
                found.setdefault(where, set()).add(letter["reason"])
    finally:
        consumer.close()
    return found


def _wait(condition: Any, what: str, services: dict[str, Service]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        for service in services.values():
            assert service.alive, f"{service.name} died:\n{service.tail(40)}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_an_establishment_cannot_overwrite_another_nor_replay_nor_backdate(
    stack: Settings, es: Elasticsearch, national_registry: list[Organization],
    services: dict[str, Service], tmp_path: Path,
) -> None:
    sim = Simulation(national_registry, seed=int(time.time()), total=50,
                     start=datetime.now(UTC) - timedelta(minutes=1),
                     span=timedelta(seconds=30), scenarios=[], malformed=0)
    victim = next(iter(sim))
    org_b = victim.key.decode()
    org_a = next(o for o in national_registry if o.id != org_b)
    signers = simulated_agents(national_registry, AGENT_SEED)[1]
    agent_event_id = json.loads(victim.value)["event"]["id"]
    id_b = national_event_id(org_b, agent_event_id)
    id_a = national_event_id(org_a.id, agent_event_id)
    assert victim.document_id == id_b != id_a

    # B's genuine event, indexed first.
    headers_b = signers[org_b].headers(victim.value)
    _produce(stack, [(org_b, victim.value, headers_b)])
    _wait(lambda: event_id_counts(es, [id_b]), "B's event in Elasticsearch", services)
    before = _document(es, id_b)

    # A's own agent signs an event of A's that reuses B's event.id, with other content.
    forged = json.loads(victim.value)
    forged["organization"] = org_a.model_dump(mode="json")
    forged["agent"]["id"] = agent_id_for(org_a.id)
    forged["message"] = "written by establishment A"
    forged_value = json.dumps(forged).encode()
    # Then B's record again byte for byte (value and signed headers), and an event of B's
    # dated 400 days ago, validly signed.
    old = json.loads(victim.value)
    old["@timestamp"] = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    old["event"]["id"] = "0" * 31 + "1"
    old_value = json.dumps(old).encode()
    dlq_start = end_offsets(stack.kafka, EVENTS_DLQ.name)
    positions = _produce(stack, [
        (org_a.id, forged_value, signers[org_a.id].headers(forged_value)),
        (org_b, victim.value, headers_b),
        (org_b, old_value, signers[org_b].headers(old_value)),
    ])

    def settled() -> bool:
        letters = _letters(stack, dlq_start, positions)
        return bool(event_id_counts(es, [id_a])) and \
            "replayed" in letters.get(positions[1], set()) and \
            "too_old" in letters.get(positions[2], set())

    _wait(settled, "A's event, B's replay dead-lettered 'replayed' and the backdated event "
                   "'too_old'", services)

    # B's document: not written again (same version and sequence number), same content.
    after = _document(es, id_b)
    assert (after["_version"], after["_seq_no"]) == (before["_version"], before["_seq_no"])
    assert after["_source"] == before["_source"]
    assert after["_source"]["organization"]["id"] == org_b
    # A's: under A's own id, the agent's id kept beside it.
    mine = _document(es, id_a)["_source"]
    assert mine["organization"]["id"] == org_a.id
    assert mine["message"] == "written by establishment A"
    assert mine["event"]["id"] == id_a and mine["vigie"]["agent_event_id"] == agent_event_id
    # Both are found by the agent's id, each in its own establishment.
    es.indices.refresh(index=indices.EVENTS.alias)
    hits = es.search(index=indices.EVENTS.alias,
                     query={"term": {"vigie.agent_event_id": agent_event_id}})["hits"]["hits"]
    assert sorted((h["_id"], h["_source"]["organization"]["id"]) for h in hits) == \
        sorted([(id_b, org_b), (id_a, org_a.id)])
    # Nothing was indexed for the backdated event (no index of 400 days ago for it).
    assert not event_id_counts(es, [national_event_id(org_b, old["event"]["id"])])
