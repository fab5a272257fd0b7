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


def as_number(value: Any) -> int | float | None:
    """Event values arrive as numbers or as text (``"4688"``, ``"0x1410"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 0) if text[:2].lower() in ("0x", "0o", "0b") else int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return None
    return None


_ABSENT = object()


class EventView:
    """Lazily resolved, memoised field values of one event.

    Most Sigma fields are plain ``winlog.event_data`` names holding one string; those take
    a fast path (one dict lookup, one ``str.lower``) instead of the field map's general
    resolver, because the prefilter asks for a dozen of them on every event. The general
    resolver still answers everything else (absent names fall through to the user-data,
    audit-alias and ECS paths in the field map's order).
    """

    __slots__ = (
        "_blob",
        "_data",
        "_fieldmap",
                "_numbers",
        "_raw",
        "_text",
        "_user",
        "event",
        "lowered",
    )

    def __init__(self, event: Mapping[str, Any], fieldmap: FieldMap) -> None:
        self.event = event
        self._fieldmap = fieldmap
        self._raw: dict[str | None, tuple[Any, ...]] = {}
        self._text: dict[str | None, tuple[str, ...]] = {}
        #: field → its lower-cased values, public so that the rules' hot closures can read it
        #: without a method call (``lower`` fills it)
        self.lowered: dict[str | None, tuple[str, ...]] = {}
        self._numbers: dict[str | None, tuple[int | float, ...]] = {}
        self._blob: str | None = None
        winlog = event.get("winlog")
        if type(winlog) is dict:
            data = winlog.get("event_data")
            self._data: dict[str, Any] | None = data if type(data) is dict else None
            self._user = winlog.get("user_data") is not None
        else:
            self._data, self._user = None, True

    def _direct(self, field: str | None) -> tuple[Any, ...] | None:
        """The values read straight from ``event_data`` when that gives the resolver's
        answer: a string there, or the field absent with nowhere else to look for it."""
        data = self._data
        if data is None or field is None:
            return None
        value = data.get(field, _ABSENT)
        if type(value) is str:
            return (value,) if self._fieldmap.is_data_name(field) else None
        if value is _ABSENT and not self._user and self._absent(field):
            return ()
        return None

    def _absent(self, field: str | None) -> bool:
        """For a field missing from ``event_data`` in an event without ``user_data``: whether
        its other paths are missing too (``FieldMap.elsewhere``), so that it is absent."""
        where = self._fieldmap.elsewhere(field)
        if where is None:
            return False
        aliases, roots = where
        data, event = self._data, self.event
        if data is not None:
            for key in aliases:
                if key in data:
                    return False
        for root in roots:  # noqa: SIM110 - hot path, no generator
            if root in event:
                return False
        return True

    def raw(self, field: str | None) -> tuple[Any, ...]:
        """Values as stored in the event (``()`` when the field is absent)."""
        values = self._raw.get(field)
        if values is None:
            values = self._direct(field)
            if values is None:
                values = self._fieldmap.resolver(field)(self.event)
            self._raw[field] = values
        return values

    def text(self, field: str | None) -> tuple[str, ...]:
        """Non-null values as strings, case kept (for ``re`` and ``cased``)."""
        values = self._text.get(field)
        if values is None:
            data = self._data
            # A plain EventData string: the raw value is the text (no raw cache to fill).
            value = data.get(field) if data is not None and field is not None else None
            if type(value) is str and (
                self._fieldmap.data_names.get(field) or self._fieldmap.is_data_name(field)
            ):
                values = self._text[field] = (value,)
                return values
            raw = self.raw(field)
            if len(raw) == 1 and type(raw[0]) is str:
                values = raw
            else:
                values = tuple(t for t in map(to_text, raw) if t is not None)
            self._text[field] = values
        return values

    def numbers(self, field: str | None) -> tuple[int | float, ...]:
        """Values read as numbers (``"0x3"`` is 3), those that are not left out: the
        ``LogonType: 10`` rules of one event share one parse."""
        values = self._numbers.get(field)
        if values is None:
            raw = self.raw(field)
            if len(raw) == 1:
                number = as_number(raw[0])
                values = () if number is None else (number,)
            else:
                values = tuple(n for n in map(as_number, raw) if n is not None)
            self._numbers[field] = values
        return values

    def lower(self, field: str | None) -> tuple[str, ...]:
        """Non-null values lower-cased: Sigma strings match case-insensitively."""
        values = self.lowered.get(field)
        if values is None:
            data = self._data
            # The prefilter's common case, without filling the raw and text caches.
            value = data.get(field, _ABSENT) if data is not None and field is not None else None
            if type(value) is str and (
                self._fieldmap.data_names.get(field) or self._fieldmap.is_data_name(field)
            ):
                values = (value.lower(),)
            elif value is _ABSENT and not self._user and self._absent(field):
                values = ()
            else:
                text = self.text(field)
                values = (
                    (text[0].lower(),) if len(text) == 1 else tuple(t.lower() for t in text)
                )
            self.lowered[field] = values
        return values

    def keyword_text(self) -> str:
        """Every keyword-scope value, lower-cased, joined by NUL: what the prefilter searches
        for unkeyed literals (one ``lower`` call on the whole text instead of one per value)."""
        blob = self._blob
        if blob is None:
            lowered = self.lowered.get(None)
            data = self._data
            # Usual case: the keyword scope is just a flat EventData of scalars (no UserData,
            # no message), joined straight from the dict, in the resolver's order.
            if (
                lowered is None
                and data is not None
                and not self._user
                and self.event.get("message") is None
            ):
                parts: list[str] = []
                for value in data.values():
                    if type(value) is str:
                        parts.append(value)
                    elif value is not None:  # nulls are not keyword values
                        text = to_text(value)
                        if text is None:  # nested: left to the resolver's flattening
                            break
                        parts.append(text)
                else:
                    blob = "\x00".join(parts).lower()
                    self._blob = blob
                    return blob
            if lowered is not None:
                blob = "\x00".join(lowered)
            else:
                blob = "\x00".join(self.text(None)).lower()
            self._blob = blob
        return blob

    @property
    def event_data(self) -> dict[str, Any] | None:
        """``winlog.event_data`` when it is a dict (what the fast paths read), else ``None``."""
        return self._data

    @property
    def has_user_data(self) -> bool:
        """Whether fields absent from ``event_data`` may still be found (in ``user_data``, or
        anywhere when there is no ``winlog`` dict)."""
        return self._user
