"""Simulated agents: one per establishment, with keys derived from a seed.

Deterministic so that the simulated registry can be regenerated at any time and still match
the signatures of a simulation run: the private key of an establishment's agent is
``SHA-256("vigie-sim-agent", seed, establishment id)`` used as the Ed25519 seed. Anyone who
knows the seed can sign as these agents, so they are registered on their own topic,
``vigie.agents.simulated``, never on the production registry: only a processor in demo mode
trusts them. Real agents enroll with ``vigie agent enroll`` and ``vigie agents add``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.signing import Signer
from runtime.kafka import KafkaConnection
from schemas.enrolment import AgentAction, AgentChange, AgentEntry
from schemas.organization import Organization
from schemas.topics import AGENTS_SIMULATED

log = logging.getLogger(__name__)

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


#: A processor in demo mode follows the simulated registry with a poll of half a second: after
#: registering new agents, wait this long before signing with them.
FOLLOWERS_CATCH_UP_S = 2.0


def register_simulated_agents(kafka: KafkaConnection, registry_orgs: Iterable[Organization],
                              seed: int = 0) -> int:
    """Put the simulated agents of ``registry_orgs`` on ``vigie.agents.simulated`` (never on
    the production registry), writing only those missing; returns how many were written."""
    from runtime.agents_topic import publish, read_entries
    from runtime.topics import ensure_topics

    ensure_topics(kafka, (AGENTS_SIMULATED,))
    present = read_entries(kafka, AGENTS_SIMULATED)
    missing = [e for e in simulated_agents(registry_orgs, seed)[0]
               if present.get(e.agent_id) != e]
    publish(kafka, [AgentChange(at=e.enrolled_at, action=AgentAction.ENROLLED,
                                agent_id=e.agent_id, actor="vigie simulate",
                                reason="simulated agent", entry=e) for e in missing],
            topic=AGENTS_SIMULATED, audit=False)
    if missing:
        log.info("registered %d simulated agents on %s", len(missing), AGENTS_SIMULATED.name)
        time.sleep(FOLLOWERS_CATCH_UP_S)
    return len(missing)
