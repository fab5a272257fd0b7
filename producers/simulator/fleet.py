"""Simulated agents: one per establishment, with keys derived from a seed.

Deterministic so that the agents registry can be regenerated at any time and still match the
signatures of a simulation run: the private key of an establishment's agent is
``SHA-256("vigie-sim-agent", seed, establishment id)`` used as the Ed25519 seed. Never use
this for real agents (anyone knowing the seed can sign): they enroll with ``vigie agent
enroll``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.signing import Signer
from schemas.enrolment import AgentEntry
from schemas.organization import Organization

#: Fixed enrolment date, so a regenerated registry is byte-identical.
ENROLLED_AT = datetime(2024, 1, 1, tzinfo=UTC)


def agent_id_for(establishment_id: str) -> str:
    """The simulator's agent id for an establishment (what ``events.base`` writes)."""
    return f"sim-{establishment_id}"


def simulated_agents(registry_orgs: Iterable[Organization], seed: int = 0
                     ) -> tuple[list[AgentEntry], dict[str, Signer]]:
    """(registry entries, signers by establishment id) for every establishment."""
    entries: list[AgentEntry] = []
    signers: dict[str, Signer] = {}
    for org in registry_orgs:
        material = hashlib.sha256(f"vigie-sim-agent\x1f{seed}\x1f{org.id}".encode()).digest()
        key = Ed25519PrivateKey.from_private_bytes(material)
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        agent_id = agent_id_for(org.id)
        entries.append(AgentEntry(agent_id=agent_id, establishment_id=org.id,
                                  public_key=base64.b64encode(public).decode(),
                                  enrolled_at=ENROLLED_AT))
        signers[org.id] = Signer(agent_id, key)
    return entries, signers
