"""The durable on-disk spool between the sources and Kafka.

Every event goes through it, whether Kafka is up or not: the sources append, the shipper
reads in order and acknowledges what the broker acknowledged. So a link that drops, a broker
restart or an agent restart changes nothing but the spool's depth.

Format: append-only *segment* files ``<first seq>.seg`` of records
``[u32 length][u32 crc32][u64 seq][u64 appended ms][payload]``; the payload holds the Kafka
key, the event id, the signature and the value. A torn record at the end of the last segment
(power cut, SIGKILL mid-write) is detected by its length/CRC and cut at start-up. ``state.json``
holds the last acknowledged sequence number (and the partition/offset the broker gave it),
which the restart check uses; segments wholly acknowledged are deleted.

The records appended most recently (up to ``tail_bytes``) are also kept in memory, and the
shipper reads them from there: in the usual case, where Kafka keeps up, each record is
written (and fsync'd, once per appended batch) but never read back from disk. The disk stays
the source of truth: what is not in that tail (a backlog, a restart) is read from the files.

Bounded: when ``max_bytes`` is reached the configured policy applies, and every record it
costs is counted (``vigie_agent_spool_dropped_total{policy}``) and logged:

- ``block`` (default): sources are not read until the spool has room again. Files simply
  wait; UDP syslog datagrams arriving meanwhile are dropped by the network (counted at the
  receiver); TCP senders are slowed down.
- ``drop_oldest``: the oldest segment not yet sent is deleted to make room (keeps the most
  recent picture of an ongoing attack).
- ``drop_newest``: new records are refused while full (keeps the beginning of the story).

Hand-written: no maintained Python library offers a bounded, crash-safe, ordered disk queue
with these policies (``persist-queue`` has no size bound or drop policy and uses SQLite
transactions per item, far too slow for thousands of events per second).
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, NamedTuple, cast

from producers.agent import metrics as agent_metrics
from producers.keyfiles import UnsafeDirectory, private_dir

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IIQQ")  # length, crc32, seq, appended ms
_SIZES = struct.Struct(">HH")  # key length, signature length
_SEQ = struct.Struct(">Q")  # the sequence number, as covered by the CRC

# One record as the pipeline hands it to the spool: (Kafka key, event id, signature, value).
SpoolInput = tuple[bytes, str, bytes, bytes]


class FullPolicy(StrEnum):
    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class SpoolRecord(NamedTuple):
    """One spooled record (a named tuple: one is made per event shipped, and the frozen
    dataclass it was cost several times more to build)."""

    seq: int
    key: bytes
    event_id: str
    signature: bytes
    value: bytes
    appended_ms: int = 0


@dataclass
class _Segment:
    first_seq: int
    path: Path
    count: int
    size: int

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1


def _open_private(path: Path, flags: int, mode: str) -> BinaryIO:
    """``path`` opened with ``flags``, created 0600, never through a symbolic link (one
    planted in the spool directory would make the agent write or read elsewhere)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return cast(BinaryIO, os.fdopen(fd, mode))


def _encode(seq: int, key: bytes, eid: str, signature: bytes, value: bytes, now_ms: int) -> bytes:
    payload = b"".join((_SIZES.pack(len(key), len(signature)), key, eid.encode("ascii"),
                        signature, value))
    crc = zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq)))
    return _HEADER.pack(len(payload), crc, seq, now_ms) + payload


def _decode(seq: int, appended: int, payload: bytes) -> SpoolRecord:
    key_len, sig_len = _SIZES.unpack_from(payload)
    at = _SIZES.size
    key = payload[at:at + key_len]
    at += key_len
    eid = payload[at:at + 32].decode("ascii")
    at += 32
    signature = payload[at:at + sig_len]
    return SpoolRecord(seq, key, eid, signature, payload[at + sig_len:], appended)


def _scan(fh: BinaryIO) -> Iterable[tuple[int, int, bytes, int]]:
    """(seq, appended ms, payload, end offset) of each intact record; stops at a bad one."""
    offset = fh.tell()
    while True:
        header = fh.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        length, crc, seq, appended = _HEADER.unpack(header)
        payload = fh.read(length)
        if len(payload) < length or zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq))) != crc:
            return
        offset += _HEADER.size + length
        yield seq, appended, payload, offset


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int = 1 << 30,
                 policy: FullPolicy = FullPolicy.BLOCK, segment_bytes: int = 16 << 20,
                 fsync: bool = True, read_only: bool = False,
                 tail_bytes: int = 8 << 20, first_seq: int = 1) -> None:
        """``read_only``: inspect a spool another process may be writing (``status``): no
        repair, no deletion. ``tail_bytes``: how much of what was appended last is kept in
        memory for the reader (0: read everything back from disk). ``first_seq``: the number
        of the first record of a brand-new spool (no state, no segment). Sequence numbers are
        also what the agent signs for the processor's replay check, which refuses numbers it
        has already seen from the agent: the agent starts a new spool at the clock (in
        microseconds), so that one recreated after its state directory was lost does not
        reuse the numbers of the one before."""
        self.read_only = read_only
        self.dir = directory
        if read_only:
            if self.dir.is_symlink():
                raise UnsafeDirectory("is a symbolic link", source=str(self.dir))
        else:  # 0700, and never a link: the records hold what the hospital ships
            private_dir(self.dir)
        self.max_bytes = max_bytes
        self.policy = FullPolicy(policy)
        # At least ~8 segments fit: drop_oldest then frees a small share at a time.
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 8))
        self.fsync = fsync
        self.dropped = 0
        self.state_path = self.dir / "state.json"
        state = self._read_state()
        self.acked: int = state.get("acked", 0)
        self.partition: int | None = state.get("partition")
        self.offset: int | None = state.get("offset")
        self.segments: list[_Segment] = []
        self._total = 0
        self.next_seq: int = 1  # set by _recover
        self._recover(state)
        if not state and not self.segments and first_seq > self.next_seq:
            self.next_seq, self.acked = first_seq, first_seq - 1
        self._writer: BinaryIO | None = None
        self._reader: tuple[int, BinaryIO] | None = None  # (next seq expected, file)
        self.cursor = self.acked + 1  # next seq the shipper will read
        # The last records appended, consecutive seqs ending at next_seq - 1 (see module doc).
        self.tail_bytes = tail_bytes
        self._tail: deque[SpoolRecord] = deque()
        self._tail_size = 0
        self._state_dirty = False
        self._state_written = 0.0
        self._gauges()

    # --- start-up ------------------------------------------------------------------------------
    def _read_state(self) -> dict[str, int]:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.error("spool state %s unreadable: every spooled record will be re-checked",
                      self.state_path)
            return {}

    def _recover(self, state: dict[str, int]) -> None:
        paths = sorted(self.dir.glob("*.seg"))
        for index, path in enumerate(paths):
            first = int(path.stem)
            count, good_end, last_seq = 0, 0, first - 1
            with path.open("rb") as fh:
                for seq, _appended, _payload, end in _scan(fh):
                    if seq != last_seq + 1:
                        break
                    count, good_end, last_seq = count + 1, end, seq
            size = path.stat().st_size
            if good_end < size and not self.read_only:
                where = "end" if index == len(paths) - 1 else "middle"
                log.warning("spool segment %s: %d bytes of torn or corrupt records at its %s "
                            "cut (their sources re-read them: positions are saved after the "
                            "spool)", path.name, size - good_end, where)
                with path.open("r+b") as fh:
                    fh.truncate(good_end)
            if count == 0:
                if not self.read_only:
                    path.unlink()
                continue
            self.segments.append(_Segment(first, path, count, good_end))
            self._total += good_end
        # Records cut above are gone from the spool: their numbers are reused.
        self.next_seq = (self.segments[-1].last_seq + 1 if self.segments
                         else max(state.get("next_seq", 1), self.acked + 1))
        self._delete_acked()

    # --- sizes -----------------------------------------------------------------------------
    @property
    def bytes(self) -> int:
        return self._total

    @property
    def depth(self) -> int:
        """Records not yet acknowledged by Kafka."""
        return sum(max(0, s.last_seq - max(self.acked, s.first_seq - 1)) for s in self.segments)

    @property
    def full(self) -> bool:
        return self._total >= self.max_bytes

    def _gauges(self) -> None:
        agent_metrics.SPOOL_DEPTH.set(self.depth)
        agent_metrics.SPOOL_BYTES.set(self.bytes)

    # --- writing -----------------------------------------------------------------------------
    def append(self, records: Iterable[SpoolInput]) -> int:
        """Append (key, event id, signature, value) records durably; returns how many were
        stored (fewer than given only under ``drop_newest``)."""
        now_ms = int(time.time() * 1000)
        chunks: list[builtins.bytes] = []  # ``bytes`` is the property above, in here
        stored = refused = 0
        pending = 0
        for key, eid, signature, value in records:
            blob = _encode(self.next_seq, key, eid, signature, value, now_ms)
            if self._total + pending + len(blob) > self.max_bytes:
                if self.policy is FullPolicy.DROP_NEWEST:
                    refused += 1
                    continue
                if self.policy is FullPolicy.DROP_OLDEST:
                    self._write(chunks)
                    chunks, pending = [], 0
                    self._drop_oldest(len(blob))
            if self._writer is None or (
                    self.segments[-1].count > 0
                    and self.segments[-1].size + pending + len(blob) > self.segment_bytes):
                self._write(chunks)
                chunks, pending = [], 0
                self._roll()
            chunks.append(blob)
            pending += len(blob)
            self.segments[-1].count += 1
            if self.tail_bytes:
                self._tail.append(SpoolRecord(self.next_seq, key, eid, signature, value, now_ms))
                self._tail_size += len(value)
            self.next_seq += 1
            stored += 1
        self._write(chunks)
        while self._tail_size > self.tail_bytes:  # the oldest are read back from disk
            self._tail_size -= len(self._tail.popleft().value)
        if refused:
            self._count_dropped(refused, "new records refused")
        self._state_dirty = True
        self._gauges()
        return stored

    def _write(self, chunks: list[builtins.bytes]) -> None:
        if not chunks:
            return
        assert self._writer is not None
        data = b"".join(chunks)
        self._writer.write(data)
        self._writer.flush()
        if self.fsync:
            os.fsync(self._writer.fileno())
        self.segments[-1].size += len(data)
        self._total += len(data)

    def _roll(self) -> None:
        """Start a new segment (the first append after start-up always starts one, so a
        recovered segment is never appended to)."""
        if self._writer is not None:
            self._writer.close()
        path = self.dir / f"{self.next_seq:020d}.seg"
        self._writer = _open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, "ab")
        self.segments.append(_Segment(self.next_seq, path, 0, 0))

    def _drop_oldest(self, needed: int) -> None:
        while self.segments and self._total + needed > self.max_bytes:
            if len(self.segments) == 1:
                if self.segments[0].count == 0:
                    break  # one record larger than the whole spool: nothing left to drop
                self._roll()  # never delete the segment being written without a successor
            oldest = self.segments.pop(0)
            self._total -= oldest.size
            lost = oldest.last_seq - max(self.acked, oldest.first_seq - 1)
            oldest.path.unlink(missing_ok=True)
            if self._reader is not None and self._reader[0] <= oldest.last_seq:
                self._reader[1].close()
                self._reader = None
            self.cursor = max(self.cursor, oldest.last_seq + 1)
            self.acked = max(self.acked, oldest.last_seq)  # gone: nothing to wait for
            if lost > 0:
                self._count_dropped(lost, f"oldest records (seq {oldest.first_seq}.."
                                          f"{oldest.last_seq}) deleted")

    def _count_dropped(self, count: int, what: str) -> None:
        self.dropped += count
        agent_metrics.SPOOL_DROPPED.labels(self.policy.value).inc(count)
        log.error("spool full (%d bytes, max %d): %d %s by policy %s [%d dropped so far]",
                  self.bytes, self.max_bytes, count, what, self.policy.value, self.dropped)

    # --- reading -----------------------------------------------------------------------------
    def read(self, max_records: int) -> list[SpoolRecord]:
        """The next records from the cursor, in order (does not acknowledge them)."""
        out: list[SpoolRecord] = []
        tail = self._tail
        while len(out) < max_records and self.cursor < self.next_seq:
            while tail and tail[0].seq < self.cursor:  # read from disk, or dropped, already
                self._tail_size -= len(tail.popleft().value)
            if tail and tail[0].seq == self.cursor:
                for _ in range(min(max_records - len(out), len(tail))):
                    record = tail.popleft()
                    self._tail_size -= len(record.value)
                    out.append(record)
                self.cursor = out[-1].seq + 1
                continue
            if (self._reader is None or self._reader[0] != self.cursor) \
                    and not self._open_reader(self.cursor):
                break
            assert self._reader is not None
            _expected, fh = self._reader
            header = fh.read(_HEADER.size)
            if len(header) < _HEADER.size:
                # End of this segment: the next one starts at the cursor.
                fh.close()
                self._reader = None
                if not any(s.first_seq == self.cursor for s in self.segments):
                    break
                continue
            length, _crc, seq, appended = _HEADER.unpack(header)
            payload = fh.read(length)
            out.append(_decode(seq, appended, payload))
            self.cursor = seq + 1
            self._reader = (self.cursor, fh)
        return out

    def _open_reader(self, seq: int) -> bool:
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None
        later = [seg.first_seq for seg in self.segments if seg.first_seq > seq]
        if not any(seg.first_seq <= seq <= seg.last_seq for seg in self.segments) and later:
            seq = self.cursor = min(later)  # a gap (dropped segment): skip to what exists
        for seg in self.segments:
            if seg.first_seq <= seq <= seg.last_seq:
                fh = seg.path.open("rb")
                for found, _appended, _payload, end in _scan(fh):
                    if found == seq - 1:
                        fh.seek(end)
                        break
                    if found >= seq:  # seq is the segment's first
                        fh.seek(0)
                        break
                self._reader = (seq, fh)
                return True
        return False

    # --- acknowledging -----------------------------------------------------------------------
    def ack(self, upto: int, partition: int | None = None, offset: int | None = None) -> None:
        """Everything up to seq ``upto`` is in Kafka."""
        if upto <= self.acked:
            return
        self.acked = upto
        if partition is not None:
            self.partition, self.offset = partition, offset
        self._state_dirty = True
        self._delete_acked()
        self._gauges()
        if time.monotonic() - self._state_written > 0.5:
            self.save_state()

    def _delete_acked(self) -> None:
        if self.read_only:
            return
        while len(self.segments) > 1 and self.segments[0].last_seq <= self.acked:
            gone = self.segments.pop(0)
            self._total -= gone.size
            if self._reader is not None and self._reader[0] <= gone.last_seq + 1:
                self._reader[1].close()
                self._reader = None
            gone.path.unlink(missing_ok=True)

    def save_state(self) -> None:
        if not self._state_dirty:
            return
        tmp = self.state_path.with_suffix(".tmp")
        with _open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "wb") as out:
            out.write(json.dumps({"acked": self.acked, "next_seq": self.next_seq,
                                  "partition": self.partition, "offset": self.offset}).encode())
        tmp.replace(self.state_path)
        self._state_dirty = False
        self._state_written = time.monotonic()

    def close(self) -> None:
        self.save_state()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None
