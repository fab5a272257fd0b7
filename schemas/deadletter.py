"""DeadLetter: a record a stage refused, kept with the reason and the bytes it received.

Nothing is dropped: a refused record becomes a dead letter, reaches the ``vigie-dlq`` index,
and can be fixed and replayed by an operator from ``original``.
"""

from __future__ import annotations

import base64
from enum import StrEnum

from pydantic import AwareDatetime, Field

from schemas._base import WireModel
from schemas.event import EventId
from schemas.limits import Keyword, Name, Text


class Reason(StrEnum):
    """Why a record was refused: a closed list, so operators can count and alert on it."""

    OVERSIZE = "oversize"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    BAD_ENVELOPE = "bad_envelope"
    """An envelope (``schemas.envelope``) that cannot be opened: header, count, size."""
    TOO_DEEP = "too_deep"
    SCHEMA = "schema"
    UNKNOWN_ESTABLISHMENT = "unknown_establishment"
    KEY_MISMATCH = "key_mismatch"
    CLOCK_SKEW = "clock_skew"
    TOO_OLD = "too_old"
    """Dated before the horizon (``max_event_age_days``): would create or touch old indices."""
    UNKNOWN_AGENT = "unknown_agent"
    REVOKED_AGENT = "revoked_agent"
    """Signed by an agent the registry revoked (stolen key, retired server)."""
    BAD_SIGNATURE = "bad_signature"
    WRONG_ESTABLISHMENT = "wrong_establishment"
    REPLAYED = "replayed"
    """A signed record whose agent sequence was already seen: a copy sent again."""
    INDEX_REJECTED = "index_rejected"
    PROCESSING_ERROR = "processing_error"
    """A bug in Vigie, not in the record: kept so that it can be replayed once fixed."""


class KafkaCoordinates(WireModel):
    """Where the refused record was read: its Kafka coordinates."""

    topic: Name
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: Text | None = None
    index: int | None = Field(default=None, ge=0)
    """The event's position in its envelope, when the record was an envelope (the envelope's
    other events were judged on their own)."""


class DeadLetter(WireModel):
    id: EventId
    timestamp: AwareDatetime = Field(alias="@timestamp")
    stage: Keyword
    reason: Reason
    detail: Text
    origin: KafkaCoordinates
    establishment_id: Keyword | None = None
    original_b64: str
    """The bytes exactly as received, base64 (they may not even be text)."""
    original_size: int = Field(ge=0)

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)
