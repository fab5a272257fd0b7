"""The classification stage: one raw record in (a single event or an envelope of many,
``schemas.envelope``), the classified events and their detections out (or dead letters).

``ClassifyStage`` opens the envelope, checks its signature once when required, validates
each event and asks a ``Classifier``: ``PassThrough`` only stamps the event;
``SigmaClassifier`` runs the Sigma detection engine (``processors.detection``) and returns
the detections to publish. Keeping it pure lets the processor's delivery guarantees stay in
one place (``processors.app``) whatever the classification does, and lets tests run it
without Faust.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from processors.categorize import categorize
from processors.detection.engine import Engine
from processors.detection.model import Match
from processors.replay import EstablishmentSequences, check
from processors.validate import Coordinates, Refused, Validator, dead_letter
from schemas import routing
from schemas.deadletter import DeadLetter, Reason
from schemas.detection import Detection, RuleRef, Threat
from schemas.envelope import EnvelopeError, is_envelope, unpack
from schemas.event import Classification, SecurityEvent
from schemas.identity import detection_id, national_event_id
from schemas.indices import EVENTS
from schemas.organization import Organization
from schemas.taxonomy import Category, Severity, origin_of

if TYPE_CHECKING:  # the verifier loads libsodium: only when signatures are required
    from processors.verify import Headers, Verifier

log = logging.getLogger(__name__)

_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")

#: The replay table's lookup: establishment id → its agents' numbering (None: none yet).
SequenceLookup = Callable[[str], EstablishmentSequences | None]


def bind_identity(event: SecurityEvent) -> SecurityEvent:
    """The event under its national id (:func:`schemas.identity.national_event_id`), the
    agent's id kept in ``vigie.agent_event_id``. ``event.organization`` must be the verified
    establishment (the registry's, the signer's). The processor itself no longer copies
    models per event (:class:`Document`); tests and the benchmark's reference path use this."""
    agent_event_id = event.event.id
    return event.model_copy(update={
        "event": event.event.model_copy(
            update={"id": national_event_id(event.organization.id, agent_event_id)}),
        "vigie": Classification(agent_event_id=agent_event_id),
    })


def _utc_now_text() -> str:
    """Now, as pydantic writes an aware UTC datetime (``...T07:20:24.747059Z``)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


_INDEX_OPERATION = routing.Operation.INDEX.value.encode("ascii")


@lru_cache(maxsize=256)
def _events_index(year: int, month: int) -> bytes:
    """The ``vigie-index`` header of an event of that month (one string per month)."""
    return EVENTS.index_for(datetime(year, month, 1)).encode("ascii")


@lru_cache(maxsize=65536)
def _organization_json(organization: Organization) -> dict[str, Any]:
    """The registry's entry as it appears in documents; organisations are frozen models, so
    each establishment is converted once."""
    return organization.model_dump(mode="json", by_alias=True, exclude_none=True)


class Document:
    """The classified event, written once, from the event's own parsed JSON.

    Why not the pydantic model: copying it (national id, organisation, classification) and
    serialising it cost ~30 µs per event, a third of the processor's budget. The raw JSON was
    just validated by the strict model (``extra="forbid"``, no coercion, validators that only
    check), so its parsed form holds the same fields and values; only what the processor
    changes is written into it: the registry's organisation, the national ``event.id``,
    ``event.ingested``, ``vigie`` (the conclusions), and the defaults the model would add
    (``event.kind``, ``agent.type``). Nulls the agent wrote are dropped as the model's
    ``exclude_none`` would. ``tests/unit/test_classify_document.py`` checks that the result
    parses to the very model the former path built, over every simulated event and the
    SigmaHQ samples.
    """

    __slots__ = ("doc", "event", "ingested", "national_id", "nulls", "organization")

    def __init__(self, event: SecurityEvent, doc: dict[str, Any],
                 organization: Organization | None = None, *, nulls: bool = True,
                 ingested: str | None = None) -> None:
        #: The validated event, as the agent sent it (its ids the agent's).
        self.event = event
        #: Its parsed JSON: what Sigma rules match on; becomes the published document.
        self.doc = doc
        #: The registry's entry of the establishment (default: the event's own).
        self.organization = organization or event.organization
        self.national_id = national_event_id(event.organization.id, event.event.id)
        #: Whether the JSON may hold nulls to drop (False when its bytes hold no ``null``).
        self.nulls = nulls
        #: ``event.ingested``: when its record was read (one instant for an envelope's events).
        self.ingested = ingested or _utc_now_text()

    def verdict(self, detections: list[Detection] | None = None,
                signals: list[Detection] | None = None,
                category: Category | None = None) -> Verdict:
        """The verdict on this event: its document and where it goes, its detections."""
        detections = detections or []
        when = self.event.timestamp
        return Verdict(self.finish(category, [d.id for d in detections]), detections,
                       signals or [], [(routing.INDEX, _events_index(when.year, when.month)),
                                       (routing.ID, self.national_id.encode()),
                                       (routing.OPERATION, _INDEX_OPERATION)])

    def finish(self, category: Category | None = None,
               detection_ids: Sequence[str] = ()) -> bytes:
        """The published bytes, with the processor's conclusions."""
        doc = self.doc
        if self.nulls:
            _drop_nulls(doc)
        info = doc["event"]
        info["id"] = self.national_id
        info["ingested"] = self.ingested
        info.setdefault("kind", "event")
        agent = doc.get("agent")
        if agent is not None:
            agent.setdefault("type", "vigie-agent")
        doc["organization"] = _organization_json(self.organization)
        vigie: dict[str, Any] = {"agent_event_id": self.event.event.id}
        if category is not None:
            vigie["category"] = category.value
        vigie["detection_ids"] = list(detection_ids)
        doc["vigie"] = vigie
        return orjson.dumps(doc)


def _drop_nulls(doc: dict[str, Any]) -> None:
    """Remove ``null`` members of the document's objects (not of ``winlog`` maps, whose
    values are the agent's data, kept as sent, nor inside lists)."""
    for key in [k for k, v in doc.items() if v is None]:
        del doc[key]
    for key, value in doc.items():
        if isinstance(value, dict) and key not in ("event_data", "user_data"):
            _drop_nulls(value)


@dataclass(slots=True)
class Verdict:
    """What the classifier concluded about one event: the document to publish (bytes,
    written once) and the detections and correlation signals it raised."""

    document: bytes
    detections: list[Detection] = field(default_factory=list)
    #: Matches of rules that correlation rules count, for ``vigie.correlation-inputs``
    #: (``processors.detection.correlation``); published or not on ``detections``.
    signals: list[Detection] = field(default_factory=list)
    #: Where the sink puts ``document`` (its index and national ``_id``), as the record's
    #: headers (``schemas.routing``).
    headers: routing.Headers | None = None

    @property
    def event(self) -> SecurityEvent:
        """The published document as a model (for tests and tools; costs a validation)."""
        return SecurityEvent.model_validate_json(self.document)


class Classifier(Protocol):
    def classify(self, event: Document) -> Verdict:
        """Conclusions about ``event`` (validated, its organisation the registry's)."""
        ...


class PassThrough:
    """No detection: stamp the ingestion time and an empty classification."""

    def classify(self, event: Document) -> Verdict:
        return event.verdict()


class SigmaClassifier:
    """Runs the Sigma engine on each event and turns matches into ``Detection`` records.

    Detections come out in the engine's rule order, which is fixed for a rule set: the
    correlation stage relies on that order to open the same incidents on every replay.
    """

    def __init__(self, engine: Engine) -> None:
        from processors.detection.correlation.model import CorrelationSet

        self.engine = engine
        self.correlations = CorrelationSet.from_engine(engine)

    def classify(self, event: Document) -> Verdict:
        doc = event.doc
        matches = self.engine.evaluate(doc) if "winlog" in doc else []
        if not matches:
            return event.verdict()
        found = [self._detection(event, match) for match in matches]
        detections, signals = found, []
        if self.correlations:
            # Rules that only feed correlations (``generate: false``) are not published.
            detections = [d for d in found if self.correlations.published(d.rule.id)]
            signals = [self._signal(d, doc) for d in found if self.correlations.feeds(d.rule.id)]
        top = max(detections, key=lambda d: d.rule.level.rank, default=None)
        return event.verdict(detections, signals, top.category if top else None)

    def _signal(self, detection: Detection, doc: dict[str, Any]) -> Detection:
        from processors.detection.correlation.signals import signal_fields

        fields = signal_fields(self.correlations, self.engine.fieldmap, detection.rule.id, doc)
        return detection.model_copy(update={"matched": {**detection.matched, **fields}})

    @staticmethod
    def _detection(document: Document, match: Match) -> Detection:
        event = document.event
        info = match.rule
        techniques = [t for t in info.techniques if _TECHNIQUE.match(t)]
        category = categorize(techniques, info.tactics, event.event.outcome)
        level = (Severity(info.level)
                 if info.level and info.level in Severity.__members__.values()
                 else Severity.MEDIUM)
        return Detection(
            id=detection_id(event.organization.id, info.id, document.national_id),
            timestamp=event.timestamp,
            rule=RuleRef(id=info.id, title=info.title[:8000], level=level, status=info.status,
                         author=(info.author or "")[:8000] or None, tags=list(info.tags)[:64]),
            threat=Threat(tactics=info.tactics[:32], techniques=techniques[:64]),
            category=category,
            origin=origin_of(category),
            event_id=document.national_id,
            organization=document.organization,
            host_name=event.host.name if event.host else None,
            user_name=event.user.name if event.user else None,
            matched={k: _bounded(v) for k, v in list(match.matched_fields.items())[:64]},
        )


@dataclass(slots=True)
class Classified:
    """An accepted event: publish ``verdict``'s document, detections and signals under
    ``key`` (the establishment id, so that one establishment's records stay in order)."""

    key: bytes
    verdict: Verdict


@dataclass(slots=True)
class Rejected:
    """A refused record or event: publish ``letter`` on the dead-letter topic under ``key``."""

    key: bytes | None
    letter: DeadLetter


@dataclass
class Judged:
    """What became of one Kafka record: a result per event it held (one for a single event,
    or for an envelope refused whole), and the establishment's new replay-table entry when
    the record's sequence changed it (``processors.replay``)."""

    results: list[Classified | Rejected]
    establishment_id: str | None = None
    sequences: EstablishmentSequences | None = None


class ClassifyStage:
    """Raw record → ``Judged``: open the envelope, validate, verify the signature once per
    record, check the agent's sequence (replays), classify each event.

    A record is a single event or an envelope (``schemas.envelope``). What is refused whole:
    a broken envelope, an unknown establishment or agent, a bad signature, a replay. What is
    refused alone, among the events of a valid envelope: an event that fails validation, or
    that claims another establishment or another agent than the envelope's signer (which
    looks forged); its dead letter names the envelope's coordinates and the event's index.
    """

    def __init__(self, validator: Validator, classifier: Classifier,
                 verifier: Verifier | None = None) -> None:
        self.validator = validator
        self.classifier = classifier
        self.verifier = verifier

    def handle(self, value: bytes | None, where: Coordinates, headers: Headers = None,
               sequences: SequenceLookup | None = None) -> Judged:
        """``sequences``: the replay table's lookup; without it (or without a verifier, since
        only a signed sequence means anything) no replay check is made."""
        if value is not None and is_envelope(value):
            return self._envelope(value, where, headers, sequences)
        return self._single(value, where, headers, sequences)

    def _single(self, value: bytes | None, where: Coordinates, headers: Headers,
                sequences: SequenceLookup | None) -> Judged:
        stored: EstablishmentSequences | None = None
        try:
            event, known = self.validator.check(value, where.key)
            assert value is not None  # the validator refuses a tombstone
            document = _document(event, value, known, _utc_now_text())
            org = event.organization.id
            if self.verifier is not None:
                agent_id = self.verifier.verify(value, headers, org,
                                                agent_id=event.agent.id if event.agent else None)
                if sequences is not None:
                    stored = self._sequence(org, agent_id, headers, where, sequences)
        except Refused as refused:
            return Judged([self.rejected(value, where, refused)])
        return Judged([Classified(org.encode(), self.classifier.classify(document))], org,
                      stored)

    def _envelope(self, value: bytes, where: Coordinates, headers: Headers,
                  sequences: SequenceLookup | None) -> Judged:
        stored: EstablishmentSequences | None = None
        signer: str | None = None
        org: str | None = None
        try:
            try:
                header, events = unpack(value)
            except EnvelopeError as exc:
                raise Refused(Reason.BAD_ENVELOPE, str(exc)) from None
            org = header.establishment
            if org not in self.validator.registry:
                raise Refused(Reason.UNKNOWN_ESTABLISHMENT,
                              f"envelope for establishment {org[:64]!r}, which is not in the "
                              f"national registry", org)
            if where.key is not None and where.key != org.encode():
                raise Refused(Reason.KEY_MISMATCH, f"record key {where.key[:64]!r} is not the "
                              f"envelope's establishment {org}", org)
            if self.verifier is not None:
                signer = self.verifier.verify(value, headers, org, agent_id=header.agent)
                # The verifier checked the signature over vigie-sequence and these bytes; the
                # header line must say the same number, or the replay check would judge one
                # number while the envelope claims another.
                signed = _signed_sequence(headers)
                if signed != header.sequence:
                    raise Refused(Reason.BAD_SIGNATURE, f"envelope numbered {header.sequence} "
                                  f"in its header but {signed} in vigie-sequence", org)
                if sequences is not None:
                    stored = self._sequence(org, signer, headers, where, sequences)
        except Refused as refused:
            return Judged([self.rejected(value, where, refused)])
        key = org.encode()
        now = datetime.now(UTC)
        ingested = now.isoformat().replace("+00:00", "Z")
        results: list[Classified | Rejected] = []
        for index, raw in enumerate(events):
            try:
                results.append(self._event(raw, key, header.agent, signer, now, ingested))
            except Refused as refused:
                inside = Coordinates(where.topic, where.partition, where.offset, key, index)
                results.append(self.rejected(raw, inside, refused))
            except Exception as exc:  # a bug on one event must not cost its neighbours
                log.exception("processing failed at %s[%s]@%s #%d", where.topic,
                              where.partition, where.offset, index)
                inside = Coordinates(where.topic, where.partition, where.offset, key, index)
                results.append(self.failed(raw, inside, exc))
        return Judged(results, org, stored)

    def _event(self, raw: bytes, key: bytes, envelope_agent: str, signer: str | None,
               now: datetime, ingested: str) -> Classified:
        """One event of a valid envelope, read at ``now``; raises ``Refused``."""
        event, known = self.validator.check(raw, None, now)
        if event.organization.id.encode() != key:
            raise Refused(Reason.WRONG_ESTABLISHMENT,
                          f"event claims establishment {event.organization.id} inside an "
                          f"envelope of {key.decode()}", event.organization.id)
        claimed = event.agent.id if event.agent else None
        if claimed is not None and claimed != (signer or envelope_agent):
            raise Refused(Reason.BAD_SIGNATURE,
                          f"event says agent.id {claimed[:128]!r} inside an envelope of "
                          f"{(signer or envelope_agent)[:128]!r}", event.organization.id)
        return Classified(key, self.classifier.classify(_document(event, raw, known, ingested)))

    @staticmethod
    def _sequence(org: str, agent_id: str, headers: Headers, where: Coordinates,
                  sequences: SequenceLookup) -> EstablishmentSequences | None:
        """The establishment's new replay-table entry (None: unchanged); raises ``Refused``
        for a replay. Offsets compare only within one partition: the record must be keyed
        by its establishment (the validator already refuses another key)."""
        if where.key is None:
            raise Refused(Reason.KEY_MISMATCH, f"record has no key: a signed record must be "
                          f"keyed by its establishment {org}", org)
        sequence = _signed_sequence(headers)
        if sequence is None:  # the verifier refuses these: a signature needs one
            raise Refused(Reason.BAD_SIGNATURE, "no sequence", org)
        current = sequences(org) or {}
        new = check(current.get(agent_id), sequence, where.partition, where.offset,
                    agent_id, org)
        return None if new is None else {**current, agent_id: new}

    @staticmethod
    def rejected(value: bytes | None, where: Coordinates, refused: Refused) -> Rejected:
        """The dead letter of a refused record, keyed by the establishment when known."""
        key = (refused.establishment_id or "").encode() or where.key
        return Rejected(key, dead_letter(value, where, refused))

    @classmethod
    def failed(cls, value: bytes | None, where: Coordinates, error: Exception) -> Rejected:
        """A record the stage crashed on: a bug must not lose it; an engineer can replay it."""
        return cls.rejected(value, where, Refused(Reason.PROCESSING_ERROR,
                                                  f"processing failed: {error!r}"))


def _signed_sequence(headers: Headers) -> int | None:
    """``vigie-sequence`` of a record (the verifier is imported only when signatures are
    required: it loads libsodium)."""
    from processors.verify import record_sequence

    return record_sequence(headers)


def _document(event: SecurityEvent, raw: bytes, organization: Organization,
              ingested: str) -> Document:
    """The event's JSON parsed (orjson: several times faster than ``json``) into its
    ``Document``. Called only on bytes the strict model accepted; orjson is stricter still
    (no NaN or Infinity), and what it refuses is refused with its reason."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(Reason.INVALID_JSON, f"not strict JSON: {exc}") from None
    if not isinstance(doc, dict):  # the model accepted it: cannot happen
        raise Refused(Reason.SCHEMA, "not a JSON object")
    return Document(event, doc, organization, nulls=b"null" in raw, ingested=ingested)


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value[:4096]
    if isinstance(value, list):
        return [_bounded(v) for v in value[:50]]
    return value if isinstance(value, bool | int | float | type(None)) else str(value)[:4096]
