"""Applying the policy to one wire document, in place, before it is spooled.

Two passes over the document: the structured identities first (users, domains, SIDs, hosts,
DNS names, addresses: each value replaced by its keyed pseudonym, and remembered), then the
free text, in which every remembered clear value is replaced by the very same pseudonym and
the structured patterns by theirs (:mod:`.scrub`). Fields outside the table follow the
default-deny rule (:data:`.policy.UNKNOWN_RULE`).

Pseudonyms are ``ps-`` + HMAC-SHA256(key, canonical value), 80 bits in hex; internal
addresses become addresses of ``fd00::/8`` derived from the HMAC (the field stays an IP).
The key never leaves the hospital: only the hospital can re-identify, by recomputing the
pseudonym of a candidate name.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from producers.agent.privacy.names import (
    DEFAULT_INTERNAL_SUFFIXES,
    WELL_KNOWN_ACCOUNTS,
    WELL_KNOWN_DOMAINS,
    canonical_host,
    is_internal,
    split_account,
    well_known_sid,
)
from producers.agent.privacy.policy import (
    POLICY,
    RAW_DATA_PREFIXES,
    REQUIRED,
    UNPARSED_MESSAGE_DEFAULT,
    Treatment,
)
from producers.agent.privacy.scrub import DEFAULT_PATIENT_PARAMS, Scrubber

PREFIX = "ps-"

#: Marks a node of the compiled policy tree whose unlisted strings are free text.
_RAW = "\x00raw"
#: Parent objects whose short name is derived from a path: (object path, path key, name key).
_BASENAMES = ((("file",), "path", "name"), (("process",), "executable", "name"),
              (("process", "parent"), "executable", "name"))

Known = list[tuple[str, str]]

# Enum members read as module constants: ``Treatment.KEEP`` costs a descriptor lookup (ten
# times a global's), and these are compared for every field of every event.
_DNS = Treatment.DNS
_DOMAIN = Treatment.DOMAIN
_DROP = Treatment.DROP
_HASH = Treatment.HASH
_HOST = Treatment.HOST
_IP = Treatment.IP
_KEEP = Treatment.KEEP
_SCRUB = Treatment.SCRUB
_SID = Treatment.SID
_USER = Treatment.USER


def _basename(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    return path.replace("/", "\\").rsplit("\\", 1)[-1] or None


def _longest_first(pair: tuple[str, str]) -> int:
    return -len(pair[0])


def _compile(policy: Mapping[str, Treatment]) -> dict[str, Any]:
    """The flat table as a tree of dicts (leaves: treatments), walked along the document."""
    tree: dict[str, Any] = {"organization": Treatment.KEEP, "agent": Treatment.KEEP,
                            "event": {"id": Treatment.KEEP}}
    for prefix in RAW_DATA_PREFIXES:
        node = tree
        for part in prefix:
            node = node.setdefault(part, {})
        node[_RAW] = True
    # UserData (1102 "log cleared", some AppLocker and WMI events) carries the same names as
    # EventData (``SubjectUserName``...): the same rules apply there.
    mirrored = {"winlog.user_data." + path[len("winlog.event_data."):]: treatment
                for path, treatment in policy.items()
                if path.startswith("winlog.event_data.")}
    for path, treatment in {**mirrored, **policy}.items():
        node = tree
        parts = path.split(".")
        # ``@timestamp`` and raw data names may hold no dot; ECS paths are split on them.
        if parts[:2] in (["winlog", "event_data"], ["winlog", "user_data"]) and len(parts) > 3:
            parts = [*parts[:2], ".".join(parts[2:])]
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = treatment
    return tree


# What a compiled table node says of a key (plain ints: compared for every field).
_LEAF_KEEP, _LEAF_IDENTITY, _LEAF_SCRUB, _LEAF_OBJECT, _LEAF_DROP = range(5)


class _Node:
    """One object of the compiled table: each key's action as a small int, the identity
    treatments and the sub-objects, so a document's object is walked with one dict lookup
    per key."""

    __slots__ = ("actions", "identities", "objects", "raw")

    def __init__(self, tree: Mapping[str, Any]) -> None:
        self.raw = _RAW in tree
        self.objects = {k: _Node(v) for k, v in tree.items() if type(v) is dict}
        self.identities: dict[str, Treatment] = {}
        self.actions: dict[str, int] = {}
        for key, rule in tree.items():
            if key == _RAW:
                continue
            if type(rule) is dict:
                self.actions[key] = _LEAF_OBJECT
            elif rule is Treatment.KEEP:
                self.actions[key] = _LEAF_KEEP
            elif rule is Treatment.SCRUB:
                self.actions[key] = _LEAF_SCRUB
            elif rule is Treatment.DROP:
                self.actions[key] = _LEAF_DROP
            else:
                self.actions[key] = _LEAF_IDENTITY
                self.identities[key] = rule


class Pseudonymiser:
    """The hospital's privacy policy, applied to wire documents (nested dicts, ECS names)."""

    def __init__(self, key: bytes, fields: Mapping[str, Treatment | str] | None = None, *,
                 ip_scope: str = "private", internal_domains: Sequence[str] = (),
                 patient_roots: Sequence[str] = (),
                 patient_params: Sequence[str] = DEFAULT_PATIENT_PARAMS,
                 unparsed_messages: Treatment | str = UNPARSED_MESSAGE_DEFAULT) -> None:
        if ip_scope not in ("private", "all"):
            raise ValueError("ip_scope must be 'private' or 'all'")
        self._key = key
        self.ip_scope = ip_scope
        overrides = {path: Treatment(t) for path, t in (fields or {}).items()}
        for path, treatment in overrides.items():
            if treatment is _DROP and path in REQUIRED:
                raise ValueError(f"{path} cannot be dropped: an event needs it")
        self.policy: dict[str, Treatment] = {**POLICY, **overrides}
        self.unparsed_messages = Treatment(unparsed_messages)
        if self.unparsed_messages not in (_DROP, _SCRUB):
            raise ValueError("unparsed_messages must be 'drop' or 'scrub'")
        self.internal_suffixes = tuple(sorted(
            {*DEFAULT_INTERNAL_SUFFIXES,
             *("." + d.strip(".").lower() for d in internal_domains if d.strip("."))},
            key=len, reverse=True))
        self._tree = _Node(_compile(self.policy))
        self._cache: dict[tuple[Treatment, str], tuple[str, Known]] = {}
        self.scrubber = Scrubber(user=self.user, host=self.host, ip=self.ip_text, dns=self.dns,
                                 opaque=self.opaque, sid=self.sid, patient_roots=patient_roots,
                                 patient_params=patient_params)
        #: Fields dropped because no rule keeps them (default deny), since start.
        self.dropped = 0

    # --- pseudonyms ------------------------------------------------------------------------
    def _digest(self, text: str) -> bytes:
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).digest()

    def _name(self, folded: str) -> str:
        return PREFIX + self._digest(folded).hex()[:20]

    def opaque(self, value: str) -> str:
        """Any string (case-folded) → a pseudonym: a patient document's name..."""
        return self._name(value.strip().lower())

    def user(self, value: str) -> str:
        """An account in any spelling → its pseudonym (domain part, if any, pseudonymised
        apart and kept in its place): ``CHU\\JDupont`` → ``ps-…\\ps-…``."""
        return self._identity(value, _USER)[0]

    def host(self, value: str) -> str:
        return self._identity(value, _HOST)[0]

    def sid(self, value: str) -> str:
        return self._identity(value, _SID)[0]

    def dns(self, value: str) -> str:
        return self._identity(value, _DNS)[0]

    def ip_text(self, value: str) -> str:
        """An IPv4 address found in text: internal ones pseudonymised, others kept."""
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return value
        return self._address(address) or value

    def event_id(self, agent_event_id: str) -> str:
        """The keyed ``event.id``: deterministic for one record and one key (a replay gives
        the same id, which exactly-once relies on), and not reversible without the key,
        unlike a plain hash of a computer name and a record number."""
        return hmac.new(self._key, b"event.id\x1f" + agent_event_id.encode("utf-8"),
                        hashlib.sha256).hexdigest()[:32]

    def pseudonym(self, value: Any, kind: Treatment | str) -> Any:
        """The pseudonym of one value under one treatment (lists element by element)."""
        if isinstance(value, list):
            return [self.pseudonym(item, kind) for item in value]
        if not isinstance(value, str):
            return value
        treatment = Treatment(kind)
        if treatment is _SCRUB:
            return self.scrubber.scrub(value)
        if treatment is _KEEP:
            return value
        return self._identity(value, treatment)[0]

    def _identity(self, value: str, treatment: Treatment) -> tuple[str, Known]:
        """(pseudonymised value, [(clear spelling, pseudonym)] for free text), cached."""
        cached = self._cache.get((treatment, value))
        if cached is not None:
            return cached
        known: Known = []
        result = self._compute(value, treatment, known)
        if len(self._cache) > 100_000:  # bound memory on a flood of distinct values
            self._cache.clear()
        pair = (result, [(c.lower(), p) for c, p in known
                         if len(c) >= 3 and not c.isdigit() and c != p])
        self._cache[(treatment, value)] = pair
        return pair

    def _compute(self, value: str, treatment: Treatment, known: Known) -> str:
        stripped = value.strip()
        if treatment is _USER:
            return self._account(value, known)
        if treatment is _DOMAIN:
            return self._domain(stripped, known)
        if treatment is _HOST or treatment is _DNS:
            address = self._as_ip(stripped)
            if address is not None:
                return self._ip_value(value, address, known)
            if stripped.lower() in WELL_KNOWN_ACCOUNTS:
                return value
            if treatment is _DNS:
                return self._dns(stripped, known)
            pseudonym = self._name(canonical_host(stripped))
            known += [(stripped, pseudonym), (stripped.split(".", 1)[0], pseudonym)]
            return pseudonym
        if treatment is _IP:
            address = self._as_ip(stripped)
            if address is None:
                return value if stripped in ("", "-") else self._compute(value, _HOST,
                                                                         known)
            return self._ip_value(value, address, known)
        if treatment is _SID:
            if stripped in ("", "-") or well_known_sid(stripped):
                return value
            pseudonym = PREFIX + "sid-" + self._digest("sid:" + stripped.upper()).hex()[:20]
            known.append((stripped, pseudonym))
            return pseudonym
        if treatment is _HASH:
            pseudonym = PREFIX + self._digest(value).hex()[:20]
            known.append((value, pseudonym))
            return pseudonym
        return value

    def _account(self, value: str, known: Known) -> str:
        domain, account, separator = split_account(value)
        if account.endswith("$") and len(account) > 1:  # a machine account: the machine
            user = self.host(account[:-1]) + "$"
            known.append((account[:-1], user[:-1]))
        elif account in WELL_KNOWN_ACCOUNTS or account.startswith(PREFIX):
            if domain is None:
                return value
            spelled = value.strip()
            user = (spelled.rpartition("\\")[2] if separator == "\\"
                    else spelled.partition("@")[0])
        else:
            user = self._name(account)
            known.append((account, user))
        if domain is None:
            return user
        if separator == "@":
            return user + "@" + self._dns(domain, known)
        return self._domain(domain, known) + "\\" + user

    def _domain(self, domain: str, known: Known) -> str:
        if domain.lower() in WELL_KNOWN_DOMAINS or domain.startswith(PREFIX):
            return domain
        if "." in domain:
            return self._dns(domain, known)
        pseudonym = self._name(canonical_host(domain))
        known.append((domain, pseudonym))
        return pseudonym

    def _dns(self, name: str, known: Known) -> str:
        """Internal names → the host's pseudonym (+ the internal suffix); external kept."""
        lowered = name.lower().rstrip(".")
        if "." not in lowered:
            pseudonym = self._name(lowered)
            known.append((name, pseudonym))
            return pseudonym
        for suffix in self.internal_suffixes:
            if lowered.endswith(suffix):
                host = self._name(canonical_host(lowered))
                known += [(name, host + suffix), (name.split(".", 1)[0], host)]
                return host + suffix
        return name

    @staticmethod
    def _as_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not value or not (value[0].isdigit() or ":" in value):
            return None
        try:
            return ipaddress.ip_address(value.split("%")[0])
        except ValueError:
            return None

    def _address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        if address.is_loopback or address.is_unspecified:
            return None  # the same on every machine: no one's, and Sigma rules name them
        if self.ip_scope == "private" and not is_internal(address):
            return None
        digest = self._digest("ip:" + address.compressed)
        return str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))

    def _ip_value(self, value: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                  known: Known) -> str:
        pseudonym = self._address(address)
        if pseudonym is None:
            return value
        known.append((value.strip(), pseudonym))
        return pseudonym

    # --- documents -------------------------------------------------------------------------
    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Apply the policy to ``doc`` in place (and return it)."""
        known: Known = []
        texts: list[tuple[Any, Any]] = []
        if "message" in doc and not self._recognised(doc) \
                and self.unparsed_messages is _DROP:
            del doc["message"]
            self.dropped += 1
        basenames = self._derived_names(doc)
        self._walk(doc, self._tree, known, texts)
        if texts:
            if len(known) > 1:
                known = sorted(dict(known).items(), key=_longest_first)
            scrub = self.scrubber.scrub
            for parent, key in texts:
                parent[key] = scrub(parent[key], known,
                                    prose=key == "message" and parent is doc)
        for parent, path_key, name_key in basenames:
            name = _basename(parent.get(path_key))
            if name:
                parent[name_key] = name
        return doc

    @staticmethod
    def _recognised(doc: dict[str, Any]) -> bool:
        """Whether the agent understood the record (sshd, sudo, pam, CEF): then its
        message is known text and is scrubbed; otherwise ``unparsed_messages`` decides."""
        event = doc.get("event")
        return type(event) is dict and bool(event.get("category")
                                            or event.get("module") == "cef")

    @staticmethod
    def _derived_names(doc: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
        """Objects whose ``name`` is the basename of their path: recomputed from the
        scrubbed path, so that a patient document's name follows its path's treatment."""
        out = []
        for path, path_key, name_key in _BASENAMES:
            node: Any = doc
            for part in path:
                node = node.get(part) if type(node) is dict else None
            if type(node) is dict and node.get(name_key) is not None \
                    and node.get(name_key) == _basename(node.get(path_key)):
                out.append((node, path_key, name_key))
        return out

    def _walk(self, node: dict[str, Any], tree: _Node, known: Known,
              texts: list[tuple[Any, Any]]) -> None:
        # This runs on every object of every event: one dict lookup per key, int compares.
        actions = tree.actions
        unlisted = _LEAF_SCRUB if tree.raw else _LEAF_DROP
        doomed: list[str] = []
        for key, value in node.items():
            action = actions.get(key, unlisted)
            if action == _LEAF_KEEP or value is None:
                continue
            if action == _LEAF_IDENTITY:
                if type(value) is str:
                    node[key], found = self._identity(value, tree.identities[key])
                    if found:
                        known += found
                elif type(value) is list:
                    node[key] = [self._collect(item, tree.identities[key], known)
                                 for item in value]
            elif action == _LEAF_SCRUB:
                if type(value) is str:
                    texts.append((node, key))
                elif type(value) is dict or type(value) is list:
                    self._raw_value(node, key, value, known, texts)
            elif action == _LEAF_OBJECT:
                if type(value) is dict:
                    self._walk(value, tree.objects[key], known, texts)
                else:
                    doomed.append(key)  # a scalar where the table expects an object
                    self.dropped += 1
            else:
                doomed.append(key)
                if key not in actions:
                    self.dropped += 1  # by default deny (a listed drop is the table's)
        for key in doomed:
            del node[key]

    def _collect(self, value: Any, rule: Treatment, known: Known) -> Any:
        if not isinstance(value, str):
            return value
        result, found = self._identity(value, rule)
        known += found
        return result

    def _raw_value(self, node: dict[str, Any] | list[Any], key: Any, value: Any, known: Known,
                   texts: list[tuple[Any, Any]]) -> None:
        """An unlisted raw Windows value: text scrubbed, numbers kept, nesting followed."""
        if isinstance(value, str):
            texts.append((node, key))
        elif isinstance(value, dict):
            for sub in list(value):
                self._raw_value(value, sub, value[sub], known, texts)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._raw_value(value, index, item, known, texts)

