"""One-time enrolment tokens: issued by the national team, claimed once by an agent.

A token is 256 random bits (``secrets.token_urlsafe(32)``) shown once to whoever issues it.
The national side keeps only its SHA-256 with the agent id, the establishment, the expiry
and the state (:class:`schemas.enrolment_api.EnrolmentToken`). A plain SHA-256 is enough: the
token is random, so there is no dictionary to run; a slow hash protects guessable passwords,
not 256-bit secrets.

Where: the compacted topic ``vigie.enrolment-tokens`` (:data:`schemas.topics.ENROLMENT_TOKENS`),
keyed by the hash, one partition, rather than a file under the national state dir. It
survives restarts like the agents registry next to it, needs nothing the enrolment service
does not already reach (it creates the agent's Kafka credential), and it is the only place
two enrolment servers on two hosts agree on an order: a file is shared only by processes of
one host (or a network file system whose locks nobody trusts).

One-time, even with two servers: Kafka has no compare-and-set, so a claim is an append then a
read. The server appends a ``claimed`` record carrying a fresh claim id, reads the partition
to its end, and folds the records in log order (:func:`fold`): only the first claim after
the token's issue (or its release) counts. The same token presented twice at once, on one
server or two, enrols once; the other attempt reads someone else's claim and is told
"already used". An enrolment that fails after its claim (Kafka refused, the key is enrolled
already) releases the token (an ``issued`` record again) so that it can be retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from runtime.errors import DataError, ServiceUnavailable, UsageError
from runtime.kafka import DeliveryReport, KafkaConnection
from schemas.enrolment_api import EnrolmentToken, TokenState
from schemas.topics import ENROLMENT_TOKENS

#: Bytes of randomness in a token (256 bits; the brief's floor is 128).
TOKEN_BYTES = 32
#: Prefix that makes a token recognisable in a chat or a ticket (and greppable by a scanner).
TOKEN_PREFIX = "vgt_"
DEFAULT_TTL = timedelta(hours=24)
MAX_TTL = timedelta(days=30)


class TokenRefused(DataError):
    """A presented token that cannot enrol: unknown, expired, or used already."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


UNKNOWN = "unknown token"
EXPIRED = "token expired"
USED = "token already used"


def new_token() -> str:
    """A fresh token: the prefix and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the national side stores and looks tokens up by: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` (a bare number is hours), at most :data:`MAX_TTL`."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None:
        raise UsageError(f"--ttl {text!r}: give a number and a unit, e.g. 24h, 30m, 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "": "hours"}
    ttl = timedelta(**{unit[match.group(2)]: int(match.group(1))})
    if not timedelta(0) < ttl <= MAX_TTL:
        raise UsageError(f"--ttl {text!r}: between 1 second and {MAX_TTL.days} days")
    return ttl


class TokenStore(Protocol):
    """Where token records are appended and read back, in one total order."""

    def records(self) -> list[EnrolmentToken]:
        """Every record, oldest first."""
        ...

    def append(self, record: EnrolmentToken) -> None:
        """Append ``record``; returns once it is durable (readable by :meth:`records`)."""
        ...


class MemoryTokenStore:
    """A store in memory (tests; a single process)."""

    def __init__(self) -> None:
        self._records: list[EnrolmentToken] = []
        self._lock = threading.Lock()

    def records(self) -> list[EnrolmentToken]:
        with self._lock:
            return list(self._records)

    def append(self, record: EnrolmentToken) -> None:
        with self._lock:
            self._records.append(record)


class TopicTokenStore:
    """The compacted topic :data:`~schemas.topics.ENROLMENT_TOKENS` (created on first use)."""

    #: Group id librdkafka requires of a consumer; it never joins, commits or subscribes.
    GROUP = "vigie-enrolment-tokens-reader"

    def __init__(self, kafka: KafkaConnection, timeout: float = 30.0) -> None:
        self.kafka = kafka
        self.timeout = timeout
        self._ensured = False

    def _ensure(self) -> None:
        if not self._ensured:
            from runtime.topics import ensure_topics

            ensure_topics(self.kafka, (ENROLMENT_TOKENS,))
            self._ensured = True

    def append(self, record: EnrolmentToken) -> None:
        self._ensure()
        producer = self.kafka.producer()
        report = DeliveryReport()
        producer.produce(ENROLMENT_TOKENS.name, key=record.token_hash.encode(),
                         value=record.model_dump_json(exclude_none=True).encode(),
                         on_delivery=report.on_delivery)
        left = producer.flush(self.timeout)
        if left or report.failed:
            raise ServiceUnavailable(f"Kafka did not acknowledge the token record on "
                                     f"{ENROLMENT_TOKENS.name}"
                                     + (f" ({', '.join(report.errors)})" if report.errors else ""))

    def records(self) -> list[EnrolmentToken]:
        self._ensure()
        consumer = self.kafka.consumer(self.GROUP, **{"auto.offset.reset": "earliest",
                                                      "fetch.wait.max.ms": 100})
        found: list[EnrolmentToken] = []
        try:
            partition = TopicPartition(ENROLMENT_TOKENS.name, 0)
            low, end = consumer.get_watermark_offsets(partition, timeout=self.timeout)
            if end <= low:
                return found
            consumer.assign([TopicPartition(ENROLMENT_TOKENS.name, 0, OFFSET_BEGINNING)])
            deadline = time.monotonic() + self.timeout
            while True:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(f"{ENROLMENT_TOKENS.name} could not be read to "
                                             f"its end within {self.timeout:.0f} s")
                message = consumer.poll(0.5)
                if message is None:
                    # compaction may have removed the records just below the end
                    if consumer.position([partition])[0].offset >= end:
                        return found
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise ServiceUnavailable(f"{ENROLMENT_TOKENS.name}: {error.str()}")
                    continue
                value = message.value()
                if value is not None:
                    found.append(EnrolmentToken.model_validate_json(value))
                offset = message.offset()
                if offset is not None and offset + 1 >= end:
                    return found
        except KafkaException as exc:
            raise ServiceUnavailable(f"Kafka does not answer ({exc.args[0].str()}) while "
                                     f"reading {ENROLMENT_TOKENS.name}") from None
        finally:
            consumer.close()


def fold(records: Iterable[EnrolmentToken]) -> dict[str, EnrolmentToken]:
    """The state of every token from its records in log order: a claim counts only when the
    token is issued (the first claim wins), a release (``issued`` again) only from the claim
    it releases, ``used`` only from a claim; a used token stays used."""
    tokens: dict[str, EnrolmentToken] = {}
    for record in records:
        current = tokens.get(record.token_hash)
        if current is None:
            # The first record seen (an issue; after compaction, maybe a later state).
            tokens[record.token_hash] = record
        elif record.state is TokenState.CLAIMED:
            if current.state is TokenState.ISSUED:
                tokens[record.token_hash] = record
        elif record.state is TokenState.ISSUED:
            if current.state is TokenState.CLAIMED and current.claim_id == record.claim_id:
                tokens[record.token_hash] = record  # released by its claimer
        elif (record.state is TokenState.USED and current.state is TokenState.CLAIMED
              and current.claim_id == record.claim_id):
            tokens[record.token_hash] = record
    return tokens


def issue(store: TokenStore, agent_id: str, establishment_id: str, *, issued_by: str,
          ttl: timedelta = DEFAULT_TTL, now: datetime | None = None,
          ) -> tuple[str, EnrolmentToken]:
    """Create a token for ``agent_id`` of ``establishment_id``; returns it (to show once)
    and the record stored (its hash only)."""
    at = now or datetime.now(UTC)
    token = new_token()
    record = EnrolmentToken(token_hash=token_hash(token), agent_id=agent_id,
                            establishment_id=establishment_id, issued_at=at,
                            expires_at=at + ttl, issued_by=issued_by, at=at)
    store.append(record)
    return token, record


def check(record: EnrolmentToken | None, presented_hash: str, now: datetime) -> None:
    """Raise :class:`TokenRefused` unless ``record`` is the presented token, issued and not
    expired. The hashes are compared in constant time (the lookup that found ``record`` is by
    hash, so its timing tells nothing about the token itself)."""
    if record is None or not hmac.compare_digest(record.token_hash, presented_hash):
        raise TokenRefused(UNKNOWN)
    if record.state is not TokenState.ISSUED:
        raise TokenRefused(USED)
    if now >= record.expires_at:
        raise TokenRefused(EXPIRED)


def claim(store: TokenStore, token: str, *, client: str,
          now: datetime | None = None) -> EnrolmentToken:
    """Claim ``token`` for one enrolment: check it, append a claim, read the log back, and
    keep it only if this claim is the first one after the issue (see the module doc)."""
    at = now or datetime.now(UTC)
    presented = token_hash(token)
    current = fold(store.records()).get(presented)
    check(current, presented, at)
    assert current is not None
    mine = current.model_copy(update={"state": TokenState.CLAIMED,
                                      "claim_id": uuid.uuid4().hex, "client": client[:128],
                                      "at": at})
    store.append(mine)
    winner = fold(store.records()).get(presented)
    if winner is None or winner.claim_id != mine.claim_id:
        raise TokenRefused(USED)
    return mine


def complete(store: TokenStore, claimed: EnrolmentToken) -> EnrolmentToken:
    """Mark a claimed token used: its enrolment succeeded."""
    used = claimed.model_copy(update={"state": TokenState.USED, "at": datetime.now(UTC)})
    store.append(used)
    return used


def release(store: TokenStore, claimed: EnrolmentToken) -> None:
    """Give a claimed token back (its enrolment failed): it may be presented again."""
    store.append(claimed.model_copy(update={"state": TokenState.ISSUED,
                                            "at": datetime.now(UTC)}))


def describe(record: EnrolmentToken) -> str:
    """One line about a token for logs and the CLI: never the token, a prefix of its hash."""
    return json.dumps({"token": record.token_hash[:12], "agent_id": record.agent_id,
                       "establishment": record.establishment_id, "state": record.state.value,
                       "expires_at": record.expires_at.isoformat(timespec="seconds")})
