"""Windows events (from EVTX or JSON exports) → wire documents, with the agent's event ids.

Reading and normalising the records (:mod:`producers.windows.normalize`) and mapping them to
ECS (:mod:`producers.windows.ecs`) are shared: the detection engine reads the same
``winlog.*`` fields, and the simulator maps its made-up records through the same mapping, so
what it feeds the demo and the benchmarks is what agents ship. What is the agent's own is the
deterministic ``event.id`` of a record read from a file; pseudonymisation, organization and
agent identity are added later, by :class:`producers.agent.pipeline.Finisher`.
"""

from __future__ import annotations

from producers.agent.parse.common import Doc
from producers.windows.ecs import ecs_document
from producers.windows.normalize import WindowsEvent
from schemas.identity import event_id


def windows_doc(event: WindowsEvent, *, establishment_id: str, fallback_source: str,
                fallback_position: int) -> Doc:
    """The wire document of one normalised Windows event (without organization/agent).

    ``event.id`` comes from the computer, channel and ``EventRecordID``: the same Windows
    record read from an ``.evtx`` or from its JSON export gets the same id (a re-import is an
    overwrite, not a duplicate). Records without a record id fall back on the file and index.
    """
    winlog = event["winlog"]
    record_id = winlog.get("record_id")
    if record_id is not None:
        source = f"winlog:{winlog.get('computer_name') or '-'}:{winlog['channel']}"
        eid = event_id(establishment_id, source, record_id)
    else:
        eid = event_id(establishment_id, fallback_source, fallback_position)
    return ecs_document(event, event_id=eid)
