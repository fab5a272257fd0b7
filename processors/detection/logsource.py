"""Which Windows events a rule's ``logsource`` covers: (channel, EventID) routes.

A Sigma ``category`` is a kind of fact (``process_creation``), not a log; here it becomes the
Windows events that record it (Sysmon EventID 1, Security 4688). A ``service`` is a log:
its channel (pySigma's own ``windows_logsource_mapping``), every EventID — the engine narrows
that with the EventIDs the rule's detection requires. A rule whose log source no Windows
event carries (Linux, proxy, cloud, ETW-only categories) is not routable: the engine skips it
with the reason from ``event_slots``, rather than evaluating it on events it was not written for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sigma.pipelines.common import windows_logsource_mapping
from sigma.rule import SigmaLogSource

from runtime.errors import DataError

SYSMON = "Microsoft-Windows-Sysmon/Operational"
SECURITY = "Security"
POWERSHELL = ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")
POWERSHELL_CLASSIC = "Windows PowerShell"

#: Sigma category → the (channel, EventID) pairs that record it.
CATEGORY_EVENTS: dict[str, tuple[tuple[str, int], ...]] = {
    "process_creation": ((SYSMON, 1), (SECURITY, 4688)),
    "file_change": ((SYSMON, 2),),
    "network_connection": ((SYSMON, 3),),
    "sysmon_status": ((SYSMON, 4), (SYSMON, 16)),
    "process_termination": ((SYSMON, 5),),
    "driver_load": ((SYSMON, 6),),
    "image_load": ((SYSMON, 7),),
    "create_remote_thread": ((SYSMON, 8),),
    "raw_access_thread": ((SYSMON, 9),),
    "process_access": ((SYSMON, 10),),
    "file_event": ((SYSMON, 11),),
    "registry_add": ((SYSMON, 12),),
    "registry_delete": ((SYSMON, 12),),
    "registry_set": ((SYSMON, 13),),
    "registry_rename": ((SYSMON, 14),),
    "registry_event": ((SYSMON, 12), (SYSMON, 13), (SYSMON, 14)),
    "create_stream_hash": ((SYSMON, 15),),
    "pipe_created": ((SYSMON, 17), (SYSMON, 18)),
    "wmi_event": ((SYSMON, 19), (SYSMON, 20), (SYSMON, 21)),
    "dns_query": ((SYSMON, 22),),
    "file_delete": ((SYSMON, 23), (SYSMON, 26)),
    "clipboard_capture": ((SYSMON, 24),),
    "process_tampering": ((SYSMON, 25),),
    "file_block_executable": ((SYSMON, 27),),
    "file_block_shredding": ((SYSMON, 28),),
    "file_executable_detected": ((SYSMON, 29),),
    "sysmon_error": ((SYSMON, 255),),
    "ps_module": tuple((channel, 4103) for channel in POWERSHELL),
    "ps_script": tuple((channel, 4104) for channel in POWERSHELL),
    "ps_classic_start": ((POWERSHELL_CLASSIC, 400),),
    "ps_classic_provider_start": ((POWERSHELL_CLASSIC, 600),),
    "ps_classic_script": ((POWERSHELL_CLASSIC, 800),),
}

#: Windows services the pySigma mapping lacks (SigmaHQ uses them).
EXTRA_SERVICES: dict[str, str | list[str]] = {
    "smbclient-connectivity": "Microsoft-Windows-SmbClient/Connectivity",
    "smbserver-connectivity": "Microsoft-Windows-SMBServer/Connectivity",
}

#: Categories Windows records only through ETW providers no event log exposes.
ETW_ONLY = frozenset({"file_access", "file_rename"})

ANY_EVENT_ID = None


@dataclass(frozen=True, slots=True)
class EventSlot:
    """Lower-cased channel and EventID (``None``: any EventID of that channel);
    channel ``None`` means any Windows channel (``product: windows`` alone)."""

    channel: str | None
    event_id: int | None


class UnsupportedLogSource(DataError, ValueError):
    """The log source is not produced by any Windows event source."""


def service_channels(service: str) -> list[str]:
    channels = windows_logsource_mapping.get(service) or EXTRA_SERVICES.get(service)
    if channels is None:
        return []
    return [channels] if isinstance(channels, str) else list(channels)


def event_slots(logsource: SigmaLogSource) -> frozenset[EventSlot]:
    """The Windows events a rule applies to; ``UnsupportedLogSource`` with the reason otherwise."""
    product, category, service = logsource.product, logsource.category, logsource.service
    described = ", ".join(
        f"{key}={value}"
        for key, value in (("product", product), ("category", category), ("service", service))
        if value
    )
    if product not in (None, "windows"):
        raise UnsupportedLogSource(f"not a Windows log source ({described})")
    routes: set[EventSlot] = set()
    if category is not None:
        if category in ETW_ONLY:
            raise UnsupportedLogSource(f"Windows records {category} only through ETW ({described})")
        events = CATEGORY_EVENTS.get(category)
        if events is None:
            raise UnsupportedLogSource(f"no Windows event records this category ({described})")
        routes = {EventSlot(channel.lower(), event_id) for channel, event_id in events}
    if service is not None:
        channels = service_channels(service)
        if not channels:
            raise UnsupportedLogSource(f"unknown Windows service ({described})")
        lowered = {channel.lower() for channel in channels}
        if routes:  # both given: the category's events that are in the service's channel
            routes = {r for r in routes if r.channel in lowered}
            if not routes:
                raise UnsupportedLogSource(f"category and service do not meet ({described})")
        else:
            routes = {EventSlot(channel, ANY_EVENT_ID) for channel in lowered}
    if not routes:
        if product == "windows":
            return frozenset({EventSlot(None, ANY_EVENT_ID)})
        raise UnsupportedLogSource(
            f"log source names no product, category or service ({described})")
    return frozenset(routes)


def event_key(event: Mapping[str, Any]) -> tuple[str, int] | None:
    """(lower-cased channel, EventID) of a normalised event, ``None`` if it has neither."""
    winlog = event.get("winlog")
    if not isinstance(winlog, Mapping):
        return None
    channel, event_id = winlog.get("channel"), winlog.get("event_id")
    if not isinstance(channel, str):
        return None
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        try:
            event_id = int(str(event_id))
        except ValueError:
            return None
    return channel.lower(), event_id
