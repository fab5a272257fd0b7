"""Windows ``.evtx`` files (exports, or logs copied off Windows hosts), read with ``evtx``.

Files matching the configured globs are read record by record; the position kept per file is
its identity and the number of records done, so a restart resumes mid-file and a file that
grew (a copied live log) is read from where it stopped. Records are parsed by the shared
:mod:`producers.windows` reader so the agent and the detection engine see the same fields.
"""

from __future__ import annotations

import glob
import os
import stat
import struct
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from producers.agent.parse.common import Doc
from producers.agent.parse.windows import windows_doc
from producers.agent.sources.base import Context, Source, reason_of
from producers.windows import read_events
from producers.windows.normalize import WindowsEvent


def _identity(path: Path | str, regular_only: bool = False) -> dict[str, int] | None:
    """(device, inode, size, mtime) of a file; ``None`` if it is gone (or, with
    ``regular_only``, not a regular file — one ``stat`` answers both)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if regular_only and not stat.S_ISREG(st.st_mode):
        return None
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _literal(pattern: str) -> bool:
    """No wildcard: the pattern names one file, and a ``stat`` answers for it (``glob`` would
    list its directory for the same answer — per file, for agents given many)."""
    return not any(c in pattern for c in "*?[")


_EVTX_MAGIC = b"ElfFile\x00"
_EVTX_HEADER = 4096
_EVTX_CHUNK = 65536
_EVTX_COUNT_END = 44  # the header's chunk count: 2 bytes at offset 42


def evtx_truncation(path: str, size: int) -> str | None:
    """Why an ``.evtx`` file is shorter than its header says (None: it is not, or it is not
    an EVTX file, which the reader reports itself). The file header (4 KiB) counts the
    64 KiB chunks that follow it."""
    if not path.lower().endswith(".evtx"):
        return None
    try:
        # The 44 bytes it needs, through a bare descriptor: a buffered file object and a
        # 4 KiB read cost as much as parsing a record, per file (agents read many small ones).
        fd = os.open(path, os.O_RDONLY)
        try:
            header = os.read(fd, _EVTX_COUNT_END)
        finally:
            os.close(fd)
    except OSError:
        return None
    if not header.startswith(_EVTX_MAGIC):
        return None
    if len(header) < _EVTX_COUNT_END:
        return f"{size} bytes: shorter than the file header"
    chunks = struct.unpack_from("<H", header, 42)[0]
    expected = _EVTX_HEADER + chunks * _EVTX_CHUNK
    if size < expected:
        return (f"{size} bytes, its header announces {chunks} chunk(s) = {expected} bytes: "
                "the records of the missing chunks are lost")
    return None


class WindowsFileSource(Source):
    """``.evtx`` (and, through the same reader, whole ``.json`` exports) matched by globs."""

    def __init__(self, name: str, patterns: list[str], ctx: Context,
                 position: Any = None) -> None:
        self.name = name
        self.patterns = patterns
        self.ctx = ctx
        self.files: dict[str, dict[str, int]] = dict(position or {})
        # (path, its position entry, its records, the event.id fallback for records
        # without a record id): per-file values computed once, not per record
        self._current: tuple[str, dict[str, int], Iterator[tuple[int, WindowsEvent]],
                             str] | None = None
        # (path, identity at scan): paths as str, ``Path`` objects cost per small file
        self._queue: deque[tuple[str, dict[str, int]]] = deque()
        self._scanned = 0.0

    #: Seconds between two scans of the globs for new or grown files.
    rescan_s = 1.0

    def _next_file(self) -> tuple[str, dict[str, int]] | None:
        """The next file to read; globs are scanned at most once per ``rescan_s``."""
        if not self._queue and time.monotonic() - self._scanned >= self.rescan_s:
            self._queue.extend(self._pending())
            self._scanned = time.monotonic()
        return self._queue.popleft() if self._queue else None

    def _pending(self) -> Iterator[tuple[str, dict[str, int]]]:
        """Files new or changed since we finished them, with the identity seen now: one
        ``stat`` per file per scan, and none while reading it."""
        for pattern in self.patterns:
            pattern = os.path.expanduser(pattern)
            matches = ([pattern] if _literal(pattern)
                       else sorted(glob.glob(pattern, recursive=True)))
            for match in matches:
                ident = _identity(match, regular_only=True)
                if ident is None:
                    continue
                done = self.files.get(match)
                if done and all(done.get(k) == ident[k] for k in ident):
                    continue  # unchanged since we finished it
                yield match, ident

    def _open(self, path: str, ident: dict[str, int]) -> Iterator[tuple[int, WindowsEvent]]:
        """The records of ``path`` not yet read. Its entry records the identity seen at the
        scan, so a file that grows while it is read differs at the next scan and is opened
        again, from where it stopped."""
        done = self.files.get(path)
        skip = 0
        if done and (done.get("dev"), done.get("ino")) == (ident["dev"], ident["ino"]):
            skip = int(done.get("next", 0))
        self.files[path] = {**ident, "next": skip, "size": -1}  # -1: not finished

        def on_error(index: int, reason: str) -> None:
            self.ctx.report_malformed(self.name, "bad_record", f"{path} #{index}: {reason}",
                                      position={"file": path, "record": index})

        truncated = evtx_truncation(path, ident["size"])
        if truncated:
            # The reader returns the records of the chunks that are there and says nothing
            # of the missing ones (issue 13: a truncated EVTX gave 0 events and no count).
            self.ctx.report_malformed(self.name, "truncated_evtx", f"{path}: {truncated}",
                                      position={"file": path, "size": ident["size"]})

        records = read_events(path, on_error)
        if skip:
            records = ((index, event) for index, event in records if index >= skip)
        return records

    def poll(self, max_items: int) -> list[Doc]:
        docs: list[Doc] = []
        append = docs.append
        establishment = self.ctx.establishment_id
        while len(docs) < max_items:
            if self._current is None:
                found = self._next_file()
                if found is None:
                    break
                path, ident = found
                self._current = (path, ident, self._open(path, ident), f"file:{path}")
            key, ident, records, fallback = self._current
            entry = self.files[key]
            try:
                for index, event in records:
                    entry["next"] = index + 1
                    try:
                        append(windows_doc(event, establishment_id=establishment,
                                           fallback_source=fallback, fallback_position=index))
                    except Exception as exc:  # any mapping failure costs this record only
                        self.ctx.report_malformed(
                            self.name, "bad_record", f"{key} #{index}: {type(exc).__name__}: "
                            f"{exc}", position={"file": key, "record": index})
                    if len(docs) >= max_items:
                        break
                else:
                    self._finish(key, ident)
            except Exception as exc:
                # The reader itself failed (not EVTX, not UTF-8, JSON too deep...): the rest
                # of this file is lost, counted and quarantined; the file is marked done so a
                # restart does not fail on it again.
                reason = reason_of(exc)
                if reason == "parser_error" or isinstance(exc, (OSError, RuntimeError)):
                    reason = "unreadable_file"
                self.ctx.report_malformed(
                    self.name, reason,
                    f"{key}: {type(exc).__name__}: {exc}",
                    position={"file": key, "record": entry["next"]})
                self._finish(key, ident)
        return docs

    def _finish(self, key: str, ident: dict[str, int]) -> None:
        self.files[key] = {**ident, "next": self.files[key]["next"]}
        self._current = None

    def position(self) -> Any:
        return {k: dict(v) for k, v in self.files.items()}
