"""The agent's sense of time: the zone of timestamps that carry none, and events from the future.

RFC 3164 syslog and ``auth.log`` lines carry no zone. Reading them as UTC (the former
default) stamped a French hospital's logins one or two hours in the future, and the national
processor dead-lettered them as clock skew (issue 13, item 3). So the default zone is the
host's own, read from ``/etc/localtime`` (a real zone, with its summer time: a fixed offset
taken from "now" would be wrong half the year), with no extra dependency (no ``tzlocal``).

Whatever the zone, a parsed time further in the future than a small tolerance means a wrong
zone or a wrong clock somewhere: it is counted per source
(``vigie_agent_future_timestamps_total``) and logged, at most once a minute per source, so
the IT team fixes ``timezone`` before the national side refuses the events.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prometheus_client import Counter

log = logging.getLogger(__name__)

FUTURE = Counter("vigie_agent_future_timestamps_total",
                 "Events whose parsed time is ahead of the agent's clock by more than the "
                 "tolerance (a wrong timezone setting, or a sender's wrong clock)", ["source"])

#: Five minutes: what the national processor tolerates before dead-lettering (clock skew).
DEFAULT_TOLERANCE_S = 300.0

_LOCALTIME = "/etc/localtime"


def host_timezone() -> tzinfo:
    """The host's zone: ``TZ`` if set to a zone name, else ``/etc/localtime``, else the
    current offset (fixed: no summer time; only on hosts without zone data)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name and not name.startswith("/"):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    path = name if name.startswith("/") else _LOCALTIME
    try:
        with open(path, "rb") as fh:
            return ZoneInfo.from_file(fh, key=_zone_name(path))
    except (OSError, ValueError):
        pass
    return datetime.now().astimezone().tzinfo or UTC


def _zone_name(path: str) -> str:
    """``Europe/Paris`` when ``/etc/localtime`` links into the zone database (for logs)."""
    try:
        target = os.path.realpath(path)
    except OSError:
        return "localtime"
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "localtime"


def resolve_timezone(name: str | None) -> tzinfo:
    """The configured zone by name, or the host's when none is configured."""
    return host_timezone() if not name else ZoneInfo(name)


class FutureCheck:
    """Counts events dated after now + tolerance. Cheap per event: ISO-8601 UTC strings
    (``...Z``, what the parsers write) compare as strings against a threshold recomputed at
    most once a second; other forms are parsed."""

    def __init__(self, tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
        self.tolerance = timedelta(seconds=tolerance_s)
        self.count = 0
        self._threshold = ""
        self._threshold_at = -1.0
        self._last_log: dict[str, float] = {}

    def check(self, timestamp: object, source: str) -> bool:
        """True (and counted, logged) when ``timestamp`` is in the future beyond tolerance."""
        if not isinstance(timestamp, str):
            return False
        now = time.monotonic()
        if now - self._threshold_at >= 1.0:
            self._threshold_at = now
            self._threshold = (datetime.now(UTC) + self.tolerance).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ")
        if timestamp.endswith("Z") and len(timestamp) >= 20 and timestamp[10] == "T":
            ahead = timestamp > self._threshold
        else:
            try:
                when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
            except ValueError:
                return False
            if when.tzinfo is None:
                return False
            ahead = when > datetime.now(UTC) + self.tolerance
        if ahead:
            self.count += 1
            FUTURE.labels(source).inc()
            if now - self._last_log.get(source, -60.0) >= 60:
                self._last_log[source] = now
                log.warning("%s: event dated %s, more than %d s ahead of this host's clock "
                            "(%d so far): check the source's `timezone` setting or its "
                            "sender's clock; the national platform refuses events from the "
                            "future", source, timestamp[:40], self.tolerance.total_seconds(),
                            self.count)
        return ahead
