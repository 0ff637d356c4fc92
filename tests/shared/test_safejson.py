"""The quick look that spares a clean delivery the walk for unstorable values."""

from __future__ import annotations

import json
import random
import re

import pytest

from shared.safejson import clean_json, loads, unstorable

UNSTORABLE = [
    rb'{"text": "a\u0000b"}',
    rb'{"text": "\ud800"}',
    rb'{"text": "\uDFFF"}',
    rb'{"n": NaN}',
    rb'{"n": -Infinity}',
    rb'{"a\u0000": 1}',
    rb'{"n": 1e999}',
    rb'{"n": -1E+400}',
    b'{"n": ' + b"1" * 400 + b".0}",
    b'{"n": ' + b"1" * 250 + b"e99}",
]


@pytest.mark.parametrize("raw", UNSTORABLE)
def test_json_that_may_hold_an_unstorable_value_is_not_clean(raw: bytes):
    assert unstorable(json.loads(raw)) is not None  # the walk finds it …
    assert not clean_json(raw)  # … so the quick look must not skip it


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"text": "caf\u00e9 \u20ac", "n": 1.5e3, "list": [true, null]}',
        '{"text": "日本語"}'.encode(),
        rb'{"escaped": "\\u0000 is text here"}',
    ],
)
def test_ordinary_json_is_clean_and_the_walk_agrees(raw: bytes):
    assert unstorable(json.loads(raw)) is None
    assert clean_json(raw) == (b"\\\\u0000" not in raw)  # an escaped backslash: still looked at


def test_bytes_that_are_not_utf8_are_not_clean():
    assert not clean_json(b'{"text": "\xff"}')


def test_strict_loads_refuses_what_the_quick_look_flags():
    with pytest.raises(Exception, match="not valid JSON"):
        loads(b'{"n": NaN}')


def test_the_quick_look_flags_exactly_what_one_pattern_for_all_of_it_would():
    """clean_json looks with substring searches; this single expression says the same."""
    reference = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|NaN|Infinity|\x00|[eE][+-]?\d{3}|\d{200}")
    pieces = [b"e", b"E", b"+", b"-", b"1", b"0", b"9", b"a", b" ", b'"', b"\\u0000", b"\\ud800"]
    pieces += [b"\\uD9ab", b"\\u00e9", b"NaN", b"Inf", b"inity", b"\x00", b"5" * 60, b"\xc3\xa9"]
    rng = random.Random(7)
    for _ in range(20_000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        assert clean_json(raw) == (reference.search(raw) is None), raw
