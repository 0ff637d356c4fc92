-- Imports: one job row per import, a CSV file or a Kommo account.
--
-- import_jobs holds an import's whole state: what it reads (source, entity,
-- options such as the column mapping or the dedupe mode), where it stands
-- (status, progress counts), and how it ended (report, error). The importer
-- functions (admins only) create and cancel jobs; the workers that run them
-- move them along as the service. Progress is broadcast on the organization's
-- Realtime topic (shared/imports/jobs.py).
--
-- Admins read and create their organization's jobs and may ask for a cancel;
-- only the service moves status, progress and report.

create table public.import_jobs (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  source text not null check (source in ('csv', 'kommo')),
  -- what a CSV file holds; a Kommo import reads every entity
  entity text check (entity in ('contacts', 'companies')),
  status text not null default 'pending' check (
    status in ('pending', 'running', 'completed', 'failed', 'cancelled')),
  options jsonb not null default '{}' check (jsonb_typeof(options) = 'object'),
  progress jsonb not null default '{}' check (jsonb_typeof(progress) = 'object'),
  report jsonb,
  error jsonb,
  cancel_requested boolean not null default false,
  created_by uuid references auth.users (id) on delete set null,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  check ((source = 'csv') = (entity is not null))
);
create index import_jobs_org_created_idx on public.import_jobs (organization_id, created_at desc, id);
-- The runners' scan: jobs waiting or in flight.
create index import_jobs_active_idx on public.import_jobs (created_at)
  where status in ('pending', 'running');
alter table public.import_jobs enable row level security;
create policy import_jobs_select on public.import_jobs for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
create policy import_jobs_insert on public.import_jobs for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('admin'))
    and status = 'pending' and progress = '{}' and report is null and error is null
    and not cancel_requested);
create trigger import_jobs_keep_org before update on public.import_jobs
  for each row execute function app.keep_organization();

-- A member asks for a cancel through this definer function rather than an
-- UPDATE policy, so no user can write status, progress or report.
create function app.request_import_cancel(job uuid) returns boolean
language sql security definer set search_path = '' as $$
  update public.import_jobs
     set cancel_requested = true, updated_at = now()
   where id = job and status in ('pending', 'running')
     and organization_id in (select app.org_ids_with_role('admin'))
  returning true
$$;
revoke all on function app.request_import_cancel(uuid) from public;
grant execute on function app.request_import_cancel(uuid) to authenticated;
