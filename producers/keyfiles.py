"""The agent's secret files: created owner-only without following links, refused when weak.

A hospital server is shared with other services and other administrators. A key file that
another local account can read, or that a symbolic link planted in the state directory
redirects somewhere else, gives the agent's identity or the pseudonymisation key away, and a
pseudonymisation key anyone can guess (all zeros, a repeated byte) makes every pseudonym
reversible with a dictionary. So:

- new secret files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600: never
  through a link, never over an existing file;
- directories holding secrets or the spool are created 0700 and refused when they are a
  symbolic link;
- existing key files are refused when group or others may read them, or when they are links;
- a pseudonymisation key whose bytes are too uniform is refused.

The errors are :class:`runtime.errors.ConfigurationError` (exit 78): an administrator fixes
them (``chmod 600``, a new key), the agent must not start around them.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections import Counter
from pathlib import Path

from runtime.errors import ConfigurationError

#: Mode bits a secret file must not have: readable, writable or executable by group/others.
NOT_PRIVATE = 0o077

#: Shannon entropy (bits per byte) below which a random key is not random: 32 random bytes
#: score about 4.8 (at most 5: log2(32)); ``00 01 00 01...`` scores 1.
MIN_KEY_ENTROPY = 3.5

#: Distinct byte values a 16+ byte random key has at least (a 32-byte random key has ~30).
MIN_DISTINCT_BYTES = 8


class InsecureKeyFile(ConfigurationError):
    """A key file other accounts may read, or reached through a symbolic link."""


class WeakKey(ConfigurationError):
    """A key whose bytes are too regular to be secret (all zeros, a repeated pattern)."""


class UnsafeDirectory(ConfigurationError):
    """A state or spool directory that is a symbolic link or that others may enter."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) as needed, mode 0700 for what is created; refuse a
    symbolic link at ``path`` itself (it would send the spool or a key somewhere else)."""
    if path.is_symlink():
        raise UnsafeDirectory("is a symbolic link; the agent keeps its state and spool only "
                              "in a real directory", source=str(path))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created meanwhile: checked below
            os.mkdir(path, 0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory("is not a directory", source=str(path))
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``, mode 0600; never through a link, never over a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def read_private_file(path: Path) -> bytes:
    """The bytes of a secret file, refused if it is a link or others may read it.

    Opened with ``O_NOFOLLOW`` and checked on the open descriptor (``fstat``), so a file
    swapped between the check and the read is not read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symbolic link
            raise InsecureKeyFile("is a symbolic link; point the configuration at the key "
                                  "file itself", source=str(path)) from None
        raise
    with os.fdopen(fd, "rb") as fh:
        check_private_mode(path, os.fstat(fh.fileno()).st_mode)
        return fh.read()


def check_private_mode(path: Path, mode: int) -> None:
    """Refuse a key file whose mode lets group or others read or write it."""
    if mode & NOT_PRIVATE:
        raise InsecureKeyFile(f"mode {stat.S_IMODE(mode):04o}: other accounts may read this "
                              f"key; run `chmod 600 {path}`", source=str(path))


def key_weakness(key: bytes) -> str | None:
    """Why ``key`` cannot be a random secret, or None when it looks like one."""
    if not key or key == bytes(len(key)):
        return "all zero bytes"
    counts = Counter(key)
    if len(counts) < min(MIN_DISTINCT_BYTES, len(key)):
        return f"only {len(counts)} distinct byte values"
    entropy = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    if entropy < min(MIN_KEY_ENTROPY, math.log2(len(key)) - 1):
        return f"low entropy ({entropy:.1f} bits per byte)"
    return None


def check_key_strength(key: bytes, path: Path) -> None:
    """Refuse a pseudonymisation key that is not random enough to keep pseudonyms secret."""
    weakness = key_weakness(key)
    if weakness is not None:
        raise WeakKey(f"pseudonymisation key refused: {weakness}; delete the file to let the "
                      "agent create a random one (every pseudonym changes)", source=str(path))
