"""Faust must never commit over a record it did not process.

faust-streaming 0.15.3 can skip a record and then commit past it. Its drain loop advances a
partition's read offset even when a flow suspension (rebalance, table recovery) cancelled the
hand-over of the record in flight, and ``Consumer._new_offset`` only refuses a gap at the head
of the acknowledged offsets when it spans two or more records (``min(acked) - committed > 1``):
a single skipped record right after the committed offset is committed over, and lost. The
same method also treats offsets the drain loop saw jump over as done, which is right for
compacted or transactional topics but, on our inputs, can only mean a skipped record.

Every topic the processor consumes is ours and non-compacted; all but ``events.raw`` are
written without transactions, so their offsets are contiguous: the record at the committed
offset must be acknowledged before anything past it is committed. ``install`` makes Faust
hold commits at such a hole (instead of committing over it), and a timer re-reads the
partition from the hole when it does not fill by itself (the records after it are processed
again; their ids are deterministic, so the sink's overwrite makes that harmless). A hole
that re-reading cannot fill (the broker deleted the records, e.g. by retention) is accepted
after a few tries, logged as an error, and counted in ``vigie_records_skipped_total``: never
silent.

``events.raw`` is written in transactions by the agents: its offsets have legitimate gaps
(commit markers, aborted records) that a read_committed consumer never sees, so contiguity
proves nothing there, and Faust's own gap handling (written for such topics) applies. What
must still never be committed over is a record Faust fetched and never handed over: the one
whose hand-over a flow suspension cancelled, and the rest of its fetch, which ``getmany``
drops when the flow stops or the generation changes (the drain loop, seeing the next record
it gets jump over them, then records them as a gap: done). ``install`` notes every record of
a transactional topic as it is fetched (aborted records and commit markers never are: the
read_committed fetcher filters them) and forgets it once handed over; a commit is held before
one left behind, which the same timer re-reads.

Patched at class level because Faust builds its consumer privately; written against
faust-streaming 0.15.3 (pinned in ``pyproject.toml``) — the unit tests exercise the patched
method on a real Faust consumer object so that an upgrade that moves it fails loudly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.transport.consumer import Consumer
from faust.types import TP, Message
from prometheus_client import Counter

from schemas.topics import ALL_TOPICS, TRANSACTIONAL_TOPICS

log = logging.getLogger(__name__)

#: Topics whose offsets have no legitimate gaps: not compacted, never written transactionally.
CONTIGUOUS_TOPICS: frozenset[str] = frozenset(
    t.name for t in ALL_TOPICS if "compact" not in t.config.get("cleanup.policy", "delete")
    and t.name not in TRANSACTIONAL_TOPICS)

HOLD_BEFORE_REREAD_S = 10.0
REREADS_BEFORE_GIVING_UP = 3

HOLES = Counter("vigie_commit_holes_total",
                "Commits Faust would have made over an unprocessed record, held back", ["topic"])
REREADS = Counter("vigie_rereads_total",
                  "Partitions re-read from a held commit's hole", ["topic"])
SKIPPED = Counter("vigie_records_skipped_total",
                  "Records given up on: the broker no longer has them", ["topic"])


@dataclass
class Hole:
    """A partition whose commit is held at ``offset`` (the first unprocessed record)."""

    offset: int
    since: float
    rereads: int = 0


_holes: dict[TP, Hole] = {}
_accepted: dict[TP, int] = {}  # tp -> hole offset given up on (commit may pass it)
# Transactional topics: offsets fetched whose hand-over to Faust's callback has not completed,
# and the offset handed last (the drain loop hands one record at a time: a pending offset
# below it was left behind, the one equal to it may still be on its way, those above it are
# still to come).
_unhanded: dict[TP, set[int]] = {}
_latest: dict[TP, int] = {}
_original_new_offset = Consumer._new_offset


def held_commit(self: Consumer, tp: TP) -> int | None:
    """The offset Faust may commit for ``tp``, holding back at a hole (see module doc).

    Installed as the method ``Consumer._new_offset``, hence its parameters' names."""
    if tp.topic in TRANSACTIONAL_TOPICS:
        return _transactional_commit(self, tp)
    if tp.topic not in CONTIGUOUS_TOPICS:
        return _original_new_offset(self, tp)
    # Offsets the drain loop saw jump over are not "done" on a contiguous topic.
    self._gap.pop(tp, None)
    committed = self._committed_offset[tp]
    acked = self._acked[tp]
    if committed is not None and acked:
        first = min(acked)
        if first > committed and _accepted.get(tp) != committed:
            hole = _holes.get(tp)
            if hole is None or hole.offset != committed:
                _holes[tp] = Hole(committed, time.monotonic())
                HOLES.labels(tp.topic).inc()
                log.warning("%s[%d]: offset %d was never processed but %d was; holding the "
                            "commit (Faust skipped a record)", tp.topic, tp.partition,
                            committed, first)
            return None
        if first > committed:  # accepted hole: commit over it once
            acked[:0] = range(committed, first)
            self._acked_index[tp].update(range(committed, first))
            _accepted.pop(tp, None)
    _holes.pop(tp, None)
    return _original_new_offset(self, tp)


def _transactional_commit(self: Consumer, tp: TP) -> int | None:
    """Faust's commit, held before a record whose hand-over was cancelled (see module doc)."""
    pending = _unhanded.get(tp)
    committed = self._committed_offset[tp]
    if pending and committed is not None:  # committed already (by another member, say)
        pending.difference_update([o for o in pending if o < committed])
    if pending and _accepted.get(tp) == min(pending):
        pending.discard(_accepted.pop(tp))
    behind = [o for o in pending or () if o < _latest.get(tp, -1)]
    if behind:
        first = min(behind)
        hole = _holes.get(tp)
        if hole is None or hole.offset != first:
            _holes[tp] = Hole(first, time.monotonic())
            HOLES.labels(tp.topic).inc()
            log.warning("%s[%d]: offset %d was delivered but never handed over; holding the "
                        "commit (Faust skipped a record)", tp.topic, tp.partition, first)
        return None
    _holes.pop(tp, None)
    return _original_new_offset(self, tp)


def _tracked(callback: Callable[[Message], Awaitable[None]]) -> Callable[[Message], Any]:
    """Faust's message callback, noting each record of a transactional topic until its
    hand-over completes (a coroutine cancelled before or while running never gets there)."""

    async def hand_over(message: Message, tp: TP, offset: int) -> None:
        await callback(message)
        pending = _unhanded.get(tp)
        if pending is not None:
            pending.discard(offset)

    def call(message: Message) -> Awaitable[None]:
        tp = message.tp
        if tp.topic not in TRANSACTIONAL_TOPICS:
            return callback(message)
        _unhanded.setdefault(tp, set()).add(message.offset)
        _latest[tp] = message.offset
        return hand_over(message, tp, message.offset)

    return call


def _noting_fetched(consumer: Consumer, wait_next_records: Callable[[float], Awaitable[Any]]
                    ) -> Callable[[float], Awaitable[Any]]:
    """Faust's fetch (``Consumer._wait_next_records``), noting every record of a transactional
    topic that ``getmany`` will try to hand over (those of active or buffered partitions), so
    that one it drops instead holds the commit like one whose hand-over was cancelled."""

    async def fetch(timeout: float) -> Any:
        records, active = await wait_next_records(timeout)
        for tp, batch in (records or {}).items():
            if tp.topic in TRANSACTIONAL_TOPICS and (
                    active is None or tp in active or tp in consumer._buffered_partitions):
                _unhanded.setdefault(tp, set()).update(r.offset for r in batch)
        return records, active

    return fetch


def holes_to_reread(now: float, assigned: Iterable[TP]) -> list[tuple[TP, Hole]]:
    """The holes held long enough to re-read, among the partitions still assigned."""
    assigned = set(assigned)
    for tp in [tp for tp in _holes if tp not in assigned]:
        del _holes[tp]
    for tp in [tp for tp in _unhanded if tp not in assigned]:
        del _unhanded[tp]  # re-read from its committed offset by whoever gets it
        _latest.pop(tp, None)
    return [(tp, hole) for tp, hole in _holes.items() if now - hole.since >= HOLD_BEFORE_REREAD_S]


def install(app: faust.App) -> None:
    """Patch Faust's commit and start the re-read timer on ``app``."""
    # Deliberately patching a method on the class (see the module doc): mypy forbids that.
    Consumer._new_offset = held_commit  # type: ignore[method-assign]
    consumer = cast(Consumer, app.consumer)
    consumer.callback = _tracked(consumer.callback)
    # An instance attribute: ``getmany`` looks the method up on ``self`` at each fetch.
    consumer._wait_next_records = _noting_fetched(  # type: ignore[method-assign,assignment]
        consumer, consumer._wait_next_records)

    @app.timer(interval=HOLD_BEFORE_REREAD_S / 2)
    async def reread_due_holes() -> None:
        await reread_holes(cast(Consumer, app.consumer), time.monotonic())


async def reread_holes(consumer: Consumer, now: float) -> None:
    """Seek each partition whose commit has been held long enough back to its hole (or,
    after ``REREADS_BEFORE_GIVING_UP`` tries, accept the hole, loudly)."""
    for tp, hole in holes_to_reread(now, consumer.assignment()):
        if hole.rereads >= REREADS_BEFORE_GIVING_UP:
            SKIPPED.labels(tp.topic).inc()
            log.error("%s[%d]: offset %d could not be read again after %d tries (deleted "
                      "by the broker?); committing past it: that record is lost",
                      tp.topic, tp.partition, hole.offset, hole.rereads)
            _accepted[tp] = hole.offset
            del _holes[tp]
            continue
        hole.rereads += 1
        hole.since = now
        REREADS.labels(tp.topic).inc()
        log.warning("%s[%d]: re-reading from offset %d (try %d)", tp.topic, tp.partition,
                    hole.offset, hole.rereads)
        await consumer.seek(tp, hole.offset)
