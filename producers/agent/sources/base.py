"""What every source shares: the context it runs in and the interface the runner calls."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from producers.agent import metrics as agent_metrics
from producers.agent.parse.common import Doc

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Identity and shared counters, handed to every source."""

    establishment_id: str
    agent_id: str
    tz: tzinfo = UTC  # for RFC 3164 / auth.log timestamps, which carry no zone
    malformed: Counter[tuple[str, str]] = field(default_factory=Counter)
    _last_log: dict[str, float] = field(default_factory=dict)

    def report_malformed(self, source: str, reason: str, detail: str) -> None:
        """Count and log (at most once per 10 s per source and reason) an unreadable input."""
        self.malformed[(source, reason)] += 1
        agent_metrics.MALFORMED.labels(source, reason).inc()
        key = f"{source}:{reason}"
        now = time.monotonic()
        if now - self._last_log.get(key, 0.0) >= 10:
            self._last_log[key] = now
            log.warning("%s: malformed input (%s): %s [%d so far]", source, reason,
                        detail[:200], self.malformed[(source, reason)])


class Source(ABC):
    """One configured input."""

    #: Stable name: metric label and key in the positions file.
    name: str

    @abstractmethod
    def poll(self, max_items: int) -> list[Doc]:
        """New documents, at most ``max_items``; never blocks."""

    def position(self) -> Any:
        """JSON-able resume point after everything returned so far (None: nothing to keep)."""
        return None

    def start(self) -> None:
        """Open listeners or files (called once, before the first poll)."""
        return None

    def close(self) -> None:
        """Release files and sockets."""
        return None
