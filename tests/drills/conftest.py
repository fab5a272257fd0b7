"""The drills run on the real local stack: the integration fixtures, shared."""

from tests.integration.conftest import es, national_registry, settings, stack

__all__ = ["es", "national_registry", "settings", "stack"]
