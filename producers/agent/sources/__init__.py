"""Sources: each reads one kind of input and yields wire documents with a resumable position.

A source's ``poll(max_items)`` never blocks; ``position()`` is where it would resume after
what it returned so far. The runner stores the documents in the spool *then* saves the
positions, so a crash re-reads at worst what was not yet spooled.
"""

from producers.agent.sources.base import Context, Source

__all__ = ["Context", "Source"]
