"""From a parsed document to a signed Kafka record: identity, pseudonymisation, signature.

The value is the document's compact JSON, written directly: a pydantic round trip per event
(validate, then dump) cost more than parsing the record, and the processor validates every
event against the same strict schema anyway, sending what fails to the dead-letter index with
the reason. That the parsers' output fits the schema is the parsers' contract, checked by the
unit tests (every SigmaHQ regression sample is validated, and the direct JSON is checked to
validate to the same ``SecurityEvent`` as the pydantic dump). In operation, one event in
``VALIDATE_EVERY`` is still validated here, so a mapping that drifts (a new Windows version,
an odd exporter) shows in the agent's metrics and logs, not only nationally.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pydantic import ValidationError

from producers.agent import metrics as agent_metrics
from producers.agent.pseudonymise import Pseudonymiser
from producers.agent.sign import Signer
from schemas.event import SecurityEvent
from schemas.organization import Organization

log = logging.getLogger(__name__)

AGENT_VERSION = "1"

#: One event in this many is validated against the wire schema by the agent itself.
VALIDATE_EVERY = 256


class Finisher:
    def __init__(self, organization: Organization, signer: Signer,
                 pseudonymiser: Pseudonymiser | None) -> None:
        self.organization = organization.model_dump(mode="json")
        self.key = organization.id.encode()
        self.signer = signer
        self.pseudonymiser = pseudonymiser
        self.agent = {"id": signer.agent_id, "type": "vigie-agent", "version": AGENT_VERSION}
        self.invalid = 0
        self.validate_every = VALIDATE_EVERY
        self._seen = 0
        self._last_log = 0.0

    def value(self, doc: dict[str, Any], source: str = "-") -> tuple[str, bytes]:
        """(event id, value bytes) of a parsed document."""
        doc["organization"] = self.organization
        doc["agent"] = self.agent
        if self.pseudonymiser is not None:
            self.pseudonymiser.apply(doc)
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        self._seen += 1
        if self._seen % self.validate_every == 0:
            self.check(raw, source)
        event = doc.get("event")
        eid = event.get("id") if type(event) is dict else None
        return (eid if type(eid) is str else str(eid or "0" * 32)), raw

    def check(self, raw: bytes, source: str = "-") -> bool:
        """Validate ``raw`` against the wire schema; count and log (rate-limited) a misfit,
        which is still sent: the processor dead-letters it with the reason."""
        try:
            SecurityEvent.model_validate_json(raw)
        except ValidationError as exc:
            self.invalid += 1
            agent_metrics.INVALID.labels(source).inc()
            now = time.monotonic()
            if now - self._last_log > 10:
                self._last_log = now
                log.warning("%s: an event does not fit the wire schema, sent anyway for the "
                            "national dead-letter index: %s", source,
                            exc.errors(include_url=False)[:3])
            return False
        return True

    def record(self, doc: dict[str, Any], source: str = "-") -> tuple[bytes, str, bytes, bytes]:
        """(key, event id, signature, value): what the spool stores."""
        eid, value = self.value(doc, source)
        return self.key, eid[:32].ljust(32, "0"), self.signer.signature(value), value
