"""The IP addresses events carry are checked by a pattern pydantic-core runs natively
(``schemas.event.IP``): it must accept every address in every textual form Python writes, and
nothing Python's ``ipaddress`` (or Elasticsearch's ``ip`` type) would refuse."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.event import IP, IP_PATTERN

# ``fullmatch``: as pydantic-core's (Rust) regex, where ``$`` never matches before a newline.
PATTERN = re.compile(IP_PATTERN)


def _python_accepts(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text  # scoped IPv6 (fe80::1%eth0): refused by the pattern on purpose


@given(st.ip_addresses())
@settings(max_examples=3000)
def test_every_address_in_every_form_python_writes_is_accepted(address) -> None:  # type: ignore[no-untyped-def]
    forms = {str(address), address.exploded, address.compressed}
    if isinstance(address, ipaddress.IPv6Address):
        forms.add(str(address).upper())
        if address.ipv4_mapped is not None:
            forms.add(f"::ffff:{address.ipv4_mapped}")
    for form in forms:
        assert PATTERN.fullmatch(form), form


@given(st.ip_addresses(), st.integers(0, 40), st.sampled_from(list(":.0123456789abcdefgx% ")))
@settings(max_examples=5000)
def test_nothing_python_refuses_is_accepted(address, where: int, char: str) -> None:  # type: ignore[no-untyped-def]
    text = str(address)
    for mutated in (text[:where] + char + text[where:], text[:where] + text[where + 1:],
                    text[:where] + char + text[where + 1:]):
        if PATTERN.fullmatch(mutated):
            assert _python_accepts(mutated), mutated


def test_examples() -> None:
    for good in ("10.0.0.1", "255.255.255.255", "::", "::1", "fe80::1", "2001:db8::8a2e:370:7334",
                 "::ffff:192.0.2.1", "64:ff9b::192.0.2.33", "1:2:3:4:5:6:1.2.3.4", "1::"):
        assert PATTERN.fullmatch(good) and _python_accepts(good), good
    for bad in ("010.0.0.1", "256.1.1.1", "1.2.3", "1.2.3.4.5", ":::", "1:2:3:4:5:6:7:8:9",
                "fe80::1%eth0", "12345::", "1::2::3", "", " 10.0.0.1", "10.0.0.1\n"):
        assert not PATTERN.fullmatch(bad), bad


def test_the_model_itself_refuses_what_the_pattern_refuses() -> None:
    adapter = TypeAdapter(IP)
    assert adapter.validate_json('"fe80::1"') == "fe80::1"
    for bad in ('"10.0.0.1\\n"', '"010.0.0.1"', '"fe80::1%eth0"', "167772161"):
        with pytest.raises(ValidationError):
            adapter.validate_json(bad)
