"""``vigie agent ingest --dry-run``: the events that files would become, without sending any.

An IT team checks what would leave the hospital before enrolling: the files are parsed,
pseudonymised and signed exactly as ``ingest`` would, and the Kafka record values are handed
back instead of spooled. Without a configuration a placeholder establishment and a throwaway
signing key stand in; without a pseudonymisation key (no configuration, or a configured key
not created yet) a throw-away one pseudonymises, so a dry run never shows an identity that
would not leave. ``notice`` says when that happened (the CLI prints it on stderr).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.config import AgentConfig
from producers.agent.pipeline import Finisher
from producers.agent.privacy.configured import preview_pseudonymiser
from producers.agent.run import agent_context, dry_run_docs
from producers.signing import Signer, load_key
from schemas.organization import Organization

#: Who the events claim to come from when no configuration is given.
PLACEHOLDER = Organization(id="000000000", name="dry-run", type="hospital",
                           region="ile-de-france")
PLACEHOLDER_AGENT = "dry-run"


class Preview:
    """A dry run: ``notice`` (or None) to tell the user, ``events()`` the record values."""

    def __init__(self, config: AgentConfig | None) -> None:
        self.config = config
        pseudonymiser, self.notice = preview_pseudonymiser(config)
        if config is not None:
            self.org, self.agent_id = config.establishment, config.agent_id
            signer = Signer(self.agent_id, load_key(config.key_path))
        else:
            self.org, self.agent_id = PLACEHOLDER, PLACEHOLDER_AGENT
            signer = Signer(self.agent_id, Ed25519PrivateKey.generate())
        self.finisher = Finisher(self.org, signer, pseudonymiser)

    def events(self, paths: Iterable[Path], fmt: str = "auto") -> Iterator[bytes]:
        """The Kafka record value of every event in ``paths``, in file order."""
        yield from dry_run_docs(paths, self.finisher,
                                agent_context(self.config, self.org.id, self.agent_id), fmt)


def preview_events(paths: Iterable[Path], config: AgentConfig | None,
                   fmt: str = "auto") -> Iterator[bytes]:
    """The Kafka record value of every event in ``paths``, in file order."""
    yield from Preview(config).events(paths, fmt)
