"""A parsed filter, compiled to one boolean SQL expression with numbered parameters.

The SQL text is made only of the catalog's fixed column expressions and
placeholders; every value (and every custom field key) is a parameter.

Semantics, the same for every kind:
  * a condition on a field that is not set is false, except the negative
    operators (neq, nin, is_not_set), which are true there;
  * text comparisons ignore case;
  * custom fields are read from the row's jsonb; numbers only where the stored
    value is a number, so another organization's field of the same key (and
    another type) can never make the query fail.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from shared.filters.fields import Catalog, Field, Kind, Op
from shared.filters.parse import Condition, Group, Node, TagRef
from shared.sql import Params

_COMPARE = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}


def datetime_text(value: datetime) -> str:
    """A datetime as custom fields store it: UTC, milliseconds, fixed width."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def compile_filter(node: Node | None, catalog: Catalog, params: Params) -> str:
    """The SQL condition for `node` over rows of `catalog.alias` ("true" for no filter)."""
    if node is None:
        return "true"
    return _Compiler(catalog, params).node(node)


class _Compiler:
    def __init__(self, catalog: Catalog, params: Params) -> None:
        self.catalog = catalog
        self.params = params

    def node(self, node: Node) -> str:
        if isinstance(node, Group):
            if not node.children:
                return "true" if node.conjunction == "and" else "false"
            joined = f" {node.conjunction} ".join(self.node(child) for child in node.children)
            return f"({joined})"
        return f"({self.condition(node)})"

    def condition(self, c: Condition) -> str:
        if c.field.kind is Kind.TAGS:
            return self.tags(c.op, c.value)
        if c.field.custom_key is not None:
            return self.custom(c)
        assert c.field.column is not None and c.field.sql_type is not None
        return self.scalar(c.field, c.op, c.value, c.field.column, c.field.sql_type)

    # ---- one value per row -----------------------------------------------------------------

    def scalar(self, field: Field, op: Op, value: Any, x: str, sql_type: str) -> str:
        """Conditions on an expression `x` of type `sql_type`."""
        p = self.params
        if field.kind is Kind.CHOICES:
            return self.array(op, value, x, sql_type)
        if field.kind is Kind.TEXT and not field.lowercase:
            return self.text(op, value, x)
        if op is Op.IS_SET:
            return f"{x} is not null"
        if op is Op.IS_NOT_SET:
            return f"{x} is null"
        if op is Op.EQ:
            return f"{x} = {p.add(value, sql_type)}"
        if op is Op.NEQ:
            return f"{x} is distinct from {p.add(value, sql_type)}"
        if op is Op.IN:
            return f"{x} = any({p.add(list(value), sql_type + '[]')})"
        if op is Op.NIN:
            return f"not coalesce({x} = any({p.add(list(value), sql_type + '[]')}), false)"
        if op is Op.BETWEEN:
            low, high = value
            return f"{x} between {p.add(low, sql_type)} and {p.add(high, sql_type)}"
        if op is Op.CONTAINS:  # only lowercase-stored text reaches here
            return f"strpos({x}, {p.add(value, 'text')}) > 0"
        if op is Op.STARTS_WITH:
            return f"starts_with({x}, {p.add(value, 'text')})"
        return f"{x} {_COMPARE[op]} {p.add(value, sql_type)}"

    def text(self, op: Op, value: Any, x: str) -> str:
        p = self.params
        if op is Op.IS_SET:
            return f"coalesce({x}, '') <> ''"
        if op is Op.IS_NOT_SET:
            return f"coalesce({x}, '') = ''"
        if op is Op.EQ:
            return f"lower({x}) = lower({p.add(value, 'text')})"
        if op is Op.NEQ:
            return f"lower({x}) is distinct from lower({p.add(value, 'text')})"
        if op in (Op.IN, Op.NIN):
            listed = (
                f"lower({x}) in (select lower(v) from unnest({p.add(list(value), 'text[]')}) v)"
            )
            return listed if op is Op.IN else f"not coalesce({listed}, false)"
        if op is Op.CONTAINS:
            return f"strpos(lower({x}), lower({p.add(value, 'text')})) > 0"
        assert op is Op.STARTS_WITH, op
        return f"starts_with(lower({x}), lower({p.add(value, 'text')}))"

    def array(self, op: Op, value: Any, x: str, element_type: str) -> str:
        """A set of choices: an array column (element_type[]) or a jsonb array of text."""
        jsonb = element_type == "jsonb"
        cast = "text[]" if jsonb else element_type + "[]"
        if op is Op.IS_SET:
            return f"jsonb_array_length({x}) > 0" if jsonb else f"cardinality({x}) > 0"
        if op is Op.IS_NOT_SET:
            present = f"jsonb_array_length({x}) > 0" if jsonb else f"cardinality({x}) > 0"
            return f"not coalesce({present}, false)"
        values = self.params.add(list(value), cast)
        if op is Op.CONTAINS:  # all of them
            return f"{x} ?& {values}" if jsonb else f"{x} @> {values}"
        overlap = f"{x} ?| {values}" if jsonb else f"{x} && {values}"
        return overlap if op is Op.IN else f"not coalesce({overlap}, false)"

    # ---- custom fields -------------------------------------------------------------------------

    def custom(self, c: Condition) -> str:
        field, op, value = c.field, c.op, c.value
        column = self.catalog.custom_column
        assert column is not None and field.custom_key is not None
        key = self.params.add(field.custom_key, "text")
        if op is Op.IS_SET:
            return f"{column} ? {key}"
        if op is Op.IS_NOT_SET:
            return f"not ({column} ? {key})"
        kind = field.kind
        if kind is Kind.CHOICES:
            return self.array(op, value, f"({column} -> {key})", "jsonb")
        if kind is Kind.BOOLEAN:
            stored = f"({column} -> {key})"
            wanted = f"to_jsonb({self.params.add(value, 'boolean')})"
            return f"{stored} = {wanted}" if op is Op.EQ else f"{stored} is distinct from {wanted}"
        if kind is Kind.NUMBER:
            number = (
                f"(case when jsonb_typeof({column} -> {key}) = 'number'"
                f" then ({column} ->> {key})::numeric end)"
            )
            return self.scalar(field, op, value, number, "numeric")
        stored = f"({column} ->> {key})"
        if kind in (Kind.DATE, Kind.DATETIME):
            # fixed-width ISO text: byte order is time order, whatever the database's collation
            stored = f'({stored} collate "C")'
        return self.scalar(field, op, _as_stored_text(value), stored, "text")

    # ---- tags ----------------------------------------------------------------------------------

    def tags(self, op: Op, value: TagRef | None) -> str:
        link, alias = self.catalog.tags, self.catalog.alias
        assert link is not None
        linked = (
            f"from {link.table} l where l.organization_id = {alias}.organization_id"
            f" and l.{link.column} = {alias}.id"
        )
        if value is None:  # is_set / is_not_set: any tag at all
            exists = f"exists (select 1 {linked})"
            return exists if op is Op.IS_SET else f"not {exists}"
        matches = []
        if value.ids:
            matches.append(f"l.tag_id = any({self.params.add(list(value.ids), 'uuid[]')})")
        if value.names:
            names = self.params.add(list(value.names), "text[]")
            matches.append(
                "l.tag_id in (select t.id from public.tags t"
                " where t.organization_id = l.organization_id"
                f" and lower(t.name) in (select lower(v) from unnest({names}) v))"
            )
        exists = f"exists (select 1 {linked} and ({' or '.join(matches)}))"
        return f"not {exists}" if op is Op.NIN else exists


def _as_stored_text(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_as_stored_text(v) for v in value)
    if isinstance(value, datetime):
        return datetime_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
