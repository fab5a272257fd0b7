"""Keys and spool on a shared hospital server: owner-only, never through a symbolic link,
and a pseudonymisation key nobody could guess."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from producers.agent.pseudonymise import generate_pseudonym_key, load_pseudonym_key
from producers.agent.spool import Spool
from producers.keyfiles import InsecureKeyFile, UnsafeDirectory, WeakKey, key_weakness
from producers.signing import AgentKeyExists, generate_key, load_key


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_new_keys_are_owner_only(tmp_path: Path) -> None:
    generate_key(tmp_path / "agent.key")
    generate_pseudonym_key(tmp_path / "pseudonym.key")
    assert mode(tmp_path / "agent.key") == 0o600
    assert mode(tmp_path / "pseudonym.key") == 0o600


def test_a_key_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "agent.key").symlink_to(elsewhere)
    with pytest.raises(AgentKeyExists):
        generate_key(tmp_path / "agent.key")
    (tmp_path / "pseudonym.key").symlink_to(elsewhere)
    with pytest.raises(InsecureKeyFile, match="symbolic link"):
        generate_pseudonym_key(tmp_path / "pseudonym.key")
    assert not elsewhere.exists()


def test_keys_others_may_read_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    generate_key(path)
    path.chmod(0o644)
    with pytest.raises(InsecureKeyFile, match="chmod 600"):
        load_key(path)
    path.chmod(0o600)
    load_key(path)
    pseudo = tmp_path / "pseudonym.key"
    generate_pseudonym_key(pseudo)
    pseudo.chmod(0o640)
    with pytest.raises(InsecureKeyFile):
        load_pseudonym_key(pseudo)


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    generate_key(tmp_path / "real.key")
    (tmp_path / "agent.key").symlink_to(tmp_path / "real.key")
    with pytest.raises(InsecureKeyFile, match="symbolic link"):
        load_key(tmp_path / "agent.key")


@pytest.mark.parametrize("weak", [bytes(32), b"\x01" * 32, b"\x00\x01" * 16,
                                  b"abcd" * 8])
def test_weak_pseudonymisation_keys_are_refused(tmp_path: Path, weak: bytes) -> None:
    path = tmp_path / "pseudonym.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, weak.hex().encode())
    os.close(fd)
    with pytest.raises(WeakKey):
        load_pseudonym_key(path)


def test_random_keys_are_accepted() -> None:
    assert all(key_weakness(secrets.token_bytes(n)) is None
               for n in (16, 32, 64) for _ in range(200))


def test_spool_is_private_and_refuses_a_symlinked_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "state" / "spool", fsync=False)
    spool.append([(b"k", "0" * 32, b"", b"value")])
    spool.save_state()
    spool.close()
    assert mode(tmp_path / "state" / "spool") == 0o700
    files = list((tmp_path / "state" / "spool").iterdir())
    assert files and all(mode(f) == 0o600 for f in files)
    (tmp_path / "target").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "target")
    with pytest.raises(UnsafeDirectory):
        Spool(tmp_path / "linked", fsync=False)
    assert not list((tmp_path / "target").iterdir())
