"""A CSV record's values as they would be staged, per field type, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from shared.imports.mapping import FieldDef, resolve
from shared.imports.normalize import Normalizer, RowError, domain, email, phone

FIELDS = [
    FieldDef("size", "Size", "number", None),
    FieldDef("vip", "VIP", "boolean", None),
    FieldDef("plan", "Plan", "select", ["free", "pro"]),
    FieldDef("topics", "Topics", "multiselect", ["sales", "support", "billing"]),
    FieldDef("since", "Since", "date", None),
    FieldDef("backup", "Backup line", "phone", None),
    FieldDef("billing", "Billing", "email", None),
    FieldDef("site", "Site", "url", None),  # checked by the database when merged
]


def convert(key: str, text: str) -> tuple[Any, str | None]:
    """One custom field's cell → (its staged value, the row's error)."""
    mapping = resolve(entity="contacts", header=["Name", key], fields=FIELDS, override=None)
    normalizer = Normalizer(entity="contacts", mapping=mapping, fields=FIELDS, region="DE")
    _, custom, error = normalizer.row(["Ada", text])
    return custom.get(key), error


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("size", "1 200", 1200),
        ("size", "3,5", 3.5),
        ("size", "2.0", 2),
        ("vip", "Yes", True),
        ("vip", "off", False),
        ("plan", "pro", "pro"),
        ("topics", "sales| support", ["sales", "support"]),
        ("topics", "billing;sales", ["billing", "sales"]),
        ("topics", "support,billing", ["support", "billing"]),
        ("since", "2024-02-29", "2024-02-29"),
        ("backup", "030 1234567", "+49301234567"),
        ("billing", " Ada@Example.COM ", "ada@example.com"),
        ("site", "example.com/x", "example.com/x"),
    ],
)
def test_custom_field_values_become_what_their_type_stores(key: str, text: str, value: Any) -> None:
    assert convert(key, text) == (value, None)


@pytest.mark.parametrize(
    ("key", "text", "error"),
    [
        ("size", "many", "custom_fields.size: must be a number"),
        ("size", "nan", "custom_fields.size: must be a number"),
        ("size", "-inf", "custom_fields.size: must be a number"),
        ("vip", "maybe", "custom_fields.vip: must be true or false"),
        ("plan", "gold", 'custom_fields.plan: must be one of ["free", "pro"]'),
        ("topics", "sales|hr", "custom_fields.topics: must be a list of options from"),
        ("since", "29.02.2024", "custom_fields.since: must be a date as YYYY-MM-DD"),
        ("backup", "call me", "custom_fields.backup: phone: 'call me' is not a"),
        ("billing", "ada@", "custom_fields.billing: email: "),
    ],
)
def test_a_value_of_the_wrong_type_is_the_row_error(key: str, text: str, error: str) -> None:
    value, reason = convert(key, text)
    assert value is None
    assert reason is not None and reason.startswith(error), reason


def test_phones_keep_e164_and_national_numbers_take_the_default_region() -> None:
    assert phone("+14155550123", None) == "+14155550123"
    assert phone("(415) 555-0123", "US") == "+14155550123"
    assert phone("0151 23456789", "DE") == "+4915123456789"
    with pytest.raises(RowError, match="is not a phone number"):
        phone("call me", "DE")
    with pytest.raises(RowError, match="not a possible phone number"):
        phone("+1 23456", None)


def test_emails_are_lowercased_and_international_ones_validated() -> None:
    assert email("  Ada@Example.COM") == "ada@example.com"
    assert email("Zoë@Bücher.de") == "zoë@bücher.de"
    with pytest.raises(RowError, match=r"^email: "):
        email("not an address")


def test_domains_lose_scheme_path_port_and_www() -> None:
    assert domain("https://www.Acme.com:8443/about") == "acme.com"
    assert domain("shop.acme.co.uk") == "shop.acme.co.uk"
    with pytest.raises(RowError, match="is not a web domain"):
        domain("acme")
