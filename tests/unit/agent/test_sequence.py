"""The agent's spool sequence numbers, from which its envelopes take theirs (the number of an
envelope's last event) for the processor's replay check: they rise, they survive a restart,
and a spool record read again after a crash keeps its number (signed the same when it travels
alone)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.spool import Spool
from producers.signing import Signer
from schemas.enrolment import HEADER_SEQUENCE


def _records(n: int) -> list[tuple[bytes, str, bytes, bytes]]:
    return [(b"750000001", f"{i:032x}", b"", f'{{"n":{i}}}'.encode()) for i in range(n)]


def test_a_new_spool_starts_at_the_clock_then_keeps_counting(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=False, first_seq=1_700_000_000_000_000)
    spool.append(_records(3))
    got = spool.read(10)
    assert [r.seq for r in got] == [1_700_000_000_000_000 + i for i in range(3)]
    spool.ack(got[-1].seq)
    spool.close()
    # Restarted later (the clock is further on): numbering goes on where it was.
    again = Spool(tmp_path, fsync=False, first_seq=1_800_000_000_000_000)
    again.append(_records(1))
    assert [r.seq for r in again.read(10)] == [1_700_000_000_000_003]
    assert again.depth == 1


def test_a_record_sent_again_after_a_crash_is_signed_the_same(tmp_path: Path) -> None:
    signer = Signer("agent-x", Ed25519PrivateKey.generate())
    spool = Spool(tmp_path, fsync=False, tail_bytes=0)
    spool.append(_records(5))
    before = [(r.seq, signer.headers(r.value, r.seq)) for r in spool.read(5)]
    spool.ack(2)
    spool.close()  # the agent dies with 3..5 sent but not acknowledged
    after = Spool(tmp_path, fsync=False)
    resent = [(r.seq, signer.headers(r.value, r.seq)) for r in after.read(5)]
    assert resent == before[2:]  # same numbers, byte-identical headers
    assert [dict(h)[HEADER_SEQUENCE] for _, h in resent] == [b"3", b"4", b"5"]
