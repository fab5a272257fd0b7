"""The processor writes the classified event from its parsed JSON, not from the model
(``processors.classify.Document``): it must be the very document the model would write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from processors.classify import Document, bind_identity
from processors.validate import Validator
from producers.simulator.simulation import Simulation
from schemas.event import Classification, SecurityEvent
from schemas.organization import Organization
from schemas.taxonomy import Category

DETECTION_IDS = ["0" * 31 + "1", "f" * 32]


def _reference(event: SecurityEvent, category: Category | None,
               ids: list[str]) -> SecurityEvent:
    """What the processor published before: model copies, then the model's serialisation."""
    bound = bind_identity(event)
    assert bound.vigie is not None
    return bound.model_copy(update={"vigie": Classification(
        agent_event_id=bound.vigie.agent_event_id, category=category, detection_ids=ids)})


def _same(validator: Validator, raw: bytes, category: Category | None, ids: list[str]) -> None:
    event = validator.validate(raw, None)
    fast = Document(event, orjson.loads(raw)).finish(category, ids)
    published = SecurityEvent.model_validate_json(fast)  # valid on the wire, strictly
    assert published.event.ingested is not None
    assert published.model_copy(update={"event": published.event.model_copy(
        update={"ingested": None})}) == _reference(event, category, ids)


def test_every_simulated_event_is_published_as_the_model_would(
        registry: list[Organization], simulation: Simulation) -> None:
    validator = Validator({o.id: o for o in registry}, timedelta(days=3650))
    checked = 0
    for n, record in enumerate(simulation):
        if record.event_id is None:  # the simulator's malformed records
            continue
        category = list(Category)[n % len(Category)] if n % 3 else None
        _same(validator, record.value, category, DETECTION_IDS if n % 2 else [])
        checked += 1
    assert checked > 100


def test_nulls_defaults_and_foreign_organisation_fields(registry: list[Organization],
                                                        simulation: Simulation) -> None:
    """The agent's own nulls are dropped (the model's ``exclude_none``), defaults it left
    out are written, and the organisation is the registry's, whatever the agent claimed."""
    validator = Validator({o.id: o for o in registry}, timedelta(days=3650))
    record = next(r for r in simulation if r.event_id and b'"winlog"' in r.value)
    doc: dict[str, Any] = json.loads(record.value)
    doc["event"].pop("kind", None)
    doc["event"]["outcome"] = None
    doc["organization"]["name"] = "claimed by the agent"
    doc["agent"] = {"id": "agent-1"}  # no type: the model's default applies
    doc["host"] = {"name": "PC-1", "ip": ["FE80::1", "10.0.0.1"]}
    doc["winlog"]["event_data"]["Empty"] = None  # the agent's data: kept as sent
    raw = json.dumps(doc).encode()
    _same(validator, raw, None, [])
    out = orjson.loads(Document(validator.validate(raw, None), doc).finish())
    assert out["event"]["kind"] == "event" and out["agent"]["type"] == "vigie-agent"
    assert "outcome" not in out["event"]
    assert out["organization"]["name"] != "claimed by the agent"
    assert out["winlog"]["event_data"]["Empty"] is None
    assert datetime.fromisoformat(out["event"]["ingested"]) <= datetime.now(UTC)
