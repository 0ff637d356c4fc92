"""A filter that cannot be compiled is a 422 naming the place in the tree and the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from shared.crm.entities import CONTACTS
from shared.errors import Unprocessable
from shared.filters import Catalog, Condition, Group, Op, TagRef, parse_filter
from shared.filters.parse import MAX_CONDITIONS, MAX_DEPTH

CATALOG: Catalog = CONTACTS.catalog.with_custom_fields(
    [
        {"key": "seats", "type": "number", "options": None},
        {"key": "plan", "type": "select", "options": ["free", "pro"]},
        {"key": "renews_on", "type": "date", "options": None},
        {"key": "billing_email", "type": "email", "options": None},
    ]
)
SEATS_OK = {"field": "custom_fields.seats", "op": "gt", "value": 3}


def problems(raw: Any) -> list[dict[str, str]]:
    with pytest.raises(Unprocessable) as raised:
        parse_filter(raw, CATALOG)
    details: list[dict[str, str]] = raised.value.details
    assert raised.value.message.startswith(f"Invalid filter: {details[0]['field']}: ")
    return details


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"field": "nmae", "op": "eq", "value": "x"}, "filter.field", "unknown field 'nmae'"),
        ({"field": "name", "op": "like", "value": "x"}, "filter.op", "unknown operator 'like'"),
        (
            {"field": "custom_fields.seats", "op": "contains", "value": 1},
            "filter.op",
            "custom_fields.seats (number) takes",
        ),
        (
            {"field": "custom_fields.seats", "op": "gt", "value": "3"},
            "filter.value",
            "custom_fields.seats: expects a number",
        ),
        (
            {"field": "custom_fields.seats", "op": "eq", "value": True},
            "filter.value",
            "custom_fields.seats: expects a number",
        ),
        (
            {"field": "custom_fields.plan", "op": "eq", "value": "gold"},
            "filter.value",
            "custom_fields.plan: expects one of ['free', 'pro'], not 'gold'",
        ),
        (
            {"field": "custom_fields.renews_on", "op": "lt", "value": "2026-02-30"},
            "filter.value",
            "custom_fields.renews_on: expects a date as YYYY-MM-DD",
        ),
        (
            {"field": "created_at", "op": "gte", "value": "2026-01-01"},
            "filter.value",
            "created_at: expects an ISO 8601 date and time",
        ),
        (
            {"field": "company_id", "op": "eq", "value": "acme"},
            "filter.value",
            "company_id: expects an id (UUID)",
        ),
        ({"field": "name", "op": "in", "value": []}, "filter.value", "name: in takes a list"),
        (
            {"field": "custom_fields.seats", "op": "between", "value": [5, 1]},
            "filter.value",
            "low <= high",
        ),
        ({"field": "name", "op": "is_set", "value": "x"}, "filter.value", "is_set takes no value"),
        (
            {"field": "tags", "op": "has_tag", "value": ["a"]},
            "filter.value",
            "has_tag takes one tag",
        ),
        ({"field": "name", "op": "eq"}, "filter.value", "name: expects text"),
        ({"field": "name"}, "filter", "a condition is {field, op, value}"),
        ({"and": [SEATS_OK], "or": []}, "filter", "exactly one key"),
        ({"and": SEATS_OK}, "filter.and", "must be a list"),
        ([SEATS_OK], "filter", "must be an object"),
        (
            {"and": [SEATS_OK, {"or": [{"field": "x", "op": "eq", "value": 1}]}]},
            "filter.and[1].or[0].field",
            "unknown field 'x'",
        ),
    ],
)
def test_problems_name_their_place_and_field(raw: Any, field: str, message: str):
    [problem] = problems(raw)
    assert problem["field"] == field
    assert message in problem["message"]


def test_every_problem_is_reported_at_once():
    found = problems(
        {"or": [{"field": "nope", "op": "eq", "value": 1}, {**SEATS_OK, "value": "many"}]}
    )
    assert [p["field"] for p in found] == ["filter.or[0].field", "filter.or[1].value"]


def test_size_limits():
    deep: Any = SEATS_OK
    for _ in range(MAX_DEPTH):
        deep = {"and": [deep]}
    assert "nest at most" in problems(deep)[0]["message"]
    wide = {"or": [SEATS_OK] * (MAX_CONDITIONS + 1)}
    assert "at most 50 conditions" in problems(wide)[0]["message"]


def test_values_are_typed_for_the_compiler():
    tag = "0b6bd9e5-6f1c-4cb9-9b0e-3f0e7c7f7e11"
    node = parse_filter(
        {
            "and": [
                {"field": "custom_fields.seats", "op": "between", "value": [1, 2.5]},
                {"field": "created_at", "op": "gt", "value": "2026-01-31T10:00:00"},
                {"field": "last_activity_at", "op": "lt", "value": "2026-01-31T10:00:00+01:00"},
                {"field": "custom_fields.renews_on", "op": "eq", "value": "2026-02-01"},
                {"field": "email", "op": "eq", "value": "Ana@Example.COM"},
                {"field": "tags", "op": "has_any_tag", "value": ["VIP", tag]},
                {"field": "opted_out_channels", "op": "contains", "value": "sms"},
            ]
        },
        CATALOG,
    )
    assert isinstance(node, Group) and node.conjunction == "and"
    values = [c.value for c in node.children if isinstance(c, Condition)]
    assert values == [
        (Decimal(1), Decimal("2.5")),
        datetime(2026, 1, 31, 10, tzinfo=UTC),  # no offset: UTC
        datetime(2026, 1, 31, 10, tzinfo=timezone(timedelta(hours=1))),
        date(2026, 2, 1),
        "ana@example.com",  # e-mail addresses are stored lowercase
        TagRef(ids=(UUID(tag),), names=("VIP",)),
        ("sms",),
    ]
    assert [c.op for c in node.children if isinstance(c, Condition)][-1] is Op.CONTAINS


def test_no_filter_and_empty_groups():
    assert parse_filter(None, CATALOG) is None
    assert parse_filter({"or": []}, CATALOG) == Group("or", ())
