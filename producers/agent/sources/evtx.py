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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from producers.agent.parse.common import Doc
from producers.agent.parse.windows import windows_doc
from producers.agent.sources.base import Context, Source
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


class WindowsFileSource(Source):
    """``.evtx`` (and, through the same reader, whole ``.json`` exports) matched by globs."""

    def __init__(self, name: str, patterns: list[str], ctx: Context,
                 position: Any = None) -> None:
        self.name = name
        self.patterns = patterns
        self.ctx = ctx
        self.files: dict[str, dict[str, int]] = dict(position or {})
        self._current: tuple[str, Iterator[tuple[int, WindowsEvent]]] | None = None
        self._queue: list[str] = []  # paths as str: ``Path`` objects cost per small file
        self._scanned = 0.0

    #: Seconds between two scans of the globs for new or grown files.
    rescan_s = 1.0

    def _next_file(self) -> str | None:
        """The next file to read; globs are scanned at most once per ``rescan_s``."""
        if not self._queue and time.monotonic() - self._scanned >= self.rescan_s:
            self._queue = list(self._pending())
            self._scanned = time.monotonic()
        return self._queue.pop(0) if self._queue else None

    def _pending(self) -> Iterator[str]:
        for pattern in self.patterns:
            for match in sorted(glob.glob(os.path.expanduser(pattern), recursive=True)):
                ident = _identity(match, regular_only=True)
                if ident is None:
                    continue
                done = self.files.get(match)
                if done and all(done.get(k) == ident[k] for k in ident):
                    continue  # unchanged since we finished it
                yield match

    def _open(self, path: str) -> Iterator[tuple[int, WindowsEvent]]:
        key = str(path)
        ident = _identity(path) or {}
        done = self.files.get(key)
        skip = 0
        if done and (done.get("dev"), done.get("ino")) == (ident.get("dev"), ident.get("ino")):
            skip = int(done.get("next", 0))
        self.files[key] = {**ident, "next": skip, "size": -1}  # -1: not finished

        def on_error(index: int, reason: str) -> None:
            self.ctx.report_malformed(self.name, "bad_record", f"{path} #{index}: {reason}")

        def records() -> Iterator[tuple[int, WindowsEvent]]:
            for index, event in read_events(path, on_error):
                if index >= skip:
                    yield index, event

        return records()

    def poll(self, max_items: int) -> list[Doc]:
        docs: list[Doc] = []
        while len(docs) < max_items:
            if self._current is None:
                path = self._next_file()
                if path is None:
                    break
                self._current = (str(path), self._open(path))
            key, records = self._current
            try:
                for index, event in records:
                    self.files[key]["next"] = index + 1
                    try:
                        docs.append(windows_doc(event, establishment_id=self.ctx.establishment_id,
                                                fallback_source=f"file:{key}",
                                                fallback_position=index))
                    except (KeyError, TypeError, ValueError) as exc:
                        self.ctx.report_malformed(self.name, "bad_record", f"{key}: {exc}")
                    if len(docs) >= max_items:
                        break
                else:
                    self._finish(key)
            except (OSError, RuntimeError) as exc:
                self.ctx.report_malformed(self.name, "unreadable_file", f"{key}: {exc}")
                self._finish(key)
        return docs

    def _finish(self, key: str) -> None:
        ident = _identity(key) or {}
        self.files[key] = {**ident, "next": self.files[key]["next"]}
        self._current = None

    def position(self) -> Any:
        return {k: dict(v) for k, v in self.files.items()}
