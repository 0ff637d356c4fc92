-- Imports from Kommo: the connected account, the references that make a re-run
-- update instead of duplicate, and the checkpoints that let a run resume.
--
-- Admins connect a Kommo account (its subdomain and a long-lived token) and
-- read how their imports went; only the importer (the service) writes these
-- tables. The token lives in `private`, out of PostgREST's reach, and is never
-- returned by any API.

create table public.kommo_connections (
  organization_id uuid primary key references public.organizations (id) on delete cascade,
  subdomain text not null check (subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  account_id bigint not null,
  account_name text not null check (length(account_name) <= 200),
  currency text check (currency ~ '^[A-Z]{3}$'),
  connected_by uuid references auth.users (id) on delete set null,
  connected_at timestamptz not null default now()
);
alter table public.kommo_connections enable row level security;
create policy kommo_connections_select on public.kommo_connections for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));

create table private.kommo_tokens (
  organization_id uuid primary key
    references public.kommo_connections (organization_id) on delete cascade,
  token text not null check (length(token) between 1 and 4096)
);

-- One row per record an import brought in: (organization, source, entity, the
-- source's id) → our id. A re-run finds its rows here and updates them.
create table public.import_external_refs (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  source text not null check (source in ('kommo')),
  entity text not null check (entity in (
    'pipeline', 'stage', 'custom_field', 'company', 'contact', 'lead', 'note', 'task')),
  external_id text not null check (length(external_id) between 1 and 100),
  internal_id uuid not null,
  job_id uuid,
  updated_at timestamptz not null default now(),
  primary key (organization_id, source, entity, external_id)
);
alter table public.import_external_refs enable row level security;
create policy import_external_refs_select on public.import_external_refs for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));

-- Where a Kommo import stands, per entity: the next page to read, whether the
-- entity is done, and what it skipped (with reasons, the first 500).
create table public.kommo_import_checkpoints (
  organization_id uuid not null,
  job_id uuid not null,
  entity text not null check (length(entity) between 1 and 50),
  next_page integer not null default 1 check (next_page >= 1),
  done boolean not null default false,
  skipped jsonb not null default '[]' check (jsonb_typeof(skipped) = 'array'),
  skipped_count integer not null default 0,
  updated_at timestamptz not null default now(),
  primary key (organization_id, job_id, entity),
  constraint kommo_import_checkpoints_job_fk foreign key (organization_id, job_id)
    references public.import_jobs (organization_id, id) on delete cascade
);
alter table public.kommo_import_checkpoints enable row level security;
create policy kommo_import_checkpoints_select on public.kommo_import_checkpoints
  for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));

-- Which runner holds a job, until when: a runner that dies leaves it to the next
-- once the lease ends. `failures` counts runs in a row that Kommo did not answer.
create table private.kommo_import_leases (
  job_id uuid primary key references public.import_jobs (id) on delete cascade,
  organization_id uuid not null,
  claim uuid not null,
  lease_until timestamptz not null,
  failures integer not null default 0
);
