"""A followed text file whose lines each become one event (auth.log, CEF, JSON lines).

No line stops the source: a line the parser refuses, a line longer than the context's
``max_record_bytes``, and any exception a parser raises on a line are counted as malformed
and quarantined (with the file, inode and offset), and the position moves past the line, so
a restart does not read it again (issue 13: a bad line crash-looped the agent).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from producers.agent.follow import FilePosition, Follower, Line
from producers.agent.parse.common import Doc
from producers.agent.sources.base import Context, Source, reason_of
from runtime.errors import DataError
from schemas.identity import event_id


class LineParseError(DataError, ValueError):
    """A line of a followed file that is not an event; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


LineParser = Callable[[bytes, str], Doc]
"""(line bytes, event id) → document; raises LineParseError (or ValueError)."""


class LineFileSource(Source):
    def __init__(self, name: str, path: Path, parse: LineParser, ctx: Context,
                 position: Any = None, *, from_end: bool = False,
                 max_record_bytes: int | None = None) -> None:
        self.name = name
        self.path = path
        self.parse = parse
        self.ctx = ctx
        self.follower = Follower(path, FilePosition.from_dict(position), from_end=from_end,
                                 max_line=max_record_bytes or ctx.max_record_bytes)

    def event_id(self, line: Line) -> str:
        # The configured path (not the rotated name), the file's inode and truncation
        # generation, and the byte offset: stable across restarts and rotations.
        source = f"file:{self.ctx.agent_id}:{self.path}:{line.ino}:{line.generation}"
        return event_id(self.ctx.establishment_id, source, line.offset)

    def poll(self, max_items: int) -> list[Doc]:
        docs: list[Doc] = []
        for line in self.follower.read(max_items):
            if line.oversized:
                self._refuse(line, "oversized", f"line of {line.size} bytes (max "
                             f"{self.follower.max_line})")
                continue
            try:
                docs.append(self.parse(line.data, self.event_id(line)))
            except Exception as exc:  # any parser failure costs this line only
                self._refuse(line, reason_of(exc), f"{type(exc).__name__}: {exc}")
        return docs

    def _refuse(self, line: Line, reason: str, detail: str) -> None:
        self.ctx.report_malformed(
            self.name, reason, f"{self.path} offset {line.offset}: {detail}", data=line.data,
            size=line.size if line.size >= 0 else None,
            position={"file": str(self.path), "inode": line.ino, "offset": line.offset})

    def position(self) -> Any:
        pos = self.follower.pos
        return pos.as_dict() if pos else None

    def close(self) -> None:
        self.follower.close()
