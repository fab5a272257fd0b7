"""The shipper sends envelopes: an agent's batch arrives as a few signed ``events.raw`` records
that the processor's verifier accepts, numbered with rising sequences, every event exactly
once, across crashes too (against the model of Kafka in ``kafka_model``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import producers.agent.ship as ship
from processors.validate import Refused
from processors.verify import Verifier
from producers.agent.ship import Shipper
from producers.agent.spool import Spool
from producers.signing import Signer, public_key_b64
from runtime.kafka import KafkaConnection
from schemas.enrolment import HEADER_SEQUENCE, AgentEntry
from schemas.envelope import TARGET_BYTES, is_envelope, unpack
from schemas.topics import EVENTS_RAW
from tests.unit.agent.kafka_model import FakeKafka

AGENT = "chu-test-01"
ORG = "750712184"
OTHER_ORG = "690000880"
KEY = Ed25519PrivateKey.generate()
PAD = "x" * 600  # events of ~650 bytes: a thousand of them exceed one envelope's target


def _records(ids: list[str], org: str = ORG) -> list[tuple[bytes, str, bytes, bytes]]:
    return [(org.encode(), i.ljust(32, "0"), b"",
             json.dumps({"event": {"id": i}, "pad": PAD}, separators=(",", ":")).encode())
            for i in ids]


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{k:05d}" for k in range(n)]  # fixed width: ids padded with 0 differ


def _shipper(spool: Spool, commit_interval: float = 0.0, eps: float = 0) -> Shipper:
    return Shipper(spool, kafka=KafkaConnection(bootstrap="broker:9093"),
                   topic=EVENTS_RAW.name, signer=Signer(AGENT, KEY),
                   commit_interval=commit_interval, eps=eps)


def _verifier(*orgs: str) -> Verifier:
    """The processor's verifier, with this agent enrolled for ``orgs`` (one entry per id: the
    registry's key is the agent id, so the last one wins when there are several)."""
    return Verifier([AgentEntry(agent_id=AGENT, establishment_id=org,
                                public_key=public_key_b64(KEY)) for org in orgs])


def _opened(kafka: FakeKafka) -> list[tuple[int, bytes, list[str]]]:
    """Each committed record's (sequence, key, event ids), after checking what the processor
    checks: the signature, and the header line agreeing with the key and the headers."""
    out = []
    for key, value, headers in kafka.records:
        assert _verifier(key.decode()).verify(value, headers, key.decode()) == AGENT
        sequence = int(dict(headers)[HEADER_SEQUENCE])
        assert is_envelope(value)
        header, events = unpack(value)
        assert (header.agent, header.establishment, header.sequence) == (
            AGENT, key.decode(), sequence)
        out.append((sequence, key, [json.loads(e)["event"]["id"] for e in events]))
    return out


def test_a_batch_arrives_as_few_verified_envelopes_with_rising_sequences(
        tmp_path: Path, kafka: FakeKafka) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    names = _names("e", 2000)
    spool.append(_records(names))
    seqs = {r.event_id: r.seq for r in spool.read(2000)}
    spool.cursor = spool.acked + 1
    shipper = _shipper(spool)
    assert shipper.pump(5000) == 2000

    opened = _opened(kafka)
    assert 2 <= len(opened) <= 4  # 2000 events of ~650 bytes in 512 KiB envelopes
    assert [i for _, _, ids in opened for i in ids] == names  # all, once, in order
    sequences = [s for s, _, _ in opened]
    assert sequences == sorted(set(sequences))
    # An envelope's sequence is the spool number of its last event.
    assert all(s == seqs[ids[-1].ljust(32, "0")] for s, _, ids in opened)
    assert all(len(v) <= TARGET_BYTES for _, v, _ in kafka.records)
    # Counts are in events, the position is the last spool record's.
    assert shipper.delivered == 2000 and spool.depth == 0
    assert kafka.transactions[-1][1] == [seqs[names[-1].ljust(32, "0")]]


def test_envelopes_survive_crashes_without_loss_or_repeat(tmp_path: Path, kafka: FakeKafka,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ship, "TARGET_BYTES", 4 * 700)  # a few events per envelope
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(_names("a", 10)))
    first = _shipper(spool)
    assert first.pump() == 10  # committed...
    spool.ack = lambda *_: None  # type: ignore[method-assign]  # ...but the ack never lands
    spool.append(_records(_names("b", 10)))
    first.commit_interval = 3600.0
    assert first.pump() == 10  # full envelopes produced, then the agent dies mid-transaction
    assert first.envelopes > 3

    restarted = Spool(tmp_path / "spool", fsync=False)
    restarted.append(_records(_names("c", 5)))
    second = _shipper(restarted)
    assert second.pump() == 15  # b and c: a is in Kafka already
    opened = _opened(kafka)
    assert Counter(i for _, _, ids in opened for i in ids) == Counter(
        _names("a", 10) + _names("b", 10) + _names("c", 5))
    sequences = [s for s, _, _ in opened]  # what the processor's replay check sees
    assert sequences == sorted(set(sequences))
    assert restarted.depth == 0


def test_another_key_closes_the_envelope(tmp_path: Path, kafka: FakeKafka) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b"]) + _records(["c"], OTHER_ORG) + _records(["d"]))
    assert _shipper(spool).pump() == 4
    assert [(key.decode(), ids) for _, key, ids in _opened(kafka)] == [
        (ORG, ["a", "b"]), (OTHER_ORG, ["c"]), (ORG, ["d"])]


def test_the_eps_cap_counts_events_not_envelopes(tmp_path: Path, kafka: FakeKafka) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(_names("e", 300)))
    shipper = _shipper(spool, eps=100)
    assert shipper.pump() == 100  # one second of burst: 100 events, in one envelope
    assert [len(ids) for _, _, ids in _opened(kafka)] == [100]
    assert spool.depth == 200


def test_a_signature_covers_the_whole_envelope(tmp_path: Path, kafka: FakeKafka) -> None:
    """One altered byte anywhere in an envelope, and the processor refuses all of it."""
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.append(_records(["a", "b", "c"]))
    _shipper(spool).pump()
    [(_key, value, headers)] = kafka.records
    tampered = value.replace(b'"b"', b'"z"')
    assert tampered != value
    verifier = _verifier(ORG)
    assert verifier.verify(value, headers, ORG) == AGENT
    with pytest.raises(Refused, match="signature does not match"):
        verifier.verify(tampered, headers, ORG)
