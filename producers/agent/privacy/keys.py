"""The pseudonymisation key: 32 random bytes that never leave the hospital.

Whoever holds the key can re-identify (recompute the pseudonym of a candidate name); the
national side never gets it. A dry run without a key uses a throw-away one, so that what it
shows is what would leave — never clear identities.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from producers.keyfiles import check_key_strength, read_private_file, write_private_file
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
    if path.exists() or path.is_symlink():
        return load_pseudonym_key(path)  # a symlink is refused there, never followed
    key = secrets.token_bytes(KEY_BYTES)
    write_private_file(path, key.hex().encode() + b"\n")  # 0600, O_EXCL | O_NOFOLLOW
    return key


def load_pseudonym_key(path: Path) -> bytes:
    try:
        text = read_private_file(path).decode("ascii", "replace").strip()
    except FileNotFoundError:
        raise PseudonymKeyError(f"no pseudonymisation key at {path}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PseudonymKeyError(f"{path}: expected the key in hexadecimal") from None
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"{path}: key of {len(key)} bytes, at least "
                                f"{MIN_KEY_BYTES} needed")
    check_key_strength(key, path)  # all-zero or patterned keys make pseudonyms reversible
    return key
