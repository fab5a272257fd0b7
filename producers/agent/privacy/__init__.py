"""What leaves the hospital: the privacy policy of the agent, and how it is applied.

- :mod:`.policy`: the declarative table (data class → fields → treatment, with the reason);
- :mod:`.names`: canonical forms, so one person or one machine has one pseudonym;
- :mod:`.scrub`: identities inside free text (messages, command lines, paths, URLs);
- :mod:`.pseudonymiser`: the policy applied to a document, and the keyed ``event.id``;
- :mod:`.keys`: the hospital's pseudonymisation key (and a throw-away one for dry runs).

``docs/privacy.md`` explains the same table to the hospital's data protection officer.
"""

from producers.agent.privacy.keys import (
    PseudonymKeyError,
    generate_pseudonym_key,
    load_pseudonym_key,
    throwaway_key,
)
from producers.agent.privacy.policy import DATA_CLASSES, POLICY, UNKNOWN_RULE, Treatment
from producers.agent.privacy.pseudonymiser import PREFIX, Pseudonymiser

__all__ = [
    "DATA_CLASSES",
    "POLICY",
    "PREFIX",
    "UNKNOWN_RULE",
    "PseudonymKeyError",
    "Pseudonymiser",
    "Treatment",
    "generate_pseudonym_key",
    "load_pseudonym_key",
    "throwaway_key",
]
