"""Linux ``auth.log`` semantics: sshd logins and sudo, as ECS authentication/process events.

The line itself is syslog (see :mod:`producers.agent.parse.syslog`); this module recognises
the sshd and sudo messages that matter for intrusion detection (password guessing, logins,
privilege use) and fills ``event.category/outcome``, ``user.name``, ``source.ip``... Other
lines are still shipped, as plain syslog events, so nothing is silently ignored.

Linear time whatever the line (issue 13: the former ``pam_unix`` pattern, three lazy ``.*?``
around optional groups, took 8.8 s on a 479-byte line, and the sudo pattern was quadratic).
The rules that keep it linear, with Python's own ``re`` (no RE2: the agent stays free of
native dependencies beyond the EVTX reader, and RE2 has no look-behind, which CEF needs):

- patterns are anchored (``match``: one start position), never ``search``ed;
- every variable part is possessive (``\\S++``, ``\\d++``) and followed by a literal that it
  cannot match: the engine never gives characters back, so there is nothing to backtrack;
- what has key=value structure (sudo, pam_unix) is split by hand, not matched.

``tests/unit/agent/test_hostile_growth.py`` holds every parser to it.
"""

from __future__ import annotations

import re

from producers.agent.parse.common import Doc, put
from producers.ecs_values import ip_or_none, port_or_none

_SSHD = [
    (re.compile(r"Failed (?P<method>\S++) for (?:invalid user )?+(?P<user>\S*+) from "
                r"(?P<ip>\S++) port (?P<port>\d++)"), "failure", "ssh_login"),
    (re.compile(r"Accepted (?P<method>\S++) for (?P<user>\S++) from (?P<ip>\S++) "
                r"port (?P<port>\d++)"), "success", "ssh_login"),
    (re.compile(r"Invalid user (?P<user>\S*+) from (?P<ip>\S++)(?: port (?P<port>\d++))?+"),
     "failure", "ssh_login"),
    (re.compile(r"(?:error: )?+maximum authentication attempts exceeded for "
                r"(?:invalid user )?+(?P<user>\S++) from (?P<ip>\S++) port (?P<port>\d++)"),
     "failure", "ssh_login"),
]
_PAM_FAIL = re.compile(r"pam_unix\((?P<svc>[^:)]++):auth\): authentication failure;")
_SUDO_FAILED = re.compile(r"\d++ incorrect password attempts?+")
_SUDO_KEY = re.compile(r"[A-Z]++")


def _word(text: str) -> bool:
    """Non-empty and without white space (what ``\\S+`` matched)."""
    return bool(text) and not any(c.isspace() for c in text)


def sudo_fields(message: str) -> tuple[str, str, str, bool] | None:
    """(user, target user, command, failed) of a sudo log line, or None.

    ``user : [N incorrect password attempts ; ][TTY=tty ; ]PWD=dir ; USER=target ;
    [KEY=value ; ]*COMMAND=command`` split on its separators (each ``find`` is one linear
    scan), read as the former pattern read it: PWD runs to the first `` ; USER=``, the
    command is everything after the ``COMMAND=`` that follows the KEY=value pairs."""
    user, sep, rest = message.lstrip().partition(" : ")
    if not sep or not _word(user):
        return None
    failed = False
    head, sep, tail = rest.partition(" ; ")
    if sep and _SUDO_FAILED.fullmatch(head):
        failed, rest = True, tail
    if rest.startswith("TTY="):
        tty, sep, tail = rest.partition(" ; ")
        if not sep or not _word(tty[4:]):
            return None
        rest = tail
    if not rest.startswith("PWD="):
        return None
    at = rest.find(" ; USER=")
    if at < 0:
        return None
    start = at + 8
    end = rest.find(" ; ", start)
    target = rest[start:end]
    if end < 0 or not _word(target):
        return None
    # ENV=..., CHROOT=...: "KEY=value ; " pairs, walked by index (slicing the rest at each
    # pair would copy it each time: quadratic)
    start = end + 3
    while not rest.startswith("COMMAND=", start):
        end = rest.find(" ; ", start)
        key, eq, value = rest[start:end].partition("=")
        if end < 0 or not eq or not _SUDO_KEY.fullmatch(key) or not _word(value):
            return None
        start = end + 3
    return user, target, rest[start + 8:], failed


def pam_failure_fields(message: str) -> tuple[str, str | None, str | None] | None:
    """(service, user, rhost) of ``pam_unix(svc:auth): authentication failure; k=v ...``:
    the key=value pairs after the ``;`` split on white space, not matched."""
    match = _PAM_FAIL.match(message)
    if not match:
        return None
    fields: dict[str, str] = {}
    for token in message[match.end():].split():
        key, eq, value = token.partition("=")
        if eq and key in ("ruser", "rhost", "user"):
            fields.setdefault(key, value)
    return match["svc"], fields.get("user") or None, fields.get("rhost") or None


def enrich(doc: Doc, app: str | None, message: str) -> Doc:
    """Add ECS semantics to ``doc`` when ``message`` is an sshd/sudo line we know."""
    if app == "sshd":
        for pattern, outcome, action in _SSHD:
            match = pattern.match(message)
            if match:
                doc["event"].update(category=["authentication"], type=["start"],
                                    outcome=outcome, action=action)
                put(doc, "user.name", match["user"] or None)
                put(doc, "source.ip", ip_or_none(match["ip"]))
                put(doc, "source.port", port_or_none(match.groupdict().get("port")))
                return doc
    elif app == "sudo":
        sudo = sudo_fields(message)
        if sudo:
            user, target, command, failed = sudo
            doc["event"].update(
                category=["authentication"] if failed else ["process"],
                type=["start"], action="sudo",
                outcome="failure" if failed else "success")
            put(doc, "user.name", user)
            put(doc, "destination.user.name", target)
            put(doc, "process.command_line", command)
            return doc
    pam = pam_failure_fields(message)
    if pam:
        service, pam_user, rhost = pam
        doc["event"].update(category=["authentication"], type=["start"], outcome="failure",
                            action=f"{service}-auth-failure")
        put(doc, "user.name", pam_user)
        put(doc, "source.ip", ip_or_none(rhost or ""))
    return doc
