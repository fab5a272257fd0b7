"""Windows events (from EVTX or JSON exports) → wire documents.

The Windows-specific reading and the Winlogbeat-shaped ``winlog.*`` normalisation are the
shared :mod:`producers.windows` (also used by the detection engine), so the agent and the
Sigma engine agree on field names. This module adds what the agent needs on top: the ECS
fields analysts filter on (``event.category``, ``user.name``, ``source.ip``,
``process.command_line``...), the deterministic ``event.id``, and string trimming.

EventData strings are trimmed of surrounding blanks: Windows pads some of them (a trailing
space after ``ParentCommandLine`` is common), the reference renderings of SigmaHQ's regression
samples are trimmed, and Sigma rules are written against the trimmed values.
"""

from __future__ import annotations

from typing import Any

from producers.agent.parse.common import Doc, int_or_none, ip_or_none, port_or_none
from producers.windows.normalize import WindowsEvent
from schemas.identity import event_id

# (channel suffix or provider, event id) → ECS category/type/action. Channel-independent ids
# (Security log) and Sysmon's own numbering.
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
    """``target[key] = value`` unless the value is empty (as :func:`.common.put`)."""
    if value is not None and value != "" and value != []:
        target[key] = value


def _one_process(data: dict[str, Any], images: tuple[str, str], command_line: str,
                 pids: tuple[str, ...]) -> dict[str, Any]:
    """ECS fields of one process, from the first present of each Windows field name."""
    get = data.get
    process: dict[str, Any] = {}
    image = get(images[0]) or get(images[1])
    if isinstance(image, str):
        _set(process, "executable", image)
        _set(process, "name", _basename(image))
    _set(process, "command_line", get(command_line))
    pid = None
    for name in pids:
        pid = pid or get(name)
    _set(process, "pid", int_or_none(pid))
    return process


def _process(data: dict[str, Any]) -> dict[str, Any]:
    """ECS ``process.*`` (and its parent) from Sysmon's or the Security log's names."""
    process = _one_process(data, ("Image", "NewProcessName"), "CommandLine",
                           ("ProcessId", "NewProcessId"))
    if "Hashes" in data:
        _set(process, "hash", _hashes(data["Hashes"]) or None)
    parent = _one_process(data, ("ParentImage", "ParentProcessName"), "ParentCommandLine",
                          ("ParentProcessId",))
    if parent:
        process["parent"] = parent
    return process


def _ecs(doc: Doc, winlog: dict[str, Any], data: dict[str, Any]) -> None:
    """The ECS fields analysts filter on, from ``winlog``. Each ECS object is built whole
    and attached only if it has a field: this runs on every Windows event the agent ships."""
    event_id = winlog["event_id"]
    sysmon = "sysmon" in winlog["channel"].lower() or "sysmon" in (
        winlog.get("provider_name") or "").lower()
    mapped = (_SYSMON if sysmon else _SECURITY).get(event_id)
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
            domain = get("TargetDomainName") or get("SubjectDomainName")
            _set(ecs_user, "domain", domain if isinstance(domain, str) else None)
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


def windows_doc(event: WindowsEvent, *, establishment_id: str, fallback_source: str,
                fallback_position: int) -> Doc:
    """The wire document of one normalised Windows event (without organization/agent).

    ``event.id`` comes from the computer, channel and ``EventRecordID``: the same Windows
    record read from an ``.evtx`` or from its JSON export gets the same id (a re-import is an
    overwrite, not a duplicate). Records without a record id fall back on the file and index.
    """
    winlog = {k: v for k, v in event["winlog"].items() if v is not None}
    data = trimmed(winlog.get("event_data"))
    winlog["event_data"] = data
    record_id = winlog.get("record_id")
    computer = winlog.get("computer_name")
    if record_id is not None:
        source = f"winlog:{computer or '-'}:{winlog['channel']}"
        eid = event_id(establishment_id, source, record_id)
    else:
        eid = event_id(establishment_id, fallback_source, fallback_position)
    ecs_event = {"id": eid, "kind": "event", "code": str(winlog["event_id"]),
                 "module": "windows", "dataset": f"windows.{winlog['channel']}"[:1024]}
    _set(ecs_event, "provider", winlog.get("provider_name"))
    doc: Doc = {"@timestamp": event.get("@timestamp"), "event": ecs_event, "winlog": winlog}
    if computer is not None and computer != "":
        doc["host"] = {"name": computer}
    _ecs(doc, winlog, data)
    return doc
