"""Agent identity: the Ed25519 key pair, and signing the exact bytes sent to Kafka.

The private key is a PKCS#8 PEM file readable by its owner only; it never leaves the
hospital. The national registry holds the raw public key in base64 (see
:mod:`schemas.enrolment`). Ed25519 because it is deterministic (no nonce to get wrong), fast
(~tens of microseconds per signature) and has 32-byte keys that fit in a registry line.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nacl.signing import SigningKey

from producers.keyfiles import read_private_file, write_private_file
from runtime.errors import CannotWrite, ConfigurationError
from schemas.enrolment import HEADER_AGENT, HEADER_SEQUENCE, HEADER_SIGNATURE, signed_message


class AgentKeyError(ConfigurationError):
    """The agent key file is missing, unreadable or not an Ed25519 key."""


class AgentKeyExists(CannotWrite, AgentKeyError):
    """``enroll`` would overwrite an existing key (and so un-enroll the agent)."""


def generate_key(path: Path, *, overwrite: bool = False) -> Ed25519PrivateKey:
    """Create a new private key at ``path`` (mode 0600, created with ``O_EXCL |
    O_NOFOLLOW``: never written through a symbolic link planted there, never over another
    file). Refuses to replace an existing key: losing it means re-enrolling the agent."""
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise AgentKeyExists("already exists; refusing to overwrite an agent key",
                             source=str(path))
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if overwrite:
        path.unlink(missing_ok=True)  # a link is removed, never followed
    write_private_file(path, pem)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    """The agent's private key; refused when other accounts may read it or when ``path`` is
    a symbolic link (:func:`producers.keyfiles.read_private_file`)."""
    try:
        pem = read_private_file(path)
    except FileNotFoundError:
        raise AgentKeyError(
            f"no agent key at {path}; create one with `vigie agent enroll`") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AgentKeyError(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AgentKeyError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw 32-byte public key, as the agents registry stores it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


class ClockSequence:
    """Sequence numbers for a producer without a durable spool (the simulator, tests, the
    benchmarks): microseconds since the epoch, and +1 when two records fall in the same
    microsecond. They rise within the process and, the clock going forward, from one run to
    the next, which is all the processor's replay check asks of an agent's numbers. The real
    agent numbers its records with its spool instead (:mod:`producers.agent.spool`), which
    survives its restarts and re-sends a record under the number it first had."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last = max(self.last + 1, time.time_ns() // 1000)
        return self.last


#: Messages at least this long are signed with OpenSSL, shorter ones with libsodium: where
#: OpenSSL's faster hashing (~2.3 µs/KiB against ~4.2) outweighs its higher fixed cost
#: (~27 µs against ~19 µs per signature).
OPENSSL_FROM_BYTES = 4096


class Signer:
    """Signs record values for one agent and builds the Kafka headers that carry it.

    What is signed is the record's sequence number and its value
    (:func:`schemas.enrolment.signed_message`): the sequence lets the processor refuse a
    record sent twice, and a replayer cannot renumber a record without the key.

    The key is kept and stored with ``cryptography`` (PEM, PKCS#8). Small values (single
    events) are signed through libsodium (PyNaCl), whose fixed cost per signature is lower
    (`python bench/signatures.py`); envelopes (:mod:`schemas.envelope`, up to 512 KiB)
    through OpenSSL, whose SHA-512 — run twice over the message by Ed25519 — is about twice
    as fast: 1.2 ms instead of 2.2 ms for 512 KiB on the project's machine, a few µs per
    event of the agent. Ed25519 is deterministic: both give the same signature bytes (a
    unit test checks it), so a record signed again with the same sequence carries the very
    same headers.
    """

    def __init__(self, agent_id: str, key: Ed25519PrivateKey) -> None:
        self.agent_id = agent_id
        self.key = key
        self._sodium = SigningKey(key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption()))
        self._agent_header = agent_id.encode("utf-8")
        self.clock = ClockSequence()

    def signature(self, value: bytes, sequence: int) -> bytes:
        """The base64 signature of ``value`` (the exact Kafka value bytes) numbered
        ``sequence``."""
        message = signed_message(sequence, value)
        if len(message) >= OPENSSL_FROM_BYTES:
            return base64.b64encode(self.key.sign(message))
        return base64.b64encode(self._sodium.sign(message).signature)

    def headers(self, value: bytes, sequence: int | None = None) -> list[tuple[str, bytes]]:
        """The Kafka headers of ``value``; without ``sequence``, the next of ``clock``."""
        if sequence is None:
            sequence = self.clock.next()
        return [(HEADER_AGENT, self._agent_header), (HEADER_SEQUENCE, b"%d" % sequence),
                (HEADER_SIGNATURE, self.signature(value, sequence))]
