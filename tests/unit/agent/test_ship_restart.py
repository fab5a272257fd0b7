"""After a crash, a batch spooled twice (killed between the spool append and the position
save, so read again at restart) is sent once."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.ship import Shipper
from producers.agent.spool import Spool
from producers.signing import Signer
from runtime.kafka import KafkaConnection


def _records(ids: list[str]) -> list[tuple[bytes, str, bytes, bytes]]:
    return [(b"750000001", i, b"sig", f'{{"event":{{"id":"{i}"}}}}'.encode()) for i in ids]


def test_a_batch_spooled_again_after_a_restart_is_handed_to_kafka_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b", "c", "d"]))  # before the kill; "a" already in Kafka
    spool.append(_records(["c", "d"]))  # the restart's first step read c, d again
    # Nothing listens there: the producer only queues, which is all this test looks at.
    shipper = Shipper(spool, kafka=KafkaConnection(bootstrap="127.0.0.1:1"), topic="events.raw",
                      signer=Signer("agent-x", Ed25519PrivateKey.generate()),
                      producer_overrides={"message.timeout.ms": 1000, "log_level": 0})
    shipper.reconciled, shipper._skip = True, {"a"}  # what the restart check found in Kafka
    shipper._skip_upto = spool.next_seq - 1
    assert shipper.pump() == 3
    assert sorted(r.event_id for r in shipper.in_flight.values()) == ["b", "c", "d"]
    # Records spooled after the check are new lines: sent whatever their ids.
    spool.append(_records(["e"]))
    assert shipper.pump() == 1
    shipper.producer.purge()  # drop the queued records: nothing is meant to be delivered
