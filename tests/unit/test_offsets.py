"""Faust's commit held at a skipped record (processors/offsets.py), on a real Faust consumer."""

from __future__ import annotations

from collections.abc import Iterator

import faust
import pytest
from faust.types import TP

from processors import offsets
from schemas.topics import EVENTS_RAW, INCIDENTS


@pytest.fixture()
def consumer() -> Iterator[faust.transport.consumer.Consumer]:
    app = faust.App("vigie-offsets-test", broker="kafka://localhost:1", web_enabled=False)
    offsets.install(app)  # never started: the consumer object is built, nothing connects
    offsets._holes.clear()
    offsets._accepted.clear()
    yield app.consumer
    offsets._holes.clear()
    offsets._accepted.clear()


RAW = TP(EVENTS_RAW.name, 3)


def test_every_input_topic_but_the_compacted_ones_is_contiguous() -> None:
    assert EVENTS_RAW.name in offsets.CONTIGUOUS_TOPICS
    assert INCIDENTS.name not in offsets.CONTIGUOUS_TOPICS


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
