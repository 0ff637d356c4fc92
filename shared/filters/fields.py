"""What can be filtered on: field kinds, the operators each kind accepts, and catalogs.

A catalog lists the fields of one entity (contacts, deals …): standard columns
with the SQL expression that reads them, custom fields (read from the row's
`custom_fields` jsonb, typed by their definition) and, where the entity can be
tagged, the link table that holds its tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    CHOICE = "choice"  # one of a fixed set: enum columns, select fields
    CHOICES = "choices"  # a set of a fixed set: multiselect fields, channel lists
    UUID = "uuid"
    TAGS = "tags"


class Op(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    IN = "in"
    NIN = "nin"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    IS_SET = "is_set"
    IS_NOT_SET = "is_not_set"
    HAS_TAG = "has_tag"
    HAS_ANY_TAG = "has_any_tag"


_PRESENCE = {Op.IS_SET, Op.IS_NOT_SET}
_EQUALITY = {Op.EQ, Op.NEQ, Op.IN, Op.NIN}
_ORDER = {Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN}

OPS: dict[Kind, frozenset[Op]] = {
    Kind.TEXT: frozenset(_EQUALITY | _PRESENCE | {Op.CONTAINS, Op.STARTS_WITH}),
    Kind.NUMBER: frozenset(_EQUALITY | _ORDER | _PRESENCE),
    Kind.DATE: frozenset(_EQUALITY | _ORDER | _PRESENCE),
    Kind.DATETIME: frozenset(_ORDER | _PRESENCE),
    Kind.BOOLEAN: frozenset({Op.EQ, Op.NEQ} | _PRESENCE),
    Kind.CHOICE: frozenset(_EQUALITY | _PRESENCE),
    Kind.CHOICES: frozenset({Op.CONTAINS, Op.IN, Op.NIN} | _PRESENCE),
    Kind.UUID: frozenset(_EQUALITY | _PRESENCE),
    Kind.TAGS: frozenset({Op.HAS_TAG, Op.HAS_ANY_TAG, Op.NIN} | _PRESENCE),
}


@dataclass(frozen=True)
class Field:
    """One filterable field. Exactly one of `column` / `custom_key` is set, except for tags."""

    name: str
    kind: Kind
    column: str | None = None  # SQL reading a standard column, e.g. "c.email"
    sql_type: str | None = None  # the column's type, for casting parameters
    custom_key: str | None = None  # the key in custom_fields
    options: tuple[str, ...] | None = None  # the allowed values of a choice
    lowercase: bool = False  # stored lowercase (e-mail): compare exactly, lowercasing the input


@dataclass(frozen=True)
class TagLink:
    """Where an entity's tags are: e.g. public.contact_tags keyed by contact_id."""

    table: str
    column: str


@dataclass(frozen=True)
class Catalog:
    """The filterable fields of one entity, read through the alias of its table."""

    alias: str
    fields: Mapping[str, Field]
    tags: TagLink | None = None
    custom_column: str | None = None  # e.g. "c.custom_fields"

    def with_custom_fields(self, definitions: Iterable[Mapping[str, Any]]) -> Catalog:
        """This catalog plus the organization's custom fields of the entity."""
        fields = dict(self.fields)
        for definition in definitions:
            spec = custom_field(definition)
            fields[spec.name] = spec
        return Catalog(
            alias=self.alias,
            fields=fields,
            tags=self.tags,
            custom_column=self.custom_column,
        )


_CUSTOM_KINDS: dict[str, Kind] = {
    "text": Kind.TEXT,
    "url": Kind.TEXT,
    "email": Kind.TEXT,
    "phone": Kind.TEXT,
    "number": Kind.NUMBER,
    "date": Kind.DATE,
    "datetime": Kind.DATETIME,
    "boolean": Kind.BOOLEAN,
    "select": Kind.CHOICE,
    "multiselect": Kind.CHOICES,
}


def custom_field(definition: Mapping[str, Any]) -> Field:
    """The filter field of a custom field definition (key, type, options)."""
    key = str(definition["key"])
    options = definition.get("options")
    return Field(
        name=f"custom_fields.{key}",
        kind=_CUSTOM_KINDS[str(definition["type"])],
        custom_key=key,
        options=tuple(options) if options else None,
        lowercase=definition["type"] == "email",
    )
