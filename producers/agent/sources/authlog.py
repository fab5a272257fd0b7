"""Linux ``auth.log`` / ``secure``: followed, each line parsed as syslog then as sshd/sudo."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.agent.parse.authlog import enrich
from producers.agent.parse.common import Doc
from producers.agent.parse.syslog import MalformedMessage, parse_syslog, syslog_doc
from producers.agent.sources.base import Context
from producers.agent.sources.lines import LineFileSource, LineParseError


def authlog_line(ctx: Context, line: bytes, eid: str, received: datetime | None = None) -> Doc:
    try:
        msg = parse_syslog(line, received or datetime.now(UTC), ctx.tz, require_pri=False)
    except MalformedMessage as exc:
        raise LineParseError(exc.reason, str(exc)) from None
    return enrich(syslog_doc(msg, eid, module="system"), msg.app, msg.message)


def authlog_source(name: str, path: Path, ctx: Context, position: Any = None,
                   *, from_end: bool = False,
                   max_record_bytes: int | None = None) -> LineFileSource:
    return LineFileSource(name, path, lambda line, eid: authlog_line(ctx, line, eid), ctx,
                          position, from_end=from_end,
                          max_record_bytes=max_record_bytes)
