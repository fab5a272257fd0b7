"""The base every wire model derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Strict: unknown fields are refused, not silently dropped, and types are not coerced.

    An agent that sends ``"event_id": "4624"`` or a misspelled field learns it from the
    dead-letter reason instead of seeing its data vanish. Field names with a dot or ``@``
    in ECS are declared with aliases; models populate by either name.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        ser_json_timedelta="float",
    )

    def to_json_bytes(self) -> bytes:
        """Canonical wire form: ECS names, no nulls."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")
