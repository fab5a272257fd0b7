"""Filters at the source: which Windows events of a source leave the hospital.

The national capacity plan counts on agents forwarding *security* events only: a domain
controller's Application or DNS Server channel, or the 5156 "connection allowed" flood of
the Windows Filtering Platform, would multiply the volume without feeding any detection. So
each source may keep or drop Windows events by channel and by event id, *before* they are
pseudonymised, spooled and shipped (nothing dropped here costs CPU, disk or link), and every
dropped event is counted (``vigie_agent_filtered_total{source}``).

Per source (``docs/agent.md``, "Filters")::

    channels: ["Security", "Microsoft-Windows-Sysmon/Operational"]  # shell patterns, any case
    include_event_ids: [4624, 4625]   # keep only these (empty: every id)
    exclude_event_ids: [5156, 5158]   # then drop these

``channels`` defaults, for EVTX and JSON (Winlogbeat) sources, to :data:`SECURITY_CHANNELS`;
``["*"]`` keeps every channel. Events without a Windows channel (syslog, auth.log, CEF) are
never filtered by these keys. One-shot imports (``vigie agent ingest``) have no source
configuration and are not filtered: an incident export is taken whole.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Any

from producers.agent import metrics as agent_metrics
from producers.agent.parse.common import Doc
from producers.agent.sources.base import Source

#: The channels a security team reads: logons and privileges (Security), service installs
#: and log clearing (System), Sysmon, PowerShell, Defender, scheduled tasks, remote desktop,
#: WMI, BITS, code integrity, AppLocker and the firewall. Shell patterns, case-insensitive.
SECURITY_CHANNELS: tuple[str, ...] = (
    "Security",
    "System",
    "Microsoft-Windows-Sysmon/Operational",
    "Windows PowerShell",
    "Microsoft-Windows-PowerShell/Operational",
    "PowerShellCore/Operational",
    "Microsoft-Windows-Windows Defender/Operational",
    "Microsoft-Windows-TaskScheduler/Operational",
    "Microsoft-Windows-TerminalServices-*",
    "Microsoft-Windows-RemoteDesktopServices-*",
    "Microsoft-Windows-WMI-Activity/Operational",
    "Microsoft-Windows-Bits-Client/Operational",
    "Microsoft-Windows-CodeIntegrity/Operational",
    "Microsoft-Windows-AppLocker/*",
    "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
    "Microsoft-Windows-NTLM/Operational",
    "Microsoft-Windows-LSA/Operational",
)


def _event_id(doc: Doc, winlog: dict[str, Any]) -> int | None:
    """The Windows event id of ``doc`` (``winlog.event_id``, else ``event.code``)."""
    value = winlog.get("event_id")
    if value is None:
        event = doc.get("event")
        value = event.get("code") if isinstance(event, dict) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class EventFilter:
    """Keep/drop rules of one source; :meth:`keep` returns the documents that pass."""

    def __init__(self, source: str, *, channels: Sequence[str] | None = None,
                 include_event_ids: Iterable[int] = (),
                 exclude_event_ids: Iterable[int] = ()) -> None:
        self.source = source
        patterns = list(channels) if channels is not None else ["*"]
        self.all_channels = "*" in patterns
        self._channel = re.compile("|".join(fnmatch.translate(p) for p in patterns)
                                   or "(?!)", re.IGNORECASE)
        self.include = frozenset(include_event_ids)
        self.exclude = frozenset(exclude_event_ids)
        self.filtered = 0
        self._counter = agent_metrics.FILTERED.labels(source)

    @property
    def passes_everything(self) -> bool:
        return self.all_channels and not self.include and not self.exclude

    def wanted(self, doc: Doc) -> bool:
        """Whether ``doc`` leaves: non-Windows documents always do."""
        winlog = doc.get("winlog")
        if not isinstance(winlog, dict):
            return True
        if not self.all_channels and not self._channel.match(str(winlog.get("channel", ""))):
            return False
        if self.include or self.exclude:
            event_id = _event_id(doc, winlog)
            if self.include and event_id not in self.include:
                return False
            if event_id in self.exclude:
                return False
        return True

    def keep(self, docs: list[Doc]) -> list[Doc]:
        if self.passes_everything or not docs:
            return docs
        kept = [doc for doc in docs if self.wanted(doc)]
        dropped = len(docs) - len(kept)
        if dropped:
            self.filtered += dropped
            self._counter.inc(dropped)
        return kept


class FilteredSource(Source):
    """A source whose documents go through an :class:`EventFilter`; positions, start and
    close are the wrapped source's (a filtered record is read, so its position advances)."""

    def __init__(self, inner: Source, event_filter: EventFilter) -> None:
        self.inner = inner
        self.name = inner.name
        self.filter = event_filter

    def poll(self, max_items: int) -> list[Doc]:
        return self.filter.keep(self.inner.poll(max_items))

    def position(self) -> Any:
        return self.inner.position()

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # e.g. a syslog source's ``server``
        if name == "inner":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def filtered(source: Source, config: Any) -> Source:
    """``source`` behind the filter its configuration block asks for (itself if none)."""
    event_filter = EventFilter(
        source.name, channels=getattr(config, "effective_channels", None),
        include_event_ids=getattr(config, "include_event_ids", ()) or (),
        exclude_event_ids=getattr(config, "exclude_event_ids", ()) or ())
    return source if event_filter.passes_everything else FilteredSource(source, event_filter)
