"""One event as the rules see it: field values resolved once, shared by every rule.

Thousands of rules ask for the same few fields (``Image``, ``CommandLine``); resolving and
lower-casing them once per event, not once per rule, is the main work sharing of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.detection.fieldmap import FieldMap


def to_text(value: Any) -> str | None:
    """The string form a Sigma string value is compared with (``None`` when there is none)."""
    if type(value) is str:  # the common case, without the isinstance chain
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


class EventView:
    """Lazily resolved, memoised field values of one event."""

    __slots__ = ("_fieldmap", "_lower", "_raw", "_text", "event")

    def __init__(self, event: Mapping[str, Any], fieldmap: FieldMap) -> None:
        self.event = event
        self._fieldmap = fieldmap
        self._raw: dict[str | None, tuple[Any, ...]] = {}
        self._text: dict[str | None, tuple[str, ...]] = {}
        self._lower: dict[str | None, tuple[str, ...]] = {}

    def raw(self, field: str | None) -> tuple[Any, ...]:
        """Values as stored in the event (``()`` when the field is absent)."""
        values = self._raw.get(field)
        if values is None:
            values = self._fieldmap.resolver(field)(self.event)
            self._raw[field] = values
        return values

    def text(self, field: str | None) -> tuple[str, ...]:
        """Non-null values as strings, case kept (for ``re`` and ``cased``)."""
        values = self._text.get(field)
        if values is None:
            values = tuple(t for t in map(to_text, self.raw(field)) if t is not None)
            self._text[field] = values
        return values

    def lower(self, field: str | None) -> tuple[str, ...]:
        """Non-null values lower-cased: Sigma strings match case-insensitively."""
        values = self._lower.get(field)
        if values is None:
            values = tuple(t.lower() for t in self.text(field))
            self._lower[field] = values
        return values
