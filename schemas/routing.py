"""Where a document goes in Elasticsearch, carried beside it in Kafka headers.

The processor already knows each output's index, ``_id`` and (for incidents) state version
when it serialises the document; writing them in the record's headers spares the sink from
decoding every document again only to find them (JSON decoding was 39 % of the sink's time).
The value stays the exact JSON bytes the sink puts in its bulk body.

Headers (names below, values ASCII):

* ``vigie-index``: the concrete index (``vigie-events-2026.02``, ``vigie-incidents-000001``);
* ``vigie-id``: the document's deterministic ``_id`` (32 lowercase hex, ``schemas.identity``);
* ``vigie-op``: ``index`` (overwrite: the same id is the same document) or ``upsert`` (keep
  the highest ``version``: incidents);
* ``vigie-version``: the incident's state version, decimal, only with ``upsert``.

Only the processor's principal may write the topics the sink reads (the Kafka ACLs), so these
headers are as trusted as the document they travel with. They are still checked
(:func:`parse`): a header naming an index of another family (an event routed into
``vigie-incidents-*``), an id the processor cannot produce or an absurd version is refused,
and the sink dead-letters the record with the reason. A record with none of these headers
(an older processor during a rolling upgrade, a replayed dead letter) is routed from its
decoded body, as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

from schemas.alert import Alert
from schemas.deadletter import DeadLetter
from schemas.detection import Detection
from schemas.event import SecurityEvent
from schemas.incident import Incident
from schemas.indices import INCIDENTS, TOPIC_TO_INDEX, IndexFamily

INDEX = "vigie-index"
ID = "vigie-id"
OPERATION = "vigie-op"
VERSION = "vigie-version"
NAMES: frozenset[str] = frozenset({INDEX, ID, OPERATION, VERSION})

#: Far above any version the processor reaches (a billion detections in one incident), far
#: below what breaks a JSON number or an Elasticsearch ``long``.
MAX_INCIDENT_VERSION = 10**9

#: Every ``_id`` the processor writes is a :func:`schemas.identity.stable_id`.
_ID = re.compile(r"[0-9a-f]{32}")
_MONTH = re.compile(r"(\d{4})\.(0[1-9]|1[0-2])")
_VERSION = re.compile(r"\d{1,10}")

#: What the processor sends to the topics the sink reads.
Document = SecurityEvent | Detection | Incident | Alert | DeadLetter
HeaderValue = str | bytes | None
#: Headers as the processor hands them to its producer (values are always ``bytes``).
Headers = list[tuple[str, HeaderValue]]
#: Headers as a Kafka client hands them over (confluent-kafka: a list of pairs, or a dict).
ReceivedHeaders = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


class Operation(StrEnum):
    """How the sink writes the document (``vigie-op``)."""

    INDEX = "index"
    """Write over whatever has the same ``_id``: a replay is the same document."""
    UPSERT = "upsert"
    """Keep the highest ``version`` of the ``_id`` (incidents, see ``sinks.elasticsearch``)."""


class BadRouting(ValueError):
    """Routing headers present but not ones the processor writes; the message says why."""


@dataclass(slots=True)
class Routing:
    """Where one document goes. Not frozen, though never changed: the sink builds one per
    record, and a frozen dataclass costs three times as much to build."""

    index: str
    id: str
    op: Operation = Operation.INDEX
    version: int | None = None

    def headers(self) -> Headers:
        """The Kafka headers that carry this routing."""
        out: Headers = [(INDEX, self.index.encode("ascii")), (ID, self.id.encode("ascii")),
                        (OPERATION, self.op.value.encode("ascii"))]
        if self.version is not None:
            out.append((VERSION, str(self.version).encode("ascii")))
        return out


def routing_for(topic: str, document: Document) -> Routing:
    """Where the sink puts ``document`` read from ``topic``: the same index and ``_id`` it
    would derive from the decoded body (monthly index from the document's own timestamp)."""
    family = TOPIC_TO_INDEX[topic]
    if isinstance(document, Incident):
        return Routing(family.index_for(datetime.min), document.id, Operation.UPSERT,
                       document.version)
    return Routing(family.index_for(document.timestamp), document.id)


def parse(topic: str, headers: ReceivedHeaders | None) -> Routing | None:
    """The routing a record of ``topic`` carries; None when it carries none at all (route it
    from its body). Raises :class:`BadRouting` when the headers are partial, repeated or name
    anything the processor would not write for this topic."""
    found: dict[str, HeaderValue] = {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, raw in pairs:
        if name in NAMES:  # other headers (tracing, the agent's signature...) are not routing
            if name in found:
                raise BadRouting(f"routing header {name} repeated")
            if raw is None:
                raise BadRouting(f"routing header {name} has no value")
            found[name] = raw
    if not found:
        return None
    if len(found) < 3 or INDEX not in found or ID not in found or OPERATION not in found:
        missing = sorted({INDEX, ID, OPERATION} - found.keys())
        raise BadRouting(f"routing headers missing: {', '.join(missing)}")
    index, op, version = _placement(topic, found[INDEX], found[OPERATION], found.get(VERSION))
    doc_id = _text(ID, found[ID])
    if not _ID.fullmatch(doc_id):
        raise BadRouting(f"id {doc_id[:64]!r} is not a 32-hex-digit Vigie id")
    return Routing(index, doc_id, op, version)


def plain(topic: str, headers: ReceivedHeaders | None) -> tuple[str, bytes] | None:
    """The index and the ``_id`` (ASCII bytes) of an unversioned document whose headers are
    exactly what the processor writes for it: its three routing headers, in the order of
    :meth:`Routing.headers`, values as bytes (as librdkafka hands them over). None for
    anything else, which :func:`parse` then judges (and refuses with its reason).

    The same checks as :func:`parse`, in the fewest steps: the sink calls it once per record
    and, through :func:`parse`, the general form cost a microsecond per record. The id stays
    bytes: the sink writes it into the bulk action line as it came."""
    if type(headers) is not list or len(headers) != 3:
        return None
    try:
        (name_index, raw_index), (name_id, raw_id), (name_op, raw_op) = headers
        index = _PLAIN_PLACED.get((topic, raw_index, raw_op))
    except (TypeError, ValueError):  # not pairs, or an unhashable value: not the processor's
        return None
    if name_index != INDEX or name_id != ID or name_op != OPERATION:
        return None
    # 32 lowercase hex digits (``_ID``): stripping those characters leaves nothing.
    if type(raw_id) is not bytes or len(raw_id) != 32 or raw_id.strip(_HEX):
        return None
    if index is None:
        try:
            index, _, _ = _placement(topic, raw_index, raw_op, None)
        except BadRouting:
            return None
        if len(_PLAIN_PLACED) > 1024:
            _PLAIN_PLACED.clear()
        _PLAIN_PLACED[(topic, raw_index, raw_op)] = index
    return index, raw_id


#: :func:`plain`'s accepted (topic, index header, operation header): its index.
_PLAIN_PLACED: dict[tuple[str, HeaderValue, HeaderValue], str] = {}
_HEX = b"0123456789abcdef"


@lru_cache(maxsize=1024)
def _placement(topic: str, raw_index: HeaderValue, raw_op: HeaderValue,
               raw_version: HeaderValue) -> tuple[str, Operation, int | None]:
    """Index, operation and version checked against the topic's family. Cached: a stream
    repeats the same few (one index a month, a version per incident state), and what fails
    raises, which is never cached."""
    family = TOPIC_TO_INDEX.get(topic)
    if family is None:
        raise BadRouting(f"no index family for topic {topic}")
    index = _text(INDEX, raw_index)
    if not _belongs(family, index):
        raise BadRouting(f"index {index!r} is not one of {family.pattern} (topic {topic})")
    try:
        op = Operation(_text(OPERATION, raw_op))
    except ValueError:
        raise BadRouting(f"unknown operation {raw_op!r}") from None
    versioned = family is INCIDENTS
    if op is not (Operation.UPSERT if versioned else Operation.INDEX):
        raise BadRouting(f"operation {op.value} not allowed on topic {topic}")
    if not versioned:
        if raw_version is not None:
            raise BadRouting(f"a version header on topic {topic}, whose documents are "
                             f"unversioned")
        return index, op, None
    if raw_version is None:
        raise BadRouting(f"routing header {VERSION} missing on a versioned document")
    return index, op, _version(_text(VERSION, raw_version))


def _text(name: str, raw: str | bytes | None) -> str:
    if raw is None:
        raise BadRouting(f"routing header {name} has no value")
    # ASCII only, even in a ``str``: ``\d`` and ``int()`` take other scripts' digits.
    if isinstance(raw, bytes) and not raw.isascii():
        raise BadRouting(f"routing header {name} is not ASCII")
    value = raw.decode("ascii") if isinstance(raw, bytes) else raw
    if not value.isascii():
        raise BadRouting(f"routing header {name} is not ASCII")
    if len(value) > 128:
        raise BadRouting(f"routing header {name} is {len(value)} characters long")
    return value


def _belongs(family: IndexFamily, index: str) -> bool:
    """``index`` is a concrete index :meth:`IndexFamily.index_for` can name for ``family``."""
    if not family.monthly:
        return index == family.index_for(datetime.min)
    prefix = family.alias + "-"
    return index.startswith(prefix) and _MONTH.fullmatch(index[len(prefix):]) is not None


def _version(raw: str) -> int:
    if not _VERSION.fullmatch(raw):
        raise BadRouting(f"incident version {raw[:32]!r} is not a decimal integer")
    version = int(raw)
    if version > MAX_INCIDENT_VERSION:
        raise BadRouting(f"incident version {version} above {MAX_INCIDENT_VERSION}: not one "
                         f"the processor produces")
    return version
