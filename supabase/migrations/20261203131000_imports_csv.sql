-- CSV imports: the uploaded file's rows, staged in the database for the job's runner.
--
-- The upload parses the file (encoding, delimiter, quoting), maps and normalizes
-- each row in Python (phonenumbers, e-mail rules, custom field types) and COPYs
-- the rows here in the transaction that creates the job: a job exists only with
-- its rows, and no file storage is needed. The runner merges them into contacts or
-- companies set by set (shared/imports/merge.py) and keeps only the rejected rows,
-- with their reason, for the error report.
--
-- Unlogged: staging is written once and read a few times, and WAL for it would
-- double the upload's I/O. A database crash empties it; the runner then fails the
-- job with "upload the file again" (a runner crash loses nothing).
-- In private: only the functions (the owner role) read or write it.

create unlogged table private.import_rows (
  job_id uuid not null,
  line integer not null,  -- the record's line in the file (the header is line 1)
  organization_id uuid not null,
  name text,
  email text,
  phone text,
  domain text,
  company text,
  company_domain text,
  custom_fields text,  -- JSON (binary COPY takes text; the merge casts it)
  raw text[] not null,  -- the record as read, for the error report
  error text,  -- set: the row is rejected, for this reason
  primary key (job_id, line)
);
alter table private.import_rows enable row level security;  -- no policy: the owner only
revoke all on private.import_rows from public;

-- A job's staged rows go with it (an organization's deletion cascades to its jobs).
create function app.drop_import_rows() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from private.import_rows r where r.job_id = old.id;
  return null;
end;
$$;
revoke all on function app.drop_import_rows() from public;
create trigger import_jobs_drop_rows after delete on public.import_jobs
  for each row execute function app.drop_import_rows();

-- Merging a group of rows' custom fields: later values win (jsonb ||, in order).
create aggregate private.jsonb_merge(jsonb) (sfunc = jsonb_concat, stype = jsonb, initcond = '{}');
revoke all on function private.jsonb_merge(jsonb) from public;

-- Ids of imported records: time-ordered (the layout of a UUIDv7: 48 bits of
-- milliseconds, then random bits), so a million new contacts land at the right
-- edge of every index that ends in the id (the primary key, (organization_id, id),
-- created_at/updated_at/activity orders) instead of on a random page each.
create function private.time_ordered_uuid() returns uuid
language sql volatile set search_path = '' as $$
  select encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint)
                                from 3)
              from 1 for 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;
revoke all on function private.time_ordered_uuid() from public;
