"""The statements that write a batch's groups (shared/imports/merge.py), per entity and
mode: fold the rows into groups, insert the new, update the matched, say each line's
outcome. They work on the transaction's temp tables `import_chunk` (the batch's rows)
and `import_groups` (one row per group)."""

from __future__ import annotations

from shared.imports.spec import Mode, Spec


def _fold(column: str, mode: Mode) -> str:
    if column == "custom_fields":
        # jsonb_merge: later wins, so update_empty folds newest-first
        order = "line desc" if mode == "update_empty" else "line"
        if mode == "skip":
            return "(array_agg(custom_fields order by line))[1]"
        return f"private.jsonb_merge(custom_fields order by {order})"
    if mode == "skip":
        return f"(array_agg({column} order by line))[1]"
    order = "line" if mode == "update_empty" else "line desc"
    return f"(array_agg({column} order by {order}) filter (where {column} is not null))[1]"


def fold_sql(spec: Spec, mode: Mode, *, alone: bool, rows: str = "import_chunk") -> str:
    """The batch's groups from its `rows`. `alone`: every row stands alone (no
    duplicate, no match: a fresh file's usual batch), one group per row, nothing to fold."""
    cols = ", ".join(spec.values)
    into = f"insert into import_groups (target, leader, first, lines, {cols}, outcome)"
    if alone:
        return f"{into} select null, line, line, array[line], {cols}, 'created' from {rows}"
    folded = ", ".join(_fold(c, mode) for c in spec.values)
    # `first`: the group's first line present (its leader may be a rejected row)
    return f"""{into}
select target, min(leader), min(line), array_agg(line order by line), {folded},
       case when target is null then 'created' end
  from {rows}
 group by target, case when target is null then leader end
"""


def insert_sql(spec: Spec) -> str:
    cols = ", ".join(spec.values)
    extra_col = f", {spec.extra}" if spec.extra else ""
    extra_val = ", $2::text" if spec.extra else ""
    values = ", ".join(f"g.{c}" for c in spec.values)
    clean, join = "", ""
    if spec.cleans:
        # app.clean_custom_fields once per distinct value, not per row (the row trigger
        # is skipped while app.custom_fields_cleaned is on); a refusal fails the batch
        # as the trigger's would, and the split finds the row
        clean = f"""clean as materialized (
  select d.raw, app.clean_custom_fields($1, '{spec.cleans}', d.raw, null) as cleaned
    from (select distinct g.custom_fields as raw from import_groups g where g.target is null) d),
"""
        values = values.replace("g.custom_fields", "c.cleaned")
        join = " join clean c on c.raw = g.custom_fields"
    return f"""
with {clean}created as (
  insert into public.{spec.table} (id, organization_id, {cols}{extra_col})
  select g.new_id, $1, {values}{extra_val}
    from import_groups g{join} where g.target is null order by g.leader
  on conflict do nothing returning id)
update import_groups g set outcome = 'rejected'
 where g.target is null and not exists (select 1 from created c where c.id = g.new_id)
"""


def update_sql(spec: Spec, mode: Mode) -> str:
    def value(c: str) -> str:
        if c == "custom_fields":
            if mode == "update_empty":
                return "g.custom_fields || t.custom_fields"
            return "t.custom_fields || g.custom_fields"
        return f"coalesce(t.{c}, g.{c})" if mode == "update_empty" else f"coalesce(g.{c}, t.{c})"

    cols = spec.values
    return f"""
with wanted as (
  select g.new_id, t.id, {", ".join(f"{value(c)} as {c}" for c in cols)},
         ({", ".join(f"t.{c}" for c in cols)}) as before
    from import_groups g join public.{spec.table} t on t.organization_id = $1 and t.id = g.target),
changed as (
  update public.{spec.table} t set {", ".join(f"{c} = w.{c}" for c in cols)}
    from wanted w
   where t.organization_id = $1 and t.id = w.id
     and w.before is distinct from ({", ".join(f"w.{c}" for c in cols)})
  returning t.id)
update import_groups g
   set outcome = case when exists (select 1 from changed c where c.id = g.target)
                      then 'updated' else 'unchanged' end
 where g.target is not null
"""


# Each line's outcome: a group's first line carries the group's; the others were
# folded into it (merged) or, in skip mode, skipped. Matched groups in skip mode: skipped.
OUTCOMES_SQL = """
select l.line, coalesce(g.target, g.new_id) as record_id,
       case when g.outcome = 'rejected' then 'rejected'
            when g.target is not null and $1 = 'skip' then 'skipped'
            when g.target is not null then g.outcome
            when l.line = g.first then g.outcome
            when $1 = 'skip' then 'skipped'
            else 'merged' end as outcome
  from import_groups g, unnest(g.lines) as l(line)
"""
