"""Restarts of the shipper against a model of Kafka's transactions: nothing lost, nothing sent
twice, and nothing of ``events.raw`` ever read.

The model keeps what a real cluster keeps: the records of committed transactions (what a
read_committed consumer of ``events.raw`` sees), each group's committed offsets and metadata,
and one live producer per ``transactional.id`` (``init_transactions`` fences the previous one
and drops its open transaction). A "crash" is the old shipper simply abandoned, its spool
state file left as it was on disk. The real broker's behaviour is checked by the SIGKILL
drill (``tests/integration/agent``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.ship import Shipper
from producers.agent.spool import Spool
from producers.signing import Signer
from runtime.kafka import KafkaConnection
from schemas.topics import AGENT_PROGRESS, EVENTS_RAW
from tests.unit.agent.kafka_model import FakeConsumer, FakeKafka

AGENT = "chu-test-01"


def _id(name: str) -> str:
    """The spool's event id of the record called ``name`` (ids are 32 characters long)."""
    return name.ljust(32, "0")


def _records(ids: list[str]) -> list[tuple[bytes, str, bytes, bytes]]:
    """Spool inputs whose values carry the short name (what the model of Kafka records)."""
    return [(b"750712184", _id(i), b"sig", f'{{"event":{{"id":"{i}"}}}}'.encode())
            for i in ids]


def _shipper(spool: Spool, commit_interval: float = 0.0) -> Shipper:
    return Shipper(spool, kafka=KafkaConnection(bootstrap="broker:9093"),
                   topic=EVENTS_RAW.name, signer=Signer(AGENT, Ed25519PrivateKey.generate()),
                   commit_interval=commit_interval)


def _crash_after_commit(spool: Spool) -> None:
    """SIGKILL between Kafka's commit and the spool's state file: the ack never lands."""
    spool.ack = lambda *_: None  # type: ignore[method-assign]


def test_records_committed_before_a_crash_are_not_sent_again(tmp_path: Path,
                                                            kafka: FakeKafka) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b", "c"]))
    _crash_after_commit(spool)
    assert _shipper(spool).pump() == 3
    assert kafka.visible == ["a", "b", "c"]

    restarted = Spool(tmp_path / "spool", fsync=False)
    assert restarted.acked == 0  # the spool alone would send a, b, c again
    restarted.append(_records(["d"]))
    shipper = _shipper(restarted)
    assert shipper.pump() == 1
    assert kafka.counts() == Counter("abcd")
    assert restarted.acked == 4 and restarted.depth == 0


def test_a_transaction_open_at_a_crash_is_sent_again_once(tmp_path: Path,
                                                         kafka: FakeKafka) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b"]))
    first = _shipper(spool)
    assert first.pump() == 2  # committed
    spool.append(_records(["c", "d"]))
    first.commit_interval = 3600.0
    assert first.pump() == 2  # handed, in a transaction that the crash leaves open
    assert kafka.visible == ["a", "b"]

    shipper = _shipper(Spool(tmp_path / "spool", fsync=False))
    assert shipper.pump() == 2  # c, d: never visible, so sent again
    assert kafka.counts() == Counter("abcd")
    with pytest.raises(KafkaException):  # the old incarnation is fenced
        first.producer.begin_transaction()


def test_a_batch_spooled_twice_around_a_restart_is_sent_once(tmp_path: Path,
                                                            kafka: FakeKafka) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b", "c", "d"]))  # before the kill; "a" already in Kafka
    kafka.visible.append("a")
    kafka.offsets[(f"vigie-agent-{AGENT}", AGENT_PROGRESS.name, 0)] = (1, _id("a"))
    spool.append(_records(["c", "d"]))  # the restart's first step read c, d again
    shipper = _shipper(spool)
    assert shipper.pump() == 3
    assert kafka.counts() == Counter("abcd")
    # Records spooled after the check are new lines: sent whatever their ids.
    spool.append(_records(["e", "a"]))
    assert shipper.pump() == 2
    assert kafka.visible[-2:] == ["e", "a"]
    assert spool.depth == 0


def test_a_failed_transaction_is_sent_again_once(tmp_path: Path, kafka: FakeKafka) -> None:
    """A commit that fails, even with a retriable error, is not retried in place (librdkafka
    was seen to block for good on a second attempt after a broker restart): the shipper
    starts over as after a crash, and the position Kafka holds says what to send again."""
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b"]))
    shipper = _shipper(spool)
    kafka.fail_commits = [KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)]
    assert shipper.pump() == 2  # handed, then the commit fails: the transaction is abandoned
    assert kafka.visible == [] and shipper.in_flight == {} and not shipper.reconciled
    assert shipper.pump() == 2
    assert kafka.counts() == Counter("ab")
    assert spool.depth == 0 and shipper.delivered == 2


def test_a_position_this_spool_does_not_hold_is_not_skipped_over(tmp_path: Path,
                                                                 kafka: FakeKafka) -> None:
    """A wiped spool numbers from 1 again: the old position must not hide new records."""
    kafka.offsets[(f"vigie-agent-{AGENT}", AGENT_PROGRESS.name, 0)] = (2, "old-id")
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["x", "y", "z"]))
    assert _shipper(spool).pump() == 3
    assert kafka.counts() == Counter("xyz")


def test_the_agent_reads_nothing_of_events_raw(tmp_path: Path, kafka: FakeKafka) -> None:
    """Across a send, a crash and a restart, the only consumer the agent builds is its own
    group's, asked only for its committed offset on the never-written progress topic."""
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b"]))
    _crash_after_commit(spool)
    _shipper(spool).pump()
    restarted = _shipper(Spool(tmp_path / "spool", fsync=False))
    restarted.pump()
    restarted.close()

    assert kafka.counts() == Counter("ab")
    assert {c.config["group.id"] for c in kafka.consumers} == {f"vigie-agent-{AGENT}"}
    calls = [call for consumer in kafka.consumers for call in consumer.calls]
    assert {name for name, _ in calls} <= FakeConsumer.ALLOWED, calls
    asked = {tp for name, arg in calls if name == "committed" for tp in arg}
    assert asked == {(AGENT_PROGRESS.name, 0)}
    producers = {p.txid for p in kafka.live.values()}
    assert producers == {f"vigie-agent-{AGENT}"}


def test_a_commit_that_timed_out_is_sent_again_with_what_came_since(
        tmp_path: Path, kafka: FakeKafka) -> None:
    """The abandoned transaction's records go again, once, with the records read since."""
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b"]))
    shipper = _shipper(spool)
    kafka.fail_offsets = [KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)]
    assert shipper.pump() == 2  # handed, then the commit times out: abandoned
    spool.append(_records(["c"]))
    assert shipper.pump() == 3
    assert kafka.counts() == Counter("abc")
    assert spool.depth == 0


def test_a_restart_check_that_cannot_reach_the_group_is_retried(tmp_path: Path,
                                                               kafka: FakeKafka) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a"]))
    shipper = _shipper(spool)
    kafka.fail_committed = [KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE, "loading",
                                       retriable=True)]
    assert shipper.pump() == 0 and not shipper.reconciled
    assert shipper.pump() == 1
    assert kafka.visible == ["a"]
