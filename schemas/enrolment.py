"""The national registry of enrolled agents, and the Kafka headers that carry signatures.

An agent signs the exact bytes of each Kafka record value (the event's canonical JSON as sent,
``SecurityEvent.to_json_bytes()``), preceded by the record's sequence number
(:func:`signed_message`), with its Ed25519 key. The signature and the sequence travel beside
the value in Kafka headers rather than inside the JSON, so that what is signed is exactly what
is stored, with no canonicalisation step that the agent and the processor could disagree on.

The registry says which public key belongs to which agent and for which establishment (FINESS
id). It lives on a compacted Kafka topic keyed by agent id (``schemas.topics.AGENTS``), one
:class:`AgentEntry` (JSON) per agent, which every processor worker follows; the same entries
in a file (JSON lines, or a YAML list) are the import/export format. An agent's life has two
changes at most: it is enrolled, then maybe revoked (for good: its id and its key are never
trusted again), so the entry itself carries both with who made them, when and why, and
compaction loses nothing of it. Each change is also journaled as an :class:`AgentChange` on
the append-only ``vigie.agents.audit`` topic.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.limits import Name, Text
from schemas.organization import FinessId

#: Kafka header holding the signing agent's id (UTF-8).
HEADER_AGENT = "vigie-agent"
#: Kafka header holding the base64 of the 64-byte Ed25519 signature of
#: :func:`signed_message` (the sequence and the record value).
HEADER_SIGNATURE = "vigie-signature"
#: Kafka header holding the agent's sequence number of the record (ASCII decimal): it rises
#: with every record an agent sends, so the processor recognises a record sent twice.
HEADER_SEQUENCE = "vigie-sequence"
#: Largest sequence number (fits Kafka/JSON/Java longs; a clock in microseconds fits too).
MAX_SEQUENCE = 2**63 - 1


def signed_message(sequence: int, value: bytes) -> bytes:
    """The bytes an agent signs: its sequence, then the exact record value. The decimal
    sequence holds no newline, so no (sequence, value) pair signs like another; a replayed
    record cannot be given a fresh sequence without breaking its signature."""
    return b"vigie-sequence:%d\n" % sequence + value


def parse_sequence(raw: bytes | None) -> int | None:
    """The sequence carried by a ``vigie-sequence`` header, or None if absent or not a
    plain decimal number in range."""
    if raw is None or not 0 < len(raw) <= 19 or not raw.isdigit():
        return None
    sequence = int(raw)
    return sequence if sequence <= MAX_SEQUENCE else None

AgentId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]


class AgentStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class AgentEntry(BaseModel):
    """One enrolled agent: who it is, which establishment it speaks for, its public key."""

    model_config = ConfigDict(extra="forbid")

    agent_id: AgentId
    establishment_id: FinessId
    public_key: str
    """Base64 of the raw 32-byte Ed25519 public key."""
    status: AgentStatus = AgentStatus.ACTIVE
    enrolled_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    enrolled_by: Name | None = None
    """Who enrolled it (operator, ``user@host``); None in entries older than the field."""
    revoked_at: AwareDatetime | None = None
    revoked_by: Name | None = None
    revoked_reason: Text | None = None
    """Why it was revoked (stolen key, retired server...): what an analyst reads when its
    events are refused."""

    @field_validator("public_key")
    @classmethod
    def _raw_ed25519(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"public_key is not base64: {exc}") from None
        if len(raw) != 32:
            raise ValueError(f"public_key must be 32 raw bytes (Ed25519), got {len(raw)}")
        return value

    @property
    def public_key_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)


class AgentAction(StrEnum):
    ENROLLED = "enrolled"
    REVOKED = "revoked"


class AgentChange(BaseModel):
    """One change to the agents registry, as journaled on the audit topic: who did what to
    which agent, when and why, and the entry as it became."""

    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime
    action: AgentAction
    agent_id: AgentId
    actor: Name
    reason: Text
    entry: AgentEntry


def registry_line(entry: AgentEntry) -> str:
    """The JSON line to append to the registry for ``entry`` (what ``enroll`` prints)."""
    return entry.model_dump_json(exclude_none=True)
