"""Staged rows → contacts or companies, set by set.

One call merges the staged rows of a range of lines in a few statements, whatever
their number:

1. companies named by contacts are found by domain (a row with a domain) or by
   name, case-insensitively (a row without); missing ones are created;
2. each row is matched to an existing record by the import's keys (contacts:
   e-mail and/or phone; companies: domain and/or name). A row whose e-mail is one
   contact's and phone another's is rejected;
3. rows of the range that share a key and match nothing are grouped under their
   first line; rows matching the same record are grouped under it;
4. each group's values are folded by the mode: `skip` takes the first row of a
   new group and leaves matched records alone; `update_empty` fills only what is
   empty (the earliest value in the file wins); `overwrite` replaces what the file
   has a value for (the latest wins). An empty cell never erases anything;
5. new groups are inserted, matched groups updated (only when something changes);
6. the import's tags are linked to every record created or updated.

A range whose statements fail (a custom field value the database refuses, a
conflict two rows of the range create together) is rolled back to its savepoint
and split in two, down to the single row, which is then rejected with the
database's message: one bad row never fails its neighbours, and clean ranges
(nearly all) stay set-based. Ranges run in file order, so a later range sees what
an earlier one stored: duplicates across ranges match as existing records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg

from shared.db import Connection
from shared.errors import from_postgres
from shared.imports.jobs import Entity

Mode = Literal["skip", "update_empty", "overwrite"]
OUTCOMES = ("created", "updated", "unchanged", "merged", "skipped", "rejected")


@dataclass(frozen=True)
class Spec:
    table: str
    values: tuple[str, ...]  # the record's columns an import writes
    keys: dict[str, str]  # match key → the expression on the table (and the staged row)
    unique: frozenset[str]  # keys the table holds unique (a plain join finds at most one)
    extra: str  # extra columns and values of an insert


SPECS: dict[Entity, Spec] = {
    "contacts": Spec(
        table="contacts",
        values=("name", "email", "phone", "company_id", "custom_fields"),
        keys={"email": "{}.email", "phone": "{}.phone"},
        unique=frozenset({"email", "phone"}),
        extra="source",
    ),
    "companies": Spec(
        table="companies",
        values=("name", "domain", "phone", "custom_fields"),
        keys={"domain": "{}.domain", "name": "lower({}.name)"},
        unique=frozenset({"domain"}),
        extra="",
    ),
}
SOURCE = "import"

# private.time_ordered_uuid() inlined: a function call per row cost more than the row's
# insert into the temp table (its `set search_path` keeps the planner from inlining it)
_NEW_ID = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
  placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
  from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"""

_SETUP = f"""
create temp table if not exists import_chunk (
  line integer primary key, name text, email text, phone text, domain text, company_id uuid,
  custom_fields jsonb, target uuid, conflict boolean, leader integer
) on commit drop;
create temp table if not exists import_groups (
  new_id uuid not null default {_NEW_ID}, target uuid, leader integer,
  lines integer[], name text, email text, phone text, domain text, company_id uuid,
  custom_fields jsonb, outcome text
) on commit drop;
"""

_RANGE = (
    "s.job_id = $1 and s.organization_id = $2 and s.line >= $3 and s.line < $4 and s.error is null"
)

# A company by domain when the row has one, else by name (the oldest of that name).
_COMPANY_ID = """coalesce(
  (select c.id from public.companies c
    where c.organization_id = $2 and c.domain = s.company_domain),
  (select c.id from public.companies c where c.organization_id = $2 and s.company_domain is null
      and lower(c.name) = lower(s.company) order by c.created_at, c.id limit 1))"""

_NEW_COMPANIES = f"""
insert into public.companies (organization_id, name, domain)
select distinct on (coalesce(s.company_domain, lower(s.company)))
       $2, coalesce(s.company, s.company_domain), s.company_domain
  from private.import_rows s
 where {_RANGE} and coalesce(s.company, s.company_domain) is not null
   and {_COMPANY_ID} is null
 order by coalesce(s.company_domain, lower(s.company)), s.line
on conflict (organization_id, domain) where domain is not null do nothing
"""


def _match_sql(spec: Spec, keys: list[str], companies: bool) -> str:
    # Each key's record is a scalar subquery: a probe of the (organization, key) index
    # per staged row whatever the statistics say. A join let stale statistics (the
    # staging table just COPYed, an organization's contacts just merged) pick a plan
    # scanning all the organization's records per row.
    ids = []
    for i, key in enumerate(keys):
        expr = spec.keys[key]
        # a unique key: ordered by itself, which only its index gives unsorted: the
        # planner takes that index even when it believes the organization has no rows
        order = expr.format("t") if key in spec.unique else "t.created_at, t.id"
        first = f" order by {order} limit 1"
        ids.append(
            f"(select t.id from public.{spec.table} t where t.organization_id = $2"
            f" and {expr.format('t')} = {expr.format('s')} and {expr.format('t')} is not null"
            f"{first}) as k{i}"
        )
    target = f"coalesce({', '.join(f'k{i}' for i in range(len(keys)))})" if ids else "null::uuid"
    conflict = " or ".join(
        f"(k{a} is not null and k{b} is not null and k{a} <> k{b})"
        for a in range(len(keys))
        for b in range(a + 1, len(keys))
    )
    leaders = ", ".join(
        f"case when {spec.keys[k].format('m')} is not null then"
        f" min(m.line) over (partition by {spec.keys[k].format('m')}) end"
        for k in keys
    )
    company = _COMPANY_ID if companies else "null::uuid"
    return f"""
insert into import_chunk (line, name, email, phone, domain, company_id, custom_fields,
                          target, conflict, leader)
select m.line, m.name, m.email, m.phone, m.domain, m.company_id, m.custom_fields,
       m.target, m.conflict, least({leaders + ", " if leaders else ""}m.line)
  from (select k.*, {target} as target, {conflict or "false"} as conflict
          from (select s.line, s.name, s.email, s.phone, s.domain, {company} as company_id,
                       coalesce(s.custom_fields::jsonb, '{{}}'::jsonb) as custom_fields
                       {"".join(", " + i for i in ids)}
                  from private.import_rows s
                 where {_RANGE} offset 0) k) m
"""


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


def _groups_sql(spec: Spec, mode: Mode) -> str:
    folded = ", ".join(f"{_fold(c, mode)}" for c in spec.values)
    return f"""
insert into import_groups (target, leader, lines, {", ".join(spec.values)}, outcome)
select target, min(leader), array_agg(line order by line), {folded},
       case when target is null then 'created' end
  from import_chunk where not conflict
 group by target, case when target is null then leader end
"""


def _singles_sql(spec: Spec) -> str:
    """The groups of a chunk whose rows all stand alone (no duplicate, no match,
    no conflict: a fresh file's usual chunk): one row each, nothing to fold."""
    cols = ", ".join(spec.values)
    return f"""
insert into import_groups (target, leader, lines, {cols}, outcome)
select null, line, array[line], {cols}, 'created' from import_chunk
"""


_ALONE = """select not exists (select 1 from import_chunk
                         where target is not null or conflict or leader <> line)"""


def _insert_sql(spec: Spec) -> str:
    cols = ", ".join(spec.values)
    extra_col = f", {spec.extra}" if spec.extra else ""
    extra_val = ", $2::text" if spec.extra else ""
    return f"""
with created as (
  insert into public.{spec.table} (id, organization_id, {cols}{extra_col})
  select g.new_id, $1, {", ".join(f"g.{c}" for c in spec.values)}{extra_val}
    from import_groups g where g.target is null order by g.leader
  on conflict do nothing returning id)
update import_groups g set outcome = 'rejected'
 where g.target is null and not exists (select 1 from created c where c.id = g.new_id)
"""


def _update_sql(spec: Spec, mode: Mode) -> str:
    def value(c: str) -> str:
        if c == "custom_fields":
            return (
                "g.custom_fields || t.custom_fields"
                if mode == "update_empty"
                else ("t.custom_fields || g.custom_fields")
            )
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
_OUTCOMES = """
select l.line, coalesce(g.target, g.new_id) as record_id,
       case when g.outcome = 'rejected' then 'rejected'
            when g.target is not null and $1 = 'skip' then 'skipped'
            when g.target is not null then g.outcome
            when l.line = g.leader then g.outcome
            when $1 = 'skip' then 'skipped'
            else 'merged' end as outcome
  from import_groups g, unnest(g.lines) as l(line)
union all
select c.line, null, 'rejected' from import_chunk c where c.conflict
"""

# The outcomes counted in the database (a job's chunk); only rejected lines come back.
_COUNTS = f"""
select outcome, count(*)::integer as n,
       array_agg(line) filter (where outcome = 'rejected') as lines
  from ({_OUTCOMES}) o
 group by outcome
"""

_REJECT = """
update private.import_rows s set error = r.error
  from unnest($3::integer[], $4::text[]) as r(line, error)
 where s.job_id = $1 and s.organization_id = $2 and s.line = r.line
"""

_CONFLICT_REASON = {
    "contacts": "the e-mail belongs to one contact and the phone to another",
    "companies": "the domain belongs to one company and the name to another",
}
_TAKEN_REASON = "another row or record already has this {keys}"


class Merger:
    """Merges one job's staged rows; counts what happened to the lines merged.

    `companies`: contacts name companies (a company column is mapped).
    `keep_lines`: remember each line's outcome and record (a dry run's preview)."""

    def __init__(
        self,
        *,
        conn: Connection,
        job_id: UUID,
        organization_id: UUID,
        entity: Entity,
        mode: Mode,
        keys: list[str],
        tag_ids: list[UUID],
        companies: bool,
        keep_lines: bool = False,
    ) -> None:
        self.conn, self.job_id, self.organization_id = conn, job_id, organization_id
        self.entity, self.mode, self.keys, self.tag_ids = entity, mode, keys, tag_ids
        self.companies, self.keep_lines = companies, keep_lines
        self.counts: Counter[str] = Counter()
        self.lines: dict[int, tuple[str, UUID | None]] = {}
        spec = SPECS[entity]
        self._extra = (SOURCE,) if spec.extra else ()
        self._match = _match_sql(spec, keys, companies)
        self._groups = _groups_sql(spec, mode)
        self._singles = _singles_sql(spec)
        self._insert = _insert_sql(spec)
        self._update = _update_sql(spec, mode)

    async def merge(self, lo: int, hi: int) -> None:
        """Merge the staged rows of lines [lo, hi), splitting the range on a refusal."""
        try:
            async with self.conn.transaction():
                counts, outcomes = await self._merge(lo, hi)
        except asyncpg.PostgresError as exc:
            if from_postgres(exc) is None and not isinstance(exc, asyncpg.DataError):
                raise
            lines = await self.conn.fetch(
                "select line from private.import_rows s where " + _RANGE + " order by line",
                self.job_id,
                self.organization_id,
                lo,
                hi,
            )
            if len(lines) <= 1:
                if lines:
                    await self._reject({lines[0]["line"]: str(exc.args[0] if exc.args else exc)})
                return
            middle = lines[len(lines) // 2]["line"]
            await self.merge(lo, middle)
            await self.merge(middle, hi)
            return
        counts.pop("rejected", None)  # counted from the staged rows' errors
        self.counts.update(counts)
        for r in outcomes:
            self.lines[r["line"]] = (r["outcome"], r["record_id"])

    async def _merge(self, lo: int, hi: int) -> tuple[Counter[str], list[asyncpg.Record]]:
        conn, job, org = self.conn, self.job_id, self.organization_id
        await conn.execute(_SETUP)
        await conn.execute("truncate import_chunk, import_groups")
        if self.companies:
            await conn.execute(_NEW_COMPANIES, job, org, lo, hi)
        await conn.execute(self._match, job, org, lo, hi)
        await conn.execute(self._singles if await conn.fetchval(_ALONE) else self._groups)
        await conn.execute(self._insert, org, *self._extra)
        if self.mode != "skip":
            await conn.execute(self._update, org)
        if self.keep_lines:
            outcomes = await conn.fetch(_OUTCOMES, self.mode)
            counts = Counter(r["outcome"] for r in outcomes)
            rejected = [r["line"] for r in outcomes if r["outcome"] == "rejected"]
        else:
            outcomes = []
            totals = await conn.fetch(_COUNTS, self.mode)
            counts = Counter({r["outcome"]: r["n"] for r in totals})
            rejected = [line for r in totals for line in r["lines"] or ()]
        if rejected:
            conflicts = {
                r["line"] for r in await conn.fetch("select line from import_chunk where conflict")
            }
            await self._reject(
                {
                    line: _CONFLICT_REASON[self.entity]
                    if line in conflicts
                    else _TAKEN_REASON.format(keys=" or ".join(self.keys))
                    for line in rejected
                }
            )
        if self.tag_ids and self.entity == "contacts":
            await conn.execute(
                "insert into public.contact_tags (organization_id, contact_id, tag_id)"
                " select $1, coalesce(g.target, g.new_id), t"
                " from import_groups g, unnest($2::uuid[]) t"
                " where g.outcome in ('created', 'updated', 'unchanged')"
                " on conflict do nothing",
                org,
                self.tag_ids,
            )
        return counts, outcomes

    async def _reject(self, errors: dict[int, str]) -> None:
        await self.conn.execute(
            _REJECT, self.job_id, self.organization_id, list(errors), list(errors.values())
        )


def as_counts(counts: Counter[str], rejected: int) -> dict[str, Any]:
    return {name: counts.get(name, 0) for name in OUTCOMES[:-1]} | {"rejected": rejected}
