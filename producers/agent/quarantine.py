"""The quarantine file: every input the agent could not turn into an event, kept locally.

A record the agent refuses (not syslog, not CEF, too deep, too large, a time no calendar
has...) is counted (``vigie_agent_malformed_total{source,reason}``) *and* written here, so
that the hospital's IT team can see what was refused and why, and send a sample to the
national team when a device's format is not understood. Reading goes on past it.

One JSON object a line::

    {"time": "2026-...Z", "source": "net", "reason": "oversized",
     "position": {"peer": "10.0.0.5:51234"}, "size": 70000,
     "detail": "...", "head_b64": "PDM0PjEg..."}

- ``position`` says where the record was: ``{"file", "offset", "inode"}`` for a followed
  file, ``{"file", "record"}`` for a Windows export, ``{"peer"}`` for syslog.
- ``head_b64`` holds only the *first* ``head_bytes`` of the record (base64, since the bytes
  may not be text): enough to recognise a format, bounded so a flood of 64 KiB garbage cannot
  fill the disk. These bytes are the hospital's raw input (not pseudonymised): the file is
  created ``0600`` in the agent's state directory, never followed through a symlink, and it
  never leaves the machine.
- Rotated by size: ``quarantine.jsonl`` → ``.1`` → ``.2``..., ``keep`` old files.

A quarantine that cannot be written (disk full) must not stop the agent either: the record is
still counted, and the failure logged at most once a minute.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The defaults of the ``quarantine`` block of the agent configuration.
DEFAULT_MAX_BYTES = 16 << 20
DEFAULT_KEEP = 3
DEFAULT_HEAD_BYTES = 1024


class Quarantine:
    """Append-only JSON Lines file of refused inputs; thread-safe (the syslog network
    thread reports drops and oversized frames while the main thread reports parse errors)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 keep: int = DEFAULT_KEEP, head_bytes: int = DEFAULT_HEAD_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.head_bytes = head_bytes
        self.written = 0
        self.failed = 0
        self._fd: int | None = None
        self._size = 0
        self._lock = threading.Lock()
        self._last_error_log = 0.0

    def add(self, source: str, reason: str, *, position: dict[str, Any] | None = None,
            data: bytes | None = None, size: int | None = None, detail: str = "") -> None:
        """Write one refused record (never raises: a full disk costs the sample, not the
        agent). ``size``: the record's length when ``data`` is only its head."""
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "source": source, "reason": reason, "position": position or {},
        }
        if detail:
            entry["detail"] = detail[:500]
        if data is not None:
            entry["size"] = len(data) if size is None else size
            entry["head_b64"] = base64.b64encode(data[:self.head_bytes]).decode("ascii")
        line = (json.dumps(entry, ensure_ascii=True, default=str) + "\n").encode("ascii")
        with self._lock:
            try:
                self._write(line)
                self.written += 1
            except OSError as exc:
                self.failed += 1
                self._close()
                now = time.monotonic()
                if now - self._last_error_log >= 60:
                    self._last_error_log = now
                    log.error("quarantine file %s cannot be written (%s): refused records are "
                              "still counted but not kept [%d lost so far]", self.path, exc,
                              self.failed)

    def _write(self, line: bytes) -> None:
        if self._fd is None:
            self._open()
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        assert self._fd is not None
        os.write(self._fd, line)
        self._size += len(line)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_NOFOLLOW: a symlink planted in the state directory must not redirect raw
        # hospital input into another file.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # a file created by an older agent or by hand
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        self._close()
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.keep > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close()


def read_quarantine(path: Path) -> list[dict[str, Any]]:
    """The entries of one quarantine file, oldest first (for tests and ``agent status``)."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
