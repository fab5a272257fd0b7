"""Signature verification: no one writes in another's name.

Every record on ``events.raw`` carries the id of the agent that sent it, the agent's sequence
number of the record and an Ed25519 signature of that number and the exact value bytes (Kafka
headers ``vigie-agent`` / ``vigie-sequence`` / ``vigie-signature``, spelled in
:mod:`schemas.enrolment`; the sequence is what ``processors.replay`` checks). The verifier
checks, in this order:

1. a known agent signed it (``unknown_agent`` otherwise: no header, not in the registry) and
   it is not revoked (``revoked_agent``, with when and why);
2. the signature matches the sequence and the bytes with that agent's key (``bad_signature``:
   tampered value or sequence, wrong key, malformed signature, no ``vigie-sequence`` header,
   or a body ``agent.id`` that is not the signer);
3. the agent is enrolled for the establishment the event claims (``wrong_establishment``).

Pure logic, no Kafka: the processor calls it per record after schema validation (it needs the
establishment id the event claims), and unit tests call it with forged records. The agents it
looks up are a live mapping: in the processor, the one that ``runtime.agents_topic``'s
follower thread keeps up to date from the registry topic (``processors.trust``), so that a
revocation applies to the very next record it sees, without a restart.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from processors.validate import Refused
from schemas.deadletter import Reason
from schemas.enrolment import (
    HEADER_AGENT,
    HEADER_SEQUENCE,
    HEADER_SIGNATURE,
    AgentEntry,
    AgentStatus,
    parse_sequence,
    signed_message,
)

Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None


def _header(headers: Headers, name: str) -> bytes | None:
    """The first value of header ``name`` (Kafka allows repeats; the first one wins)."""
    if headers is None:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key == name:
            if value is None:
                return None
            return value.encode() if isinstance(value, str) else bytes(value)
    return None


def record_sequence(headers: Headers) -> int | None:
    """The agent's sequence number of a record (``vigie-sequence``), None if absent or bad."""
    return parse_sequence(_header(headers, HEADER_SEQUENCE))


class Verifier:
    """Checks records against the agents registry (public keys parsed once, then cached).

    A ``Mapping`` of agents is used as is, not copied: whoever owns it (the registry follower)
    may change it while the verifier runs, and the next lookup sees the change. Parsed keys
    are cached by the key itself, so an entry replaced under the same agent id can never be
    verified with its predecessor's key.

    Verification uses libsodium (PyNaCl), not OpenSSL (``cryptography``, which the agent
    signs with): it verifies about twice as fast (`python bench/signatures.py`),
    and verification is the processor's largest per-record cost. Both implement RFC 8032;
    libsodium is the stricter one (it also refuses non-canonical signatures and small-order
    keys), which costs honest agents nothing.
    """

    def __init__(self, agents: Mapping[str, AgentEntry] | Iterable[AgentEntry],
                 registry: str = "the agents registry") -> None:
        #: Named in the refusal of an unknown agent: which registry was looked in (in demo
        #: mode, the simulated one too), so an analyst knows where to enroll it.
        self.registry = registry
        self.agents: Mapping[str, AgentEntry] = (
            agents if isinstance(agents, Mapping) else {e.agent_id: e for e in agents})
        self._keys: dict[str, VerifyKey] = {}

    def _key(self, entry: AgentEntry) -> VerifyKey:
        key = self._keys.get(entry.public_key)
        if key is None:
            key = VerifyKey(entry.public_key_bytes)
            self._keys[entry.public_key] = key
        return key

    def verify(self, value: bytes, headers: Headers, establishment_id: str, *,
               agent_id: str | None = None) -> str:
        """The signing agent's id, or raise ``Refused`` with the reason.

        ``value`` are the record's bytes exactly as read from Kafka; ``establishment_id`` the
        ``organization.id`` the event claims; ``agent_id`` the event's ``agent.id`` if it has
        one (it must be the signer: an agent cannot sign on another agent's behalf).
        """
        raw_agent = _header(headers, HEADER_AGENT)
        if not raw_agent:
            raise Refused(Reason.UNKNOWN_AGENT,
                          f"no {HEADER_AGENT} header: record is not signed", establishment_id)
        signer = raw_agent.decode("utf-8", "replace")[:128]
        entry = self.agents.get(signer)
        if entry is None:
            raise Refused(Reason.UNKNOWN_AGENT,
                          f"agent {signer!r} is not in {self.registry}", establishment_id)
        if entry.status is AgentStatus.REVOKED:
            when = entry.revoked_at.isoformat() if entry.revoked_at else "unknown date"
            why = f": {entry.revoked_reason}" if entry.revoked_reason else ""
            raise Refused(Reason.REVOKED_AGENT, f"agent {signer!r} was revoked ({when}{why})",
                          establishment_id)
        raw_signature = _header(headers, HEADER_SIGNATURE)
        if not raw_signature:
            raise Refused(Reason.BAD_SIGNATURE,
                          f"agent {signer!r}: no {HEADER_SIGNATURE} header", establishment_id)
        try:
            signature = base64.b64decode(raw_signature, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(Reason.BAD_SIGNATURE, f"agent {signer!r}: signature is not base64",
                          establishment_id) from None
        if len(signature) != 64:
            raise Refused(Reason.BAD_SIGNATURE,
                          f"agent {signer!r}: signature of {len(signature)} bytes, not 64",
                          establishment_id)
        sequence = record_sequence(headers)
        if sequence is None:
            raise Refused(Reason.BAD_SIGNATURE,
                          f"agent {signer!r}: no valid {HEADER_SEQUENCE} header (a decimal "
                          f"number): the record cannot be told apart from a replay",
                          establishment_id)
        try:
            self._key(entry).verify(signed_message(sequence, value), signature)
        except BadSignatureError:
            raise Refused(Reason.BAD_SIGNATURE,
                          f"agent {signer!r}: signature does not match the record "
                          f"(altered in transit, or signed with another key)",
                          establishment_id) from None
        if agent_id is not None and agent_id != signer:
            raise Refused(Reason.BAD_SIGNATURE,
                          f"event says agent.id {agent_id!r} but was signed by {signer!r}",
                          establishment_id)
        if entry.establishment_id != establishment_id:
            raise Refused(Reason.WRONG_ESTABLISHMENT,
                          f"agent {signer!r} is enrolled for establishment "
                          f"{entry.establishment_id}, not {establishment_id}", establishment_id)
        return signer
