"""A customer's answer to a question, checked for its type: the value kept, or None.

Choices match a button's or list row's id (the channel's reply metadata), its title
(ignoring case) or its number in the text fallback ("2").
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.bots.nodes import Ask
from shared.inbox.contacts import normalize_phone

_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DATES = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y")


def accept(ask: Ask, text: str | None, reply_id: str | None = None) -> Any | None:
    """The answer's value for the flow's variable, or None when it is not valid."""
    answer = (text or "").strip()
    if ask.type == "choice":
        return _choice(ask, answer, reply_id)
    if not answer or len(answer) > ask.max_length:
        return None
    if ask.type == "text":
        return answer
    if ask.type == "number":
        return _number(ask, answer)
    if ask.type == "email":
        return answer.lower() if _EMAIL.match(answer) else None
    if ask.type == "phone":
        digits = re.sub(r"[\s().-]", "", answer)
        if not re.fullmatch(r"\+?[0-9]{6,15}", digits):
            return None
        return normalize_phone(digits)
    return _date(answer)


def _number(ask: Ask, answer: str) -> float | int | None:
    try:
        value = Decimal(answer.replace(",", ".", 1) if answer.count(",") == 1 else answer)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if (ask.min is not None and value < Decimal(str(ask.min))) or (
        ask.max is not None and value > Decimal(str(ask.max))
    ):
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _date(answer: str) -> str | None:
    for form in _DATES:
        try:
            parsed: date = datetime.strptime(answer, form).date()
        except ValueError:
            continue
        return parsed.isoformat()
    return None


def _choice(ask: Ask, answer: str, reply_id: str | None) -> str | None:
    options = ask.options or []
    for option in options:
        if reply_id is not None and reply_id == option.id:
            return option.id
    lowered = answer.casefold()
    for number, option in enumerate(options, start=1):
        if lowered in (option.title.casefold(), option.id.casefold(), str(number)):
            return option.id
    return None
