"""JSON the way PostgreSQL and our answers can hold it.

Python's json accepts what neither a jsonb column nor a JSON reader does: NaN and
Infinity, strings with NUL (PostgreSQL text and jsonb cannot hold U+0000), lone
surrogates (not UTF-8 at all) and nesting deep enough to exhaust the recursion
limit of every parser on the way. These helpers find each before it does harm:
`loads` refuses the first two kinds of body, `unstorable` names the field holding
the rest, and `printable` makes any value safe to echo in an error body.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from shared.errors import AppError, BadRequest

# Deeper than any provider's payload or API body (Meta's are about 8 levels).
MAX_DEPTH = 64

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# What in JSON text can decode to a value PostgreSQL cannot store: a NUL or a
# surrogate escape, NaN or Infinity (Python's parser takes them), a raw NUL byte,
# a number that may be past a float's range (a 3-digit exponent, 200 digits in a row:
# fewer, times at most 1e99, stay below 1e299). The numbers are looked for in the
# text's shape (digits as 0, e/E as e, signs as s, all else a space) with plain
# substring searches: one regular expression for all of it took 3x as long.
_BAD_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_SHAPE = bytes(
    ord("0") if b in b"0123456789" else ord("e") if b in b"eE" else ord("s") if b in b"+-" else 32
    for b in range(256)
)
_NUMBER_PAST_RANGE = (b"e000", b"es000", b"0" * 200)


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects deeper than `limit`, read without
    parsing it (the parsers themselves recurse), strings left out."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the common case, without the scan
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", raw)):
        if match.group() in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def clean_json(raw: bytes) -> bool:
    """Whether JSON text is UTF-8 and holds nothing that could parse into a value
    PostgreSQL cannot store: then none of its values needs `unstorable`'s walk."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if b"\x00" in raw or b"NaN" in raw or b"Infinity" in raw:
        return False
    if b"\\u" in raw and _BAD_ESCAPE.search(raw):
        return False
    shape = raw.translate(_SHAPE)
    return not any(number in shape for number in _NUMBER_PAST_RANGE)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(raw: bytes | str, *, what: str = "body", error: type[AppError] = BadRequest) -> Any:
    """Strict JSON: no NaN or Infinity, not nested deeper than MAX_DEPTH; `error`
    (naming `what`) otherwise."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if too_deep(data):
        raise error(
            f"The {what} nests deeper than {MAX_DEPTH} levels",
            details=[{"field": what, "message": f"nested deeper than {MAX_DEPTH} levels"}],
        )
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise error(
            f"The {what} is not valid JSON: {printable(str(exc))}",
            details=[{"field": what, "message": "is not valid JSON"}],
        ) from exc


def bad_text(text: str) -> str | None:
    """Why PostgreSQL cannot store `text`, or None."""
    if "\x00" in text:
        return "contains a NUL character"
    if _SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate (not UTF-8)"
    return None


def unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first field of `value` that PostgreSQL cannot store (its dotted path and
    why), or None: strings with NUL or lone surrogates, floats that are not numbers."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if (reason := bad_text(item)) is not None:
                return where, reason
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, "is not a finite number"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = str(key)
                if (reason := bad_text(name)) is not None:
                    return f"{where}.{printable(name)}".lstrip("."), f"its name {reason}"
                stack.append((f"{where}.{name}".lstrip("."), child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}.{n}".lstrip("."), child) for n, child in enumerate(item))
    return None


def in_range(moment: datetime) -> datetime:
    """`moment` if PostgreSQL can take it: one with an offset must stay within Python's
    years once moved to UTC (9999-12-31T23:59-23:59 does not); ValueError otherwise."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range: years 1 to 9999 in UTC") from None
    return moment


def printable(value: Any) -> Any:
    """`value` with everything a JSON answer cannot carry replaced: non-finite floats
    become strings, NUL and lone surrogates U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value.replace("\x00", "\ufffd"))
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return printable(str(value))


def jsonable(value: Any) -> Any:
    """`value` as JSON types, the way our answers have always encoded it (FastAPI's
    rules, without FastAPI: the domain returns data, the HTTP kit writes responses):
    UUIDs and times as strings, a whole Decimal as int and any other as float."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {jsonable(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON")
