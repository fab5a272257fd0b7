"""The processor's wiring of the replay table: within a batch, the next record of an
establishment sees the entry its previous record left, and each entry is written once per batch
to the changelog partition of the records it came from (not the batch's last record's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.app import _Processing
from processors.classify import ClassifyStage, PassThrough
from processors.outputs import Output
from processors.validate import Validator
from processors.verify import Verifier
from producers.signing import Signer, public_key_b64
from producers.simulator.simulation import Simulation
from schemas.enrolment import AgentEntry
from schemas.organization import Organization
from schemas.topics import EVENTS_CLASSIFIED, EVENTS_DLQ, EVENTS_RAW
from sinks.routing import route


class FakeTable(dict[str, Any]):
    """The table's two operations the wiring uses, with the partition of each write."""

    partition: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[int | None, str]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((self.partition, key))
        super().__setitem__(key, value)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    headers: list[tuple[str, bytes]]


@dataclass
class Event:
    key: bytes
    value: bytes
    message: Message


def test_a_batch_sees_its_own_entries_and_writes_each_to_its_partition(
        registry: list[Organization], simulation: Simulation) -> None:
    valid = [r for r in simulation if r.event_id]
    first = valid[0]
    second = next(r for r in valid if r.key != first.key)  # another establishment
    values, signers, entries = {}, {}, []
    for n, record in enumerate((first, second)):
        org = record.key.decode()
        key = Ed25519PrivateKey.generate()
        signers[org] = Signer(f"agent-{n}", key)
        entries.append(AgentEntry(agent_id=f"agent-{n}", establishment_id=org,
                                  public_key=public_key_b64(key)))
        doc = json.loads(record.value)
        doc["agent"] = {"id": f"agent-{n}", "type": "vigie-agent"}
        doc["@timestamp"] = datetime.now(UTC).isoformat()
        values[org] = json.dumps(doc).encode()
    stage = ClassifyStage(Validator({o.id: o for o in registry}, timedelta(minutes=5)),
                          PassThrough(), Verifier(entries))
    app = faust.App("vigie-replay-wiring-test", broker="kafka://localhost:1",
                    web_enabled=False)

    async def deliver(_: Any) -> None:
        return None

    processing = _Processing(app, stage, deliver, None)
    table = FakeTable()
    processing.sequences = table  # type: ignore[assignment]
    (org_a, value_a), (org_b, value_b) = values.items()
    headers_a = signers[org_a].headers(value_a, 5)
    batch = [  # one batch, two partitions; A's record twice (the second a replay)
        Event(org_a.encode(), value_a, Message(EVENTS_RAW.name, 1, 10, headers_a)),
        Event(org_b.encode(), value_b,
              Message(EVENTS_RAW.name, 4, 70, signers[org_b].headers(value_b, 9))),
        Event(org_a.encode(), value_a, Message(EVENTS_RAW.name, 1, 11, headers_a)),
    ]
    outputs: list[list[Output]] = []
    for event in batch:
        outputs.append([])
        processing.handle(event, outputs[-1])  # type: ignore[arg-type]
    topics = [[o.topic for o in out] for out in outputs]
    assert topics == [[processing.classified], [processing.classified], [processing.dlq]]
    assert json.loads(outputs[2][0][2])["reason"] == "replayed"
    # Every output the sink reads says where it goes, agreeing with its body.
    classified, letter = outputs[0][0], outputs[2][0]
    assert classified.headers is not None and letter.headers is not None
    routed = route(EVENTS_CLASSIFIED.name, classified.value, classified.headers)
    from_body = route(EVENTS_CLASSIFIED.name, classified.value)
    assert (routed.index, routed.id) == (from_body.index, from_body.id)
    dead = route(EVENTS_DLQ.name, letter.value, letter.headers)
    assert (dead.index, dead.id) == ("vigie-dlq-000001", json.loads(letter.value)["id"])
    assert table.writes == []  # nothing written before the batch is over
    processing.store_sequences()
    assert sorted(table.writes) == [(1, org_a), (4, org_b)]
    assert table[org_a]["agent-0"] == {"sequence": 5, "partition": 1, "offset": 10,
                                       "gaps": []}
