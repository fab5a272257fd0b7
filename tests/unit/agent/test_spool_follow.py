"""The spool (order, durability, full policies, torn records) and file following."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producers.agent.follow import FilePosition, Follower
from producers.agent.ship import TokenBucket
from producers.agent.spool import FullPolicy, Spool


def records(start: int, count: int, size: int = 100) -> list[tuple[bytes, str, bytes, bytes]]:
    return [(b"750712184", f"{i:032x}", b"sig" * 30, f"v{i}".encode().ljust(size, b"."))
            for i in range(start, start + count)]


def values(spool: Spool, n: int = 10**6) -> list[int]:
    return [int(r.value.split(b".")[0][1:]) for r in spool.read(n)]


def test_order_ack_and_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096, fsync=False)
    assert spool.append(records(0, 100)) == 100
    got = spool.read(60)
    assert [r.seq for r in got] == list(range(1, 61))
    spool.ack(40)
    spool.close()
    again = Spool(tmp_path, segment_bytes=4096, fsync=False)
    assert again.depth == 60
    assert values(again) == list(range(40, 100))  # unacknowledged, in order
    again.append(records(100, 5))
    assert values(again) == list(range(100, 105))
    again.ack(105)
    assert again.depth == 0 and len(list(tmp_path.glob("*.seg"))) == 1


@pytest.mark.parametrize("tail_bytes", [0, 1500, 8 << 20])
def test_memory_tail_reads_what_the_disk_holds(tmp_path: Path, tail_bytes: int) -> None:
    """Whether a record comes from the in-memory tail or from disk (none kept, a tail that
    overflows, one that holds everything), the reader sees the same records in order, even
    when segments roll and a restart check moves the cursor back."""
    spool = Spool(tmp_path / "a", segment_bytes=4096, fsync=False, tail_bytes=tail_bytes)
    got = []
    for start, count, take in [(0, 30, 7), (30, 5, 100), (35, 40, 3), (75, 1, 0), (76, 24, 50)]:
        spool.append(records(start, count))
        got += spool.read(take)
    spool.cursor = got[10].seq  # as the restart check does after peeking at the first record
    got = got[:10] + spool.read(10**6)
    assert [r.seq for r in got] == list(range(1, 101))
    assert [int(r.value.split(b".")[0][1:]) for r in got] == list(range(100))
    assert all(r.key == b"750712184" and r.event_id == f"{int(r.value.split(b'.')[0][1:]):032x}"
               and r.signature == b"sig" * 30 and r.appended_ms > 0 for r in got)
    spool.close()
    assert [r.seq for r in Spool(tmp_path / "a", segment_bytes=4096, fsync=False).read(200)] \
        == list(range(1, 101))


def test_torn_tail_is_cut(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=False)
    spool.append(records(0, 10))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    with segment.open("r+b") as fh:  # a crash in the middle of the 10th record
        fh.truncate(segment.stat().st_size - 7)
    again = Spool(tmp_path, fsync=False)
    assert values(again) == list(range(9))
    again.append(records(9, 1))
    assert [r.seq for r in again.read(5)] == [10]


@pytest.mark.parametrize("policy", list(FullPolicy))
def test_full_policies_bounded_and_counted(tmp_path: Path, policy: FullPolicy) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024, policy=policy, segment_bytes=8192,
                  fsync=False)
    for batch in range(20):
        spool.append(records(batch * 100, 100))
    total = 2000
    kept = values(spool)
    if policy is FullPolicy.BLOCK:
        # block: the spool takes what it is given; the runner stops reading sources.
        assert spool.full and kept == list(range(total)) and spool.dropped == 0
        return
    assert spool.bytes <= 64 * 1024
    assert spool.dropped == total - len(kept) > 0  # every lost record counted
    if policy is FullPolicy.DROP_NEWEST:
        assert kept == list(range(len(kept)))  # the beginning kept
    else:
        assert kept == list(range(total - len(kept), total))  # the end kept


def test_token_bucket() -> None:
    bucket = TokenBucket(100)
    assert bucket.take(1000) == 100 and bucket.take(10) == 0
    assert TokenBucket(0).take(10**6) == 10**6


def _lines(follower: Follower) -> list[bytes]:
    return [line.data for line in follower.read()]


def test_follow_growth_partial_lines_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(b"one\ntwo\nthr")
    follower = Follower(path)
    assert _lines(follower) == [b"one", b"two"]
    with path.open("ab") as fh:
        fh.write(b"ee\nfour\n")
    assert _lines(follower) == [b"three", b"four"]
    saved = follower.pos
    follower.close()
    with path.open("ab") as fh:
        fh.write(b"five\n")
    restarted = Follower(path, FilePosition.from_dict(saved.as_dict()))
    assert _lines(restarted) == [b"five"]


def test_follow_rotation_while_running_and_while_stopped(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(b"a\n")
    follower = Follower(path)
    assert _lines(follower) == [b"a"]
    with path.open("ab") as fh:
        fh.write(b"b\n")  # written just before rotation, not yet read
    os.rename(path, tmp_path / "auth.log.1")
    path.write_bytes(b"c\n")
    assert _lines(follower) == [b"b", b"c"]
    saved = follower.pos
    follower.close()
    # stopped: lines appended to the old file, then rotated again
    with path.open("ab") as fh:
        fh.write(b"d\n")
    os.rename(path, tmp_path / "auth.log.2")
    path.write_bytes(b"e\n")
    restarted = Follower(path, saved)
    assert _lines(restarted) == [b"d", b"e"]


def test_follow_truncation_new_generation(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"first\nsecond\n")
    follower = Follower(path)
    old = follower.read()
    path.write_bytes(b"x\n")  # copytruncate-style: same inode, shorter
    new = follower.read()
    assert [line.data for line in new] == [b"x"]
    assert follower.truncations == 1
    assert (new[0].ino, new[0].generation, new[0].offset) != (old[0].ino, old[0].generation,
                                                              old[0].offset)
