"""A job's staged rows resolved once for the whole file, into `private.import_plan`.

Before anything is written to its records, a few statements over all the rows:

1. companies named by contacts are found by domain (a row with a domain) or by
   name, case-insensitively (a row without); missing ones are created;
2. each row is matched to an existing record by the import's keys (contacts:
   e-mail and/or phone; companies: domain and/or name). A row whose e-mail is one
   contact's and phone another's is rejected here;
3. rows sharing a key are one group: a row's leader is the first line sharing one
   of its keys; rows matching the same record are one group under it;
4. each group is given a batch: new groups by their leader's line (so a fresh file's
   batches are runs of lines), matched ones by their record. Groups that share a key
   value with another group (a chain of duplicates: a's e-mail is b's, b's phone c's)
   all go to batch -1, written by one connection.

So batches never share a record or a key: shared/imports/merge.py writes them on
several connections at once, and the result does not depend on how the file is cut.
"""

from __future__ import annotations

from uuid import UUID

from shared.db import Connection
from shared.imports.jobs import Entity
from shared.imports.spec import CONFLICT_REASON, SPECS, Spec, disagree, probes

TANGLED = -1  # the batch of groups that share a key with another group
_CONFLICT = -2  # rows rejected by the plan, for the moment it takes to reject them

_STAGED = "s.job_id = $1 and s.organization_id = $2 and s.error is null"

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
 where {_STAGED} and coalesce(s.company, s.company_domain) is not null
   and {_COMPANY_ID} is null
 order by coalesce(s.company_domain, lower(s.company)), s.line
on conflict (organization_id, domain) where domain is not null do nothing
"""

_REJECT_CONFLICTS = f"""
with gone as (delete from private.import_plan p where p.job_id = $1 and p.batch = {_CONFLICT}
              returning p.line)
update private.import_rows s set error = $3
  from gone where s.job_id = $1 and s.organization_id = $2 and s.line = gone.line
"""


def _plan_sql(spec: Spec, keys: list[str], companies: bool) -> str:
    ids = probes(spec, keys, row="s", org="$2")
    found = [f"k{i}" for i in range(len(keys))]
    exprs = [spec.keys[k].format("m") for k in keys]
    leaders = "".join(
        f"case when {e} is not null then min(m.line) over (partition by {e}) end, " for e in exprs
    )
    dups = " or ".join(
        f"coalesce(count(*) filter (where {e} is not null) over (partition by {e}) > 1, false)"
        for e in exprs
    )
    company = _COMPANY_ID if companies else "null::uuid"
    # $3: the batches of new groups (by leader), over which matched ones are hashed
    return f"""
insert into private.import_plan (job_id, batch, line, organization_id, leader, target,
                                 name, email, phone, domain, company_id, custom_fields, dup)
select $1, case when p.conflict then {_CONFLICT}
                when p.target is not null then (hashtext(p.target::text) & 2147483647) % $3
                else p.leader / $4 end,
       p.line, $2, p.leader, p.target, p.name, p.email, p.phone, p.domain, p.company_id,
       p.custom_fields, p.dup
  from (select m.*, least({leaders}m.line) as leader, {dups or "false"} as dup
          from (select k.*, coalesce({", ".join(found) or "null"}) as target,
                       {disagree(found)} as conflict
                  from (select s.line, s.name, s.email, s.phone, s.domain,
                               {company} as company_id,
                               coalesce(s.custom_fields::jsonb, '{{}}'::jsonb) as custom_fields
                               {"".join(f", {p} as {k}" for p, k in zip(ids, found, strict=True))}
                          from private.import_rows s
                         where {_STAGED} and s.line >= $5 offset 0) k) m) p
"""


def _tangled_sql(spec: Spec, keys: list[str]) -> str:
    """Groups sharing a key value with another group → batch -1. Only rows with a
    duplicated key can be in such a group (a fresh file has none: nothing to sort)."""
    group = "coalesce(d.target::text, d.leader::text)"
    exprs = [spec.keys[k].format("d") for k in keys]
    shared = " or ".join(
        f"coalesce(min({group}) filter (where {e} is not null) over (partition by {e})"
        f" <> max({group}) filter (where {e} is not null) over (partition by {e}), false)"
        for e in exprs
    )
    return f"""
with d as (select * from private.import_plan where job_id = $1 and dup and batch >= 0),
bad as (select distinct t.target, t.leader
          from (select d.target, d.leader, {shared} as tangled from d) t where t.tangled)
update private.import_plan p set batch = {TANGLED}
 where p.job_id = $1 and p.batch >= 0
   and (p.target in (select target from bad where target is not null)
        or (p.target is null and p.leader in (select leader from bad where target is null)))
"""


async def plan(
    *,
    conn: Connection,
    job_id: UUID,
    organization_id: UUID,
    entity: Entity,
    keys: list[str],
    companies: bool,
    batch_rows: int,
    from_line: int = 0,
) -> tuple[int, int]:
    """Plan the job's staged rows from `from_line` on (a job an earlier runner began
    chunk by chunk); (the number of batches ≥ 0, the rows planned). Batch -1 comes on
    top of them."""
    spec = SPECS[entity]
    if companies:
        await conn.execute(_NEW_COMPANIES, job_id, organization_id)
    last = await conn.fetchval(
        "select max(line) from private.import_rows where job_id = $1", job_id
    )
    batches = (last or 0) // batch_rows + 1
    planned = await conn.execute(
        _plan_sql(spec, keys, companies), job_id, organization_id, batches, batch_rows, from_line
    )
    rejected = await conn.execute(
        _REJECT_CONFLICTS, job_id, organization_id, CONFLICT_REASON[entity]
    )
    await conn.execute(_tangled_sql(spec, keys), job_id)
    return batches, int(planned.split()[-1]) - int(rejected.split()[-1])
