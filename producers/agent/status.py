"""``vigie agent status``: what the agent is doing, read from its state directory.

Works whether the agent runs or not (a stopped agent's spool depth is exactly what an IT team
needs to see after a network outage): the spool and positions are read from disk, the send
rate and errors from the status file the running agent refreshes every 2 seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from producers.agent.config import AgentConfig
from producers.agent.spool import Spool


def agent_status(config: AgentConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"agent_id": config.agent_id,
                           "establishment_id": config.establishment.id,
                           "state_dir": str(config.state_dir)}
    if config.spool_dir.exists():
        spool = Spool(config.spool_dir, max_bytes=config.spool.max_bytes,
                      policy=config.spool.full_policy, fsync=False, read_only=True)
        out["spool"] = {"depth": spool.depth, "bytes": spool.bytes,
                        "max_bytes": config.spool.max_bytes,
                        "full_policy": config.spool.full_policy.value,
                        "acked_seq": spool.acked}
    try:
        out["positions"] = json.loads(config.positions_path.read_text())
    except (OSError, ValueError):
        out["positions"] = {}
    try:
        live = json.loads(config.status_path.read_text())
    except (OSError, ValueError):
        live = None
    if live:
        age = (datetime.now(UTC) - datetime.fromisoformat(live["updated_at"])).total_seconds()
        live["running"] = age < 10
        live["seconds_since_update"] = round(age, 1)
    out["last_run"] = live
    return out


def format_status(status: dict[str, Any]) -> str:
    lines = [f"agent {status['agent_id']} (establishment {status['establishment_id']}), "
             f"state in {status['state_dir']}"]
    spool = status.get("spool")
    if spool:
        lines.append(f"spool: {spool['depth']} records waiting, {spool['bytes']} bytes "
                     f"of {spool['max_bytes']} (when full: {spool['full_policy']})")
    live = status.get("last_run")
    if live:
        state = "running" if live["running"] else f"not running (last seen {live['updated_at']})"
        lines.append(f"process: {state}; send rate {live['send_rate_eps']} events/s; "
                     f"{live['delivered']} delivered, {live['read']} read, "
                     f"{live['spool_dropped']} dropped (spool full), {live['invalid']} invalid")
        if live.get("malformed"):
            lines.append("malformed input: " + ", ".join(
                f"{k}={v}" for k, v in sorted(live["malformed"].items())))
        if live.get("last_error"):
            lines.append(f"last Kafka error: {live['last_error']}")
    else:
        lines.append("process: never ran with this state directory")
    for name, pos in sorted(status.get("positions", {}).items()):
        if isinstance(pos, dict) and "offset" in pos:
            lines.append(f"position {name}: byte {pos['offset']} of inode {pos['ino']}"
                         f" (generation {pos.get('generation', 0)})")
        elif isinstance(pos, dict):
            for path, state in sorted(pos.items()):
                lines.append(f"position {name}: {path}: {state.get('next', 0)} records done")
    return "\n".join(lines)
