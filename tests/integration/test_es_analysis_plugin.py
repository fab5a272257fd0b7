"""The local Elasticsearch analyses e-mail addresses as its ``.security`` index declares
(``deploy/local/es_analysis.py``): the analyzer Elasticsearch uses to search users and API-key
owners by part of an address gives the tokens analysis-common would."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

#: ``analysis.filter.email`` and ``analysis.analyzer.email`` of the ``.security`` index.
EMAIL_FILTER = {"type": "pattern_capture", "preserve_original": True,
                "patterns": ["([^@]+)", "(\\p{L}+)", "(\\d+)", "@(.+)"]}


def test_an_address_is_kept_whole_then_split_lowercased_and_deduplicated(
        es: Elasticsearch) -> None:
    tokens = es.indices.analyze(
        tokenizer="uax_url_email", filter=[EMAIL_FILTER, "lowercase", "unique"],
        text="Jane.Doe42@ARS-Bretagne.fr wrote to jane@ars-bretagne.fr")["tokens"]
    assert [t["token"] for t in tokens] == [
        "jane.doe42@ars-bretagne.fr", "jane.doe42", "jane", "doe", "42", "ars-bretagne.fr",
        "ars", "bretagne", "fr", "wrote", "to", "jane@ars-bretagne.fr"]

