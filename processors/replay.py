"""Replay check: a signed record sent twice is dead-lettered as ``replayed``.

Every signed record carries its agent's sequence number (``vigie-sequence``, covered by the
signature: see :mod:`schemas.enrolment`), rising with each record the agent sends. The
processor keeps, per agent, the highest sequence it accepted, the Kafka partition and offset of
the last record it accepted from that agent, and the gaps below the highest (numbers not seen
yet). A record is:

- **accepted** if its offset is at or before the recorded offset in the same partition: the
  processor is reading again what it already judged (a restart before its offsets were
  committed); ids are deterministic, so this second pass overwrites the first;
- **accepted** if its sequence is above the highest, or fills a gap: an agent that re-sends
  a record whose first delivery failed, after later ones got through, is not refused;
- **replayed** otherwise: that number was accepted before, and this copy was appended to the
  log afterwards, by whoever holds the bytes.

A replay is always appended after what it copies, so it is never at or before the recorded
offset. What a replay could do if accepted: re-open incidents and fire correlations again with
old evidence, or bring back documents retention deleted.

The agent's own restart (SIGKILL, then a re-send of what it had not seen acknowledged) sends the
same bytes, under the same sequence, at a later offset: if the first copy had reached Kafka,
the second is a true duplicate and is dead-lettered ``replayed`` (its original is indexed:
nothing is lost); if it had not, its number was never seen (above the highest, or in a gap)
and it is accepted. The agent's restart check keeps such duplicates rare in any case.

Pure logic: the processor keeps the state in a Faust table keyed by establishment (the key of
``events.raw``, so the table is partitioned like its input), one entry per agent inside; unit
tests call :func:`check` directly.
"""

from __future__ import annotations

from typing import TypedDict

from processors.validate import Refused
from schemas.deadletter import Reason

#: Gap ranges remembered per agent (the oldest are forgotten first: a record that late is then
#: taken for a replay). An agent numbering with its spool has none in normal operation; a
#: producer numbering with the clock (the simulator) leaves one between most records.
MAX_GAPS = 64


class AgentSequence(TypedDict):
    """What the processor remembers of one agent's numbering (a table value's entry)."""

    sequence: int  # highest sequence accepted
    partition: int  # where the last accepted record was read
    offset: int
    gaps: list[list[int]]  # [first, last] ranges below ``sequence`` never seen, oldest first


#: The value of the ``agent-sequences`` table: agent id → its numbering, per establishment.
EstablishmentSequences = dict[str, AgentSequence]


def check(stored: AgentSequence | None, sequence: int, partition: int, offset: int,
          agent_id: str = "?", establishment_id: str | None = None) -> AgentSequence | None:
    """The agent's new state if the record is accepted (None: accepted, nothing changes);
    raises ``Refused(replayed)`` for a replay."""
    if stored is None:
        return {"sequence": sequence, "partition": partition, "offset": offset, "gaps": []}
    if partition == stored["partition"] and offset <= stored["offset"]:
        return None  # read again after a restart: judged accepted the first time
    highest = stored["sequence"]
    if sequence > highest:
        gaps = [list(g) for g in stored["gaps"]]
        if sequence > highest + 1:
            gaps.append([highest + 1, sequence - 1])
        return {"sequence": sequence, "partition": partition, "offset": offset,
                "gaps": gaps[-MAX_GAPS:]}
    for index, (first, last) in enumerate(stored["gaps"]):
        if first <= sequence <= last:
            split = [[lo, hi] for lo, hi in ((first, sequence - 1), (sequence + 1, last))
                     if lo <= hi]
            gaps = [list(g) for g in stored["gaps"][:index]] + split + \
                [list(g) for g in stored["gaps"][index + 1:]]
            return {"sequence": highest, "partition": partition, "offset": offset,
                    "gaps": gaps[-MAX_GAPS:]}
    raise Refused(Reason.REPLAYED,
                  f"agent {agent_id!r}: sequence {sequence} was already accepted (highest "
                  f"{highest}, last accepted at {stored['partition']}/{stored['offset']}): a "
                  f"copy of a record sent before", establishment_id)
