"""A batch of planned rows → contacts or companies, set by set.

The plan (shared/imports/plan.py) has matched every row and grouped duplicates for
the whole file; one call writes one batch of it (or a range of its lines) in a few
statements, whatever their number:

1. the batch's rows are taken from the plan (deleted: what is left is the work left);
2. each group's values are folded by the mode: `skip` takes the first row of a new
   group and leaves matched records alone; `update_empty` fills only what is empty
   (the earliest value in the file wins); `overwrite` replaces what the file has a
   value for (the latest wins). An empty cell never erases anything;
3. new groups are inserted. One whose key was taken since the plan (an inbound
   message created the contact meanwhile: the unique index catches it) is matched
   again to that record, so it is updated (or skipped) rather than lost;
4. matched groups are updated (only when something changes);
5. the import's tags are linked to every record created or updated.

A range whose statements fail (a custom field value the database refuses, a
conflict two rows create together) is rolled back to its savepoint and split in
two, down to the single row, which is then rejected with the database's message:
one bad row never fails its neighbours, and clean ranges (nearly all) stay
set-based. When a split cuts a group, the rows after the cut update the record
the rows before it created.
"""

from __future__ import annotations

from collections import Counter
from uuid import UUID

import asyncpg

from shared.db import Connection
from shared.errors import from_postgres
from shared.imports.jobs import Entity
from shared.imports.spec import SOURCE, SPECS, TAKEN_REASON, Mode, Spec, disagree, probes
from shared.imports.sql import OUTCOMES_SQL, fold_sql, insert_sql, update_sql

# private.time_ordered_uuid() inlined: a function call per row cost more than the row's
# insert into the temp table (its `set search_path` keeps the planner from inlining it)
_NEW_ID = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
  placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
  from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"""

_SETUP = f"""
create temp table if not exists import_chunk (
  line integer primary key, name text, email text, phone text, domain text, company_id uuid,
  custom_fields jsonb, target uuid, leader integer
) on commit drop;
create temp table if not exists import_groups (
  new_id uuid not null default {_NEW_ID}, target uuid, leader integer, first integer,
  lines integer[], name text, email text, phone text, domain text, company_id uuid,
  custom_fields jsonb, outcome text
) on commit drop;
truncate import_chunk, import_groups;
"""

_RANGE = "p.job_id = $1 and p.batch = $2 and p.line >= $3 and p.line < $4"

_TAKE = f"""
with taken as (delete from private.import_plan p where {_RANGE} returning p.*)
insert into import_chunk (line, name, email, phone, domain, company_id, custom_fields,
                          target, leader)
select line, name, email, phone, domain, company_id, custom_fields, target, leader from taken
"""

# A split cut a group: its rows after the cut update the record the rows before created.
_ADOPT = """
update private.import_plan p set target = g.new_id
  from import_groups g
 where p.job_id = $1 and p.batch = $2 and p.line >= $3
   and p.target is null and p.leader = g.leader and g.target is null and g.outcome = 'created'
"""

# the insert cleans its custom fields itself (shared/imports/sql.py: insert_sql)
_CLEANED = "select set_config('app.custom_fields_cleaned', $1, true)"

# Every row of the range stands alone (no duplicate, no match: a fresh file's batch)?
_ALONE = f"""select not exists (select 1 from private.import_plan p
                         where {_RANGE} and (p.target is not null or p.leader <> p.line))"""

_COUNTS = f"""
select outcome, count(*)::integer as n,
       array_agg(line) filter (where outcome = 'rejected') as lines
  from ({OUTCOMES_SQL}) o
 group by outcome
"""

_REJECT = """
update private.import_rows s set error = r.error
  from unnest($3::integer[], $4::text[]) as r(line, error)
 where s.job_id = $1 and s.organization_id = $2 and s.line = r.line
"""

_TAG = """
insert into public.contact_tags (organization_id, contact_id, tag_id)
select $1, coalesce(g.target, g.new_id), t from import_groups g, unnest($2::uuid[]) t
 where g.outcome in ('created', 'updated', 'unchanged')
on conflict do nothing
"""


def _rematch_sql(spec: Spec, keys: list[str]) -> str:
    """New groups whose insert found a key taken: the record that holds it now."""
    ids = probes(spec, keys, row="g", org="$1")
    found = [f"k{i}" for i in range(len(keys))]
    return f"""
update import_groups g set target = m.target, outcome = null
  from (select k.new_id, coalesce({", ".join(found)}) as target, {disagree(found)} as conflict
          from (select g.new_id{"".join(f", {p} as {k}" for p, k in zip(ids, found, strict=True))}
                  from import_groups g where g.target is null and g.outcome = 'rejected') k) m
 where g.new_id = m.new_id and m.target is not null and not m.conflict
"""


class Merger:
    """Writes one job's planned batches; counts what happened to the lines written.

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
        keep_lines: bool = False,
    ) -> None:
        self.conn, self.job_id, self.organization_id = conn, job_id, organization_id
        self.entity, self.mode, self.keys, self.tag_ids = entity, mode, keys, tag_ids
        self.keep_lines = keep_lines
        self.counts: Counter[str] = Counter()
        self.rows = 0  # planned rows written or rejected
        self.lines: dict[int, tuple[str, UUID | None]] = {}
        spec = SPECS[entity]
        self._extra = (SOURCE,) if spec.extra else ()
        self._groups = fold_sql(spec, mode, alone=False)
        # rows alone go from the plan to their groups in one statement
        self._singles = (
            f"with taken as (delete from private.import_plan p where {_RANGE} returning p.*) "
            + fold_sql(spec, mode, alone=True, rows="taken")
        )
        self._insert = insert_sql(spec)
        self._rematch = _rematch_sql(spec, keys)
        self._update = update_sql(spec, mode)

    async def merge(self, batch: int, lo: int = 0, hi: int = 2**31 - 1) -> None:
        """Write the planned rows of `batch` on lines [lo, hi), splitting on a refusal."""
        try:
            async with self.conn.transaction():
                counts, outcomes = await self._merge(batch, lo, hi)
        except asyncpg.DeadlockDetectedError:
            # another writer's rows met ours on a key no plan saw (one not matched on):
            # it went on; this range is written again and now waits for it
            await self.merge(batch, lo, hi)
            return
        except asyncpg.PostgresError as exc:
            if from_postgres(exc) is None and not isinstance(exc, asyncpg.DataError):
                raise
            await self._split(batch, lo, hi, str(exc.args[0] if exc.args else exc))
            return
        self.rows += counts.total()
        counts.pop("rejected", None)  # counted from the staged rows' errors
        self.counts.update(counts)
        for r in outcomes:
            self.lines[r["line"]] = (r["outcome"], r["record_id"])

    async def _split(self, batch: int, lo: int, hi: int, message: str) -> None:
        lines = await self.conn.fetch(
            f"select line from private.import_plan p where {_RANGE} order by line",
            self.job_id,
            batch,
            lo,
            hi,
        )
        if len(lines) > 1:
            middle = lines[len(lines) // 2]["line"]
            await self.merge(batch, lo, middle)
            await self.merge(batch, middle, hi)
        elif lines:
            line = lines[0]["line"]
            async with self.conn.transaction():
                await self.conn.execute(
                    "delete from private.import_plan where job_id = $1 and batch = $2"
                    " and line = $3",
                    self.job_id,
                    batch,
                    line,
                )
                await self._reject({line: message})
            self.rows += 1

    async def _merge(
        self, batch: int, lo: int, hi: int
    ) -> tuple[Counter[str], list[asyncpg.Record]]:
        conn, job, org = self.conn, self.job_id, self.organization_id
        await conn.execute(_SETUP)
        if await conn.fetchval(_ALONE, job, batch, lo, hi):
            await conn.execute(self._singles, job, batch, lo, hi)
        else:
            await conn.execute(_TAKE, job, batch, lo, hi)
            await conn.execute(self._groups)
        await conn.execute(_CLEANED, "on")
        await conn.execute(self._insert, org, *self._extra)
        await conn.execute(_CLEANED, "off")
        await conn.execute(self._rematch, org)
        if self.mode != "skip":
            await conn.execute(self._update, org)
        if self.keep_lines:
            outcomes = await conn.fetch(OUTCOMES_SQL, self.mode)
            counts = Counter(r["outcome"] for r in outcomes)
            rejected = [r["line"] for r in outcomes if r["outcome"] == "rejected"]
        else:
            outcomes = []
            totals = await conn.fetch(_COUNTS, self.mode)
            counts = Counter({r["outcome"]: r["n"] for r in totals})
            rejected = [line for r in totals for line in r["lines"] or ()]
        if rejected:
            reason = TAKEN_REASON.format(keys=" or ".join(self.keys))
            await self._reject(dict.fromkeys(rejected, reason))
        if self.tag_ids and self.entity == "contacts":
            await conn.execute(_TAG, org, self.tag_ids)
        if lo > 0 or hi < 2**31 - 1:  # a split's range: later lines of its groups remain
            await conn.execute(_ADOPT, job, batch, hi)
        return counts, outcomes

    async def _reject(self, errors: dict[int, str]) -> None:
        await self.conn.execute(
            _REJECT, self.job_id, self.organization_id, list(errors), list(errors.values())
        )
