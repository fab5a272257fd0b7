"""Faust's commit held at a skipped record (processors/offsets.py), on a real Faust consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest
from faust.types import TP, Message

from processors import offsets
from schemas.topics import CORRELATION_INPUTS, EVENTS_RAW, INCIDENTS


@pytest.fixture()
def consumer() -> Iterator[faust.transport.consumer.Consumer]:
    app = faust.App("vigie-offsets-test", broker="kafka://localhost:1", web_enabled=False)
    offsets.install(app)  # never started: the consumer object is built, nothing connects
    for state in (offsets._holes, offsets._accepted, offsets._unhanded, offsets._latest):
        state.clear()
    yield app.consumer
    for state in (offsets._holes, offsets._accepted, offsets._unhanded, offsets._latest):
        state.clear()


# A contiguous input of the processor (written by the processor itself, without transactions).
RAW = TP(CORRELATION_INPUTS.name, 3)
# events.raw: written in transactions by the agents.
AGENTS = TP(EVENTS_RAW.name, 3)


def test_every_input_topic_but_the_compacted_and_transactional_ones_is_contiguous() -> None:
    assert CORRELATION_INPUTS.name in offsets.CONTIGUOUS_TOPICS
    assert INCIDENTS.name not in offsets.CONTIGUOUS_TOPICS
    assert EVENTS_RAW.name not in offsets.CONTIGUOUS_TOPICS


def test_contiguous_acks_commit_as_faust_would(consumer) -> None:
    consumer._committed_offset[RAW] = 10
    consumer._acked[RAW] = [10, 11, 12]
    assert consumer._new_offset(RAW) == 13
    assert not offsets._holes


def test_a_single_skipped_record_after_the_committed_offset_holds_the_commit(consumer) -> None:
    # Faust 0.15.3 returns 13 here (its head-gap check needs a gap of two): record 10 lost.
    consumer._committed_offset[RAW] = 10
    consumer._acked[RAW] = [11, 12]
    assert consumer._new_offset(RAW) is None
    assert offsets._holes[RAW].offset == 10
    # Once the record is processed (re-read), the commit goes on over all three.
    consumer._acked[RAW].append(10)
    assert consumer._new_offset(RAW) == 13
    assert RAW not in offsets._holes


def test_offsets_seen_jumping_are_not_done_on_a_contiguous_topic(consumer) -> None:
    # The drain loop marks 11..12 as a gap when it sees 10 then 13; on events.raw that means
    # two skipped records, which must not be committed over.
    consumer._committed_offset[RAW] = 10
    consumer._acked[RAW] = [10, 13]
    consumer._gap[RAW].addi(11, 13)
    assert consumer._new_offset(RAW) == 11
    assert consumer._new_offset(RAW) is None  # held at 11 now


def test_compacted_topics_keep_faust_gap_handling(consumer) -> None:
    tp = TP(INCIDENTS.name, 0)
    consumer._committed_offset[tp] = 10
    consumer._acked[tp] = [10, 13]
    consumer._gap[tp].addi(11, 13)
    assert consumer._new_offset(tp) == 14


def test_a_hole_given_up_on_is_committed_over_once(consumer) -> None:
    consumer._committed_offset[RAW] = 10
    consumer._acked[RAW] = [12, 13]
    assert consumer._new_offset(RAW) is None
    offsets._accepted[RAW] = 10
    assert consumer._new_offset(RAW) == 14
    assert RAW not in offsets._accepted


def test_only_old_holes_of_assigned_partitions_are_re_read(consumer) -> None:
    consumer._committed_offset[RAW] = 10
    consumer._acked[RAW] = [11]
    consumer._new_offset(RAW)
    since = offsets._holes[RAW].since
    assert offsets.holes_to_reread(since + 1, [RAW]) == []
    assert [tp for tp, _ in offsets.holes_to_reread(since + 60, [RAW])] == [RAW]
    assert offsets.holes_to_reread(since + 60, []) == []  # revoked: forgotten
    assert RAW not in offsets._holes


def test_faust_itself_still_commits_over_a_single_skipped_record(consumer) -> None:
    """Why the patch exists; when this fails, Faust fixed it and the patch can go."""
    consumer._committed_offset[RAW] = 10
    consumer._acked[RAW] = [11, 12]
    assert offsets._original_new_offset(consumer, RAW) == 13


def _message(offset: int) -> Message:
    return Message(EVENTS_RAW.name, AGENTS.partition, offset, 0.0, 0, None, b"k", b"v", None,
                   tp=AGENTS)


def test_install_tracks_the_hand_over_of_every_message(consumer) -> None:
    assert consumer.callback.__qualname__.startswith("_tracked")


def test_transaction_markers_of_events_raw_are_committed_over(consumer) -> None:
    # 10 is the commit marker of an agent's transaction: never delivered, nothing to hold.
    consumer._committed_offset[AGENTS] = 10
    consumer._acked[AGENTS] = [11, 12]
    assert consumer._new_offset(AGENTS) == 13
    assert not offsets._holes


def test_a_record_of_events_raw_whose_hand_over_was_cancelled_holds_the_commit(consumer) -> None:
    handed: list[int] = []

    async def callback(message: Message) -> None:
        handed.append(message.offset)

    tracked = offsets._tracked(callback)
    cancelled = tracked(_message(10))  # a flow suspension cancels it before it runs
    cancelled.close()

    async def deliver(*offsets_: int) -> None:
        for offset in offsets_:
            await tracked(_message(offset))

    asyncio.run(deliver(11, 12))
    consumer._committed_offset[AGENTS] = 10
    consumer._acked[AGENTS] = [11, 12]
    assert consumer._new_offset(AGENTS) is None  # Faust alone would commit 13: 10 lost
    assert offsets._holes[AGENTS].offset == 10
    asyncio.run(deliver(10))  # the re-read hands it over this time
    consumer._acked[AGENTS].append(10)
    assert consumer._new_offset(AGENTS) == 13
    assert handed == [11, 12, 10]
    assert AGENTS not in offsets._holes


def test_the_record_being_handed_over_does_not_hold_the_commit(consumer) -> None:
    async def callback(message: Message) -> None:
        pass

    tracked = offsets._tracked(callback)
    asyncio.run(tracked(_message(10)))
    on_its_way = tracked(_message(11))  # the drain loop waits on it while Faust commits
    consumer._committed_offset[AGENTS] = 10
    consumer._acked[AGENTS] = [10]
    assert consumer._new_offset(AGENTS) == 11
    assert not offsets._holes
    on_its_way.close()


def test_install_notes_every_fetched_record(consumer) -> None:
    assert consumer._wait_next_records.__qualname__.startswith("_noting_fetched")


def test_records_of_events_raw_a_fetch_dropped_hold_the_commit(consumer) -> None:
    """``getmany`` hands 10 over, then the flow stops: 11-13 are dropped, not handed. The flow
    resumes without a seek, 14 comes next; the drain loop records 11-13 as a gap (done)."""
    from types import SimpleNamespace

    fetches = [{AGENTS: [SimpleNamespace(offset=o) for o in (10, 11, 12, 13)]},
               {AGENTS: [SimpleNamespace(offset=14)]}]

    async def wait_next_records(timeout: float) -> tuple[dict, set]:
        return fetches.pop(0), {AGENTS}

    async def callback(message: Message) -> None:
        pass

    fetch = offsets._noting_fetched(consumer, wait_next_records)
    tracked = offsets._tracked(callback)

    async def run() -> None:
        await fetch(1.0)
        await tracked(_message(10))  # then the flow stops: 11, 12, 13 never handed over
        await fetch(1.0)
        await tracked(_message(14))

    asyncio.run(run())
    consumer._committed_offset[AGENTS] = 10
    consumer._acked[AGENTS] = [10, 14]
    asyncio.run(consumer._add_gap(AGENTS, 11, 14))  # what Faust's drain loop does at the jump
    assert offsets._original_new_offset(consumer, AGENTS) == 15  # Faust alone: 11-13 lost
    assert consumer._new_offset(AGENTS) is None
    assert offsets._holes[AGENTS].offset == 11


def test_fetched_records_of_paused_partitions_are_not_noted(consumer) -> None:
    from types import SimpleNamespace

    async def wait_next_records(timeout: float) -> tuple[dict, set]:
        return {AGENTS: [SimpleNamespace(offset=5)]}, set()  # getmany will not hand it over

    asyncio.run(offsets._noting_fetched(consumer, wait_next_records)(1.0))
    assert not offsets._unhanded.get(AGENTS)


def test_a_flow_stopped_right_after_a_hand_over_holds_the_commit_and_re_reads_the_hole(
        consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust's real ``getmany`` over a fetch of envelopes 10-13 of ``events.raw``; the flow
    stops at the exact point that loses records (10 handed over, a rebalance arrives before
    11): ``getmany`` drops 11-13; the flow resumes without a seek and 14 comes next. Faust
    alone would commit 15 over three envelopes (hundreds of events); the guard holds the
    commit at 11 and, once the hole has waited, seeks back to 11 so they are read again."""
    from aiokafka.structs import ConsumerRecord

    def record(offset: int) -> ConsumerRecord:
        return ConsumerRecord(AGENTS.topic, AGENTS.partition, offset, 0, 0, b"750000001",
                              b"envelope", None, 8, 8, [])

    fetches = [{AGENTS: [record(o) for o in (10, 11, 12, 13)]}, {AGENTS: [record(14)]}]

    async def wait_next_records(timeout: float) -> tuple[dict, set]:
        return fetches.pop(0), {AGENTS}

    async def callback(message: Message) -> None:
        pass

    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    consumer._wait_next_records = offsets._noting_fetched(consumer, wait_next_records)
    consumer.callback = offsets._tracked(callback)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 100)
    monkeypatch.setattr(consumer, "seek", seek)
    monkeypatch.setattr(consumer, "assignment", lambda: {AGENTS})
    handed: list[int] = []

    async def run() -> None:
        consumer.resume_flow()
        async for _tp, message in consumer.getmany(1.0):
            await consumer.callback(message)
            handed.append(message.offset)
            consumer.stop_flow()  # the rebalance, between the hand-over of 10 and of 11
        consumer.resume_flow()
        async for _tp, message in consumer.getmany(1.0):
            await consumer.callback(message)
            handed.append(message.offset)
        # Faust's drain loop, seeing 14 come after 10, records 11-13 as a gap (done).
        await consumer._add_gap(AGENTS, 11, 14)

    asyncio.run(run())
    assert handed == [10, 14]
    consumer._committed_offset[AGENTS] = 10
    consumer._acked[AGENTS] = [10, 14]
    assert offsets._original_new_offset(consumer, AGENTS) == 15  # what Faust would commit
    assert consumer._new_offset(AGENTS) is None  # held
    assert offsets._holes[AGENTS].offset == 11
    asyncio.run(offsets.reread_holes(consumer, offsets._holes[AGENTS].since + 1))
    assert seeks == []  # not yet: it may still fill by itself
    asyncio.run(offsets.reread_holes(
        consumer, offsets._holes[AGENTS].since + offsets.HOLD_BEFORE_REREAD_S))
    assert seeks == [(AGENTS, 11)]  # read again from the first envelope left behind
