"""Kommo values into what the database's custom field check accepts, without a
database: what does not convert is left out (and reported), never stored wrong."""

from __future__ import annotations

from typing import Any

import pytest

from shared.imports.kommo import mapping
from shared.imports.kommo.client import normalize_subdomain
from tests.fixtures import load


def _field(kommo_type: str, **extra: Any) -> mapping.FieldDef:
    raw = {"id": 1, "name": "F", "type": kommo_type, **extra}
    return mapping.field_def(raw, "leads")[0]


def test_every_documented_type_has_a_place() -> None:
    fields = load("kommo", "leads_custom_fields")["_embedded"]["custom_fields"]
    fields += load("kommo", "contacts_custom_fields")["_embedded"]["custom_fields"]
    mapped = {f["type"]: mapping.field_def(f, "leads") for f in fields}
    as_text = sorted(t for t, (_, unmapped) in mapped.items() if unmapped)
    assert as_text == [
        "category",
        "chained_list",
        "file",
        "legal_entity",
        "linked_entity",
        "smart_address",
        "tracking_data",
    ]
    assert all(d.type == "text" for t, (d, _) in mapped.items() if t in as_text)
    assert mapped["radiobutton"][0].options == ["Low", "High"]


@pytest.mark.parametrize(
    ("kommo_type", "values", "stored"),
    [
        ("numeric", [{"value": "12,5"}], 12.5),
        ("numeric", [{"value": "lots"}], None),
        ("checkbox", [{"value": False}], False),
        ("date", [{"value": "not a time"}], None),
        ("date_time", [{"value": 0}], "1970-01-01T00:00:00Z"),
        ("url", [{"value": "example.com/x"}], "https://example.com/x"),
        ("url", [{"value": "two words"}], None),
        ("text", [{"value": ""}], None),
        ("multitext", [{"value": "@acme", "enum_code": "TELEGRAM"}], "@acme (TELEGRAM)"),
    ],
)
def test_values_convert_or_are_left_out(kommo_type: str, values: list[Any], stored: Any) -> None:
    assert mapping.field_value(_field(kommo_type), values) == stored


def test_choices_outside_the_options_are_left_out() -> None:
    plan = _field("select", enums=[{"id": 1, "value": "Pro"}])
    assert mapping.field_value(plan, [{"value": "Gold"}]) is None
    many = _field("multiselect", enums=[{"id": 1, "value": "A"}, {"id": 2, "value": "B"}])
    assert mapping.field_value(many, [{"value": "B"}, {"value": "Z"}]) == ["B"]
    assert _field("select", enums=[]).type == "text"  # a list without options: text


def test_phones_are_e164_in_the_accounts_region() -> None:
    assert mapping.phone("030 1234567", "DE") == "+49301234567"
    assert mapping.phone("030 1234567", None) is None
    assert mapping.email(" Ann@Example.COM ") == "ann@example.com"
    assert mapping.email("nobody") is None


def test_subdomains() -> None:
    assert normalize_subdomain("https://Acme-2.kommo.com/") == "acme-2"
    for bad in ("", "-acme", "ac_me", "a.b", "x" * 64):
        assert normalize_subdomain(bad) is None
