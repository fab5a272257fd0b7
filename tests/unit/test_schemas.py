"""Wire formats: names spelled once, JSON Schemas exported, limits enforced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime.registry import RegistryError, load_registry, write_registry
from schemas import indices, topics
from schemas.export import WIRE_MODELS, export_json_schemas
from schemas.organization import Organization


def test_contract_names() -> None:
    assert [t.name for t in topics.ALL_TOPICS] == [
        "events.raw", "events.classified", "detections", "incidents", "alerts", "events.dlq",
        "vigie.incident-ticks", "vigie.indicators",
        "vigie.correlation-inputs", "vigie.agent-progress", "vigie.agents",
        "vigie.agents.audit", "vigie.agents.simulated", "vigie.enrolment-tokens"]
    assert [f.alias for f in indices.ALL_FAMILIES] == [
        "vigie-events", "vigie-detections", "vigie-incidents", "vigie-alerts", "vigie-dlq"]
    assert topics.INCIDENTS.config["cleanup.policy"] == "compact"


def test_export_writes_valid_json_schemas(tmp_path: Path) -> None:
    written = export_json_schemas(tmp_path)
    assert len(written) == len(WIRE_MODELS)
    event = json.loads((tmp_path / "security-event.schema.json").read_text())
    assert "@timestamp" in event["properties"]
    assert event["additionalProperties"] is False


@pytest.mark.parametrize("finess", ["75000000", "7500000011", "ABC000001", "2C0000001"])
def test_finess_shape(finess: str) -> None:
    with pytest.raises(ValidationError):
        Organization(id=finess, name="x", type="hospital", region="corse")


def test_registry_round_trip_and_errors(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "reg.jsonl"
    assert write_registry(path, registry) == len(registry)
    assert load_registry(path) == {o.id: o for o in registry}
    with pytest.raises(RegistryError, match="vigie registry generate"):
        load_registry(tmp_path / "missing.jsonl")
    path.write_text('{"id": "bad"}\n')
    with pytest.raises(RegistryError, match=":1:"):
        load_registry(path)
