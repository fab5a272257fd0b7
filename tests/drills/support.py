"""What the drills share: stopping one server of the local stack, and reconciling a run.

The local stack is shared: a drill stops a server only to start it again at once, always in a
``finally``. Reconciliation asks Elasticsearch, never the processes' own counters.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass

from elasticsearch import Elasticsearch

from deploy.local import procs
from deploy.local import stack as local_stack
from deploy.local.elasticsearch import Elasticsearch as LocalElasticsearch
from deploy.local.kafka import Kafka as LocalKafka
from deploy.local.layout import Layout
from deploy.local.pipeline import Service
from deploy.local.service import Service as Server
from soc.reconcile import dead_letters_for_offsets, event_id_counts
from tests.integration.support import Run

SERVERS: dict[str, type[Server]] = {"kafka": LocalKafka, "elasticsearch": LocalElasticsearch}


def stop_server(key: str, grace: float = 60) -> None:
    """Stop one local server (SIGTERM to its session leader, SIGKILL past ``grace``)."""
    node = SERVERS[key](Layout.default())
    leader = node.pid()
    members = procs.marked_pids(node.mark)
    everyone = sorted({*members, *([leader] if leader else [])})
    procs.signal_all([leader] if leader else members, signal.SIGTERM)
    survivors = procs.wait_gone(everyone, grace)
    if survivors:
        procs.signal_all(survivors, signal.SIGKILL)
        procs.wait_gone(survivors, 15)
    assert not node.probe(), f"{node.name} still answers after being stopped"


def restart_server(key: str) -> float:
    """Stop then start one local server; returns the seconds it was unavailable. The start
    happens whatever the stop did: the stack is shared."""
    began = time.monotonic()
    try:
        stop_server(key)
    finally:
        local_stack.up(timeout=300)
    return time.monotonic() - began


@dataclass
class Reconciliation:
    """Where each record of a run ended, seen from Elasticsearch."""

    counts: dict[str, int]  # valid event id -> copies in vigie-events
    letters: dict[tuple[int, int, int | None], list[str]]  # (partition, offset, index) -> reasons

    def missing(self, run: Run) -> set[str]:
        return set(run.report.valid_ids) - set(self.counts)

    def duplicated(self) -> dict[str, int]:
        return {i: n for i, n in self.counts.items() if n != 1}


def malformed_positions(run: Run) -> dict[tuple[int, int, int | None], str]:
    """(partition, offset, index in the envelope or None) -> expected reason of the run's
    malformed events (truth file)."""
    return {(t["partition"], t["offset"], t["index"]): t["expected_reason"]
            for t in run.truth if t["kind"] == "malformed"}


def reconcile(es: Elasticsearch, run: Run) -> Reconciliation:
    letters: dict[tuple[int, int, int | None], list[str]] = {}
    for letter in dead_letters_for_offsets(es, run.ranges):
        where = (letter["origin"]["partition"], letter["origin"]["offset"],
                 letter["origin"].get("index"))
        letters.setdefault(where, []).append(letter["reason"])
    return Reconciliation(dict(event_id_counts(es, run.report.valid_ids)), letters)


def wait_reconciled(es: Elasticsearch, run: Run, services: dict[str, Service],
                    timeout: float = 900) -> Reconciliation:
    """Poll until every valid event is indexed and every malformed record dead-lettered.

    Dead letters at other offsets of the range belong to other sessions producing to the
    shared ``events.raw`` meanwhile; they are not counted here (a valid record of ours that
    was dead-lettered shows up as missing from ``vigie-events``)."""
    expected = malformed_positions(run)
    deadline = time.monotonic() + timeout
    while True:
        for service in services.values():
            assert service.alive, f"{service.name} died:\n{service.tail(40)}"
        state = reconcile(es, run)
        done = (len(state.counts) == run.report.valid
                and expected.keys() <= state.letters.keys())
        if done or time.monotonic() > deadline:
            time.sleep(3)  # a late duplicate would show up now
            return reconcile(es, run)
        time.sleep(2)


def assert_exactly_once(run: Run, state: Reconciliation) -> None:
    """Zero lost, zero duplicated: each valid event once in vigie-events, each malformed
    record once in vigie-dlq with the reason it was built to fail with."""
    missing = state.missing(run)
    expected = malformed_positions(run)
    # Letters the run did not build (a valid record refused, or another session's record):
    # the first thing to read when an event is missing.
    unexpected = Counter(r for where, reasons in state.letters.items()
                         if where not in expected for r in reasons)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}; " \
                        f"dead letters in the run's range it did not build: {dict(unexpected)}"
    duplicated = state.duplicated()
    assert not duplicated, f"{len(duplicated)} events indexed more than once"
    found = {where: state.letters.get(where) for where in expected}
    wrong = {w: (found[w], r) for w, r in expected.items() if found[w] != [r]}
    assert not wrong, f"{len(wrong)} malformed records not dead-lettered exactly once with " \
                      f"their reason, e.g. {list(wrong.items())[:3]}"
    reasons = Counter(r for where in expected for r in state.letters[where])
    assert sum(reasons.values()) == len(expected)
