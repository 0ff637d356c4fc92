"""Keyset (cursor) pagination: stable while rows are inserted, fast at any depth.

A list is ordered by one sort key and then by id; a cursor is the (value, id)
of the last row of a page, opaque to the caller (base64 of JSON), and carries
the sort it was made for. The next page is "the rows after that one in this
order", so rows inserted meanwhile never shift or repeat what the caller has.
Missing values sort last in both directions.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from shared import safejson
from shared.errors import AppError, Unprocessable
from shared.safejson import in_range
from shared.sql import Params

MAX_LIMIT = 200
DEFAULT_LIMIT = 50

ValueKind = Literal["datetime", "date", "text", "number"]


@dataclass(frozen=True)
class SortKey:
    sql: str  # e.g. "c.created_at"
    kind: ValueKind
    sql_type: str  # for the cursor's parameter, e.g. "timestamptz"
    nullable: bool = False


@dataclass(frozen=True)
class Sort:
    name: str
    key: SortKey
    descending: bool

    @property
    def token(self) -> str:
        return f"-{self.name}" if self.descending else self.name

    def order_by(self, id_sql: str) -> str:
        # asc puts nulls last by itself; "nulls last" on a NOT NULL key would only keep
        # the planner from walking the (organization_id, key desc, id) index
        direction = (
            "desc nulls last"
            if self.descending and self.key.nullable
            else ("desc" if self.descending else "asc")
        )
        return f"{self.key.sql} {direction}, {id_sql}"


def parse_sort(raw: str | None, keys: Mapping[str, SortKey], default: str) -> Sort:
    """`name` ascending or `-name` descending, among `keys`; 422 naming `sort` otherwise."""
    token = raw or default
    name = token.removeprefix("-")
    key = keys.get(name)
    if key is None:
        allowed = ", ".join(sorted(keys))
        raise Unprocessable(
            f"sort: must be one of {allowed} (prefix - for descending)",
            details=[{"field": "sort", "message": f"unknown sort {token!r}"}],
        )
    return Sort(name=name, key=key, descending=token.startswith("-"))


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise Unprocessable(
            f"limit: must be between 1 and {MAX_LIMIT}",
            details=[{"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"}],
        )
    return limit


# ---- cursors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    value: Any
    id: UUID


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decode_value(kind: ValueKind, raw: Any) -> Any:
    if raw is None:
        return None
    if kind == "datetime":
        return in_range(datetime.fromisoformat(raw))
    if kind == "date":
        return date.fromisoformat(raw)
    if kind == "number":
        number = Decimal(raw)
        if not number.is_finite():
            raise ValueError("a number expected")
        return number
    if not isinstance(raw, str):
        raise ValueError("text expected")
    return raw


def encode_cursor(sort: Sort, row: Mapping[str, Any], value_column: str) -> str:
    payload = {"s": sort.token, "v": _encode_value(row[value_column]), "id": str(row["id"])}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, sort: Sort) -> Cursor:
    invalid = Unprocessable(
        "cursor: not a cursor of this list; use next_cursor from the previous page",
        details=[{"field": "cursor", "message": "invalid cursor"}],
    )
    try:
        payload = safejson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(payload, dict) or safejson.unstorable(payload) is not None:
            raise invalid
        if payload.get("s") != sort.token:
            raise Unprocessable(
                f"cursor: it was made for sort {payload.get('s')!r}, not {sort.token!r}",
                details=[{"field": "cursor", "message": "the cursor belongs to another sort"}],
            )
        return Cursor(value=_decode_value(sort.key.kind, payload["v"]), id=UUID(payload["id"]))
    except Unprocessable:  # the cursor of another sort: said as such
        raise
    except (AppError, ValueError, KeyError, TypeError, OverflowError, binascii.Error) as exc:
        raise invalid from exc


def after_cursor(sort: Sort, cursor: Cursor | None, id_sql: str, params: Params) -> str:
    """The SQL condition for rows after `cursor` in `sort` order (ties broken by id)."""
    if cursor is None:
        return "true"
    x = sort.key.sql
    later_id = f"{id_sql} > {params.add(cursor.id, 'uuid')}"
    if cursor.value is None:  # already among the rows without a value, which come last
        return f"({x} is null and {later_id})"
    value = params.add(cursor.value, sort.key.sql_type)
    beyond = "<" if sort.descending else ">"
    after = f"({x} {beyond} {value} or ({x} = {value} and {later_id}))"
    if sort.key.nullable:
        return f"({after} or {x} is null)"
    # the redundant bound is what lets the index scan start at the cursor
    return f"({x} {beyond}= {value} and {after})"
