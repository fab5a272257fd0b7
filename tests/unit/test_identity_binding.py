"""Ids are bound to the establishment the processor verified: an establishment reusing
another's ``event.id`` gets documents and detections of its own, never the other's."""

from __future__ import annotations

import json
from datetime import timedelta

from processors.classify import Classified, ClassifyStage, PassThrough, bind_identity
from processors.validate import Coordinates, Validator
from producers.simulator.simulation import Simulation
from schemas.identity import detection_id, national_event_id
from schemas.organization import Organization
from schemas.topics import EVENTS_CLASSIFIED
from sinks.routing import route


def test_an_event_id_reused_by_another_establishment_routes_elsewhere(
        registry: list[Organization], simulation: Simulation) -> None:
    stage = ClassifyStage(Validator({o.id: o for o in registry}, timedelta(minutes=5)),
                          PassThrough())
    victim = next(r for r in simulation if r.event_id)
    agent_event_id = victim.event_id
    assert agent_event_id is not None
    b, a = victim.key.decode(), next(o.id for o in registry if o.id != victim.key.decode())
    forged = json.loads(victim.value)
    forged["organization"]["id"] = a  # an event of A's reusing B's event.id (signatures: see
    # tests/integration/test_identity_binding.py, with A's own agent signing it)
    docs = {}
    for org, value in ((b, victim.value), (a, json.dumps(forged).encode())):
        [result] = stage.handle(value, Coordinates("events.raw", 0, 1, org.encode())).results
        assert isinstance(result, Classified)
        assert result.verdict.event.vigie and \
            result.verdict.event.vigie.agent_event_id == agent_event_id
        docs[org] = route(EVENTS_CLASSIFIED.name, result.verdict.event.to_json_bytes())
    assert docs[b].id == national_event_id(b, agent_event_id) == victim.document_id
    assert docs[a].id == national_event_id(a, agent_event_id) != docs[b].id


def test_ids_are_deterministic_and_name_the_establishment() -> None:
    assert national_event_id("750000001", "e" * 32) == national_event_id("750000001", "e" * 32)
    assert national_event_id("750000001", "e" * 32) != national_event_id("750000002", "e" * 32)
    assert detection_id("750000001", "rule", "e" * 32) != detection_id("750000002", "rule",
                                                                        "e" * 32)


def test_binding_keeps_everything_but_the_id(simulation: Simulation,
                                             registry: list[Organization]) -> None:
    record = next(r for r in simulation if r.event_id)
    event = Validator({o.id: o for o in registry}, timedelta(minutes=5)).validate(
        record.value, record.key)
    bound = bind_identity(event)
    assert bound.event.id == record.document_id
    assert bound.model_dump(exclude={"event": {"id"}, "vigie": True}) == \
        event.model_dump(exclude={"event": {"id"}, "vigie": True})
