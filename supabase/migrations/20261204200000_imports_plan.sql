-- A CSV import's plan: every staged row resolved once for the whole file, before any
-- write (shared/imports/plan.py), so the writes can run on several connections at once.
--
-- The plan holds each good row's normalized values, the record it matched (target),
-- its group's first line (leader: rows sharing a key are one group) and its batch.
-- A group's rows share one batch, and rows of different groups that share a key value
-- (a chain of duplicates) are all put in batch -1, which one connection writes; so
-- batches written at the same time never touch the same record or key. A batch's
-- rows are deleted in the transaction that writes them: what is left is the work left
-- (a crashed runner resumes from it).
--
-- Unlogged, like the staging it is made from: a database crash empties both, and the
-- job then fails with "upload again".

create unlogged table private.import_plan (
  job_id uuid not null,
  batch integer not null,
  line integer not null,
  organization_id uuid not null,
  leader integer not null,
  target uuid,
  name text,
  email text,
  phone text,
  domain text,
  company_id uuid,
  custom_fields jsonb not null,
  dup boolean not null,  -- a key of the row is another row's too
  primary key (job_id, batch, line)
);
alter table private.import_plan enable row level security;  -- no policy: the owner only
revoke all on private.import_plan from public;

-- A job's plan goes with it, as its staged rows do.
create or replace function app.drop_import_rows() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from private.import_rows r where r.job_id = old.id;
  delete from private.import_plan p where p.job_id = old.id;
  return null;
end;
$$;
