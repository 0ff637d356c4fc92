"""One filter language for list endpoints, campaign audiences and automation conditions.

A filter is a JSON tree of `and` / `or` groups over conditions
`{"field", "op", "value"}`; `parse_filter` checks it against the fields of an
entity (a `Catalog`, standard columns plus the organization's custom fields)
and `compile_filter` turns it into one parameterised SQL condition.
"""

from shared.filters.compile import compile_filter, datetime_text
from shared.filters.fields import OPS, Catalog, Field, Kind, Op, TagLink, custom_field
from shared.filters.parse import Condition, Group, Node, TagRef, parse_filter

__all__ = [
    "OPS",
    "Catalog",
    "Condition",
    "Field",
    "Group",
    "Kind",
    "Node",
    "Op",
    "TagLink",
    "TagRef",
    "compile_filter",
    "custom_field",
    "datetime_text",
    "parse_filter",
]
