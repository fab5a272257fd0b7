"""From a parsed document to a signed Kafka record: identity, pseudonymisation, signature.

The value is the event's canonical JSON (``SecurityEvent.to_json_bytes()``), so the agent
checks every event against the same strict schema the processor applies. An event that fails
it is still sent (as the agent's JSON), signed, and counted: the processor will put it in the
dead-letter index with the reason, where an operator sees it — nothing vanishes in the
hospital without a trace.
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


class Finisher:
    def __init__(self, organization: Organization, signer: Signer,
                 pseudonymiser: Pseudonymiser | None) -> None:
        self.organization = organization.model_dump(mode="json")
        self.key = organization.id.encode()
        self.signer = signer
        self.pseudonymiser = pseudonymiser
        self.agent = {"id": signer.agent_id, "type": "vigie-agent", "version": AGENT_VERSION}
        self.invalid = 0
        self._last_log = 0.0

    def value(self, doc: dict[str, Any], source: str = "-") -> tuple[str, bytes]:
        """(event id, value bytes) of a parsed document."""
        doc["organization"] = self.organization
        doc["agent"] = self.agent
        if self.pseudonymiser is not None:
            self.pseudonymiser.apply(doc)
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        try:
            return doc["event"]["id"], SecurityEvent.model_validate_json(raw).to_json_bytes()
        except ValidationError as exc:
            self.invalid += 1
            agent_metrics.INVALID.labels(source).inc()
            now = time.monotonic()
            if now - self._last_log > 10:
                self._last_log = now
                log.warning("%s: event %s does not fit the wire schema, sent anyway for the "
                            "national dead-letter index: %s", source,
                            doc.get("event", {}).get("id"),
                            exc.errors(include_url=False)[:3])
            return str(doc.get("event", {}).get("id", "0" * 32)), raw.encode()

    def record(self, doc: dict[str, Any], source: str = "-") -> tuple[bytes, str, bytes, bytes]:
        """(key, event id, signature, value): what the spool stores."""
        eid, value = self.value(doc, source)
        return self.key, eid[:32].ljust(32, "0"), self.signer.signature(value), value
