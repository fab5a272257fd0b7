"""Elasticsearch roles and users from ``deploy/security/elasticsearch-roles.yaml``.

The local stack writes them as the node's file-based security (``roles.yml``, ``users``,
``users_roles``) before it starts: no API call, no bootstrap password, and the same files on
every start. :func:`role_bodies` gives the role definitions for ``PUT _security/role`` on a
real cluster.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from schemas.organization import Region

DECLARATION = Path(__file__).with_name("elasticsearch-roles.yaml")
#: Elasticsearch's PBKDF2 hasher (``{PBKDF2}<iterations>$<salt>$<key>``, HMAC-SHA512, 256-bit
#: key), one of the formats its file realm reads; bcrypt would need a package we do not have.
PBKDF2_ITERATIONS = 10_000


@dataclass(frozen=True)
class SecurityDeclaration:
    """Roles by name (regional ones expanded), users with their roles, and the API keys the
    setup step creates (key name -> role)."""

    roles: dict[str, dict[str, Any]]
    users: dict[str, list[str]]
    api_keys: dict[str, str] = field(default_factory=dict)


def _expand(value: Any, region: str) -> Any:
    """``{region}`` replaced in every string of a YAML structure."""
    if isinstance(value, str):
        return value.replace("{region}", region)
    if isinstance(value, list):
        return [_expand(v, region) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, region) for k, v in value.items()}
    return value


def regional_user(region: Region | str, path: Path = DECLARATION) -> str:
    """The user name of a region's operator (``vigie-ars-bretagne``)."""
    data = yaml.safe_load(path.read_text())
    return str(data["regional_user"]).replace("{region}", str(region))


def load_declaration(path: Path = DECLARATION) -> SecurityDeclaration:
    data = yaml.safe_load(path.read_text())
    roles: dict[str, dict[str, Any]] = {name: dict(body or {})
                                        for name, body in data["roles"].items()}
    users: dict[str, list[str]] = {name: list(r) for name, r in data["users"].items()}
    template = data["regional_role"]
    for region in Region:
        role = _expand(template, region.value)
        name = role.pop("name")
        roles[name] = role
        users[str(data["regional_user"]).replace("{region}", region.value)] = [name]
    api_keys = {str(name): str(role) for name, role in (data.get("api_keys") or {}).items()}
    unknown = sorted(role for role in api_keys.values() if role not in roles)
    if unknown:
        raise ValueError(f"{path}: api_keys name undeclared role(s): {', '.join(unknown)}")
    return SecurityDeclaration(roles, users, api_keys)


def role_bodies(declaration: SecurityDeclaration | None = None) -> dict[str, dict[str, Any]]:
    """Role definitions as ``PUT _security/role/<name>`` takes them."""
    return (declaration or load_declaration()).roles


def pbkdf2_hash(password: str, salt: bytes | None = None) -> str:
    """A password hash the file realm verifies (salt: 32 random bytes unless given)."""
    salt = salt if salt is not None else os.urandom(32)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, dklen=32)
    return (f"{{PBKDF2}}{PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(key).decode()}")


def write_file_realm(config_dir: Path, passwords: dict[str, str],
                     declaration: SecurityDeclaration | None = None) -> None:
    """``roles.yml``, ``users`` and ``users_roles`` in the node's configuration folder, for
    every declared user (each must have a password in ``passwords``)."""
    declaration = declaration or load_declaration()
    (config_dir / "roles.yml").write_text(
        "# Rendered from deploy/security/elasticsearch-roles.yaml\n"
        + yaml.safe_dump(declaration.roles, sort_keys=True))
    users = "".join(f"{user}:{pbkdf2_hash(passwords[user])}\n"
                    for user in sorted(declaration.users))
    by_role: dict[str, list[str]] = {}
    for user, roles in sorted(declaration.users.items()):
        for role in roles:
            by_role.setdefault(role, []).append(user)
    users_roles = "".join(f"{role}:{','.join(names)}\n" for role, names in sorted(by_role.items()))
    for name, text in (("users", users), ("users_roles", users_roles)):
        path = config_dir / name
        path.write_text(text)
        path.chmod(0o600)
