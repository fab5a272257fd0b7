"""Normalise Windows records into the Winlogbeat shape (``winlog.*`` + ``@timestamp``).

Two inputs exist in the wild: the XML rendered as JSON (``{"Event": {"System": ...,
"EventData": ...}}``, what the ``evtx`` parser and most exporters give) and documents
already shipped by Winlogbeat. Both end as one plain nested dict, because the shared
``SecurityEvent.winlog`` model and the Sigma field map read exactly these keys; EventData
names are kept as the XML spells them (``Image``, ``CommandLine``...) since Sigma rules use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, TypeGuard

from runtime.errors import DataError


class RawWinlog(TypedDict, total=False):
    """The ``winlog`` object, keyed as Winlogbeat keys it."""

    channel: str
    event_id: int
    provider_name: str | None
    computer_name: str | None
    record_id: int | None
    event_data: dict[str, Any]
    user_data: dict[str, Any] | None
    task: str | None
    opcode: str | None
    level: str | None


WindowsEvent = dict[str, Any]
"""A plain nested dict: ``{"@timestamp": ..., "winlog": RawWinlog, "event": ..., "host": ...}``.

Kept a dict (not a class) so that the pipeline can validate it into ``SecurityEvent`` later
and the engine can evaluate it without any conversion."""

_ATTRIBUTES = "#attributes"
_TEXT = "#text"


#: Types a JSON parser gives that are not mappings: answered without the ``Mapping`` ABC check.
_NOT_MAPS = frozenset({str, int, float, bool, list, type(None)})


def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, with the plain-JSON cases first: the ABC check is
    several times slower and would run for most elements of every record."""
    kind = type(value)
    return kind is dict or (kind not in _NOT_MAPS and isinstance(value, Mapping))


class NotAWindowsRecord(DataError, ValueError):
    """The input is not a Windows event in any shape this module knows."""


def _text(value: Any) -> Any:
    """XML elements with attributes render as ``{"#attributes": ..., "#text": v}``: keep v."""
    if type(value) is str or value is None:  # most values
        return value
    if _is_map(value):
        if _TEXT in value:
            return value[_TEXT]
        if set(value) <= {_ATTRIBUTES}:
            return None
    return value


def _as_int(value: Any) -> int | None:
    value = _text(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(str(value), 0)
        except ValueError:
            return None


def _as_keyword(value: Any) -> str | None:
    value = _text(value)
    return None if value is None else str(value)


def _attribute(element: Any, name: str) -> Any:
    if _is_map(element):
        attributes = element.get(_ATTRIBUTES)
        if _is_map(attributes):
            return attributes.get(name)
    return None


def _strip_attributes(data: Mapping[str, Any]) -> dict[str, Any]:
    # ``_text`` inlined for plain strings, most values: a call per value shows per record
    return {key: value if type(value) is str else _text(value)
            for key, value in data.items() if key != _ATTRIBUTES}


def _event_data(raw: Any) -> dict[str, Any]:
    """EventData with named ``Data`` elements keeps the names; unnamed ones become
    ``param1..N`` as Winlogbeat does (classic logs such as "Windows PowerShell")."""
    if not _is_map(raw):
        return {}
    data = _strip_attributes(raw)
    unnamed = data.get("Data")
    if unnamed is not None and (isinstance(unnamed, list) or len(data) == 1):
        values = unnamed if isinstance(unnamed, list) else [unnamed]
        data.pop("Data")
        for position, value in enumerate(values, start=1):
            data[f"param{position}"] = _text(value)
    return data


def _user_data(raw: Any) -> dict[str, Any] | None:
    """UserData wraps its fields in one provider-specific element; Winlogbeat flattens it and
    records the element's name as ``xml_name``."""
    if not _is_map(raw):
        return None
    elements = [(key, value) for key, value in raw.items() if key != _ATTRIBUTES]
    if len(elements) == 1 and _is_map(elements[0][1]):
        name, inner = elements[0]
        return {"xml_name": name, **_strip_attributes(inner)}
    return _strip_attributes(raw)


def _timestamp(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.endswith(" UTC"):
        text = text[: -len(" UTC")].rstrip("Z") + "Z"
    return text


def from_xml_json(record: Mapping[str, Any]) -> WindowsEvent:
    """Normalise the JSON rendering of one Windows event XML (``{"Event": {...}}``)."""
    event = record.get("Event", record)
    if not _is_map(event) or not _is_map(event.get("System")):
        raise NotAWindowsRecord("no Event.System element")
    system = event["System"]
    channel = _as_keyword(system.get("Channel"))
    event_id = _as_int(system.get("EventID"))
    if channel is None or event_id is None:
        raise NotAWindowsRecord("System.Channel or System.EventID missing")
    provider = _attribute(system.get("Provider"), "Name")
    winlog: RawWinlog = {
        "channel": channel,
        "event_id": event_id,
        "provider_name": None if provider is None else str(provider),
        "computer_name": _as_keyword(system.get("Computer")),
        "record_id": _as_int(system.get("EventRecordID")),
        "event_data": _event_data(event.get("EventData")),
        "user_data": _user_data(event.get("UserData")),
        "task": _as_keyword(system.get("Task")),
        "opcode": _as_keyword(system.get("Opcode")),
        # Level, Task and Opcode stay the raw numbers (as text): Sigma rules test ``Level: 4``.
        "level": _as_keyword(system.get("Level")),
    }
    return _with_ecs(winlog, _timestamp(_attribute(system.get("TimeCreated"), "SystemTime")))


def from_winlogbeat(document: Mapping[str, Any]) -> WindowsEvent:
    """Normalise a Winlogbeat document: its ``winlog`` keys are already right, only the
    types drift (Winlogbeat ships ``event_id`` as a string)."""
    raw = document.get("winlog")
    if not _is_map(raw):
        raise NotAWindowsRecord("no winlog object")
    channel = _as_keyword(raw.get("channel"))
    event_id = _as_int(raw.get("event_id"))
    if event_id is None:
        event_id = _as_int((document.get("event") or {}).get("code"))
    if channel is None or event_id is None:
        raise NotAWindowsRecord("winlog.channel or winlog.event_id missing")
    event_data = raw.get("event_data")
    user_data = raw.get("user_data")
    winlog: RawWinlog = {
        "channel": channel,
        "event_id": event_id,
        "provider_name": _as_keyword(raw.get("provider_name")),
        "computer_name": _as_keyword(raw.get("computer_name")),
        "record_id": _as_int(raw.get("record_id")),
        "event_data": dict(event_data) if _is_map(event_data) else {},
        "user_data": dict(user_data) if _is_map(user_data) else None,
        "task": _as_keyword(raw.get("task")),
        "opcode": _as_keyword(raw.get("opcode")),
        "level": _as_keyword(raw.get("level")),
    }
    normalised = _with_ecs(winlog, _timestamp(document.get("@timestamp")))
    # ECS fields Winlogbeat (or its ingest pipeline) already filled stay available: the
    # field map may fall back on them (process.command_line...).
    for key, value in document.items():
        if key not in normalised and key != "winlog":
            normalised[key] = value
    return normalised


def to_windows_event(document: Mapping[str, Any]) -> WindowsEvent:
    """Either shape in, the normalised shape out."""
    if "winlog" in document:
        return from_winlogbeat(document)
    return from_xml_json(document)


def _with_ecs(winlog: RawWinlog, timestamp: str | None) -> WindowsEvent:
    event: WindowsEvent = {"@timestamp": timestamp, "winlog": winlog}
    event["event"] = {"code": str(winlog["event_id"]), "provider": winlog.get("provider_name")}
    if winlog.get("computer_name"):
        event["host"] = {"name": winlog["computer_name"]}
    return event
