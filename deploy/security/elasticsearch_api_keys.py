"""Elasticsearch API keys scoped to one role of ``deploy/security/elasticsearch-roles.yaml``.

Why keys and not only users: a key is made for one process or one script, carries exactly one
declared role (its role descriptor is that role's body, so it can never do more than the role
even if its owner can), can expire, and is invalidated on its own without touching a password
that other processes share. Keys are created by a user who may manage them (the admin) with
``POST /_security/api_key``; Elasticsearch keeps them in its ``.security`` index.

Used by the local stack's setup step (:mod:`deploy.local.provision`: the keys declared under
``api_keys:``, rotated at each provisioning) and by ``vigie es api-key create|invalidate``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from elasticsearch import BadRequestError, Elasticsearch, NotFoundError
from pydantic import SecretStr

from deploy.security.elasticsearch_roles import SecurityDeclaration, load_declaration
from runtime.errors import ConfigurationError, UsageError

#: ``--expiration``: a positive count of days, hours, minutes or seconds (Elasticsearch's
#: time units; weeks and months are not among them).
_EXPIRATION = re.compile(r"[1-9][0-9]*[dhms]")

#: What Elasticsearch says when it cannot create its ``.security`` index because analysis
#: modules are missing (the integ-test distribution the local stack runs has none).
_NO_SECURITY_INDEX = re.compile(r"Unknown (filter|tokenizer|analyzer|char_filter) type")


class ApiKeysUnsupported(ConfigurationError):
    """The cluster cannot store API keys (its ``.security`` index cannot be created)."""


@dataclass(frozen=True)
class ApiKey:
    """A created key: ``encoded`` is what a client sends (``VIGIE_ES_API_KEY``); Elasticsearch
    never shows it again."""

    name: str
    role: str
    id: str
    encoded: SecretStr
    expiration_ms: int | None = None


def check_expiration(expiration: str | None) -> str | None:
    """``expiration`` unchanged when Elasticsearch will take it (``30d``, ``12h``), else a
    UsageError naming the option; None means a key that does not expire."""
    if expiration is None or _EXPIRATION.fullmatch(expiration):
        return expiration
    raise UsageError(f"not an expiration: {expiration!r} (a count of d, h, m or s: 30d, 12h)",
                     source="--expiration")


def role_descriptor(role: str, declaration: SecurityDeclaration | None = None
                    ) -> dict[str, dict[str, object]]:
    """``{role: body}`` for ``role_descriptors``; a role not declared is a UsageError that
    lists the declared ones (a key must not carry rights that no file records)."""
    roles = (declaration or load_declaration()).roles
    if role not in roles:
        raise UsageError(f"no role {role!r} in deploy/security/elasticsearch-roles.yaml "
                         f"(declared: {', '.join(sorted(roles))})", source="--role")
    return {role: dict(roles[role])}


def create_api_key(es: Elasticsearch, name: str, role: str, *, expiration: str | None = None,
                   declaration: SecurityDeclaration | None = None) -> ApiKey:
    """A new key ``name`` limited to the declared ``role``, created by ``es``'s user."""
    descriptors = role_descriptor(role, declaration)
    try:
        created = es.security.create_api_key(
            name=name, role_descriptors=descriptors, expiration=check_expiration(expiration),
            metadata={"vigie_role": role, "created_by": "vigie"})
    except BadRequestError as error:
        reason = (str(error.body.get("error", {}).get("reason", error))
                  if isinstance(error.body, dict) else str(error))
        if _NO_SECURITY_INDEX.search(reason):
            raise ApiKeysUnsupported(
                "this Elasticsearch cannot store API keys: it lacks the analysis module its "
                f".security index needs ({reason}); on the local stack, restart it so that it "
                "loads the vigie-analysis plugin (`vigie stack down` then `vigie stack up`), "
                "elsewhere use the full distribution (deploy/compose)") from None
        raise
    return ApiKey(name=name, role=role, id=str(created["id"]),
                  encoded=SecretStr(str(created["encoded"])),
                  expiration_ms=created.body.get("expiration"))


def invalidate_api_keys(es: Elasticsearch, name: str, *, keep: str | None = None) -> int:
    """Invalidate the active keys called ``name`` (all but the one whose id is ``keep``);
    returns how many. Keys are invalidated, not deleted: Elasticsearch purges them later."""
    try:
        found = es.security.get_api_key(name=name, active_only=True)["api_keys"]
    except NotFoundError:
        return 0
    ids = [str(key["id"]) for key in found if key["id"] != keep]
    if not ids:
        return 0
    invalidated = es.security.invalidate_api_key(ids=ids)
    return len(invalidated["invalidated_api_keys"])


def rotate_api_keys(es: Elasticsearch, wanted: Mapping[str, str] | None = None, *,
                    declaration: SecurityDeclaration | None = None) -> list[ApiKey]:
    """A fresh key for each ``name -> role`` of ``wanted`` (default: the declaration's
    ``api_keys``), then the older keys of that name invalidated: created first, so a process
    that still holds the previous key is refused only once the new one exists."""
    declaration = declaration or load_declaration()
    keys = []
    for name, role in (wanted if wanted is not None else declaration.api_keys).items():
        key = create_api_key(es, name, role, declaration=declaration)
        invalidate_api_keys(es, name, keep=key.id)
        keys.append(key)
    return keys
