"""The mapping's suggestion and overrides, and the file sniffing, without a database."""

from __future__ import annotations

import io

import pytest

from shared.errors import Unprocessable
from shared.imports.csvfile import NotCsv, records, sniff
from shared.imports.mapping import FieldDef, resolve, suggest
from shared.imports.normalize import Normalizer

FIELDS = [
    FieldDef("plan", "Subscription plan", "select", ["free", "pro"]),
    FieldDef("name", "Nickname", "text", None),  # a custom key equal to a standard field
]


def test_header_names_suggest_fields_synonyms_and_custom_fields() -> None:
    header = ["E-Mail", "Phone number", " Company ", "First name", "Last Name", "SUBSCRIPTION PLAN"]
    header += ["Mobile", "Notes"]
    assert suggest(entity="contacts", header=header, fields=FIELDS) == {
        0: "email",
        1: "phone",
        2: "company",
        3: "first_name",
        4: "last_name",
        5: "plan",
        # "Mobile" is a phone too, but the first column wins; "Notes" is nothing
    }


def test_overrides_replace_the_suggestion_and_unknown_targets_are_named() -> None:
    header = ["Email", "Plan", "Nick"]
    mapping = resolve(
        entity="contacts",
        header=header,
        fields=FIELDS,
        override={"Email": None, "Nick": "custom_fields.name"},
    )
    assert mapping.as_json() == {"Email": None, "Plan": "plan", "Nick": "custom_fields.name"}
    with pytest.raises(Unprocessable) as refused:
        resolve(entity="contacts", header=header, fields=FIELDS, override={"Plan": "tier"})
    assert refused.value.details == [
        {"field": "mapping.Plan", "message": "there is no field 'tier'"}
    ]
    with pytest.raises(Unprocessable, match="more than one column"):
        resolve(entity="contacts", header=header, fields=FIELDS, override={"Nick": "email"})


def test_first_and_last_names_make_the_name_and_long_records_are_row_errors() -> None:
    data = b"First name;Last name;Plan\nAda;Lovelace;pro\n;Solo;\nA;B;free;extra\n"
    fmt = sniff(io.BytesIO(data))
    assert (fmt.encoding, fmt.delimiter) == ("utf-8", ";")
    mapping = resolve(entity="contacts", header=fmt.header, fields=FIELDS, override=None)
    normalize = Normalizer(entity="contacts", mapping=mapping, fields=FIELDS, region=None)
    rows = [normalize.row(fields) for _, fields in records(io.BytesIO(data), fmt)]
    assert [(values[0], custom, error) for values, custom, error in rows] == [
        ("Ada Lovelace", {"plan": "pro"}, None),
        ("Solo", {}, None),
        ("A B", {"plan": "free"}, "the record has 4 fields, the header 3"),
    ]


def test_an_unterminated_quote_is_not_a_csv() -> None:
    data = b'Name,Email\n"Ada,ada@example.com\n'
    fmt = sniff(io.BytesIO(data))
    with pytest.raises(NotCsv, match="Line 2"):
        list(records(io.BytesIO(data), fmt))
