"""CEF files (firewall/EDR exports): followed, one CEF record a line, with or without a
syslog header in front."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.agent.parse.cef import MalformedCef, cef_doc
from producers.agent.parse.common import Doc
from producers.agent.sources.base import Context
from producers.agent.sources.lines import LineFileSource, LineParseError


def cef_line(line: bytes, eid: str, received: datetime | None = None) -> Doc:
    text = line.decode("utf-8", "replace")
    try:
        return cef_doc(text, eid, received or datetime.now(UTC))
    except MalformedCef as exc:
        raise LineParseError(exc.reason, str(exc)) from None


def cef_source(name: str, path: Path, ctx: Context, position: Any = None,
               *, from_end: bool = False,
               max_record_bytes: int | None = None) -> LineFileSource:
    return LineFileSource(name, path, cef_line, ctx, position, from_end=from_end,
                          max_record_bytes=max_record_bytes)
