"""The national registry of establishments, as a file: one Organization per JSON line.

The processor refuses events from establishments that are not in it and takes the name, type
and region from it rather than from the agent: the registry is the authority on who is who.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from runtime.errors import DataError, InputMissing
from schemas.organization import Organization


class RegistryError(DataError):
    """The registry file has a bad line (with its number), or is missing."""


class RegistryMissing(InputMissing, RegistryError):
    """No registry file where the settings say (``vigie registry generate`` makes one)."""


def write_registry(path: Path, organizations: Iterable[Organization]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("wb") as out:
        for org in organizations:
            out.write(org.model_dump_json().encode() + b"\n")
            count += 1
    tmp.replace(path)  # readers never see a half-written registry
    return count


def load_registry(path: Path) -> dict[str, Organization]:
    """Establishments by FINESS id."""
    if not path.exists():
        raise RegistryMissing(
            f"no establishment registry at {path}; create one with `vigie registry generate`"
        )
    registry: dict[str, Organization] = {}
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                org = Organization.model_validate_json(line)
            except ValueError as exc:
                raise RegistryError(str(exc), source=f"{path}:{number}") from exc
            registry[org.id] = org
    return registry
