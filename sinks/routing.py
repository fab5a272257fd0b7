"""Which index and ``_id`` each Kafka record gets.

The ``_id`` is the record's own deterministic id and the monthly index is chosen from the
record's own timestamp, so a replayed record overwrites itself: that is what makes the sink's
at-least-once delivery count as exactly-once in Elasticsearch.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from runtime.errors import DataError
from schemas.indices import INCIDENTS, TOPIC_TO_INDEX
from schemas.topics import EVENTS_CLASSIFIED
from sinks.elasticsearch.bulk import Doc


class Unroutable(DataError):
    """A record the sink cannot place (no id, no timestamp, not JSON)."""


def route(topic: str, value: bytes | None, ref: Any = None) -> Doc:
    family = TOPIC_TO_INDEX.get(topic)
    if family is None:
        raise Unroutable(f"no index for topic {topic}")
    if not value:
        raise Unroutable("empty record")
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise Unroutable(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Unroutable("not a JSON object")
    try:
        doc_id = doc["event"]["id"] if topic == EVENTS_CLASSIFIED.name else doc["id"]
        if not isinstance(doc_id, str) or not doc_id:
            raise TypeError("id is not a string")
        when = datetime.fromisoformat(doc["@timestamp"]) if family.monthly else None
    except (KeyError, TypeError, ValueError) as exc:
        raise Unroutable(f"no usable id or @timestamp: {exc!r}") from None
    index = family.index_for(when) if when else family.index_for(datetime.min)
    version = _version(doc) if family is INCIDENTS else None
    return Doc(index=index, id=doc_id, source=value, ref=ref, version=version)


def _version(doc: dict[str, Any]) -> int:
    """An incident's state version: the upsert keeps the highest one (absent means 1)."""
    version = doc.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise Unroutable(f"incident version is not a non-negative integer: {version!r}")
    return version
