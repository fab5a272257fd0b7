"""Helpers shared by the agent's parsers: the document type, timestamps, dotted paths.

The typed ECS values that never break the wire schema (``ip_or_none``...) are in
:mod:`producers.ecs_values`, shared with the Windows mapping the simulator also uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Doc = dict[str, Any]


def iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat().replace("+00:00", "Z")


_PARTS: dict[str, list[str]] = {}  # the few dotted paths parsers use, split once


def put(doc: Doc, path: str, value: Any) -> None:
    """Set ``doc[a][b][c] = value`` for ``path`` "a.b.c", skipping empty values."""
    if value is None or value == "" or value == []:
        return
    parts = _PARTS.get(path)
    if parts is None:
        parts = _PARTS[path] = path.split(".")
    for part in parts[:-1]:
        doc = doc.setdefault(part, {})
    doc[parts[-1]] = value


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]
