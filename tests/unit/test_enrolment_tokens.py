"""One-time enrolment tokens: random, stored as a hash only, expiring, and good once even when
two enrolments present the same token at the same moment."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from deploy.security import enrolment_tokens as tokens
from runtime.errors import UsageError
from schemas.enrolment_api import TokenState

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _issued(store: tokens.MemoryTokenStore, ttl: timedelta = timedelta(hours=24)) -> str:
    token, _ = tokens.issue(store, "chu-test-01", "750712184", issued_by="tester", ttl=ttl,
                            now=NOW)
    return token


def test_a_token_has_256_random_bits_and_only_its_hash_is_stored() -> None:
    store = tokens.MemoryTokenStore()
    token = _issued(store)
    other = _issued(store)
    assert token != other
    assert token.startswith(tokens.TOKEN_PREFIX)
    assert len(token) - len(tokens.TOKEN_PREFIX) >= 43  # 32 bytes, base64url
    [first, _] = store.records()
    assert first.token_hash == tokens.token_hash(token)
    assert token not in first.model_dump_json()
    assert first.expires_at == NOW + timedelta(hours=24)


def test_a_token_enrols_once() -> None:
    store = tokens.MemoryTokenStore()
    token = _issued(store)
    claimed = tokens.claim(store, token, client="10.0.0.1", now=NOW)
    assert claimed.agent_id == "chu-test-01" and claimed.establishment_id == "750712184"
    tokens.complete(store, claimed)
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.claim(store, token, client="10.0.0.1", now=NOW)
    assert refused.value.reason == tokens.USED


def test_a_claimed_token_is_refused_even_before_its_enrolment_completes() -> None:
    store = tokens.MemoryTokenStore()
    token = _issued(store)
    tokens.claim(store, token, client="10.0.0.1", now=NOW)
    with pytest.raises(tokens.TokenRefused, match="already used"):
        tokens.claim(store, token, client="10.0.0.2", now=NOW)


def test_an_unknown_or_expired_token_is_refused_with_its_reason() -> None:
    store = tokens.MemoryTokenStore()
    token = _issued(store, ttl=timedelta(minutes=30))
    with pytest.raises(tokens.TokenRefused) as unknown:
        tokens.claim(store, token[:-1] + ("A" if token[-1] != "A" else "B"), client="x",
                     now=NOW)
    assert unknown.value.reason == tokens.UNKNOWN
    with pytest.raises(tokens.TokenRefused) as expired:
        tokens.claim(store, token, client="x", now=NOW + timedelta(minutes=30))
    assert expired.value.reason == tokens.EXPIRED
    assert tokens.claim(store, token, client="x", now=NOW + timedelta(minutes=29))


def test_a_released_token_can_be_presented_again_after_a_failed_enrolment() -> None:
    store = tokens.MemoryTokenStore()
    token = _issued(store)
    tokens.release(store, tokens.claim(store, token, client="x", now=NOW))
    again = tokens.claim(store, token, client="x", now=NOW)
    tokens.complete(store, again)
    assert tokens.fold(store.records())[again.token_hash].state is TokenState.USED


def test_only_the_first_claim_in_the_log_wins_whatever_the_stale_reads() -> None:
    """Two servers that both read the token as issued both append a claim: the log order
    decides, the second claimer is told the token is used, and its later release or
    completion changes nothing."""
    store = tokens.MemoryTokenStore()
    token = _issued(store)
    record = tokens.fold(store.records())[tokens.token_hash(token)]
    first = record.model_copy(update={"state": TokenState.CLAIMED, "claim_id": "a"})
    second = record.model_copy(update={"state": TokenState.CLAIMED, "claim_id": "b"})
    store.append(first)
    store.append(second)
    tokens.release(store, second)
    tokens.complete(store, second)
    state = tokens.fold(store.records())[record.token_hash]
    assert state.state is TokenState.CLAIMED and state.claim_id == "a"


def test_the_same_token_presented_concurrently_enrols_once() -> None:
    store = tokens.MemoryTokenStore()
    token = _issued(store)
    start = threading.Barrier(8)
    wins: list[str] = []
    refusals: list[str] = []

    def attempt(n: int) -> None:
        start.wait()
        try:
            wins.append(tokens.claim(store, token, client=f"10.0.0.{n}", now=NOW).client or "")
        except tokens.TokenRefused as refused:
            refusals.append(refused.reason)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert refusals == [tokens.USED] * 7


def test_hashes_are_compared_in_constant_time() -> None:
    store = tokens.MemoryTokenStore()
    token = _issued(store)
    with mock.patch.object(tokens.hmac, "compare_digest",
                           wraps=tokens.hmac.compare_digest) as compare:
        tokens.claim(store, token, client="x", now=NOW)
    assert compare.call_args.args == (tokens.token_hash(token), tokens.token_hash(token))


@pytest.mark.parametrize(("text", "expected"), [("24h", timedelta(hours=24)),
                                                ("30m", timedelta(minutes=30)),
                                                ("7d", timedelta(days=7)),
                                                ("2", timedelta(hours=2))])
def test_ttl(text: str, expected: timedelta) -> None:
    assert tokens.parse_ttl(text) == expected


@pytest.mark.parametrize("text", ["0h", "31d", "1w", "-1h", ""])
def test_ttl_refused(text: str) -> None:
    with pytest.raises(UsageError):
        tokens.parse_ttl(text)
