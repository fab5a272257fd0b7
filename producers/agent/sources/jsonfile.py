"""Windows events exported as JSON: whole ``.json`` files, or followed ``.jsonl`` files.

Both shapes the exporters write are accepted (``{"Event": {"System": ..., "EventData": ...}}``
as rendered from the XML, and Winlogbeat documents), through :mod:`producers.windows`.
A ``.json`` file is read once (concatenated objects, as the SigmaHQ samples are); a JSON Lines
file is followed as it grows, one document a line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from producers.agent.parse.common import Doc
from producers.agent.parse.windows import windows_doc
from producers.agent.sources.base import Context
from producers.agent.sources.evtx import WindowsFileSource
from producers.agent.sources.lines import LineFileSource, LineParseError, LineParser
from producers.windows.normalize import NotAWindowsRecord, to_windows_event


def jsonl_parser(ctx: Context, path: Path) -> LineParser:
    """The parser of one followed JSON Lines file: a Winlogbeat or XML-JSON record a line."""
    def parse(line: bytes, eid: str) -> Doc:
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise LineParseError("invalid_json", f"{path}: {exc}") from None
        if not isinstance(value, dict):
            raise LineParseError("not_an_object", f"{path}: {type(value).__name__}")
        try:
            event = to_windows_event(value)
        except NotAWindowsRecord as exc:
            raise LineParseError("not_windows_event", f"{path}: {exc}") from None
        doc = windows_doc(event, establishment_id=ctx.establishment_id,
                          fallback_source="-", fallback_position=0)
        if event["winlog"].get("record_id") is None:
            doc["event"]["id"] = eid
        return doc
    return parse


def json_source(name: str, paths: list[str], ctx: Context, position: Any = None,
                *, from_end: bool = False) -> WindowsFileSource | LineFileSource:
    """A followed JSON Lines file for one ``.jsonl``/``.ndjson`` path, else whole files."""
    if len(paths) == 1 and Path(paths[0]).suffix.lower() in (".jsonl", ".ndjson") \
            and not any(c in paths[0] for c in "*?["):
        path = Path(paths[0])
        return LineFileSource(name, path, jsonl_parser(ctx, path), ctx, position,
                              from_end=from_end)
    return WindowsFileSource(name, paths, ctx, position)
