"""The window state of one correlation for one group-by key: ``WindowState``, a JSON-able dict.

It is what the Faust table ``sigma-correlation-windows`` stores under
``<establishment>|<correlation id>|<group-by values as JSON>`` (changelogged to Kafka,
restored after a restart, so a reader must keep reading what earlier versions wrote). It is
plain data, small and bounded:

    {"entries": [[ts, event_id, rule_id, value, consumed], ...],  # sorted by (ts, event_id)
     "max_ts": float,            # latest event time seen by the group (its event clock)
     "ctx": {...}}               # establishment, host and user of the latest signal

Entries are remembered by event id, consumed ones included, until they fall behind the
group's horizon (``max_ts - timespan - lateness``). That memory is what makes a replay after a
crash harmless: a signal already counted is recognised and ignored, so the restored state and
the re-read records converge to what an uninterrupted run computes.
"""

from __future__ import annotations

import bisect
from typing import Any, TypedDict

from processors.detection.correlation.model import MAX_ENTRIES

#: ``[ts, event_id, rule_id, value, consumed]``: a JSON array on the table (compact: there are
#: up to ``MAX_ENTRIES`` per window), read by position with the indices below.
Entry = list[Any]

TS, EVENT, RULE, VALUE, CONSUMED = range(5)


class WindowState(TypedDict):
    """The value of one key of ``sigma-correlation-windows``."""

    entries: list[Entry]  # sorted by (ts, event_id, rule_id)
    max_ts: float | None  # the group's event clock; None until the first entry
    #: ``Signal.context`` of the latest signal, verbatim: ``organization`` (an
    #: ``Organization`` as JSON), ``host_name``, ``user_name``, ``failed``; empty at first.
    ctx: dict[str, Any]


#: The name the evaluator uses.
State = WindowState


def new_state() -> WindowState:
    return {"entries": [], "max_ts": None, "ctx": {}}


def horizon(state: State, timespan_s: float, lateness_s: float) -> float | None:
    """Events older than this cannot join any window the group can still form."""
    if state["max_ts"] is None:
        return None
    return float(state["max_ts"]) - timespan_s - lateness_s


def add(state: State, entry: Entry, timespan_s: float, lateness_s: float) -> bool:
    """Insert ``entry`` in time order; False if already there (a replay) or too late."""
    limit = horizon(state, timespan_s, lateness_s)
    if limit is not None and entry[TS] < limit:
        return False
    entries: list[Entry] = state["entries"]
    key = (entry[TS], entry[EVENT], entry[RULE])
    at = bisect.bisect_left([(e[TS], e[EVENT], e[RULE]) for e in entries], key)
    if at < len(entries) and (entries[at][TS], entries[at][EVENT], entries[at][RULE]) == key:
        return False
    if any(e[EVENT] == entry[EVENT] and e[RULE] == entry[RULE] for e in entries):
        return False  # same event, other timestamp: still the same fact
    entries.insert(at, entry)
    state["max_ts"] = entry[TS] if state["max_ts"] is None else max(state["max_ts"], entry[TS])
    return True  # the caller prunes after evaluating: closing windows need the old events


def prune(state: State, timespan_s: float, lateness_s: float,
          now: float | None = None) -> None:
    """Forget entries behind the horizon (``now`` instead of the group clock when given),
    then the oldest beyond the size bound."""
    limit = (now - timespan_s - lateness_s) if now is not None else horizon(
        state, timespan_s, lateness_s)
    entries: list[Entry] = state["entries"]
    if limit is not None:
        entries[:] = [e for e in entries if e[TS] >= limit]
    if len(entries) > MAX_ENTRIES:
        del entries[: len(entries) - MAX_ENTRIES]


def live(state: State) -> list[Entry]:
    """Entries not yet used by a match, in time order."""
    return [e for e in state["entries"] if not e[CONSUMED]]


def consume(state: State, used: list[Entry]) -> None:
    ids = {(e[EVENT], e[RULE]) for e in used}
    for entry in state["entries"]:
        if (entry[EVENT], entry[RULE]) in ids:
            entry[CONSUMED] = True
