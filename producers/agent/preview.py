"""``vigie agent ingest --dry-run``: the events that files would become, without sending any.

An IT team checks what would leave the hospital before enrolling: the files are parsed,
pseudonymised and signed exactly as ``ingest`` would, and the Kafka record values are handed
back instead of spooled. Without a configuration a placeholder establishment and a throwaway
key stand in, and identities are left as they are (there is no pseudonymisation key).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.config import AgentConfig
from producers.agent.pipeline import Finisher
from producers.agent.run import agent_context, dry_run_docs, make_pseudonymiser
from producers.signing import Signer, load_key
from schemas.organization import Organization

#: Who the events claim to come from when no configuration is given.
PLACEHOLDER = Organization(id="000000000", name="dry-run", type="hospital",
                           region="ile-de-france")
PLACEHOLDER_AGENT = "dry-run"


def preview_events(paths: Iterable[Path], config: AgentConfig | None,
                   fmt: str = "auto") -> Iterator[bytes]:
    """The Kafka record value of every event in ``paths``, in file order."""
    if config is not None:
        org, agent_id = config.establishment, config.agent_id
        finisher = Finisher(org, Signer(agent_id, load_key(config.key_path)),
                            make_pseudonymiser(config))
    else:
        org, agent_id = PLACEHOLDER, PLACEHOLDER_AGENT
        finisher = Finisher(org, Signer(agent_id, Ed25519PrivateKey.generate()), None)
    yield from dry_run_docs(paths, finisher, agent_context(config, org.id, agent_id), fmt)
