"""Sigma field names → where the value sits in a normalised Windows event. One place only.

Sigma rules for Windows name the raw XML fields (``Image``, ``CommandLine``, ``EventID``).
Our events keep them Winlogbeat-style under ``winlog.*``, so a Sigma field resolves to the
first of a few paths that exists:

1. the ``System`` fields (``EventID`` → ``winlog.event_id``, ``Channel`` → ``winlog.channel``...);
2. ``winlog.event_data.<Name>``, then ``winlog.user_data.<Name>`` (e.g. WMI-Activity events);
3. Security-audit spellings of the Sysmon names (4688 has ``NewProcessName`` where Sysmon 1
   has ``Image``), because ``process_creation`` rules run on both;
4. a few ECS fields, for events that arrive already mapped (``process.command_line``...).

A dotted field name that is none of the above is read as a path (``winlog.event_data.X``).
Values are flattened to a tuple (lists are OR-ed by Sigma semantics); a field that is absent
resolves to ``()`` and a field that is present but null to ``(None,)`` — ``exists`` and
``null`` tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Path = tuple[str, ...]
Resolver = Callable[[Mapping[str, Any]], tuple[Any, ...]]

#: Sigma field → path of the value in the event (System element fields).
SYSTEM_FIELDS: dict[str, Path] = {
    "EventID": ("winlog", "event_id"),
    "Channel": ("winlog", "channel"),
    "Provider_Name": ("winlog", "provider_name"),
    "Computer": ("winlog", "computer_name"),
    "ComputerName": ("winlog", "computer_name"),
    "EventRecordID": ("winlog", "record_id"),
    "Level": ("winlog", "level"),
    "Task": ("winlog", "task"),
    "Opcode": ("winlog", "opcode"),
}

#: Sysmon names → the Security audit names of the same fact (tried when the Sysmon name is
#: absent; pySigma's windows-audit pipeline does the same renaming for 4688).
AUDIT_ALIASES: dict[str, tuple[str, ...]] = {
    "Image": ("NewProcessName",),
    "ParentImage": ("ParentProcessName",),
}

#: Sigma field → ECS paths, the last resort for events that arrive ECS-mapped.
ECS_FALLBACKS: dict[str, tuple[Path, ...]] = {
    "Image": (("process", "executable"),),
    "CommandLine": (("process", "command_line"),),
    "ProcessId": (("process", "pid"),),
    "ParentImage": (("process", "parent", "executable"),),
    "ParentCommandLine": (("process", "parent", "command_line"),),
    "ParentProcessId": (("process", "parent", "pid"),),
    "OriginalFileName": (("process", "pe", "original_file_name"),),
    "CurrentDirectory": (("process", "working_directory"),),
    "User": (("user", "name"),),
    "TargetFilename": (("file", "path"),),
    "SourceIp": (("source", "ip"),),
    "SourcePort": (("source", "port"),),
    "DestinationIp": (("destination", "ip"),),
    "DestinationPort": (("destination", "port"),),
    "DestinationHostname": (("destination", "domain"),),
    "QueryName": (("dns", "question", "name"),),
}

EVENT_DATA: Path = ("winlog", "event_data")
USER_DATA: Path = ("winlog", "user_data")
#: Where unkeyed Sigma values (keywords) are searched: every data value of the event.
KEYWORD_SCOPE: tuple[Path, ...] = (EVENT_DATA, USER_DATA, ("message",))


def _flatten(value: Any, out: list[Any]) -> None:
    if isinstance(value, list | tuple):
        for item in value:
            _flatten(item, out)
    elif isinstance(value, Mapping):
        for item in value.values():
            _flatten(item, out)
    else:
        out.append(value)


def _lookup(event: Mapping[str, Any], path: Path) -> tuple[bool, Any]:
    node: Any = event
    for key in path:
        # Events are plain dicts: test that first, the Mapping ABC check is much slower.
        if not (type(node) is dict or isinstance(node, Mapping)) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _as_values(value: Any) -> tuple[Any, ...]:
    if type(value) is str:
        return (value,)
    if isinstance(value, list | tuple):
        out: list[Any] = []
        _flatten(value, out)
        return tuple(out)
    return (value,)


def _first_of(paths: Sequence[Path]) -> Resolver:
    if len(paths) == 1:
        only = paths[0]

        def resolve_one(event: Mapping[str, Any]) -> tuple[Any, ...]:
            found, value = _lookup(event, only)
            return _as_values(value) if found else ()

        return resolve_one

    def resolve(event: Mapping[str, Any]) -> tuple[Any, ...]:
        for path in paths:
            found, value = _lookup(event, path)
            if found:
                return _as_values(value)
        return ()

    return resolve


def _data_resolver() -> Resolver:
    """``Data`` in classic-log rules ("Windows PowerShell") means the unnamed EventData
    values, which Winlogbeat names ``param1..N``."""
    named = _first_of([(*EVENT_DATA, "Data"), (*USER_DATA, "Data")])

    def resolve(event: Mapping[str, Any]) -> tuple[Any, ...]:
        values = named(event)
        if values:
            return values
        found, data = _lookup(event, EVENT_DATA)
        if not found or not isinstance(data, Mapping):
            return ()
        params = [v for k, v in data.items() if k.startswith("param") and k[5:].isdigit()]
        return tuple(params)

    return resolve


# Winlogbeat documents may carry the level's name; Sigma rules test the number.
_LEVEL_NUMBERS = {"critical": 1, "error": 2, "warning": 3, "information": 4, "verbose": 5}


def _level_resolver() -> Resolver:
    stored = _first_of([SYSTEM_FIELDS["Level"]])

    def resolve(event: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            _LEVEL_NUMBERS.get(value.lower(), value) if isinstance(value, str) else value
            for value in stored(event)
        )

    return resolve


def _keyword_resolver(event: Mapping[str, Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for path in KEYWORD_SCOPE:
        found, value = _lookup(event, path)
        if not found or value is None:
            continue
        if type(value) is dict:  # the usual flat EventData: no recursion needed
            for item in value.values():
                if type(item) is str:
                    out.append(item)
                else:
                    _flatten(item, out)
        else:
            _flatten(value, out)
    return tuple(out)


_UNKNOWN: Any = object()


class FieldMap:
    """Builds (and caches) one resolver per Sigma field name."""

    KEYWORDS = "\x00keywords"  # pseudo-field of unkeyed values; cannot clash with a real name

    def __init__(self) -> None:
        self._resolvers: dict[str, Resolver] = {self.KEYWORDS: _keyword_resolver}
        #: ``is_data_name``'s answers so far, read directly by ``EventView``'s hot path
        self.data_names: dict[str | None, bool] = {None: False}
        self._data_only: dict[str | None, bool] = {None: False}
        self._elsewhere: dict[str, Any] = {}

    def is_data_name(self, field: str | None) -> bool:
        """Whether ``field`` is read first from ``winlog.event_data.<field>`` by the general
        resolver, so that a value found there directly is the value it would return."""
        known = self.data_names.get(field)
        if known is None:
            assert field is not None
            known = field not in ("Data", "Level") and self.paths(field)[0] == (
                *EVENT_DATA,
                field,
            )
            self.data_names[field] = known
        return known

    def is_data_only(self, field: str | None) -> bool:
        """Whether ``field`` is looked for in ``event_data`` and ``user_data`` only (no audit
        alias, no ECS fallback): absent from both, it is absent, without asking the resolver."""
        known = self._data_only.get(field)
        if known is None:
            assert field is not None
            known = self.is_data_name(field) and self.paths(field) == [
                (*EVENT_DATA, field),
                (*USER_DATA, field),
            ]
            self._data_only[field] = known
        return known

    def elsewhere(self, field: str | None) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """For a field read first from ``event_data``/``user_data``: the other event_data
        keys (audit aliases) and the top-level keys (ECS roots) of its other paths. Absent
        from both data, with none of those keys, the field is absent, without asking the
        resolver. ``None`` when the field has other kinds of paths (System, dotted)."""
        if field is None:
            return None
        known = self._elsewhere.get(field, _UNKNOWN)
        if known is _UNKNOWN:
            known = None
            paths = self.paths(field)
            if self.is_data_name(field) and paths[1] == (*USER_DATA, field):
                rest = paths[2:]
                aliases = tuple(p[2] for p in rest if len(p) == 3 and p[:2] == EVENT_DATA)
                ecs = [p for p in rest if p[:2] != EVENT_DATA]
                if len(aliases) + len(ecs) == len(rest) and all(p[0] != "winlog" for p in ecs):
                    known = (aliases, tuple(sorted({p[0] for p in ecs})))
            self._elsewhere[field] = known
        return known

    def paths(self, field: str) -> list[Path]:
        """Where ``field`` is looked for, in order (documentation and tests read this)."""
        if field in SYSTEM_FIELDS:
            return [SYSTEM_FIELDS[field]]
        if "." in field:
            return [tuple(field.split("."))]
        paths: list[Path] = [(*EVENT_DATA, field), (*USER_DATA, field)]
        paths.extend((*EVENT_DATA, alias) for alias in AUDIT_ALIASES.get(field, ()))
        paths.extend(ECS_FALLBACKS.get(field, ()))
        return paths

    def resolver(self, field: str | None) -> Resolver:
        key = self.KEYWORDS if field is None else field
        resolver = self._resolvers.get(key)
        if resolver is None:
            assert field is not None
            if field == "Data":
                resolver = _data_resolver()
            elif field == "Level":
                resolver = _level_resolver()
            else:
                resolver = _first_of(self.paths(field))
            self._resolvers[key] = resolver
        return resolver

    def values(self, event: Mapping[str, Any], field: str | None) -> tuple[Any, ...]:
        return self.resolver(field)(event)


DEFAULT_FIELDMAP = FieldMap()
