"""Feed signals (a referenced rule matched an event) to correlations; get their matches.

Pure logic over the window states of ``state``: the Faust agent reads states from its table,
calls ``Correlator.feed`` and writes back what it returns, after publishing the matches.

Time is the events' own ``@timestamp`` (event time), so a replay, a backlog or a restart
yields the same windows as live traffic. Signals may arrive a little out of order: each group
keeps events up to ``lateness`` behind its newest one, and ignores older ones.

When a match fires:
- ``gt``/``gte`` conditions fire as soon as a window of ``timespan`` holds them;
- ``lt``/``lte``/``eq``/``neq`` can only be judged once a window is over: the window opened by
  the group's oldest unused event closes when the group's clock (or, on a tick, the wall
  clock) passes its end plus ``lateness``;
- the events of a match are marked used: the next match needs new evidence, so a brute force
  of 40 attempts with a threshold of 20 yields two detections, not twenty-one.
A match's id derives from the rule, the establishment, the group and its first event, so the
same evidence always gives the same id: a replay overwrites instead of duplicating.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.detection.correlation import state as st
from processors.detection.correlation.model import (
    EVENT_COUNT,
    TEMPORAL,
    TEMPORAL_ORDERED,
    VALUE_COUNT,
    CompiledCorrelation,
    CorrelationSet,
)
from schemas.identity import stable_id

#: How far behind a group's newest event a signal may arrive and still count.
DEFAULT_LATENESS_S = 120.0
#: On a tick, windows close only this long after the wall clock passed them: ticks must not
#: close windows that a slightly delayed partition is still filling.
TICK_GRACE_S = 300.0
_MAX_CHAIN_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule (base or correlation) matched an event: what correlations consume."""

    rule_id: str
    event_id: str
    ts: float  # event time, seconds since the epoch
    fields: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)  # establishment, host, user


@dataclass(frozen=True, slots=True)
class CorrelationMatch:
    """A correlation whose condition held on a set of events of one group."""

    id: str
    correlation: CompiledCorrelation
    organization_id: str
    group: tuple[str, ...]
    first_ts: float
    last_ts: float
    event_ids: tuple[str, ...]  # the signals' event ids (detection ids for chained rules)
    count: float  # the measure the condition was checked on
    trigger_event_id: str  # the event that completed the match
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def group_fields(self) -> dict[str, str]:
        return dict(zip(self.correlation.group_by, self.group, strict=True))

    def as_signal(self) -> Signal:
        """What a correlation chained on this one consumes."""
        return Signal(self.correlation.info.id, self.id, self.last_ts, self.group_fields,
                      self.context)


@dataclass
class Outcome:
    """States to write back (None: delete) and matches to publish, in order."""

    updates: dict[str, st.State | None] = field(default_factory=dict)
    matches: list[CorrelationMatch] = field(default_factory=list)


def table_key(organization_id: str, correlation_id: str, group: tuple[str, ...]) -> str:
    """Establishment first: every key of one establishment lives in its partition."""
    return f"{organization_id}|{correlation_id}|{json.dumps(list(group), ensure_ascii=False)}"


def parse_key(key: str) -> tuple[str, str, tuple[str, ...]]:
    organization_id, correlation_id, group = key.split("|", 2)
    return organization_id, correlation_id, tuple(json.loads(group))


class Correlator:
    """Evaluates a ``CorrelationSet``; holds no state of its own."""

    def __init__(self, correlations: CorrelationSet,
                 lateness_s: float = DEFAULT_LATENESS_S) -> None:
        self.correlations = correlations
        self.lateness_s = lateness_s

    def feed(self, organization_id: str, signal: Signal,
             get: Callable[[str], st.State | None]) -> Outcome:
        """Apply one signal (and the matches it chains into) to the states ``get`` reads."""
        outcome = Outcome()

        def read(key: str) -> st.State | None:
            return outcome.updates[key] if key in outcome.updates else get(key)

        self._feed(organization_id, signal, read, outcome, 0)
        return outcome

    def _feed(self, org: str, signal: Signal, read: Callable[[str], st.State | None],
              outcome: Outcome, depth: int) -> None:
        if depth > _MAX_CHAIN_DEPTH:
            return
        for correlation in self.correlations.consumers.get(signal.rule_id, ()):
            group = correlation.group_values(signal.rule_id, signal.fields)
            if group is None:
                continue
            key = table_key(org, correlation.info.id, group)
            current = read(key)
            state = _copy(current) if current is not None else st.new_state()
            value = None
            if correlation.type == VALUE_COUNT and correlation.condition.field:
                value = _value(signal.fields, correlation, signal.rule_id)
                if value is None:
                    continue  # value_count counts values: an event without one adds nothing
            entry: st.Entry = [signal.ts, signal.event_id, signal.rule_id, value, False]
            if not st.add(state, entry, correlation.timespan_s, self.lateness_s):
                continue  # a replay, or too late to matter
            state["ctx"] = dict(signal.context)
            matches = self._evaluate(org, correlation, group, state, signal, entry)
            st.prune(state, correlation.timespan_s, self.lateness_s)
            outcome.updates[key] = state
            for match in matches:
                outcome.matches.append(match)
                self._feed(org, match.as_signal(), read, outcome, depth + 1)

    def expire(self, key: str, state: st.State, now: float,
               get: Callable[[str], st.State | None] | None = None) -> Outcome:
        """On a tick: close the windows the wall clock left behind and forget old events.
        The state of ``key`` comes back as None when nothing is left to remember."""
        outcome = Outcome()
        org, correlation_id, group = parse_key(key)
        correlation = self.correlations.by_id(correlation_id)
        if correlation is None:  # the rule was removed from the rule set
            outcome.updates[key] = None
            return outcome
        state = _copy(state)
        matches: list[CorrelationMatch] = []
        if not correlation.condition.monotone:
            watermark = now - self.lateness_s - TICK_GRACE_S
            matches = self._close(org, correlation, group, state, watermark, None)
        st.prune(state, correlation.timespan_s, self.lateness_s + TICK_GRACE_S, now=now)
        outcome.updates[key] = state if state["entries"] else None
        reads = get or (lambda _key: None)

        def read(k: str) -> st.State | None:
            return outcome.updates[k] if k in outcome.updates else reads(k)

        for match in matches:
            outcome.matches.append(match)
            self._feed(org, match.as_signal(), read, outcome, 1)
        return outcome

    def due(self, key: str, state: st.State, now: float) -> bool:
        """Whether a tick at ``now`` would change this state (close a window, forget events)."""
        correlation = self.correlations.by_id(parse_key(key)[1])
        if correlation is None or not state.get("entries"):
            return True
        grace = self.lateness_s + TICK_GRACE_S
        if state["entries"][0][st.TS] < now - correlation.timespan_s - grace:
            return True
        entries = st.live(state)
        return (not correlation.condition.monotone and bool(entries)
                and entries[0][st.TS] + correlation.timespan_s < now - grace)

    # --- conditions -------------------------------------------------------------------------

    def _evaluate(self, org: str, correlation: CompiledCorrelation, group: tuple[str, ...],
                  state: st.State, signal: Signal, new: st.Entry) -> list[CorrelationMatch]:
        if not correlation.condition.monotone:
            watermark = float(state["max_ts"] or 0.0) - self.lateness_s  # set by add()
            return self._close(org, correlation, group, state, watermark, signal.event_id)
        entries = st.live(state)
        times = [e[st.TS] for e in entries]
        span = correlation.timespan_s
        first = bisect.bisect_left(times, new[st.TS] - span)
        for lo in range(first, len(entries)):
            start = entries[lo][st.TS]
            if start > new[st.TS]:
                break
            hi = bisect.bisect_right(times, start + span)
            used = _satisfied(correlation, entries[lo:hi])
            if used is not None:
                st.consume(state, used)
                return [_match(org, correlation, group, used, signal.event_id, state,
                               _measure(correlation, used))]
        return []

    def _close(self, org: str, correlation: CompiledCorrelation, group: tuple[str, ...],
               state: st.State, watermark: float,
               trigger: str | None) -> list[CorrelationMatch]:
        """Judge every window (opened by the oldest unused event) that ended before
        ``watermark``; each judged window's events are used, match or not."""
        matches: list[CorrelationMatch] = []
        span = correlation.timespan_s
        while True:
            entries = st.live(state)
            if not entries or entries[0][st.TS] + span >= watermark:
                return matches
            end = entries[0][st.TS] + span
            window = [e for e in entries if e[st.TS] <= end]
            measure = _measure(correlation, window)
            if _holds(correlation, window, measure):
                matches.append(_match(org, correlation, group, window,
                                      trigger or window[-1][st.EVENT], state, measure))
            st.consume(state, window)


def _copy(state: st.State) -> st.State:
    return {"entries": [list(e) for e in state.get("entries", [])],
            "max_ts": state.get("max_ts"), "ctx": dict(state.get("ctx") or {})}


def _value(fields: Mapping[str, Any], correlation: CompiledCorrelation,
           rule_id: str) -> str | None:
    name = correlation.condition.field or ""
    name = correlation.fields.get(rule_id, {}).get(name, name)
    value = fields.get(name)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _measure(correlation: CompiledCorrelation, window: list[st.Entry]) -> float:
    if correlation.type == EVENT_COUNT:
        return len(window)
    if correlation.type == VALUE_COUNT:
        return len({e[st.VALUE] for e in window})
    return len({e[st.RULE] for e in window})


def _holds(correlation: CompiledCorrelation, window: list[st.Entry], measure: float) -> bool:
    condition = correlation.condition
    if condition.expression is not None:
        return condition.holds_for({e[st.RULE] for e in window})
    if correlation.type == TEMPORAL_ORDERED:
        return _ordered(correlation.rules, window) is not None
    return condition.holds(measure)


def _satisfied(correlation: CompiledCorrelation,
               window: list[st.Entry]) -> list[st.Entry] | None:
    """The entries of a monotone match in ``window``, or None."""
    if correlation.type == TEMPORAL_ORDERED:
        return _ordered(correlation.rules, window)
    if correlation.type == TEMPORAL and correlation.condition.expression is None:
        return window if correlation.condition.holds(_measure(correlation, window)) else None
    return window if _holds(correlation, window, _measure(correlation, window)) else None


def _ordered(rules: tuple[str, ...], window: list[st.Entry]) -> list[st.Entry] | None:
    """The earliest events, one per listed rule, in the listed order (ties of equal
    timestamps count as ordered), or None."""
    chain: list[st.Entry] = []
    for entry in window:
        if entry[st.RULE] == rules[len(chain)]:
            chain.append(entry)
            if len(chain) == len(rules):
                return chain
    return None


def _match(org: str, correlation: CompiledCorrelation, group: tuple[str, ...],
           used: list[st.Entry], trigger: str, state: st.State,
           measure: float) -> CorrelationMatch:
    first = used[0]
    return CorrelationMatch(
        id=stable_id("correlation", correlation.info.id, org, json.dumps(list(group)),
                     first[st.EVENT]),
        correlation=correlation,
        organization_id=org,
        group=group,
        first_ts=first[st.TS],
        last_ts=max(e[st.TS] for e in used),
        event_ids=tuple(e[st.EVENT] for e in used),
        count=measure,
        trigger_event_id=trigger,
        context=dict(state.get("ctx") or {}),
    )
