"""The one exception the local stack raises: the CLI prints its message and exits 69."""

from __future__ import annotations

from runtime.errors import ServiceUnavailable


class StackError(ServiceUnavailable):
    """Something the user must fix before Kafka or Elasticsearch can run here (a port taken,
    no JDK, a server that exits at start-up); the message says what and which log to read, the
    ``details`` carry the tail of that log."""
