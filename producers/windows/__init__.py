"""Windows event sources → the flat, Winlogbeat-shaped event the detection engine evaluates.

``read_events(path)`` picks the reader by file type; each reader yields
``(record_index, WindowsEvent)`` so that a detection can always point back at the record.
:mod:`producers.windows.ecs` maps a ``WindowsEvent`` to its wire document; the agent and the
simulator both ship through it, so simulated Windows events are what agents ship.
"""

from producers.windows.normalize import WindowsEvent, from_winlogbeat, from_xml_json
from producers.windows.readers import (
    read_events,
    read_evtx,
    read_json,
    read_jsonl,
)

__all__ = [
    "WindowsEvent",
    "from_winlogbeat",
    "from_xml_json",
    "read_events",
    "read_evtx",
    "read_json",
    "read_jsonl",
]
