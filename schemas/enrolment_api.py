"""Enrolment by one-time token: the token's record on the national side, and the request and
answer of ``POST /api/v1/enrol``.

The national team issues a token for one agent id and one establishment (``vigie agents
issue-token``); the hospital's agent presents it once with its new public key (``vigie agent
enroll --token``) and receives its Kafka client block. The national side never stores the
token itself, only its SHA-256 (:class:`EnrolmentToken`, on the compacted topic
``vigie.enrolment-tokens`` keyed by that hash): a copy of the topic enrols nobody.

These models are the contract between the agent (which imports nothing national) and the
enrolment service: both sides validate with them.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.enrolment import AgentId
from schemas.organization import FinessId

#: Largest request body the service reads (the JSON is a few hundred bytes).
MAX_REQUEST_BYTES = 16 * 1024
#: The one endpoint of the enrolment service.
ENROL_PATH = "/api/v1/enrol"


class TokenState(StrEnum):
    """Where a token is in its life: issued, claimed by one enrolment attempt (the first
    claim after the issue wins), used once that enrolment succeeded."""

    ISSUED = "issued"
    CLAIMED = "claimed"
    USED = "used"


class EnrolmentToken(BaseModel):
    """One record of a token's life (the latest per hash is its state; each carries the
    whole token so that compaction loses nothing a later check needs)."""

    model_config = ConfigDict(extra="forbid")

    token_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token, hex")
    agent_id: AgentId
    establishment_id: FinessId
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    issued_by: str = Field(max_length=256)
    state: TokenState = TokenState.ISSUED
    claim_id: str | None = Field(None, max_length=64,
                                 description="Which enrolment attempt claimed it")
    client: str | None = Field(None, max_length=128, description="Address that presented it")
    at: AwareDatetime | None = Field(None, description="When this record was written")


class EnrolRequest(BaseModel):
    """What the agent posts: its token, its new Ed25519 public key (base64 of the 32 raw
    bytes, as `vigie agent enroll` prints it) and its version, for the log."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: str = Field(min_length=16, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
    public_key: str = Field(min_length=40, max_length=64)
    agent_version: str = Field("unknown", max_length=64, pattern=r"^[A-Za-z0-9._+-]*$")

    @field_validator("public_key")
    @classmethod
    def _ed25519_public_key(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None
        if len(raw) != 32:
            raise ValueError(f"{len(raw)} bytes: an Ed25519 public key has 32")
        return value


class KafkaClientBlock(BaseModel):
    """The agent's ``kafka:`` settings, the password included, and the brokers' CA inline
    (the agent has no other way to trust them)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    bootstrap: str = Field(min_length=1)
    security_protocol: str = "SASL_SSL"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str = Field(min_length=1)
    sasl_password: str = Field(min_length=1)
    ssl_check_hostname: bool = True
    ca_pem: str | None = Field(None, description="PEM of the CA that signed the brokers' "
                               "certificates (None: the system's trust store)")


class EnrolResponse(BaseModel):
    """The answer to an accepted enrolment."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    agent_id: AgentId
    establishment_id: FinessId
    kafka: KafkaClientBlock


class EnrolRefusal(BaseModel):
    """The answer to a refused enrolment: ``error`` for programs, ``reason`` for people."""

    model_config = ConfigDict(extra="forbid")

    error: str
    reason: str
