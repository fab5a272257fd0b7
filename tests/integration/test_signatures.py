"""No one writes in another's name: forged records end in the DLQ with their reason."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from elasticsearch import Elasticsearch

from deploy.local.pipeline import Service
from producers.signing import Signer
from producers.simulator.fleet import agent_id_for, simulated_agents
from producers.simulator.run import AGENT_SEED
from producers.simulator.simulation import Simulation
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas.identity import national_event_id
from schemas.organization import Organization
from schemas.topics import EVENTS_RAW
from soc.reconcile import dead_letters_for_offsets, event_id_counts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_forged_records_are_refused_and_a_valid_one_passes(
    stack: Settings, es: Elasticsearch, national_registry: list[Organization],
    services: dict[str, Service], tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    sim = Simulation(national_registry, seed=int(time.time()), total=50,
                     start=datetime.now(UTC) - timedelta(minutes=1),
                     span=timedelta(seconds=30), scenarios=[], malformed=0)
    first, second = (r for r, _ in zip(sim, range(2), strict=False))
    signers = simulated_agents(national_registry, AGENT_SEED)[1]
    org_a, value_a = first.key.decode(), first.value
    org_b = second.key.decode()
    assert org_a != org_b
    doc_a = json.loads(value_a)
    national_id_a = national_event_id(org_a, doc_a["event"]["id"])

    tampered = json.loads(value_a)
    tampered["user"] = {"name": "someone.else"}
    stolen = json.loads(json.dumps(doc_a))  # agent of A claims to be B
    stolen["organization"] = json.loads(second.value)["organization"]
    stolen_bytes = json.dumps(stolen).encode()
    impostor = Signer(agent_id_for(org_a), Ed25519PrivateKey.generate())
    cases = [  # (key, value, headers, expected reason or None for accepted)
        (org_a, value_a, signers[org_a].headers(value_a), None),
        (org_a, value_a, impostor.headers(value_a), "bad_signature"),
        (org_a, json.dumps(tampered).encode(), signers[org_a].headers(value_a),
         "bad_signature"),
        (org_b, stolen_bytes, signers[org_a].headers(stolen_bytes), "wrong_establishment"),
        (org_a, value_a, None, "unknown_agent"),
    ]
    before = end_offsets(stack.kafka, EVENTS_RAW.name)
    producer = stack.kafka.producer()
    positions: list[tuple[int, int]] = []
    for key, value, headers, _ in cases:
        producer.produce(EVENTS_RAW.name, key=key.encode(), value=value, headers=headers,
                         on_delivery=lambda err, msg: positions.append(
                             (msg.partition(), msg.offset())))
        producer.flush(30)
    ranges = {p: (lo, end_offsets(stack.kafka, EVENTS_RAW.name)[p])
              for p, lo in before.items()}
    expected = {pos: case[3] for pos, case in zip(positions, cases, strict=True) if case[3]}
    deadline = time.monotonic() + 120
    while True:
        letters = {(d["origin"]["partition"], d["origin"]["offset"]): d["reason"]
                   for d in dead_letters_for_offsets(es, ranges)}
        indexed = event_id_counts(es, [national_id_a])
        if (letters == expected and indexed) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert letters == expected
    assert indexed == {national_id_a: 1}
