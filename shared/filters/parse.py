"""The filter language, parsed: a JSON tree checked against a catalog into typed nodes.

    {"and": [node, …]} | {"or": [node, …]} | {"field": name, "op": op, "value": …}

Every problem is reported with its place in the tree ("filter.and[1].value")
and the field it concerns, so the caller gets one 422 that says what to fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from shared.errors import Unprocessable
from shared.filters.fields import OPS, Catalog, Field, Kind, Op

MAX_DEPTH = 5
MAX_CONDITIONS = 50
MAX_VALUES = 500
MAX_TEXT = 1000

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$"
)


@dataclass(frozen=True)
class TagRef:
    """Tags named by id or by name (names match whatever their case)."""

    ids: tuple[UUID, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class Condition:
    field: Field
    op: Op
    value: Any  # typed by the field's kind; a tuple for in/nin/between/contains-all


@dataclass(frozen=True)
class Group:
    conjunction: Literal["and", "or"]
    children: tuple[Node, ...]


Node = Condition | Group


class _Invalid(Exception):
    pass


class _Parser:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.problems: list[dict[str, str]] = []
        self.conditions = 0

    def problem(self, path: str, message: str) -> None:
        self.problems.append({"field": path, "message": message})

    def node(self, raw: Any, path: str, depth: int) -> Node | None:
        if not isinstance(raw, dict):
            self.problem(path, "must be an object: a condition or an and/or group")
            return None
        groups = [key for key in ("and", "or") if key in raw]
        if groups:
            if len(raw) != 1:
                self.problem(path, "a group has exactly one key, 'and' or 'or'")
                return None
            conjunction: Literal["and", "or"] = "and" if groups[0] == "and" else "or"
            children = raw[conjunction]
            if not isinstance(children, list):
                self.problem(f"{path}.{conjunction}", "must be a list of conditions or groups")
                return None
            if depth >= MAX_DEPTH:
                self.problem(path, f"groups nest at most {MAX_DEPTH} deep")
                return None
            parsed = [
                self.node(child, f"{path}.{conjunction}[{i}]", depth + 1)
                for i, child in enumerate(children)
            ]
            return Group(conjunction, tuple(p for p in parsed if p is not None))
        return self.condition(raw, path)

    def condition(self, raw: dict[str, Any], path: str) -> Condition | None:
        unknown = sorted(set(raw) - {"field", "op", "value"})
        if unknown or "field" not in raw or "op" not in raw:
            self.problem(path, "a condition is {field, op, value}, or a group is {and|or: [...]}")
            return None
        self.conditions += 1
        if self.conditions == MAX_CONDITIONS + 1:
            self.problem(path, f"a filter has at most {MAX_CONDITIONS} conditions")
        name, op_name = raw["field"], raw["op"]
        spec = self.catalog.fields.get(name) if isinstance(name, str) else None
        if spec is None:
            self.problem(f"{path}.field", f"unknown field {name!r}")
            return None
        try:
            op = Op(op_name)
        except ValueError:
            self.problem(f"{path}.op", f"unknown operator {op_name!r}")
            return None
        if op not in OPS[spec.kind]:
            allowed = ", ".join(sorted(OPS[spec.kind]))
            self.problem(f"{path}.op", f"{spec.name} ({spec.kind}) takes {allowed}; not {op}")
            return None
        try:
            value = self.value(spec, op, raw.get("value"))
        except _Invalid as exc:
            self.problem(f"{path}.value", f"{spec.name}: {exc}")
            return None
        return Condition(spec, op, value)

    def value(self, spec: Field, op: Op, raw: Any) -> Any:
        if op in (Op.IS_SET, Op.IS_NOT_SET):
            if raw is not None:
                raise _Invalid(f"{op} takes no value")
            return None
        if spec.kind is Kind.TAGS:
            return self.tags(op, raw)
        if op in (Op.IN, Op.NIN) or (op is Op.CONTAINS and spec.kind is Kind.CHOICES):
            if op is Op.CONTAINS and not isinstance(raw, list):
                raw = [raw]
            if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_VALUES:
                raise _Invalid(f"{op} takes a list of 1 to {MAX_VALUES} values")
            return tuple(dict.fromkeys(self.scalar(spec, item) for item in raw))
        if op is Op.BETWEEN:
            if not isinstance(raw, list) or len(raw) != 2:
                raise _Invalid("between takes [low, high]")
            low, high = self.scalar(spec, raw[0]), self.scalar(spec, raw[1])
            if low > high:
                raise _Invalid("between takes [low, high] with low <= high")
            return (low, high)
        return self.scalar(spec, raw)

    def scalar(self, spec: Field, raw: Any) -> Any:
        kind = spec.kind
        if kind in (Kind.TEXT, Kind.CHOICE, Kind.CHOICES):
            if not isinstance(raw, str) or len(raw) > MAX_TEXT:
                raise _Invalid(f"expects text (at most {MAX_TEXT} characters)")
            if spec.options is not None and raw not in spec.options:
                raise _Invalid(f"expects one of {list(spec.options)}, not {raw!r}")
            return raw.lower() if spec.lowercase else raw
        if kind is Kind.NUMBER:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise _Invalid("expects a number")
            if isinstance(raw, float) and not math.isfinite(raw):
                raise _Invalid("expects a finite number")
            return Decimal(str(raw))
        if kind is Kind.DATE:
            if not isinstance(raw, str) or not _DATE.match(raw):
                raise _Invalid("expects a date as YYYY-MM-DD")
            try:
                return date.fromisoformat(raw)
            except ValueError as exc:
                raise _Invalid("expects a date as YYYY-MM-DD") from exc
        if kind is Kind.DATETIME:
            return parse_datetime(raw)
        if kind is Kind.BOOLEAN:
            if not isinstance(raw, bool):
                raise _Invalid("expects true or false")
            return raw
        if kind is Kind.UUID:
            if not isinstance(raw, str):
                raise _Invalid("expects an id (UUID)")
            try:
                return UUID(raw)
            except ValueError as exc:
                raise _Invalid("expects an id (UUID)") from exc
        raise AssertionError(kind)  # pragma: no cover - every kind is handled above

    def tags(self, op: Op, raw: Any) -> TagRef:
        items = [raw] if op is Op.HAS_TAG else raw
        if op is Op.HAS_TAG and not isinstance(raw, str):
            raise _Invalid("has_tag takes one tag, by name or id")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_VALUES:
            raise _Invalid(f"{op} takes a list of 1 to {MAX_VALUES} tags, by name or id")
        ids: list[UUID] = []
        names: list[str] = []
        for item in items:
            if not isinstance(item, str) or not 1 <= len(item) <= MAX_TEXT:
                raise _Invalid("a tag is its name or its id")
            try:
                ids.append(UUID(item))
            except ValueError:
                names.append(item)
        return TagRef(tuple(ids), tuple(names))


def parse_datetime(raw: Any) -> datetime:
    """An ISO 8601 date and time; without an offset it is UTC (as in the database)."""
    if not isinstance(raw, str) or not _DATETIME.match(raw):
        raise _Invalid("expects an ISO 8601 date and time, e.g. 2025-01-31T09:30:00Z")
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise _Invalid("expects an ISO 8601 date and time, e.g. 2025-01-31T09:30:00Z") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_filter(raw: Any, catalog: Catalog) -> Node | None:
    """The typed tree of a filter (None for no filter), or a 422 naming every problem."""
    if raw is None:
        return None
    parser = _Parser(catalog)
    node = parser.node(raw, "filter", depth=1)
    if parser.problems:
        first = parser.problems[0]
        more = len(parser.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise Unprocessable(
            f"Invalid filter: {first['field']}: {first['message']}{suffix}",
            details=parser.problems,
        )
    return node
