"""Size limits every wire format enforces.

A hostile or broken agent must not be able to make a stage allocate without bound or index a
megabyte "user name": records and fields above these limits are refused with a reason.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

#: Largest raw record accepted on events.raw (bytes). Kafka's own default is 1 MiB.
MAX_RECORD_BYTES = 1024 * 1024
#: Largest nesting depth of a raw JSON record, checked before parsing (stack safety).
MAX_JSON_DEPTH = 32

Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""Identifiers and names: host, user, rule id, establishment name."""
Text = Annotated[str, StringConstraints(max_length=8192)]
"""Free text: messages, reasons, titles."""
CommandLine = Annotated[str, StringConstraints(max_length=32768)]
"""Command lines and paths: Windows allows 32,767 characters."""
Keyword = Annotated[str, StringConstraints(max_length=1024)]
"""Short structured values: hashes, domains, URLs, codes."""

#: Free-form maps (winlog.event_data, labels) are bounded in entries and value length.
MAX_MAP_ENTRIES = 256
MAX_MAP_VALUE_CHARS = 32768
MAX_LIST_ITEMS = 1000
