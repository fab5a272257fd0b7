"""A followed text file whose lines each become one event (auth.log, CEF, JSON lines)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from producers.agent.follow import FilePosition, Follower, Line
from producers.agent.parse.common import Doc
from producers.agent.sources.base import Context, Source
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
                 position: Any = None, *, from_end: bool = False) -> None:
        self.name = name
        self.path = path
        self.parse = parse
        self.ctx = ctx
        self.follower = Follower(path, FilePosition.from_dict(position), from_end=from_end)

    def event_id(self, line: Line) -> str:
        # The configured path (not the rotated name), the file's inode and truncation
        # generation, and the byte offset: stable across restarts and rotations.
        source = f"file:{self.ctx.agent_id}:{self.path}:{line.ino}:{line.generation}"
        return event_id(self.ctx.establishment_id, source, line.offset)

    def poll(self, max_items: int) -> list[Doc]:
        docs: list[Doc] = []
        for line in self.follower.read(max_items):
            try:
                docs.append(self.parse(line.data, self.event_id(line)))
            except LineParseError as exc:
                self.ctx.report_malformed(self.name, exc.reason, str(exc))
            except ValueError as exc:
                self.ctx.report_malformed(self.name, "unparseable", str(exc))
        return docs

    def position(self) -> Any:
        pos = self.follower.pos
        return pos.as_dict() if pos else None

    def close(self) -> None:
        self.follower.close()
