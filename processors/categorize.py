"""From a Sigma rule's ATT&CK tags to the incident taxonomy (ENISA RSIT), in one table.

Techniques are looked at first because some say more than their tactic (T1490, shadow copy
deletion, is ransomware's signature); then the most telling tactic. A failed action
(``event.outcome: failure``, e.g. each try of a brute force) that would be an intrusion is an
intrusion attempt. Rules without ATT&CK tags fall back to ``other``, which keeps the origin
"unknown" until an analyst qualifies the incident.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.taxonomy import Category

BY_TECHNIQUE: dict[str, Category] = {
    "T1486": Category.MALICIOUS_CODE,   # data encrypted for impact (ransomware)
    "T1490": Category.MALICIOUS_CODE,   # inhibit system recovery (shadow copies)
    "T1485": Category.MALICIOUS_CODE,   # data destruction (wipers)
    "T1498": Category.AVAILABILITY,     # network denial of service
    "T1499": Category.AVAILABILITY,     # endpoint denial of service
    "T1595": Category.INFORMATION_GATHERING,  # active scanning
    "T1046": Category.INFORMATION_GATHERING,  # network service discovery
    "T1566": Category.FRAUD,            # phishing
}

#: Tactics, most telling first: the first one a rule carries decides.
BY_TACTIC: tuple[tuple[str, Category], ...] = (
    ("impact", Category.MALICIOUS_CODE),
    ("exfiltration", Category.INFORMATION_CONTENT_SECURITY),
    ("initial-access", Category.INTRUSION),
    ("lateral-movement", Category.INTRUSION),
    ("credential-access", Category.INTRUSION),
    ("command-and-control", Category.MALICIOUS_CODE),
    ("execution", Category.MALICIOUS_CODE),
    ("persistence", Category.MALICIOUS_CODE),
    ("privilege-escalation", Category.INTRUSION),
    ("defense-evasion", Category.MALICIOUS_CODE),
    ("stealth", Category.MALICIOUS_CODE),
    ("resource-development", Category.MALICIOUS_CODE),
    ("collection", Category.INFORMATION_CONTENT_SECURITY),
    ("discovery", Category.INFORMATION_GATHERING),
    ("reconnaissance", Category.INFORMATION_GATHERING),
)

DEFAULT = Category.OTHER


def categorize(techniques: Iterable[str], tactics: Iterable[str],
               outcome: str | None = None) -> Category:
    """Category of a rule match; ``outcome`` is the event's ``event.outcome``."""
    category = _from_tags(list(techniques), set(tactics))
    if outcome == "failure" and category is Category.INTRUSION:
        return Category.INTRUSION_ATTEMPTS
    return category


def _from_tags(techniques: list[str], tactics: set[str]) -> Category:
    for technique in techniques:
        parent = technique.split(".")[0].upper()
        if parent in BY_TECHNIQUE:
            return BY_TECHNIQUE[parent]
    for tactic, category in BY_TACTIC:
        if tactic in tactics:
            return category
    return DEFAULT
