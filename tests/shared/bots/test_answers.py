"""Answers to questions, checked for their type."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bots.answers import accept
from shared.bots.nodes import Ask


def ask(type_: str, **more: Any) -> Ask:
    return Ask(id="q", kind="ask", text="?", variable="v", type=type_, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("text", "  hello ", "hello"),
        ("text", "   ", None),
        ("number", "42", 42),
        ("number", "4,5", 4.5),
        ("number", "nan", None),
        ("number", "forty", None),
        ("email", "Ann@Example.COM", "ann@example.com"),
        ("email", "ann@", None),
        ("email", "two words@example.com", None),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("phone", "call me", None),
        ("date", "2026-12-03", "2026-12-03"),
        ("date", "03/12/2026", "2026-12-03"),
        ("date", "2026-02-30", None),
    ],
)
def test_typed_answers(kind: str, text: str, value: Any) -> None:
    assert accept(ask(kind), text) == value


def test_number_bounds() -> None:
    bounded = ask("number", min=1, max=10)
    assert accept(bounded, "10") == 10
    assert accept(bounded, "11") is None
    assert accept(bounded, "0.5") is None


def test_text_length() -> None:
    assert accept(ask("text", max_length=3), "abcd") is None


def test_choices_by_reply_id_title_or_number() -> None:
    choice = ask(
        "choice", options=[{"id": "a", "title": "Apples"}, {"id": "b", "title": "Bananas"}]
    )
    assert accept(choice, "whatever", reply_id="b") == "b"
    assert accept(choice, "bananas") == "b"
    assert accept(choice, "1") == "a"
    assert accept(choice, "3") is None
    assert accept(choice, "cherries") is None


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_every_integer_reads_back(number: int) -> None:
    assert accept(ask("number"), f" {number} ") == number


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.text(max_size=40))
def test_any_text_is_a_value_or_refused_never_an_error(text: str) -> None:
    for kind in ("number", "email", "phone", "date"):
        accept(ask(kind), text)
    assert accept(ask("text"), text) == (text.strip() or None)
