"""JSON Schema export, for agent authors who do not write Python."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.alert import Alert
from schemas.deadletter import DeadLetter
from schemas.detection import Detection
from schemas.envelope import EnvelopeHeader
from schemas.event import SecurityEvent
from schemas.incident import Incident
from schemas.organization import Organization

WIRE_MODELS: dict[str, type[BaseModel]] = {
    "security-event": SecurityEvent,
    "envelope-header": EnvelopeHeader,
    "detection": Detection,
    "incident": Incident,
    "alert": Alert,
    "dead-letter": DeadLetter,
    "organization": Organization,
}


def export_json_schemas(directory: Path) -> list[Path]:
    """Write one ``<name>.schema.json`` per wire model (validation mode, ECS aliases)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in WIRE_MODELS.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://vigie.sante.gouv.fr/schemas/v1/{name}.schema.json"
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
