"""Catalog names: stable, unique, valid for MCP and for OpenAI function calling."""

from __future__ import annotations

import re

from aggregator.catalog import MAX_NAME, safe_name

VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def test_ordinary_names_are_kept_as_they_are() -> None:
    assert safe_name("storage-put_object", "-") == "storage-put_object"


def test_characters_outside_the_safe_set_become_underscores() -> None:
    assert safe_name("web-fetch.url v2", "-") == "web-fetch_url_v2"
    assert VALID.match(safe_name("srv-näme/ü", "-"))


def test_over_long_names_are_cut_with_a_hash_so_they_stay_unique_and_stable() -> None:
    a = safe_name("github-" + "x" * 80 + "_a", "-")
    b = safe_name("github-" + "x" * 80 + "_b", "-")
    assert len(a) == len(b) == MAX_NAME
    assert a != b and VALID.match(a) and VALID.match(b)
    assert safe_name("github-" + "x" * 80 + "_a", "-") == a
