"""Hostile and broken records, each with the dead-letter reason it must end with.

The pipeline's promise is that bad input is explained, not dropped and not fatal; the
simulator mixes these into ordinary runs so that every end-to-end test checks it.
"""

from __future__ import annotations

import json
import random
from typing import Any

from schemas.deadletter import Reason
from schemas.limits import MAX_RECORD_BYTES

KINDS: tuple[str, ...] = (
    "invalid_json", "wrong_type", "oversize_field", "unknown_establishment", "not_utf8",
    "too_deep", "oversize_record", "missing_establishment",
)

EXPECTED_REASON: dict[str, Reason] = {
    "invalid_json": Reason.INVALID_JSON,
    "wrong_type": Reason.SCHEMA,
    "oversize_field": Reason.SCHEMA,
    "unknown_establishment": Reason.UNKNOWN_ESTABLISHMENT,
    "not_utf8": Reason.NOT_UTF8,
    "too_deep": Reason.TOO_DEEP,
    "oversize_record": Reason.OVERSIZE,
    "missing_establishment": Reason.SCHEMA,
}


def malformed(kind: str, valid: dict[str, Any], rng: random.Random) -> bytes:
    """Spoil a valid event ``valid`` (a fresh dict, modified in place) the ``kind`` way."""
    if kind == "invalid_json":
        text = json.dumps(valid)
        return text[: rng.randrange(10, len(text) - 5)].encode()
    if kind == "wrong_type":
        valid["event"]["severity"] = "very high"
    elif kind == "oversize_field":
        valid["message"] = "A" * 20_000
    elif kind == "unknown_establishment":
        valid["organization"]["id"] = "999999999"
    elif kind == "missing_establishment":
        del valid["organization"]
    elif kind == "not_utf8":
        return json.dumps(valid).encode()[:40] + b"\xff\xfe\xc3(" + b'"}'
    elif kind == "too_deep":
        return b'{"a":' * 200 + b"1" + b"}" * 200
    elif kind == "oversize_record":
        # Just over the record limit but under Kafka's max.message.bytes for events.raw.
        valid["padding"] = "x" * MAX_RECORD_BYTES
    return json.dumps(valid).encode()
