"""Pseudonymisation: identities are replaced by keyed HMACs before leaving the hospital.

The policy and its application live in :mod:`producers.agent.privacy` (the table by data
class, canonical forms, free-text scrubbing, the keyed ``event.id``); ``docs/privacy.md``
explains it to the hospital's data protection officer. This module keeps the names the rest
of the agent (and older configurations: ``Kind``, ``name``/``ip``/``text``) import.
"""

from __future__ import annotations

from producers.agent.privacy import (
    POLICY,
    PREFIX,
    Pseudonymiser,
    PseudonymKeyError,
    Treatment,
    generate_pseudonym_key,
    load_pseudonym_key,
    throwaway_key,
)
from producers.agent.privacy.names import INTERNAL_NETWORKS, is_internal

#: The first configuration format's name for a treatment (``name``, ``ip``, ``text``).
Kind = Treatment

#: The field table (see :data:`producers.agent.privacy.policy.POLICY`).
DEFAULT_FIELDS = POLICY

__all__ = [
    "DEFAULT_FIELDS",
    "INTERNAL_NETWORKS",
    "PREFIX",
    "Kind",
    "PseudonymKeyError",
    "Pseudonymiser",
    "Treatment",
    "generate_pseudonym_key",
    "is_internal",
    "load_pseudonym_key",
    "throwaway_key",
]
