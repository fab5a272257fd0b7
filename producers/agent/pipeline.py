"""From a parsed document to a signed Kafka record: identity, pseudonymisation, signature.

With pseudonymisation on, ``event.id`` is re-derived with the hospital's key
(:meth:`~producers.agent.privacy.Pseudonymiser.event_id`) before it leaves.

The value is the document's compact JSON, written directly by pydantic-core's serialiser
(the same bytes as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``, at a third
of the cost): a pydantic round trip per event (build the models, then dump them) cost more
than parsing the record. Every value is then validated once, as bytes, against the wire
schema (``SecurityEvent``), so a mapping that drifts (a new Windows version, an odd exporter)
shows in the agent's metrics and logs, not only nationally. A misfit is still sent, signed:
the processor, which applies the same strict schema, dead-letters it with the reason, where an
operator sees it — nothing vanishes in the hospital without a trace.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from producers.agent import metrics as agent_metrics
from producers.agent.clock import FutureCheck
from producers.agent.pseudonymise import Pseudonymiser
from producers.agent.spool import SpoolInput
from producers.signing import Signer
from schemas.event import SecurityEvent
from schemas.organization import Organization

log = logging.getLogger(__name__)

AGENT_VERSION = "1"

#: One event in this many is validated against the wire schema by the agent itself: every
#: one by default (about a tenth of the agent's CPU per event); more only to trade that
#: guarantee for speed on a host that cannot keep up.
VALIDATE_EVERY = 1


class Finisher:
    def __init__(self, organization: Organization, signer: Signer,
                 pseudonymiser: Pseudonymiser | None, *,
                 future: FutureCheck | None = None) -> None:
        self.organization = organization.model_dump(mode="json")
        self.key = organization.id.encode()
        self.signer = signer
        self.pseudonymiser = pseudonymiser
        self.agent = {"id": signer.agent_id, "type": "vigie-agent", "version": AGENT_VERSION}
        self.invalid = 0
        self.validate_every = VALIDATE_EVERY
        self._seen = 0
        self._last_log = 0.0
        #: Events dated in the future (a wrong ``timezone``): counted and logged, still sent.
        self.future = future or FutureCheck()

    def value(self, doc: dict[str, Any], source: str = "-") -> tuple[str, bytes]:
        """(event id, value bytes) of a parsed document."""
        doc["organization"] = self.organization
        doc["agent"] = self.agent
        self.future.check(doc.get("@timestamp"), source)
        if self.pseudonymiser is not None:
            self.pseudonymiser.apply(doc)
            event = doc.get("event")
            if type(event) is dict and type(event.get("id")) is str:
                # Keyed: the parsers' ids hash clear names (a computer, a file path), which
                # a dictionary of host names would reverse; an HMAC with the hospital's key
                # cannot be, and stays the same for the same record (replays, exactly-once).
                event["id"] = self.pseudonymiser.event_id(event["id"])
        raw = to_json(doc)
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

    def record(self, doc: dict[str, Any], source: str = "-") -> SpoolInput:
        """(key, event id, signature, value): what the spool stores. The signature slot is
        left empty: the shipper signs each record as it leaves, with the sequence number the
        spool gave it (which the signature covers), so a re-sent record is signed the same."""
        eid, value = self.value(doc, source)
        return self.key, eid[:32].ljust(32, "0"), b"", value
