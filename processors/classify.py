"""The classification stage: one raw record in, the classified event and its detections out
(or a dead letter).

``ClassifyStage`` validates a record, checks its signature when required, and asks a
``Classifier``: ``PassThrough`` only stamps the event; ``SigmaClassifier`` runs the Sigma
detection engine (``processors.detection``) and returns the detections to publish. Keeping it
pure lets the processor's delivery guarantees stay in one place (``processors.app``) whatever
the classification does, and lets tests run it without Faust.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_core import from_json

from processors.categorize import categorize
from processors.detection.engine import Engine
from processors.detection.model import Match
from processors.replay import EstablishmentSequences, check
from processors.validate import Coordinates, Refused, Validator, dead_letter
from schemas.deadletter import DeadLetter, Reason
from schemas.detection import Detection, RuleRef, Threat
from schemas.event import Classification, SecurityEvent
from schemas.identity import detection_id, national_event_id
from schemas.taxonomy import Severity, origin_of

if TYPE_CHECKING:  # the verifier loads libsodium: only when signatures are required
    from processors.verify import Headers, Verifier

_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")

#: The replay table's lookup: establishment id → its agents' numbering (None: none yet).
SequenceLookup = Callable[[str], EstablishmentSequences | None]


def bind_identity(event: SecurityEvent) -> SecurityEvent:
    """The event under its national id (:func:`schemas.identity.national_event_id`), the
    agent's id kept in ``vigie.agent_event_id``. ``event.organization`` must be the verified
    establishment (the registry's, the signer's)."""
    agent_event_id = event.event.id
    return event.model_copy(update={
        "event": event.event.model_copy(
            update={"id": national_event_id(event.organization.id, agent_event_id)}),
        "vigie": Classification(agent_event_id=agent_event_id),
    })


def _classification(event: SecurityEvent, **conclusions: Any) -> Classification:
    """The processor's conclusions, keeping the agent's event id set by ``bind_identity``."""
    return Classification(agent_event_id=event.vigie.agent_event_id if event.vigie else None,
                          **conclusions)


@dataclass
class Verdict:
    event: SecurityEvent
    detections: list[Detection] = field(default_factory=list)
    #: Matches of rules that correlation rules count, for ``vigie.correlation-inputs``
    #: (``processors.detection.correlation``); published or not on ``detections``.
    signals: list[Detection] = field(default_factory=list)


class Classifier(Protocol):
    def classify(self, event: SecurityEvent, doc: dict[str, Any] | None = None) -> Verdict:
        """``doc`` is the event as parsed JSON (what rules match on), when at hand."""
        ...


class PassThrough:
    """No detection yet: stamp the ingestion time and an empty classification."""

    def classify(self, event: SecurityEvent, doc: dict[str, Any] | None = None) -> Verdict:
        stamped = event.model_copy(
            update={
                "event": event.event.model_copy(update={"ingested": datetime.now(UTC)}),
                "vigie": _classification(event),
            }
        )
        return Verdict(stamped)


class SigmaClassifier:
    """Runs the Sigma engine on each event and turns matches into ``Detection`` records.

    Detections come out in the engine's rule order, which is fixed for a rule set: the
    correlation stage relies on that order to open the same incidents on every replay.
    """

    def __init__(self, engine: Engine) -> None:
        from processors.detection.correlation.model import CorrelationSet

        self.engine = engine
        self.correlations = CorrelationSet.from_engine(engine)

    def classify(self, event: SecurityEvent, doc: dict[str, Any] | None = None) -> Verdict:
        matches = self.engine.evaluate(doc) if doc is not None and "winlog" in doc else []
        found = [self._detection(event, match) for match in matches]
        detections, signals = found, []
        if self.correlations and doc is not None:
            # Rules that only feed correlations (``generate: false``) are not published.
            detections = [d for d in found if self.correlations.published(d.rule.id)]
            signals = [self._signal(d, doc) for d in found if self.correlations.feeds(d.rule.id)]
        top = max(detections, key=lambda d: d.rule.level.rank, default=None)
        stamped = event.model_copy(
            update={
                "event": event.event.model_copy(update={"ingested": datetime.now(UTC)}),
                "vigie": _classification(event, category=top.category if top else None,
                                         detection_ids=[d.id for d in detections]),
            }
        )
        return Verdict(stamped, detections, signals)

    def _signal(self, detection: Detection, doc: dict[str, Any]) -> Detection:
        from processors.detection.correlation.signals import signal_fields

        fields = signal_fields(self.correlations, self.engine.fieldmap, detection.rule.id, doc)
        return detection.model_copy(update={"matched": {**detection.matched, **fields}})

    @staticmethod
    def _detection(event: SecurityEvent, match: Match) -> Detection:
        info = match.rule
        techniques = [t for t in info.techniques if _TECHNIQUE.match(t)]
        category = categorize(techniques, info.tactics, event.event.outcome)
        level = (Severity(info.level)
                 if info.level and info.level in Severity.__members__.values()
                 else Severity.MEDIUM)
        return Detection(
            id=detection_id(event.organization.id, info.id, event.id),
            timestamp=event.timestamp,
            rule=RuleRef(id=info.id, title=info.title[:8000], level=level, status=info.status,
                         author=(info.author or "")[:8000] or None, tags=list(info.tags)[:64]),
            threat=Threat(tactics=info.tactics[:32], techniques=techniques[:64]),
            category=category,
            origin=origin_of(category),
            event_id=event.id,
            organization=event.organization,
            host_name=event.host.name if event.host else None,
            user_name=event.user.name if event.user else None,
            matched={k: _bounded(v) for k, v in list(match.matched_fields.items())[:64]},
        )


@dataclass(frozen=True)
class Classified:
    """An accepted record: publish ``verdict``'s event, detections and signals under ``key``
    (the establishment id, so that one establishment's records stay in order), and store
    ``sequences`` (when not None) as the establishment's entry of the replay table."""

    key: bytes
    verdict: Verdict
    sequences: EstablishmentSequences | None = None


@dataclass(frozen=True)
class Rejected:
    """A refused record: publish ``letter`` on the dead-letter topic under ``key``."""

    key: bytes | None
    letter: DeadLetter


class ClassifyStage:
    """Raw record → ``Classified`` or ``Rejected``: validate, verify, check the agent's
    sequence (replays), bind the ids to the establishment, classify."""

    def __init__(self, validator: Validator, classifier: Classifier,
                 verifier: Verifier | None = None) -> None:
        self.validator = validator
        self.classifier = classifier
        self.verifier = verifier

    def handle(self, value: bytes, where: Coordinates, headers: Headers = None,
               sequences: SequenceLookup | None = None) -> Classified | Rejected:
        """``sequences``: the replay table's lookup; without it (or without a verifier, since
        only a signed sequence means anything) no replay check is made."""
        stored: EstablishmentSequences | None = None
        try:
            event = self.validator.validate(value, where.key)
            if self.verifier is not None:
                agent_id = self.verifier.verify(value, headers, event.organization.id,
                                                agent_id=event.agent.id if event.agent else None)
                if sequences is not None:
                    stored = self._sequence(event, agent_id, headers, where, sequences)
        except Refused as refused:
            return self.rejected(value, where, refused)
        # The Sigma engine reads the raw document (the same bytes were validated just above);
        # pydantic-core's parser gives what json.loads gives, in under half the time.
        doc = from_json(value) if event.winlog is not None else None
        return Classified(event.organization.id.encode(),
                          self.classifier.classify(bind_identity(event), doc), stored)

    @staticmethod
    def _sequence(event: SecurityEvent, agent_id: str, headers: Headers, where: Coordinates,
                  sequences: SequenceLookup) -> EstablishmentSequences | None:
        """The establishment's new replay-table entry (None: unchanged); raises ``Refused``
        for a replay. Offsets compare only within one partition: the record must be keyed
        by its establishment (the validator already refuses another key)."""
        from processors.verify import record_sequence

        org = event.organization.id
        if where.key is None:
            raise Refused(Reason.KEY_MISMATCH, f"record has no key: a signed record must be "
                          f"keyed by its establishment {org}", org)
        sequence = record_sequence(headers)
        if sequence is None:  # the verifier refuses these: a signature needs one
            raise Refused(Reason.BAD_SIGNATURE, "no sequence", org)
        current = sequences(org) or {}
        new = check(current.get(agent_id), sequence, where.partition, where.offset,
                    agent_id, org)
        return None if new is None else {**current, agent_id: new}

    @staticmethod
    def rejected(value: bytes, where: Coordinates, refused: Refused) -> Rejected:
        """The dead letter of a refused record, keyed by the establishment when known."""
        key = (refused.establishment_id or "").encode() or where.key
        return Rejected(key, dead_letter(value, where, refused))

    @classmethod
    def failed(cls, value: bytes, where: Coordinates, error: Exception) -> Rejected:
        """A record the stage crashed on: a bug must not lose it; an engineer can replay it."""
        return cls.rejected(value, where, Refused(Reason.PROCESSING_ERROR,
                                                  f"processing failed: {error!r}"))


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value[:4096]
    if isinstance(value, list):
        return [_bounded(v) for v in value[:50]]
    return value if isinstance(value, bool | int | float | type(None)) else str(value)[:4096]
