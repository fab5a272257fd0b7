"""Errors an operator can act on: the CLI prints their message, not a traceback."""


class VigieError(Exception):
    """A condition with a clear remedy (a service down, a missing file), said in the message."""


class ServiceUnavailable(VigieError):
    """Kafka or Elasticsearch does not answer."""
