"""Validation of raw records: a ``SecurityEvent`` or a dead letter with its reason.

Pure logic, no Kafka: the processor calls it per record, and the unit tests call it with every
kind of broken input. The happy path costs one Rust-side JSON validation; the checks that only
explain a failure (UTF-8, nesting depth) run only once the record has already failed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from runtime.errors import DataError
from schemas.deadletter import DeadLetter, KafkaCoordinates, Reason
from schemas.event import SecurityEvent
from schemas.identity import dead_letter_id
from schemas.limits import MAX_JSON_DEPTH, MAX_RECORD_BYTES
from schemas.organization import Organization

STAGE = "processor"


@dataclass(frozen=True)
class Coordinates:
    """Where a record was read; it names the dead letter deterministically."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    #: The event's position in its envelope (None: the record is a single event).
    index: int | None = None


class Refused(DataError):
    """A record the pipeline will not accept, with the reason an operator will read."""

    def __init__(self, reason: Reason, detail: str, establishment_id: str | None = None):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.establishment_id = establishment_id


def json_depth(raw: bytes) -> int:
    """Deepest nesting of objects/arrays, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return deepest


def _explain(raw: bytes, error: ValidationError) -> Refused:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Refused(Reason.NOT_UTF8, f"not UTF-8: byte {exc.start} ({exc.reason})")
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        return Refused(Reason.TOO_DEEP, f"JSON nested {depth} deep, at most {MAX_JSON_DEPTH}")
    errors = error.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return Refused(Reason.INVALID_JSON, errors[0]["msg"])
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<record>'}: {e['msg']}" for e in errors[:10]
    ]
    more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
    return Refused(Reason.SCHEMA, "; ".join(parts) + more)


class Validator:
    """Checks a raw record against the wire schema, the registry and the clock."""

    def __init__(self, registry: dict[str, Organization], max_clock_skew: timedelta,
                 max_event_age: timedelta | None = None) -> None:
        """``max_event_age``: the horizon; older events are refused (``too_old``) rather than
        written into (and creating) old monthly indices. None: no horizon."""
        self.registry = registry
        self.max_clock_skew = max_clock_skew
        self.max_event_age = max_event_age

    def validate(self, raw: bytes | None, key: bytes | None,
                 now: datetime | None = None) -> SecurityEvent:
        """The event, enriched from the registry; raises ``Refused`` otherwise."""
        event, known = self.check(raw, key, now)
        # The registry, not the agent, says what the establishment's name and region are.
        return event.model_copy(update={"organization": known})

    def check(self, raw: bytes | None, key: bytes | None,
              now: datetime | None = None) -> tuple[SecurityEvent, Organization]:
        """The event as sent and its establishment's registry entry (which, not the agent's
        claim, says the establishment's name and region); raises ``Refused`` otherwise. The
        processor's path: it never copies the model (``processors.classify.Document``)."""
        if raw is None:
            raise Refused(Reason.INVALID_JSON, "empty record (tombstone)")
        if len(raw) > MAX_RECORD_BYTES:
            raise Refused(Reason.OVERSIZE,
                          f"record of {len(raw)} bytes, at most {MAX_RECORD_BYTES} allowed")
        try:
            event = SecurityEvent.model_validate_json(raw)
        except ValidationError as exc:
            raise _explain(raw, exc) from None
        org_id = event.organization.id
        known = self.registry.get(org_id)
        if known is None:
            raise Refused(Reason.UNKNOWN_ESTABLISHMENT,
                          f"establishment {org_id} is not in the national registry", org_id)
        if key is not None and key != org_id.encode():
            raise Refused(Reason.KEY_MISMATCH,
                          f"record key {key[:64]!r} is not the establishment id {org_id}", org_id)
        now = now or datetime.now(UTC)
        if event.timestamp - now > self.max_clock_skew:
            raise Refused(Reason.CLOCK_SKEW,
                          f"event dated {event.timestamp.isoformat()}, "
                          f"{(event.timestamp - now).total_seconds():.0f} s in the future",
                          org_id)
        if self.max_event_age is not None and now - event.timestamp > self.max_event_age:
            raise Refused(Reason.TOO_OLD,
                          f"event dated {event.timestamp.isoformat()}, "
                          f"{(now - event.timestamp).days} days ago, beyond the horizon of "
                          f"{self.max_event_age.days} days (max_event_age_days)", org_id)
        return event, known


def dead_letter(raw: bytes | None, where: Coordinates, refused: Refused,
                now: datetime | None = None) -> DeadLetter:
    """The dead letter for a refused record, named after its Kafka coordinates."""
    original = raw or b""
    key = None
    if where.key is not None:
        key = where.key[:256].decode("utf-8", "backslashreplace")
    return DeadLetter(
        id=dead_letter_id(where.topic, where.partition, where.offset, where.index),
        timestamp=now or datetime.now(UTC),
        stage=STAGE,
        reason=refused.reason,
        detail=refused.detail[:8000],
        origin=KafkaCoordinates(topic=where.topic, partition=where.partition, offset=where.offset,
                                key=key, index=where.index),
        establishment_id=refused.establishment_id,
        original_b64=base64.b64encode(original).decode("ascii"),
        original_size=len(original),
    )
