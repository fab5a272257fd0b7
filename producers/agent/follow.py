"""Following a growing text file, as ``tail -F`` does, with the position kept on disk.

Hand-written: no maintained Python library tails files with a persistent position *and*
handles rotation across restarts (``pygtail`` is unmaintained and loses lines on rotation).

Rules that make it lossless and duplicate-free:

- Only complete lines (ending with ``\\n``) are returned; the position is the byte offset just
  after the last returned line, plus the file's identity (device, inode) and a *generation*
  that increases on each truncation (so ``event.id``s of a rewritten file never collide).
- Rotation by rename (logrotate's default): when the path shows a new inode, the old file is
  read to its end first (the writer may have added lines before reopening), then the new one
  from its start. If the agent was stopped across a rotation, the old file is found again by
  its inode among the siblings (``auth.log.1``), and its rest is read first.
- Truncation (``copytruncate``, ``> file``): a size smaller than the position restarts at 0.
- A last line without ``\\n`` in a rotated-away file is returned (the writer moved on).
- A line longer than ``max_line`` bytes is not cut (its tail would have become a line of its
  own): it is returned once, when its end is found, as an ``oversized`` line holding only its
  first ``head_bytes`` (for the quarantine), and the position moves past all of it. Memory
  stays bounded by ``max_line`` whatever the file holds.
Not covered: rotated files that were compressed before the agent could read their rest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
MAX_LINE = 64 * 1024
#: Bytes of an oversized line kept (for the quarantine file); the rest is skipped.
HEAD_BYTES = 1024


@dataclass
class FilePosition:
    dev: int
    ino: int
    offset: int
    generation: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FilePosition | None:
        if not data:
            return None
        return cls(int(data["dev"]), int(data["ino"]), int(data["offset"]),
                   int(data.get("generation", 0)))


@dataclass(frozen=True)
class Line:
    data: bytes  # without the trailing newline
    ino: int
    generation: int
    offset: int  # where the line starts: its position, for the event id
    after: FilePosition  # where to resume once this line is safely stored
    #: Longer than the follower's ``max_line``: ``data`` is only its head, ``size`` its length
    oversized: bool = False
    size: int = -1


class Follower:
    """Tails one path; ``read(max_lines)`` returns what is new, never blocks."""

    def __init__(self, path: Path, position: FilePosition | None = None, *,
                 from_end: bool = False, max_line: int = MAX_LINE,
                 head_bytes: int = HEAD_BYTES) -> None:
        self.path = path
        self.pos = position
        self.from_end = from_end
        self.max_line = max_line
        self.head_bytes = head_bytes
        self.fh: BinaryIO | None = None
        self.buffer = b""
        #: While inside an oversized line: (its head, bytes of it read so far). The buffer is
        #: empty then; what is read next continues that line.
        self.long: tuple[bytes, int] | None = None
        self.truncations = 0
        self.rotations = 0
        self.long_lines = 0

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def _find_by_inode(self, dev: int, ino: int) -> Path | None:
        try:
            siblings = list(self.path.parent.iterdir())
        except OSError:
            return None
        for candidate in siblings:
            try:
                st = candidate.stat()
            except OSError:
                continue
            if st.st_ino == ino and st.st_dev == dev and candidate.is_file():
                return candidate
        return None

    def _open(self) -> bool:
        """Open the file to read next; False if there is none yet."""
        pos = self.pos
        if pos is not None:
            try:
                st = self.path.stat()
                current = (st.st_dev, st.st_ino)
            except FileNotFoundError:
                current = None
            if current != (pos.dev, pos.ino):
                old = self._find_by_inode(pos.dev, pos.ino)
                if old is not None:  # rotated while we were away: finish it first
                    log.info("%s was rotated while the agent was stopped; reading the rest "
                             "of %s first", self.path, old)
                    self.fh = old.open("rb")
                    self._seek(pos)
                    return True
                if current is not None:
                    log.warning("%s: previous file (inode %d) is gone; reading the new one "
                                "from its start (lines between may be lost)", self.path, pos.ino)
        try:
            self.fh = self.path.open("rb")
        except FileNotFoundError:
            return False
        st = os.fstat(self.fh.fileno())
        if pos is not None and (st.st_dev, st.st_ino) == (pos.dev, pos.ino):
            self._seek(pos)
        else:
            start = st.st_size if (pos is None and self.from_end) else 0
            self.pos = FilePosition(st.st_dev, st.st_ino, start, 0)
            self.fh.seek(start)
        return True

    def _seek(self, pos: FilePosition) -> None:
        assert self.fh is not None
        size = os.fstat(self.fh.fileno()).st_size
        if size < pos.offset:
            self._truncated(size)
        else:
            self.fh.seek(pos.offset)
        self.pos = pos

    def _truncated(self, size: int) -> None:
        assert self.fh is not None and self.pos is not None
        self.truncations += 1
        log.warning("%s was truncated (size %d < position %d): reading again from the start",
                    self.path, size, self.pos.offset)
        self.pos = FilePosition(self.pos.dev, self.pos.ino, 0, self.pos.generation + 1)
        self.buffer = b""
        self.long = None
        self.fh.seek(0)

    def read(self, max_lines: int = 10_000) -> list[Line]:
        if self.fh is None and not self._open():
            return []
        assert self.fh is not None and self.pos is not None
        lines: list[Line] = []
        while len(lines) < max_lines:
            chunk = self.fh.read(CHUNK)
            if chunk:
                self._split(self.buffer + chunk, lines, max_lines)
                continue
            if self._switch_if_rotated(lines):
                continue
            break
        return lines

    def _split(self, data: bytes, lines: list[Line], max_lines: int) -> None:
        """Cut ``data`` (what follows ``self.pos.offset``, or the rest of an oversized line)
        into lines; keep an incomplete last line for the next read."""
        assert self.pos is not None and self.fh is not None
        start = 0
        offset = self.pos.offset
        if self.long is not None:  # inside an oversized line: find its end, keep nothing
            head, seen = self.long
            end = data.find(b"\n")
            if end < 0:
                self.long = (head, seen + len(data))
                self.buffer = b""
                return
            self._emit_oversized(head, offset, seen + end, lines)
            offset = self.pos.offset
            start = end + 1
            self.long = None
        while len(lines) < max_lines:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if end - start > self.max_line:
                self._emit_oversized(data[start:start + self.head_bytes], offset, end - start,
                                     lines)
            else:
                self._emit(data[start:end], offset, offset + end + 1 - start, lines)
            offset += end + 1 - start
            start = end + 1
        rest = data[start:]
        if len(lines) >= max_lines and rest:
            # Give back what we did not consume; it is read again next time.
            self.fh.seek(offset)
            rest = b""
        elif len(rest) > self.max_line:
            self.long = (rest[:self.head_bytes], len(rest))
            rest = b""
        self.buffer = rest

    def _emit_oversized(self, head: bytes, offset: int, length: int,
                        lines: list[Line]) -> None:
        """A line of ``length`` bytes (without its newline) starting at ``offset``."""
        assert self.pos is not None
        self.long_lines += 1
        log.warning("%s: line of %d bytes at offset %d is longer than %d: refused as "
                    "oversized", self.path, length, offset, self.max_line)
        self.pos = FilePosition(self.pos.dev, self.pos.ino, offset + length + 1,
                                self.pos.generation)
        lines.append(Line(head, self.pos.ino, self.pos.generation, offset, self.pos,
                          oversized=True, size=length))

    def _emit(self, data: bytes, offset: int, after: int, lines: list[Line]) -> None:
        assert self.pos is not None
        if data.endswith(b"\r"):
            data = data[:-1]
        self.pos = FilePosition(self.pos.dev, self.pos.ino, after, self.pos.generation)
        if data.strip():
            lines.append(Line(data, self.pos.ino, self.pos.generation, offset, self.pos,
                              size=len(data)))

    def _switch_if_rotated(self, lines: list[Line]) -> bool:
        """At end of file: follow a rotation or a truncation. True if there is more to read."""
        assert self.fh is not None and self.pos is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False  # rotated, new file not created yet: keep the old one
        own = os.fstat(self.fh.fileno())
        if (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino):
            if self.long is not None:  # the writer moved on, in the middle of a long line
                head, seen = self.long
                self._emit_oversized(head, self.pos.offset, seen, lines)
                self.long = None
            elif self.buffer:  # the writer moved on: its last line will not be completed
                self._emit(self.buffer, self.pos.offset, self.pos.offset + len(self.buffer),
                           lines)
                self.buffer = b""
            self.rotations += 1
            log.info("%s rotated: now reading the new file from its start", self.path)
            self.fh.close()
            self.fh = self.path.open("rb")
            new = os.fstat(self.fh.fileno())
            self.pos = FilePosition(new.st_dev, new.st_ino, 0, 0)
            return True
        pending = len(self.buffer) + (self.long[1] if self.long is not None else 0)
        if own.st_size < self.pos.offset + pending:
            self._truncated(own.st_size)
            return True
        return False
