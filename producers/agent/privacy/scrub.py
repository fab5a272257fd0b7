"""Free text: the identities inside a message, a command line, a path or a URL, replaced.

Two kinds of identity are found in text:

1. **the record's own** user, host, domain and address values (collected from its structured
   fields first): ``Failed password for jdupont from 10.1.2.3`` names the very account and
   address that ``user.name`` and ``source.ip`` carry; each occurrence, whatever its case,
   gets the same pseudonym as the field;
2. **structured patterns** that name someone whatever the record: home folders
   (``C:\\Users\\<x>``, ``/home/<x>``), URL parameters that name a patient (``nom=``,
   ``prenom=``, ``patient=``, ``ipp=``...), ``key=value`` accounts in Unix logs (``user=``,
   ``ruser=``, ``rhost=``), domain accounts' SIDs (``HKU\\S-1-5-21-…-1104``), e-mail
   addresses, LDAP ``CN=`` names, internal IPv4 addresses, the server of a share
   (``\\\\server\\``), ``NAME_Firstname`` tokens (how hospital software names patient
   documents), and every file or folder name under a configured patient-document root.

What is left is technical text (program paths, switches, registry keys), which is what Sigma
rules match on: ``C:\\Users\\jdupont\\AppData\\Local\\Temp\\x.exe`` becomes
``C:\\Users\\ps-…\\AppData\\Local\\Temp\\x.exe`` and still matches ``\\AppData\\Local\\Temp\\``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import unquote_plus

from producers.agent.privacy.names import WELL_KNOWN_ACCOUNTS, WELL_KNOWN_PROFILES

#: URL / form parameters whose value names a person (French hospital software and generic).
DEFAULT_PATIENT_PARAMS = (
    "nom", "prenom", "prénom", "nom_naissance", "nomnaissance", "nom_usage", "patient",
    "patient_name", "patientname", "ipp", "nip", "nir", "ins", "insee", "ddn",
    "date_naissance", "datenaissance", "birthdate", "name", "firstname", "first_name",
    "lastname", "last_name", "surname", "user", "username", "login", "email", "mail",
)

#: ``key=value`` pairs of Unix logs (pam_unix, sshd, sudo) that name an account or a host.
_KV_ACCOUNTS = ("user", "ruser", "logname", "login", "acct", "account", "suser", "duser")
_KV_HOSTS = ("rhost", "host", "hostname", "shost", "dhost")

#: Words that look like ``NAME Firstname`` in log messages but are not names.
_NOT_NAMES = frozenset({
    "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTICE", "CRIT", "ALERT", "EMERG", "FATAL",
    "GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS", "HTTP", "HTTPS", "TCP", "UDP",
    "ICMP", "SSH", "SSL", "TLS", "DNS", "CEF", "SMB", "RDP", "LDAP", "VPN", "URL", "URI", "ID",
    "IP", "OK", "KO", "NT", "PAM", "AD", "CN", "OU", "DC", "IEX", "AV", "EDR", "IDS", "IPS",
})

Pseudonym = Callable[[str], str]


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def _root_pattern(root: str) -> str:
    """A folder as a pattern matching it with either separator (shares and exports write
    both): ``\\\\srv\\patients`` also matches ``//srv/patients`` and ``\\srv\\patients``."""
    leading = len(root) - len(root.lstrip("\\/"))
    parts = [re.escape(part) for part in re.split(r"[\\/]+", root.strip("\\/"))]
    # A share's leading ``\\\\`` is often halved by one escaping too many on the way (CEF).
    start = f"[\\\\/]{{1,{leading}}}" if leading else ""
    return start + "[\\\\/]".join(parts)


def _constant(value: str) -> Callable[[re.Match[str]], str]:
    """A ``re.sub`` replacement that inserts ``value`` literally (it may hold a ``\\``)."""
    return lambda _match: value


class Scrubber:
    """Replaces identities inside text; pseudonyms come from the callables it is given, so
    that the same account gets the same pseudonym in a field and in a message."""

    def __init__(self, *, user: Pseudonym, host: Pseudonym, ip: Pseudonym, dns: Pseudonym,
                 opaque: Pseudonym, sid: Pseudonym, patient_roots: Sequence[str] = (),
                 patient_params: Sequence[str] = DEFAULT_PATIENT_PARAMS) -> None:
        self._user, self._host, self._ip, self._dns, self._opaque = user, host, ip, dns, opaque
        self._sid = sid
        roots = [r.rstrip("/\\") for r in patient_roots if r.strip("/\\")]
        self._share_servers = {re.split(r"[\\/]", r.lstrip("\\/"))[0].lower()
                               for r in roots if r[:2] in ("\\\\", "//")}
        # Each pattern with the cheap test that tells whether it can match at all: a text
        # is searched only with the patterns it may contain (one regex per combination,
        # compiled once), which keeps the cost per event close to nothing for the many
        # values with no identity inside.
        branches: dict[str, tuple[str, Callable[[str], bool]]] = {}
        if roots:
            # A root matches with either separator: exports and shares write both.
            spelled = {_root_pattern(r) for r in roots}
            leaves = tuple({re.split(r"[\\/]+", r.strip("\\/"))[-1].lower() for r in roots})
            branches["root"] = (r"(?P<root>(?:" + "|".join(sorted(spelled)) + r")[\\/])"
                                r"(?P<rest>[^\s\"'|;,<>]+)",
                                lambda low: any(leaf in low for leaf in leaves))
        branches.update({
            "unc": (r"(?P<unc>\\\\|//)(?P<server>[A-Za-z0-9][A-Za-z0-9.-]*)(?=[\\/])",
                    lambda low: "\\\\" in low or "//" in low),
            # A home folder at the root of a drive, a volume or a file system: not
            # ``...\Account\Users\Names\`` in the registry, which Sigma rules read as is.
            "home": (r"(?P<home>(?:(?<![^\s\"'=:;,(])|(?<=[A-Za-z]:)|(?<=[%$])"
                     r"|(?<=HarddiskVolume\d)|(?<=HarddiskVolume\d\d))"
                     r"[\\/](?:users|documents and settings|home)[\\/])"
                     r"(?P<homeuser>[^\\/\s\"'`:;,|<>*?]+)",
                     lambda low: "users" in low or "home" in low or "documents and" in low),
            "sid": (r"(?<![\w-])(?P<sid>S-1-5-21-\d+-\d+-\d+-\d+)(?![\w-])",
                    lambda low: "s-1-5-21-" in low),
            "param": (r"(?P<param>[?&;](?:" + _alternation(patient_params) + r")=)"
                      r"(?P<pvalue>[^&#\s\"']*)", lambda low: "=" in low),
            "kv": (r"(?P<kv>(?<![\w?&;])(?:" + _alternation(_KV_ACCOUNTS + _KV_HOSTS) + r")=)"
                   r"(?P<kvvalue>[^\s;,&\"']+)", lambda low: "=" in low),
            "email": (r"(?<![A-Za-z0-9._%+-])(?P<email>[A-Za-z0-9._%+-]+)"
                      r"@(?P<edomain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)", lambda low: "@" in low),
            "cn": (r"(?P<cn>CN=)(?P<cnvalue>[^,\\/\"]+)", lambda low: "cn=" in low),
            "ipv4": (r"(?<![\d.])(?P<ipv4>(?:\d{1,3}\.){3}\d{1,3})(?![\d.])",
                     lambda low: low.count(".") >= 3),
            # Case matters for names: ``MARTIN_Jeanne`` is a name, ``martin_jeanne`` a file.
            "nf": (r"(?-i:(?<![\wÀ-ÿ])(?P<nf>[A-ZÀ-Ý][A-ZÀ-Ý'-]*[A-ZÀ-Ý]_[A-ZÀ-Ý][a-zà-ÿ]+"
                   r"(?:-[A-ZÀ-Ý][a-zà-ÿ]+)?)(?![a-zà-ÿ])(?P<nfrest>(?:[_-][A-Za-z0-9]+)*))",
                   lambda low: "_" in low),
        })
        self._branches = [(name, f"(?P<b_{name}>{pattern})", test)
                          for name, (pattern, test) in branches.items()]
        self._compiled: dict[tuple[str, ...], re.Pattern[str]] = {}
        # text → (text with the patterns replaced, the same lower-cased)
        self._done: dict[str, tuple[str, str]] = {}
        # Case matters for names: ``MARTIN_Jeanne`` is a name, ``martin_jeanne`` a file; so
        # the NAME_Firstname branch is checked by case in the callback.
        self._spaced_name = re.compile(
            r"(?<![\wÀ-ÿ])(?P<last>[A-ZÀ-Ý][A-ZÀ-Ý'-]*[A-ZÀ-Ý]) (?P<first>[A-ZÀ-Ý][a-zà-ÿ]+"
            r"(?:-[A-ZÀ-Ý][a-zà-ÿ]+)?)(?![\wÀ-ÿ-])")
        self._record_patterns: dict[str, re.Pattern[str]] = {}

    # --- identities of the record ----------------------------------------------------------
    def _identity_pattern(self, clear: str) -> re.Pattern[str]:
        pattern = self._record_patterns.get(clear)
        if pattern is None:
            if len(self._record_patterns) > 50_000:
                self._record_patterns.clear()
            pattern = self._record_patterns[clear] = re.compile(
                r"(?<![0-9A-Za-z_])" + re.escape(clear) + r"(?![0-9A-Za-z_])", re.IGNORECASE)
        return pattern

    def scrub(self, text: str, known: Sequence[tuple[str, str]] = (), *,
              prose: bool = False) -> str:
        """``text`` with the structured patterns and the record's ``known`` (clear,
        pseudonym) pairs replaced (``clear`` lower-cased, longest first). ``prose``: a
        message written for people, where ``MARTIN Jeanne`` (capitals then a capitalised
        word) is taken for a name too."""
        # The patterns first: their result depends on the text alone, and the same values
        # (program paths, parent command lines) come back in event after event.
        done = self._done.get(text)
        if done is None:
            replaced = self._patterns(text)
            done = (replaced, replaced.lower())
            if len(text) <= 1024:
                if len(self._done) >= 50_000:  # bounded: a flood of distinct values
                    self._done.clear()
                self._done[text] = done
        text, lowered = done
        if known:
            for clear, pseudonym in known:
                if clear in lowered:
                    text = self._identity_pattern(clear).sub(_constant(pseudonym), text)
                    lowered = text.lower()
        if prose:
            text = self._spaced_name.sub(self._replace_spaced, text)
        return text

    # --- structured patterns --------------------------------------------------------------
    def _patterns(self, text: str) -> str:
        lowered = text.lower()
        needed = tuple(name for name, _pattern, test in self._branches if test(lowered))
        if not needed:
            return text
        pattern = self._compiled.get(needed)
        if pattern is None:
            pattern = self._compiled[needed] = re.compile("|".join(
                p for name, p, _test in self._branches if name in needed), re.IGNORECASE)
        return pattern.sub(self._replace, text)

    def _replace(self, m: re.Match[str]) -> str:
        group = m.group
        branch = m.lastgroup
        if branch == "b_unc":
            return group("unc") + self._dns(group("server"))
        if branch == "b_home":
            name = group("homeuser")
            if name.lower() in WELL_KNOWN_PROFILES or name.startswith("ps-"):
                return m[0]
            return group("home") + self._user(name)
        if branch == "b_sid":
            return self._sid(group("sid"))
        if branch == "b_param":
            value = unquote_plus(group("pvalue"))
            if not value or value.startswith("ps-"):
                return m[0]
            return group("param") + self._user(value)
        if branch == "b_kv":
            value = group("kvvalue")
            key = group("kv")[:-1].lower()
            if value.startswith("ps-") or value.lower() in WELL_KNOWN_ACCOUNTS:
                return m[0]
            return group("kv") + (self._dns(value) if key in _KV_HOSTS else self._user(value))
        if branch == "b_email":
            if group("email").startswith("ps-"):
                return m[0]
            return self._user(group("email")) + "@" + self._dns(group("edomain"))
        if branch == "b_cn":
            value = group("cnvalue")
            if value.lower() in WELL_KNOWN_ACCOUNTS or value.startswith("ps-"):
                return m[0]
            return group("cn") + self._user(value)
        if branch == "b_ipv4":
            return self._ip(group("ipv4"))
        if branch == "b_nf":
            token, rest = group("nf"), group("nfrest")
            last, _, first = token.partition("_")
            if not (last.isupper() and first[:1].isupper()) or last in _NOT_NAMES:
                return m[0]
            # What follows the name in a document's name (an IPP, a birth date) goes too.
            return self._user(f"{last} {first}") + (rest[:1] + self._opaque(rest[1:])
                                                     if rest else "")
        if branch == "b_root":
            root = group("root")
            body = root.lstrip("\\/")
            server, separator, share = re.split(r"([\\/])", body, maxsplit=1)
            if server.lower() in self._share_servers:  # a share's server: a host
                root = root[:len(root) - len(body)] + self._dns(server) + separator + share
            return root + self._patient_path(group("rest"))
        return m[0]

    def _replace_spaced(self, m: re.Match[str]) -> str:
        if m["last"] in _NOT_NAMES:
            return m[0]
        return self._user(f"{m['last']} {m['first']}")

    def _patient_path(self, rest: str) -> str:
        """Every folder and file name under a patient-document root (extensions kept)."""
        out = []
        for part in re.split(r"([\\/])", rest):
            if part in ("/", "\\", "") or part.startswith("ps-"):
                out.append(part)
                continue
            stem, dot, extension = part.rpartition(".")
            if dot and stem and extension.isalnum() and len(extension) <= 5:
                out.append(self._opaque(stem) + "." + extension)
            else:
                out.append(self._opaque(part))
        return "".join(out)
