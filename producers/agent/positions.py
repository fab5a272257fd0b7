"""Source positions on disk: where each source stopped, surviving agent restarts.

One small JSON file, replaced atomically (write, fsync, rename) so that a crash leaves either
the old or the new positions, never half of them. The agent writes it only *after* the
records up to those positions are in the spool: a crash between the two re-reads a few
records, and the spool's restart check (see :mod:`producers.agent.spool`) keeps those from
being sent twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class PositionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: dict[str, Any] = {}
        if path.exists():
            try:
                self.positions = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                # A corrupt file must not stop the agent; start over and say so loudly.
                import logging

                logging.getLogger(__name__).error(
                    "positions file %s unreadable: sources restart from their beginning", path)
                self.positions = {}

    def get(self, source: str) -> Any:
        return self.positions.get(source)

    def update(self, source: str, position: Any) -> None:
        self.positions[source] = position

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(self.positions, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
