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
from producers.agent.quarantine import Quarantine

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Identity and shared counters, handed to every source."""

    establishment_id: str
    agent_id: str
    tz: tzinfo = UTC  # for RFC 3164 / auth.log timestamps, which carry no zone
    malformed: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Where refused records are kept (None: counted and logged only, as in unit tests).
    quarantine: Quarantine | None = None
    #: Bytes of one record (file line, syslog frame) beyond which it is refused as
    #: ``oversized``: parsing cost and memory stay bounded whatever a sender writes.
    max_record_bytes: int = 64 * 1024
    _last_log: dict[str, float] = field(default_factory=dict)

    def report_malformed(self, source: str, reason: str, detail: str, *,
                         data: bytes | None = None, position: dict[str, Any] | None = None,
                         size: int | None = None, keep: bool = True) -> None:
        """Count, quarantine (the first bytes of ``data``, where it was, why) and log (at most
        once per 10 s per source and reason) an input that is not an event.

        ``size``: the record's length when ``data`` is only its first bytes (oversized).
        ``keep=False`` counts without quarantining: for drops under load (a full queue),
        where writing every lost datagram to disk would only deepen the overload."""
        self.malformed[(source, reason)] += 1
        if keep and self.quarantine is not None:
            self.quarantine.add(source, reason, position=position, data=data, size=size,
                                detail=detail)
        agent_metrics.MALFORMED.labels(source, reason).inc()
        key = f"{source}:{reason}"
        now = time.monotonic()
        if now - self._last_log.get(key, 0.0) >= 10:
            self._last_log[key] = now
            log.warning("%s: malformed input (%s): %s [%d so far]", source, reason,
                        detail[:200], self.malformed[(source, reason)])


def reason_of(exc: Exception) -> str:
    """The metric label (and quarantine reason) of a parser's exception: the parsers' own
    ``reason`` when they give one, else what kind of input broke the parser."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, RecursionError):
        return "too_deep"
    if isinstance(exc, UnicodeError):
        return "invalid_utf8"
    if isinstance(exc, MemoryError):
        return "too_large"
    if isinstance(exc, OverflowError):
        return "out_of_range"
    return "parser_error"


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
