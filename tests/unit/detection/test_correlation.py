"""Sigma correlation rules, evaluated on windows: one test per rule of the specification.

Signals are fed straight to the ``Correlator`` with a dict as the table; times are seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sigma.correlations import SigmaCorrelationRule

from processors.detection.correlation import CorrelationSet, Correlator, Signal
from processors.detection.correlation.evaluate import CorrelationMatch
from processors.detection.loader import LoadedCorrelation

ORG = "750000001"
A, B, C = "rule-a", "rule-b", "rule-c"
CORR = "11111111-1111-1111-1111-111111111111"


def correlation(type_: str, rules: list[str], *, group_by: list[str] | None = None,
                timespan: str = "5m", condition: Any = None, generate: bool | None = None,
                aliases: dict[str, Any] | None = None, rule_id: str = CORR,
                name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, "rules": rules, "timespan": timespan}
    if group_by is not None:
        body["group-by"] = group_by
    if condition is not None:
        body["condition"] = condition
    if generate is not None:
        body["generate"] = generate
    if aliases is not None:
        body["aliases"] = aliases
    doc: dict[str, Any] = {"title": f"{type_} test", "id": rule_id, "level": "high",
                           "correlation": body}
    if name:
        doc["name"] = name
    return doc


def compile_set(*docs: dict[str, Any], names: dict[str, str] | None = None) -> CorrelationSet:
    loaded = [LoadedCorrelation(SigmaCorrelationRule.from_dict(d), Path("<test>")) for d in docs]
    return CorrelationSet.compile(loaded, names or {}, [A, B, C])


class Run:
    """A correlator and its table (a dict), as the Faust agent drives them."""

    def __init__(self, correlations: CorrelationSet, lateness_s: float = 60.0) -> None:
        self.correlator = Correlator(correlations, lateness_s)
        self.table: dict[str, Any] = {}
        self.matches: list[CorrelationMatch] = []
        self.seq = 0

    def feed(self, rule: str, ts: float, event: str | None = None,
             **fields: Any) -> list[CorrelationMatch]:
        self.seq += 1
        signal = Signal(rule, event or f"{self.seq:032x}", ts, fields,
                        {"organization": {"id": ORG}})
        outcome = self.correlator.feed(ORG, signal, self.table.get)
        for key, state in outcome.updates.items():
            if state is None:
                self.table.pop(key, None)
            else:
                self.table[key] = state
        self.matches.extend(outcome.matches)
        return outcome.matches

    def tick(self, now: float) -> list[CorrelationMatch]:
        found: list[CorrelationMatch] = []
        for key, state in list(self.table.items()):
            if not self.correlator.due(key, state, now):
                continue
            outcome = self.correlator.expire(key, state, now, self.table.get)
            for k, s in outcome.updates.items():
                if s is None:
                    self.table.pop(k, None)
                else:
                    self.table[k] = s
            found.extend(outcome.matches)
        self.matches.extend(found)
        return found


# --- event_count ----------------------------------------------------------------------------

def test_event_count_fires_once_at_threshold_per_group() -> None:
    run = Run(compile_set(correlation("event_count", [A], group_by=["ip"],
                                      condition={"gte": 5})))
    for n in range(4):
        assert run.feed(A, 100 + n, ip="1.2.3.4") == []
        run.feed(A, 100 + n, ip="9.9.9.9")  # another group never helps
    [match] = run.feed(A, 104, ip="1.2.3.4")
    assert match.group == ("1.2.3.4",) and match.count == 5 and len(match.event_ids) == 5
    for n in range(4):  # the used events do not count again
        assert run.feed(A, 105 + n, ip="1.2.3.4") == []
    assert len(run.feed(A, 110, ip="1.2.3.4")) == 1  # five new ones do


def test_event_count_window_edges() -> None:
    run = Run(compile_set(correlation("event_count", [A], group_by=["ip"], timespan="10s",
                                      condition={"gte": 3})))
    run.feed(A, 0, ip="x")
    run.feed(A, 5, ip="x")
    assert run.feed(A, 10.5, ip="x") == []  # 0 and 10.5 are 10.5 s apart: not one window
    [match] = run.feed(A, 15, ip="x")  # 5, 10.5, 15 are within 10 s
    assert match.first_ts == 5 and match.last_ts == 15
    run2 = Run(compile_set(correlation("event_count", [A], timespan="10s",
                                       condition={"gte": 2})))
    run2.feed(A, 0)
    assert len(run2.feed(A, 10)) == 1  # exactly timespan apart: inside (closed window)


def test_event_count_events_without_group_value_are_ignored() -> None:
    run = Run(compile_set(correlation("event_count", [A], group_by=["ip", "user"],
                                      condition={"gte": 2})))
    run.feed(A, 0, ip="x")
    assert run.feed(A, 1, ip="x") == []
    run.feed(A, 2, ip="x", user="u")
    assert len(run.feed(A, 3, ip="x", user="u")) == 1


def test_event_count_without_group_by_counts_the_establishment() -> None:
    run = Run(compile_set(correlation("event_count", [A, B], condition={"gt": 2})))
    run.feed(A, 0)
    run.feed(B, 1)
    assert len(run.feed(A, 2)) == 1


def test_replayed_signals_are_recognised() -> None:
    run = Run(compile_set(correlation("event_count", [A], group_by=["ip"],
                                      condition={"gte": 3})))
    for n in range(2):
        run.feed(A, n, event=f"{n:032x}", ip="x")
        run.feed(A, n, event=f"{n:032x}", ip="x")  # the same event twice
    assert run.matches == []
    first = run.feed(A, 2, event=f"{2:032x}", ip="x")
    assert len(first) == 1
    for n in range(3):  # a replay after a restart: nothing new
        assert run.feed(A, n, event=f"{n:032x}", ip="x") == []


def test_match_id_is_deterministic() -> None:
    def ids() -> list[str]:
        run = Run(compile_set(correlation("event_count", [A], group_by=["ip"],
                                          condition={"gte": 2})))
        for n in range(4):
            run.feed(A, n, event=f"{n:032x}", ip="x")
        return [m.id for m in run.matches]

    assert ids() == ids() and len(set(ids())) == 2


def test_out_of_order_within_lateness_counts_and_too_late_is_dropped() -> None:
    run = Run(compile_set(correlation("event_count", [A], timespan="10s",
                                      condition={"gte": 3})), lateness_s=30)
    run.feed(A, 100)
    run.feed(A, 108)
    [match] = run.feed(A, 104)  # arrives late, but within the window and the lateness
    assert match.first_ts == 100 and match.last_ts == 108
    run.feed(A, 200)
    run.feed(A, 201)
    assert run.feed(A, 150) == []  # older than 200 - 10 - 30: too late


@pytest.mark.parametrize(("condition", "counts_that_fire"), [
    ({"gt": 3}, [4]),
    ({"gte": 3}, [3]),
])
def test_monotone_operators(condition: dict[str, int], counts_that_fire: list[int]) -> None:
    run = Run(compile_set(correlation("event_count", [A], condition=condition)))
    fired = [n + 1 for n in range(6) if run.feed(A, n)]
    assert fired[:1] == counts_that_fire


@pytest.mark.parametrize(("condition", "burst", "fires"), [
    ({"lt": 3}, 2, True), ({"lt": 3}, 3, False),
    ({"lte": 3}, 3, True), ({"lte": 3}, 4, False),
    ({"eq": 3}, 3, True), ({"eq": 3}, 2, False),
    ({"neq": 3}, 2, True), ({"neq": 3}, 3, False),
])
def test_closing_operators_judge_the_window_once_it_is_over(
        condition: dict[str, int], burst: int, fires: bool) -> None:
    run = Run(compile_set(correlation("event_count", [A], group_by=["ip"], timespan="10s",
                                      condition=condition)), lateness_s=5)
    for n in range(burst):
        assert run.feed(A, 100 + n, ip="x") == []  # not judged while the window is open
    late = run.feed(A, 200, ip="x")  # the group's clock passes window end + lateness
    assert bool(late) is fires
    if fires:
        assert late[0].count == burst and late[0].first_ts == 100


def test_closing_operators_close_on_a_tick_when_the_group_falls_silent() -> None:
    run = Run(compile_set(correlation("event_count", [A], group_by=["ip"], timespan="10s",
                                      condition={"lt": 5})), lateness_s=5)
    run.feed(A, 100, ip="x")
    run.feed(A, 101, ip="x")
    assert run.tick(now=120) == []  # within the tick's grace
    [match] = run.tick(now=100 + 10 + 5 + 301)
    run.tick(now=100 + 10 + 5 + 302)  # the used events are kept a horizon for replays
    assert match.count == 2
    assert run.table == {}  # nothing left to remember: the state is deleted


def test_tick_forgets_old_state() -> None:
    run = Run(compile_set(correlation("event_count", [A], condition={"gte": 5})))
    run.feed(A, 100)
    assert run.table
    run.tick(now=100 + 300 + 60 + 300 + 1)
    assert run.table == {}


# --- value_count ----------------------------------------------------------------------------

def test_value_count_counts_distinct_values_per_group() -> None:
    run = Run(compile_set(correlation("value_count", [A], group_by=["ip"],
                                      condition={"field": "user", "gte": 3})))
    run.feed(A, 0, ip="x", user="u1")
    run.feed(A, 1, ip="x", user="u1")
    run.feed(A, 2, ip="x", user="u2")
    run.feed(A, 3, ip="y", user="u3")  # another source address
    run.feed(A, 4, ip="x")  # no value: counts nothing
    assert run.matches == []
    [match] = run.feed(A, 5, ip="x", user="U3")
    assert match.count == 3 and match.group == ("x",)


def test_value_count_respects_the_window() -> None:
    run = Run(compile_set(correlation("value_count", [A], timespan="10s",
                                      condition={"field": "user", "gte": 2})))
    run.feed(A, 0, user="u1")
    assert run.feed(A, 11, user="u2") == []
    assert len(run.feed(A, 12, user="u3")) == 1


# --- temporal -------------------------------------------------------------------------------

def test_temporal_needs_every_rule_in_any_order_within_timespan() -> None:
    run = Run(compile_set(correlation("temporal", [A, B, C], group_by=["host"],
                                      timespan="1m")))
    run.feed(C, 0, host="h1")
    run.feed(A, 10, host="h1")
    run.feed(B, 20, host="h2")  # other host
    assert run.matches == []
    [match] = run.feed(B, 30, host="h1")
    assert match.count == 3 and match.group == ("h1",)


def test_temporal_outside_timespan_does_not_fire() -> None:
    run = Run(compile_set(correlation("temporal", [A, B], timespan="1m")))
    run.feed(A, 0)
    assert run.feed(B, 61) == []
    assert len(run.feed(A, 62)) == 1  # B at 61 and A at 62


def test_temporal_with_aliases_groups_different_fields() -> None:
    run = Run(compile_set(correlation(
        "temporal", ["a_name", "b_name"], group_by=["addr"], timespan="1m",
        aliases={"addr": {"a_name": "destination_ip", "b_name": "source_ip"}}),
        names={"a_name": A, "b_name": B}))
    run.feed(A, 0, destination_ip="10.0.0.1")
    assert run.feed(B, 1, source_ip="10.0.0.2") == []
    [match] = run.feed(B, 2, source_ip="10.0.0.1")
    assert match.group_fields == {"addr": "10.0.0.1"}


def test_temporal_extended_condition() -> None:
    doc = correlation("temporal", [A, B, C], timespan="1m")
    doc["correlation"]["condition"] = "rule_a and (rule_b or rule_c)"
    doc["correlation"]["rules"] = ["rule_a", "rule_b", "rule_c"]
    run = Run(compile_set(doc, names={"rule_a": A, "rule_b": B, "rule_c": C}))
    run.feed(B, 0)
    assert run.feed(C, 1) == []
    assert len(run.feed(A, 2)) == 1


# --- temporal_ordered -----------------------------------------------------------------------

def test_temporal_ordered_requires_the_listed_order() -> None:
    run = Run(compile_set(correlation("temporal_ordered", [A, B], group_by=["ip"],
                                      timespan="1m")))
    run.feed(B, 0, ip="x")
    assert run.feed(A, 1, ip="x") == []  # B before A: wrong order
    [match] = run.feed(B, 2, ip="x")
    assert match.first_ts == 1 and match.last_ts == 2


def test_temporal_ordered_window_and_out_of_order_arrival() -> None:
    run = Run(compile_set(correlation("temporal_ordered", [A, B, C], timespan="1m")))
    run.feed(A, 0)
    run.feed(C, 30)
    assert run.feed(B, 61) == []  # in order, but 61 s from A to C... A-B-C needs C after B
    run2 = Run(compile_set(correlation("temporal_ordered", [A, B, C], timespan="1m")))
    run2.feed(A, 0)
    run2.feed(C, 40)
    assert len(run2.feed(B, 20)) == 1  # B arrives late, event time puts it between A and C


def test_chained_correlation_feeds_the_next() -> None:
    inner = correlation("event_count", [A], group_by=["ip", "user"], condition={"gte": 3},
                        rule_id="22222222-2222-2222-2222-222222222222", name="burst")
    outer = correlation("temporal_ordered", ["burst", B], group_by=["ip"], timespan="10m")
    correlations = compile_set(outer, inner, names={})
    assert not correlations.published("22222222-2222-2222-2222-222222222222")
    assert correlations.published(CORR)
    run = Run(correlations)
    assert run.feed(B, 0, ip="x") == []  # success before the burst: not the story
    for n in range(3):
        run.feed(A, 10 + n, ip="x", user="admin")
    [burst] = run.matches
    assert burst.correlation.info.id != CORR
    [chained] = run.feed(B, 100, ip="x")
    assert chained.correlation.info.id == CORR and chained.event_ids[0] == burst.id


# --- compilation ----------------------------------------------------------------------------

def test_generate_decides_what_is_published() -> None:
    hidden = compile_set(correlation("event_count", [A], condition={"gte": 2}))
    assert not hidden.published(A) and hidden.published(B) and hidden.feeds(A)
    shown = compile_set(correlation("event_count", [A], condition={"gte": 2}, generate=True))
    assert shown.published(A)


def test_unsupported_correlations_are_skipped_with_a_reason() -> None:
    docs = [
        correlation("event_count", ["missing"], condition={"gte": 2}),
        correlation("value_sum", [A], condition={"field": "x", "gte": 2},
                    rule_id="33333333-3333-3333-3333-333333333333"),
    ]
    result = compile_set(*docs)
    assert result.correlations == []
    reasons = sorted(s.reason for s in result.skipped)
    assert "not loaded" in reasons[0] and "value_sum" in reasons[1]


def test_signal_fields_are_the_group_by_and_value_fields() -> None:
    result = compile_set(correlation("value_count", [A], group_by=["IpAddress"],
                                     condition={"field": "TargetUserName", "gte": 2}))
    assert result.signal_fields(A) == ["IpAddress", "TargetUserName"]
    assert yaml.safe_dump(result.signal_fields(B)) == "[]\n"
