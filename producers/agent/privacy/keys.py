"""The pseudonymisation key: 32 random bytes that never leave the hospital.

Whoever holds the key can re-identify (recompute the pseudonym of a candidate name); the
national side never gets it. A dry run without a key uses a throw-away one, so that what it
shows is what would leave — never clear identities.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from runtime.errors import ConfigurationError

KEY_BYTES = 32
MIN_KEY_BYTES = 16


class PseudonymKeyError(ConfigurationError):
    """The pseudonymisation key file is missing or too short."""


def throwaway_key() -> bytes:
    """A key for one dry run: pseudonyms that nobody can ever link to a name again."""
    return secrets.token_bytes(KEY_BYTES)


def generate_pseudonym_key(path: Path) -> bytes:
    """32 random bytes at ``path`` (mode 0600), unless a key is already there."""
    if path.exists():
        return load_pseudonym_key(path)
    key = secrets.token_bytes(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.hex().encode() + b"\n")
    return key


def load_pseudonym_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise PseudonymKeyError(f"no pseudonymisation key at {path}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PseudonymKeyError(f"{path}: expected the key in hexadecimal") from None
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"{path}: key of {len(key)} bytes, at least "
                                f"{MIN_KEY_BYTES} needed")
    return key
