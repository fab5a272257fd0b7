"""Readers for Windows event files: ``.evtx``, exported ``.json`` and ``.jsonl``/``.ndjson``.

Each yields ``(record_index, WindowsEvent)``, the index being the record's position in the
file (0-based), so that a detection points back at its record and a replay is idempotent.
A record that cannot be read is reported to ``on_error(index, reason)``; without a callback
it raises ``RecordError`` — never a silent skip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from evtx import PyEvtxParser
from orjson import loads as _loads

from producers.windows.normalize import NotAWindowsRecord, WindowsEvent, to_windows_event
from runtime.errors import DataError

ErrorCallback = Callable[[int, str], None]


class RecordError(DataError, ValueError):
    """One record of a file could not be turned into a Windows event."""

    def __init__(self, path: Path, index: int, reason: str) -> None:
        super().__init__(reason, source=f"{path}: record {index}")
        self.path = path
        self.index = index
        self.reason = reason


def _report(
    path: str | Path, index: int, reason: str, on_error: ErrorCallback | None
) -> None:
    if on_error is None:
        raise RecordError(Path(path), index, reason)
    on_error(index, reason)


def _normalised(
    path: Path, items: Iterator[tuple[int, Any]], on_error: ErrorCallback | None
) -> Iterator[tuple[int, WindowsEvent]]:
    for index, item in items:
        if not isinstance(item, dict):
            _report(path, index, f"expected a JSON object, got {type(item).__name__}", on_error)
            continue
        try:
            yield index, to_windows_event(item)
        except NotAWindowsRecord as error:
            _report(path, index, str(error), on_error)


def iter_json_values(text: str) -> Iterator[Any]:
    """One or several JSON values one after the other (exports concatenate objects; a single
    top-level array is unpacked). JSON Lines is a special case of this."""
    decoder = json.JSONDecoder()
    position, end = 0, len(text)
    while True:
        while position < end and text[position].isspace():
            position += 1
        if position >= end:
            return
        value, position = decoder.raw_decode(text, position)
        if isinstance(value, list):
            yield from value
        else:
            yield value


def read_json(
    path: str | Path, on_error: ErrorCallback | None = None
) -> Iterator[tuple[int, WindowsEvent]]:
    """Exported JSON: concatenated ``{"Event": ...}`` objects or Winlogbeat documents."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    values: list[Any] = []
    try:
        values.extend(iter_json_values(text))
    except json.JSONDecodeError as error:
        # Everything before the broken value is still delivered; the rest is one error.
        yield from _normalised(path, enumerate(values), on_error)
        _report(path, len(values), f"invalid JSON: {error}", on_error)
        return
    yield from _normalised(path, enumerate(values), on_error)


def read_jsonl(
    path: str | Path, on_error: ErrorCallback | None = None
) -> Iterator[tuple[int, WindowsEvent]]:
    """JSON Lines: one document a line; a bad line costs that line only."""
    path = Path(path)

    def items() -> Iterator[tuple[int, Any]]:
        index = 0
        with path.open(encoding="utf-8-sig") as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    yield index, json.loads(line)
                except json.JSONDecodeError as error:
                    _report(path, index, f"invalid JSON: {error}", on_error)
                index += 1

    yield from _normalised(path, items(), on_error)


def read_evtx(
    path: str | Path, on_error: ErrorCallback | None = None
) -> Iterator[tuple[int, WindowsEvent]]:
    """A Windows event log file, parsed by the ``evtx`` package (records rendered as JSON).

    One parser thread: the package's default starts a thread pool per file, which costs
    more than it saves on the small exports agents and analysts mostly read (one to a few
    chunks), and a stream of files is parallel across files already if it needs to be.

    The rendering is parsed by orjson: half the cost of pydantic-core's parser and a third
    of ``json``'s on these records, with the same values — the renderer writes numbers only
    for the binary XML's integer types (64 bits at most, where orjson and ``json`` agree;
    wider integers would come back as floats) and its reals, and hexadecimal values as text.
    """
    # No ``Path`` object on this path: agents open thousands of small files, and building
    # one cost as much as parsing a record; errors still name the file.
    records = PyEvtxParser(str(path), number_of_threads=1).records_json()
    index = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except RuntimeError as error:  # a corrupt chunk: report it, stop this file
            _report(path, index, f"evtx parse error: {error}", on_error)
            return
        if record is None:  # typed as possible by the package, never seen: an end too
            return
        try:
            item = _loads(record["data"])
        except ValueError as error:  # orjson.JSONDecodeError is a ValueError
            _report(path, index, f"invalid JSON from evtx: {error}", on_error)
        else:
            if type(item) is dict:
                try:
                    yield index, to_windows_event(item)
                except NotAWindowsRecord as error:
                    _report(path, index, str(error), on_error)
            else:
                _report(path, index, f"expected a JSON object, got {type(item).__name__}",
                        on_error)
        index += 1


_READERS: dict[str, Callable[..., Iterator[tuple[int, WindowsEvent]]]] = {
    ".evtx": read_evtx,
    ".json": read_json,
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
}


def read_events(
    path: str | Path, on_error: ErrorCallback | None = None
) -> Iterator[tuple[int, WindowsEvent]]:
    """Pick the reader from the file suffix (JSON is the fallback: it also reads JSON Lines)."""
    reader = _READERS.get(os.path.splitext(path)[1].lower(), read_json)
    return reader(path, on_error)
