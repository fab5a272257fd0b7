"""Pseudonymisation: identities are replaced by keyed HMACs before leaving the hospital.

Each configured field's value becomes ``HMAC-SHA256(key, value)`` (truncated, prefixed), with
a key that stays in the hospital. The same person gets the same pseudonym in every event from
that hospital, so the national SOC can still follow "one account failing on 40 workstations"
without learning who it is; only the hospital, which holds the key, can re-identify (by
recomputing the pseudonym of a candidate name).

Why the default fields are what they are (``DEFAULT_FIELDS``):

- **user names** (ECS ``user.name``, ``source.user.name``, ``destination.user.name`` and the
  Windows ``SubjectUserName``/``TargetUserName``/``User``...): they name staff and sometimes
  patients (kiosk accounts). Well-known principals (``SYSTEM``, ``ANONYMOUS LOGON``, ``-``...)
  are kept because Sigma rules match on them and they identify no one; a machine account's
  trailing ``$`` is kept for the same reason.
- **workstation / host names** (``host.name``, ``host.hostname``, ``winlog.computer_name``,
  ``WorkstationName``...): in hospitals they often embed a ward or a person's name.
- **IP addresses of the hospital's own network** (private, loopback, link-local ranges):
  they map to a desk and a person. Public addresses (the attacker's side) are kept by default:
  the national service correlates campaigns across establishments on them, and a per-hospital
  pseudonym would make that impossible. ``ip_scope: all`` pseudonymises them too.

Case does not change a Windows identity, so user and host names are lower-cased before the
HMAC (``DUPONT`` and ``dupont`` are one person). Pseudonymised IPs become addresses in the IPv6
unique-local range ``fd00::/8`` derived from the HMAC, so that the field keeps its type (the
wire schema and Elasticsearch mappings want an IP there). Not covered: free text (messages,
command lines with ``C:\\Users\\<name>``): document such exposure to the DPO or add fields.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from producers.keyfiles import check_key_strength, read_private_file, write_private_file
from runtime.errors import ConfigurationError


class Kind(StrEnum):
    """How a field's value is pseudonymised."""

    NAME = "name"  # user/host names: case-folded, well-known principals kept
    IP = "ip"  # an IP address: mapped into fd00::/8
    TEXT = "text"  # any string, exactly as written


USER_FIELDS = (
    "user.name", "source.user.name", "destination.user.name",
    "winlog.event_data.SubjectUserName", "winlog.event_data.TargetUserName",
    "winlog.event_data.User", "winlog.event_data.AccountName",
    "winlog.event_data.TargetOutboundUserName", "winlog.event_data.SamAccountName",
)
HOST_FIELDS = (
    "host.name", "host.hostname", "winlog.computer_name",
    "winlog.event_data.WorkstationName", "winlog.event_data.Workstation",
    "winlog.event_data.ComputerName", "source.domain",
)
IP_FIELDS = (
    "source.ip", "destination.ip", "host.ip",
    "winlog.event_data.IpAddress", "winlog.event_data.SourceIp",
    "winlog.event_data.DestinationIp", "winlog.event_data.SourceAddress",
    "winlog.event_data.DestAddress", "winlog.event_data.ClientAddress",
)

DEFAULT_FIELDS: dict[str, Kind] = {
    **dict.fromkeys(USER_FIELDS, Kind.NAME),
    **dict.fromkeys(HOST_FIELDS, Kind.NAME),
    **dict.fromkeys(IP_FIELDS, Kind.IP),
}

#: Values that identify no one and that detection rules match on: never pseudonymised.
WELL_KNOWN = frozenset({
    "", "-", "system", "local service", "network service", "anonymous logon",
    "localsystem", "nt authority\\system", "nt authority\\local service",
    "nt authority\\network service", "nt authority\\anonymous logon", "dwm-1", "umfd-0",
    "localhost", "root",
})

PREFIX = "ps-"

#: "The hospital's own network": addresses that designate a desk, not an outside party.
INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128",
))


def is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address.version == net.version and address in net for net in INTERNAL_NETWORKS)


class PseudonymKeyError(ConfigurationError):
    """The pseudonymisation key file is missing or too short."""


def generate_pseudonym_key(path: Path) -> bytes:
    """32 random bytes at ``path`` (mode 0600), unless a key is already there."""
    if path.exists() or path.is_symlink():
        return load_pseudonym_key(path)
    key = secrets.token_bytes(32)
    write_private_file(path, key.hex().encode() + b"\n")  # 0600, O_EXCL | O_NOFOLLOW
    return key


def load_pseudonym_key(path: Path) -> bytes:
    try:
        text = read_private_file(path).decode("ascii", "replace").strip()
    except FileNotFoundError:
        raise PseudonymKeyError(f"no pseudonymisation key at {path}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PseudonymKeyError(f"{path}: expected the key in hexadecimal") from None
    if len(key) < 16:
        raise PseudonymKeyError(f"{path}: key of {len(key)} bytes, at least 16 needed")
    check_key_strength(key, path)  # all-zero or patterned keys make pseudonyms reversible
    return key


class Pseudonymiser:
    """Replaces configured fields of a wire document (nested dict, ECS names) in place."""

    def __init__(self, key: bytes, fields: Mapping[str, Kind] | None = None, *,
                 ip_scope: str = "private") -> None:
        if ip_scope not in ("private", "all"):
            raise ValueError("ip_scope must be 'private' or 'all'")
        self._key = key
        self.fields = dict(DEFAULT_FIELDS if fields is None else fields)
        self.ip_scope = ip_scope
        self._paths = [(tuple(path.split(".")), Kind(kind)) for path, kind in self.fields.items()]
        # Fields grouped by parent object: a document is walked once per parent (a handful)
        # instead of once per field (two dozen), and a parent's keys are intersected with
        # the configured leaves in C — this runs on every event the agent ships.
        parents: dict[tuple[str, ...], dict[str, Kind]] = {}
        for path, kind in self._paths:
            parents.setdefault(path[:-1], {})[path[-1]] = kind
        self._parents = [(parent, leaves, leaves.keys()) for parent, leaves in parents.items()]
        self._cache: dict[tuple[Kind, str], Any] = {}

    def _digest(self, text: str) -> bytes:
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).digest()

    def pseudonym(self, value: Any, kind: Kind) -> Any:
        """The pseudonym of one value (non-strings and lists are handled too)."""
        if isinstance(value, list):
            return [self.pseudonym(item, kind) for item in value]
        if not isinstance(value, str):
            return value
        cached = self._cache.get((kind, value))
        if cached is not None:
            return cached
        result = self._compute(value, kind)
        if len(self._cache) > 100_000:  # bound memory on a flood of distinct values
            self._cache.clear()
        self._cache[(kind, value)] = result
        return result

    def _compute(self, value: str, kind: Kind) -> Any:
        if kind is Kind.IP:
            try:
                address = ipaddress.ip_address(value.strip().split("%")[0])
            except ValueError:
                return value if value.strip() in ("", "-") else self._name(value)
            if self.ip_scope == "private" and not is_internal(address):
                return value
            digest = self._digest("ip:" + address.compressed)
            return str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))
        if kind is Kind.NAME:
            folded = value.strip().lower()
            if folded in WELL_KNOWN:
                return value
            if folded.endswith("$"):
                return self._name(folded[:-1]) + "$"
            return self._name(folded)
        return PREFIX + self._digest(value).hex()[:20]

    def _name(self, folded: str) -> str:
        return PREFIX + self._digest(folded).hex()[:20]

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Pseudonymise ``doc`` in place (and return it)."""
        for path, leaves, names in self._parents:
            parent: Any = doc
            for part in path:
                parent = parent.get(part) if isinstance(parent, dict) else None
                if parent is None:
                    break
            if not isinstance(parent, dict):
                continue
            for leaf in names & parent.keys():
                value = parent[leaf]
                if value is not None:
                    parent[leaf] = self.pseudonym(value, leaves[leaf])
        return doc
