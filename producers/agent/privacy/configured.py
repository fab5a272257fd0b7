"""The pseudonymiser an agent configuration asks for (running, or previewing a dry run)."""

from __future__ import annotations

import logging

from producers.agent.config import AgentConfig, PseudonymiseConfig
from producers.agent.privacy.keys import generate_pseudonym_key, load_pseudonym_key, throwaway_key
from producers.agent.privacy.pseudonymiser import Pseudonymiser
from producers.agent.privacy.scrub import DEFAULT_PATIENT_PARAMS

log = logging.getLogger(__name__)

THROWAWAY_NOTICE = ("pseudonymised with a throw-away key (no pseudonymisation key {where}): "
                    "the pseudonyms shown will never be seen again, identities are not shown")


def _build(key: bytes, settings: PseudonymiseConfig) -> Pseudonymiser:
    return Pseudonymiser(
        key, settings.all_overrides(), ip_scope=settings.ip_scope,
        internal_domains=settings.internal_domains, patient_roots=settings.patient_roots,
        patient_params=(DEFAULT_PATIENT_PARAMS if settings.patient_params is None
                        else settings.patient_params),
        unparsed_messages=settings.unparsed_messages)


def pseudonymiser_for(config: AgentConfig) -> Pseudonymiser | None:
    """The running agent's: its key (created on first run); None if switched off."""
    settings = config.pseudonymise
    if not settings.enabled:
        log.warning("pseudonymisation is OFF: identities leave the hospital in clear")
        return None
    return _build(generate_pseudonym_key(config.pseudonym_key_path), settings)


def preview_pseudonymiser(config: AgentConfig | None) -> tuple[Pseudonymiser | None,
                                                                str | None]:
    """A dry run's: the configured key if it exists (a dry run creates no key file), else a
    throw-away one; with the notice to print when the key is a throw-away one."""
    if config is None:
        return _build(throwaway_key(), PseudonymiseConfig()), THROWAWAY_NOTICE.format(
            where="without --config")
    settings = config.pseudonymise
    if not settings.enabled:
        return None, None  # what would leave is the clear text: that is what is shown
    path = config.pseudonym_key_path
    if path.exists():
        return _build(load_pseudonym_key(path), settings), None
    return _build(throwaway_key(), settings), THROWAWAY_NOTICE.format(where=f"at {path} yet")
