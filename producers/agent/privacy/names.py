"""Canonical forms: one person, one host, one spelling before the HMAC.

``CHU\\JDupont``, ``jdupont@chu-exemple.fr``, ``JDUPONT`` and ``jdupont`` are one account: the
pseudonym is computed on ``jdupont`` (case-folded, domain taken apart), so the national SOC
sees one pseudonym wherever the hospital's systems write that account. The domain is kept
apart and pseudonymised as a host name (a local account's domain *is* the computer's name).
``PC-CARDIO-01.chu.local`` and ``pc-cardio-01`` are one machine: its first label.
"""

from __future__ import annotations

import ipaddress
import re

#: Accounts and groups that identify no one and that Sigma rules match on: never replaced.
WELL_KNOWN_ACCOUNTS = frozenset({
    "", "-", "system", "local service", "network service", "anonymous logon", "localsystem",
    "localservice", "networkservice", "dwm-1", "dwm-2", "dwm-3", "umfd-0", "umfd-1", "umfd-2",
    "localhost", "root", "administrator", "administrateur", "guest", "invité", "krbtgt",
    "defaultaccount", "wdagutilityaccount", "nobody", "daemon", "www-data", "sshd",
    "administrators", "administrateurs", "domain admins", "admins du domaine",
    "enterprise admins", "administrateurs de l'entreprise", "schema admins",
    "remote desktop users", "utilisateurs du bureau à distance", "backup operators",
    "account operators", "server operators", "print operators", "users", "utilisateurs",
    "domain users", "utilisateurs du domaine", "domain computers", "domain controllers",
    "everyone", "tout le monde", "authenticated users", "utilisateurs authentifiés",
    "trustedinstaller", "font driver host", "window manager",
})

#: Domains of built-in accounts: kept (``NT AUTHORITY\\SYSTEM`` is no one).
WELL_KNOWN_DOMAINS = frozenset({
    "", "-", "nt authority", "autorite nt", "autorité nt", "builtin", "nt service",
    "window manager", "font driver host", "nt virtual machine", "iis apppool", "workgroup",
})

#: Profile folders that are no one's: ``C:\\Users\\Public`` stays as it is.
WELL_KNOWN_PROFILES = frozenset({
    "public", "default", "default user", "all users", "defaultapppool", "administrator",
    "administrateur", "localservice", "networkservice", "systemprofile", "desktop.ini",
})

#: Suffixes that always designate the hospital's own network (plus the configured ones).
DEFAULT_INTERNAL_SUFFIXES = (".local", ".lan", ".internal", ".intra", ".intranet",
                             ".localdomain", ".home.arpa", ".corp", ".priv", ".private")

#: "The hospital's own network": addresses that designate a desk, not an outside party.
INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128",
))

_SID = re.compile(r"^S-1-(\d+)(?:-(\d+))*$", re.IGNORECASE)


def is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address.version == net.version and address in net for net in INTERNAL_NETWORKS)


def split_account(value: str) -> tuple[str | None, str, str]:
    """``(domain, account, separator)`` of ``DOMAIN\\user``, ``user@domain`` or ``user``;
    the account case-folded and stripped (the canonical form the HMAC is computed on)."""
    text = value.strip()
    if "\\" in text:
        domain, _, account = text.rpartition("\\")
        return domain, _person(account.strip().lower()), "\\"
    if "@" in text and not text.startswith("@"):
        account, _, domain = text.partition("@")
        return domain, _person(account.strip().lower()), "@"
    return None, _person(text.lower()), ""


def _person(name: str) -> str:
    """``MARTIN Jeanne`` and ``Jeanne Martin`` are one person: a name of several words is
    taken word by word, in alphabetical order (a single account name is left as it is)."""
    return " ".join(sorted(name.split())) if " " in name else name


def canonical_host(value: str) -> str:
    """A machine's canonical name: its first DNS label, case-folded (``PC-01.chu.local``
    and ``pc-01`` are one machine)."""
    return value.strip().lower().split(".", 1)[0]


def well_known_sid(sid: str) -> bool:
    """Built-in SIDs (``S-1-5-18``, ``S-1-5-32-544``...) and domain SIDs with a well-known
    relative id (``-500`` Administrator, ``-512`` Domain Admins... all below 1000)."""
    match = _SID.match(sid.strip())
    if match is None:
        return False
    parts = sid.strip().split("-")
    if len(parts) >= 4 and parts[2] == "5" and parts[3] == "21":
        try:
            return int(parts[-1]) < 1000 and len(parts) == 8
        except ValueError:
            return False
    return True  # S-1-0-0, S-1-5-18, S-1-5-32-544, S-1-5-80-... (services), S-1-16-... (labels)
