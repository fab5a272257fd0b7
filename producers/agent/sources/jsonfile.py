"""Windows events exported as JSON: whole ``.json`` files, or followed ``.jsonl`` files.

Both shapes the exporters write are accepted (``{"Event": {"System": ..., "EventData": ...}}``
as rendered from the XML, and Winlogbeat documents), through :mod:`producers.windows`.
A ``.json`` file is read once (concatenated objects, as the SigmaHQ samples are); a JSON Lines
file is followed as it grows, one document a line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from producers.agent.parse.common import Doc
from producers.agent.parse.windows import windows_doc
from producers.agent.sources.base import Context
from producers.agent.sources.evtx import WindowsFileSource
from producers.agent.sources.lines import LineFileSource, LineParseError, LineParser
from producers.windows.normalize import NotAWindowsRecord, to_windows_event


def _refuse_constant(name: str) -> Any:
    raise LineParseError("non_finite_number", f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400: a float no event field holds
        raise LineParseError("non_finite_number", f"{text[:40]} overflows a float")
    return number


def load_record(line: bytes) -> Any:
    """One JSON value, strictly: ``NaN``/``Infinity`` (which Python's ``json`` accepts, and
    which then left the agent as ``null``) and numbers that overflow a float are refused, as
    is a nesting too deep for the parser (``too_deep``) and bytes that are not UTF-8."""
    try:
        return json.loads(line, parse_constant=_refuse_constant, parse_float=_finite)
    except LineParseError:
        raise
    except RecursionError:
        raise LineParseError("too_deep", "JSON nested deeper than the parser's limit") from None
    except UnicodeDecodeError as exc:
        raise LineParseError("invalid_utf8", str(exc)) from None
    except ValueError as exc:
        raise LineParseError("invalid_json", str(exc)) from None


def jsonl_parser(ctx: Context, path: Path) -> LineParser:
    """The parser of one followed JSON Lines file: a Winlogbeat or XML-JSON record a line."""
    def parse(line: bytes, eid: str) -> Doc:
        value = load_record(line)
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
                *, from_end: bool = False, max_record_bytes: int | None = None
                ) -> WindowsFileSource | LineFileSource:
    """A followed JSON Lines file for one ``.jsonl``/``.ndjson`` path, else whole files."""
    if len(paths) == 1 and Path(paths[0]).suffix.lower() in (".jsonl", ".ndjson") \
            and not any(c in paths[0] for c in "*?["):
        path = Path(paths[0])
        return LineFileSource(name, path, jsonl_parser(ctx, path), ctx, position,
                              from_end=from_end, max_record_bytes=max_record_bytes)
    return WindowsFileSource(name, paths, ctx, position)
