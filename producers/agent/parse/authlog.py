"""Linux ``auth.log`` semantics: sshd logins and sudo, as ECS authentication/process events.

The line itself is syslog (see :mod:`producers.agent.parse.syslog`); this module recognises
the sshd and sudo messages that matter for intrusion detection (password guessing, logins,
privilege use) and fills ``event.category/outcome``, ``user.name``, ``source.ip``... Other
lines are still shipped, as plain syslog events, so nothing is silently ignored.
"""

from __future__ import annotations

import re

from producers.agent.parse.common import Doc, put
from producers.ecs_values import ip_or_none, port_or_none

_SSHD = [
    (re.compile(r"^Failed (?P<method>\S+) for (?:invalid user )?(?P<user>\S*) from "
                r"(?P<ip>\S+) port (?P<port>\d+)"), "failure", "ssh_login"),
    (re.compile(r"^Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<ip>\S+) "
                r"port (?P<port>\d+)"), "success", "ssh_login"),
    (re.compile(r"^Invalid user (?P<user>\S*) from (?P<ip>\S+)(?: port (?P<port>\d+))?"),
     "failure", "ssh_login"),
    (re.compile(r"^(?:error: )?maximum authentication attempts exceeded for (?:invalid user )?"
                r"(?P<user>\S+) from (?P<ip>\S+) port (?P<port>\d+)"), "failure", "ssh_login"),
]
_SUDO_CMD = re.compile(r"^\s*(?P<user>\S+) : (?:(?P<failed>\d+ incorrect password attempts?) ; )?"
                       r"(?:TTY=\S+ ; )?PWD=(?P<pwd>.*?) ; USER=(?P<target>\S+) ; "
                       r"(?:[A-Z]+=\S+ ; )*COMMAND=(?P<command>.*)$")
_PAM_FAIL = re.compile(r"^pam_unix\((?P<svc>[^:)]+):auth\): authentication failure;.*?"
                       r"(?:ruser=(?P<ruser>\S*))?.*?(?:rhost=(?P<rhost>\S*))?\s*"
                       r"(?:user=(?P<user>\S+))?\s*$")


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
        match = _SUDO_CMD.match(message)
        if match:
            failed = match["failed"] is not None
            doc["event"].update(
                category=["authentication"] if failed else ["process"],
                type=["start"], action="sudo",
                outcome="failure" if failed else "success")
            put(doc, "user.name", match["user"])
            put(doc, "destination.user.name", match["target"])
            put(doc, "process.command_line", match["command"])
            return doc
    match = _PAM_FAIL.match(message)
    if match:
        doc["event"].update(category=["authentication"], type=["start"], outcome="failure",
                            action=f"{match['svc']}-auth-failure")
        put(doc, "user.name", match["user"])
        put(doc, "source.ip", ip_or_none(match["rhost"] or ""))
    return doc
