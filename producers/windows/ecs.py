"""One Windows record → the ECS wire document, for every producer that ships Windows events.

The hospital agent (records read from ``.evtx`` or JSON exports) and the simulator (records it
makes up) both turn a normalised :data:`~producers.windows.normalize.WindowsEvent` into the
wire document through :func:`ecs_document`, so that what the demo, the benchmarks and the
detection tests run on is what agents ship. Only the ``event.id`` is the caller's: the agent
derives it from the record (:mod:`producers.agent.parse.windows`), the simulator from its
seed and slot. ``organization`` and ``agent`` are added by the caller too, and so is
anything agent-specific such as pseudonymisation.

The document keeps the raw record under ``winlog.*`` (what Sigma rules read, see
:mod:`processors.detection.fieldmap`) and adds the ECS fields analysts filter on
(``event.category``, ``user.name``, ``source.ip``, ``process.command_line``...).

EventData strings are trimmed of surrounding blanks: Windows pads some of them (a trailing
space after ``ParentCommandLine`` is common), the reference renderings of SigmaHQ's regression
samples are trimmed, and Sigma rules are written against the trimmed values.
"""

from __future__ import annotations

from typing import Any

from producers.ecs_values import int_or_none, ip_or_none, port_or_none
from producers.windows.normalize import WindowsEvent

Doc = dict[str, Any]

SECURITY_CHANNEL = "Security"
SECURITY_PROVIDER = "Microsoft-Windows-Security-Auditing"
SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
SYSMON_PROVIDER = "Microsoft-Windows-Sysmon"

# Event id → ECS category/type/action: the Security log's ids (and the System log's 7045),
# and Sysmon's own numbering, told apart by channel or provider.
_SECURITY: dict[int, tuple[str, str, str]] = {
    4624: ("authentication", "start", "logged-in"),
    4625: ("authentication", "start", "logon-failed"),
    4634: ("authentication", "end", "logged-out"),
    4648: ("authentication", "start", "logged-in-explicit"),
    4672: ("iam", "admin", "logged-in-special"),
    4688: ("process", "start", "created-process"),
    4689: ("process", "end", "exited-process"),
    4697: ("configuration", "creation", "service-installed"),
    4698: ("configuration", "creation", "scheduled-task-created"),
    4720: ("iam", "creation", "added-user-account"),
    4726: ("iam", "deletion", "deleted-user-account"),
    4728: ("iam", "change", "added-member-to-group"),
    4732: ("iam", "change", "added-member-to-group"),
    4740: ("iam", "change", "locked-out-user-account"),
    4768: ("authentication", "start", "kerberos-authentication-ticket-requested"),
    4769: ("authentication", "start", "kerberos-service-ticket-requested"),
    4771: ("authentication", "start", "kerberos-preauth-failed"),
    4776: ("authentication", "start", "credential-validated"),
    1102: ("configuration", "deletion", "audit-log-cleared"),
    7045: ("configuration", "creation", "service-installed"),
}
_SYSMON: dict[int, tuple[str, str, str]] = {
    1: ("process", "start", "process-created"),
    3: ("network", "connection", "network-connection"),
    5: ("process", "end", "process-terminated"),
    6: ("driver", "start", "driver-loaded"),
    7: ("library", "start", "image-loaded"),
    8: ("process", "change", "create-remote-thread"),
    10: ("process", "access", "process-access"),
    11: ("file", "creation", "file-created"),
    12: ("registry", "change", "registry-object-added-or-deleted"),
    13: ("registry", "change", "registry-value-set"),
    14: ("registry", "change", "registry-object-renamed"),
    15: ("file", "creation", "file-stream-created"),
    22: ("network", "info", "dns-query"),
    23: ("file", "deletion", "file-delete-archived"),
    25: ("process", "change", "process-tampering"),
    26: ("file", "deletion", "file-delete-detected"),
}
_FAILURE_IDS = {4625, 4771}


def trimmed(data: dict[str, Any] | None) -> dict[str, Any]:
    """EventData with its strings stripped of surrounding blanks (see the module's doc)."""
    if not data:
        return {}
    return {k: (v.strip() if type(v) is str or isinstance(v, str) else v)
            for k, v in data.items()}


def _hashes(text: Any) -> dict[str, str]:
    """Sysmon's ``SHA1=...,MD5=...,SHA256=...`` → ECS ``hash.*``."""
    out: dict[str, str] = {}
    if not isinstance(text, str):
        return out
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name in ("md5", "sha1", "sha256") and value.strip():
            out[name] = value.strip().lower()
    return out


def _basename(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    return path.replace("/", "\\").rsplit("\\", 1)[-1] or None


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    """``target[key] = value`` unless the value is empty (None, "" or [])."""
    if value is not None and value != "" and value != []:
        target[key] = value


def _one_process(image: Any, command_line: Any, pid: Any) -> dict[str, Any]:
    """ECS fields of one process from its Windows values: written
    out rather than looped over field names and ``_set`` calls, since it runs twice for
    every Windows event an agent ships. Keys in ECS order: the wire bytes depend on it."""
    process: dict[str, Any] = {}
    if isinstance(image, str) and image:
        process["executable"] = image
        name = _basename(image)
        if name is not None:
            process["name"] = name
    if command_line is not None and command_line != "" and command_line != []:
        process["command_line"] = command_line
    if pid is not None:
        number = int_or_none(pid)
        if number is not None:
            process["pid"] = number
    return process


def _process(data: dict[str, Any]) -> dict[str, Any]:
    """ECS ``process.*`` (and its parent) from Sysmon's or the Security log's names (the
    first present of each)."""
    get = data.get
    process = _one_process(get("Image") or get("NewProcessName"), get("CommandLine"),
                           get("ProcessId") or get("NewProcessId"))
    if "Hashes" in data:
        _set(process, "hash", _hashes(data["Hashes"]) or None)
    parent = _one_process(get("ParentImage") or get("ParentProcessName"),
                          get("ParentCommandLine"), get("ParentProcessId"))
    if parent:
        process["parent"] = parent
    return process


def _is_sysmon(winlog: dict[str, Any]) -> bool:
    """Sysmon numbers its events from 1: its ids mean something else in any other log."""
    return "sysmon" in winlog["channel"].lower() or "sysmon" in (
        winlog.get("provider_name") or "").lower()


def _ecs(doc: Doc, winlog: dict[str, Any], data: dict[str, Any]) -> None:
    """The ECS fields analysts filter on, from ``winlog``. Each ECS object is built whole
    and attached only if it has a field: this runs on every Windows event an agent ships."""
    event_id = winlog["event_id"]
    mapped = (_SYSMON if _is_sysmon(winlog) else _SECURITY).get(event_id)
    if mapped:
        category, kind, action = mapped
        event = doc["event"]
        event["category"] = [category]
        event["type"] = [kind]
        event["action"] = action
        if category == "authentication":
            event["outcome"] = "failure" if event_id in _FAILURE_IDS else "success"
    get = data.get
    user = get("TargetUserName") or get("User") or get("SubjectUserName")
    if isinstance(user, str) and user:
        ecs_user: dict[str, Any] = {}
        if "\\" in user:
            domain, _, user = user.partition("\\")
            _set(ecs_user, "domain", domain)
        _set(ecs_user, "name", user)
        if ecs_user and "domain" not in ecs_user:
            named = get("TargetDomainName") or get("SubjectDomainName")
            _set(ecs_user, "domain", named if isinstance(named, str) else None)
        if ecs_user:
            doc["user"] = ecs_user
    source: dict[str, Any] = {}
    _set(source, "ip", ip_or_none(get("IpAddress") or get("SourceIp")))
    _set(source, "port", port_or_none(get("IpPort") or get("SourcePort")))
    if source:
        doc["source"] = source
    destination: dict[str, Any] = {}
    _set(destination, "ip", ip_or_none(get("DestinationIp")))
    _set(destination, "port", port_or_none(get("DestinationPort")))
    _set(destination, "domain", get("DestinationHostname") or get("QueryName"))
    if destination:
        doc["destination"] = destination
    process = _process(data)
    if process:
        doc["process"] = process
    target = get("TargetFilename") or get("ImageLoaded")
    if isinstance(target, str) and target:
        doc["file"] = {"path": target}
        _set(doc["file"], "name", _basename(target))


def ecs_document(event: WindowsEvent, *, event_id: str) -> Doc:
    """The wire document of one normalised Windows event, ``event.id`` being ``event_id``
    (without ``organization`` and ``agent``, which the shipper adds).

    ``winlog`` is copied without its empty (None) keys and with its EventData trimmed; the
    ECS fields are derived from it alone, so the same record gives the same document
    whichever file shape or program it came from.
    """
    winlog = {k: v for k, v in event["winlog"].items() if v is not None}
    data = trimmed(winlog.get("event_data"))
    winlog["event_data"] = data
    ecs_event = {"id": event_id, "kind": "event", "code": str(winlog["event_id"]),
                 "module": "windows", "dataset": f"windows.{winlog['channel']}"[:1024]}
    _set(ecs_event, "provider", winlog.get("provider_name"))
    doc: Doc = {"@timestamp": event.get("@timestamp"), "event": ecs_event, "winlog": winlog}
    computer = winlog.get("computer_name")
    if computer is not None and computer != "":
        doc["host"] = {"name": computer}
    _ecs(doc, winlog, data)
    return doc
