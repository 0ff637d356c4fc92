-- Tenancy: organizations, members and roles, profiles, API keys, and the
-- security-definer helpers every policy uses.
--
-- Every table turns row level security on beside its `create table`, so it is
-- closed from the start whatever applies this file (the Supabase CLI or
-- `connectgain db migrate`); its policies follow once the helpers they call exist.
--
-- Schemas:
--   app      helpers called by policies and functions; not exposed by PostgREST
--   private  secrets (key hashes, channel credentials); no API role may touch it

create schema if not exists app;
revoke all on schema app from public;
grant usage on schema app to authenticated, service_role;
alter default privileges in schema app revoke execute on functions from public;

create schema if not exists private;
revoke all on schema private from public;

create type public.member_role as enum ('agent', 'manager', 'admin', 'owner');

-- ---- generic row helpers ---------------------------------------------------------------

create function app.touch_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

-- Rows never change organization: "moving" one would hand it to another tenant.
create function app.keep_organization() returns trigger
language plpgsql set search_path = '' as $$
begin
  if new.organization_id is distinct from old.organization_id then
    raise exception 'A row cannot move to another organization' using errcode = 'CG422';
  end if;
  return new;
end;
$$;

create function app.valid_timezone(tz text) returns boolean
language plpgsql immutable set search_path = '' as $$
begin
  perform now() at time zone tz;
  return true;
exception when others then
  return false;
end;
$$;

-- Drops every policy of a table and turns its row level security on: for a later
-- migration that rewrites a table's policies from a clean slate.
create function app.reset_policies(tbl regclass) returns void
language plpgsql set search_path = '' as $$
declare
  pol name;
begin
  for pol in select polname from pg_catalog.pg_policy where polrelid = tbl loop
    execute format('drop policy %I on %s', pol, tbl);
  end loop;
  execute format('alter table %s enable row level security', tbl);
end;
$$;

-- ---- tables ----------------------------------------------------------------------------

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 200),
  slug text not null unique check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and length(slug) <= 80),
  timezone text not null default 'UTC' check (app.valid_timezone(timezone)),
  business_hours jsonb not null default '{}'::jsonb check (jsonb_typeof(business_hours) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.organizations enable row level security;
create trigger organizations_touch before update on public.organizations
  for each row execute function app.touch_updated_at();

create table public.organization_members (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.member_role not null default 'agent',
  created_at timestamptz not null default now(),
  unique (organization_id, user_id)
);
alter table public.organization_members enable row level security;
create index organization_members_user_idx on public.organization_members (user_id, organization_id);
create trigger organization_members_keep_org before update on public.organization_members
  for each row execute function app.keep_organization();

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  full_name text,
  email text,
  avatar_url text,
  timezone text not null default 'UTC' check (app.valid_timezone(timezone)),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.profiles enable row level security;
create trigger profiles_touch before update on public.profiles
  for each row execute function app.touch_updated_at();

create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 100),
  prefix text not null,
  scopes text[] not null default '{read}'
    check (cardinality(scopes) > 0 and scopes <@ array['read', 'write']),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
alter table public.api_keys enable row level security;
create index api_keys_org_idx on public.api_keys (organization_id, created_at desc);
create trigger api_keys_keep_org before update on public.api_keys
  for each row execute function app.keep_organization();

-- The key's hash lives where no API role can read it.
create table private.api_key_hashes (
  api_key_id uuid primary key references public.api_keys (id) on delete cascade,
  hash bytea not null unique
);

-- ---- who is calling ---------------------------------------------------------------------
-- An API-key transaction is marked by connectgain.api_key_id, which only the
-- functions' own connection sets (PostgREST and Realtime cannot set it); the
-- organization and scopes are then read from the key's row, never from claims.

create function app.api_key_id() returns uuid
language sql stable set search_path = '' as $$
  select nullif(current_setting('connectgain.api_key_id', true), '')::uuid
$$;

create function app.org_ids() returns setof uuid
language sql stable security definer set search_path = '' as $$
  select m.organization_id from public.organization_members m
   where m.user_id = (select auth.uid())
  union all
  select k.organization_id from public.api_keys k
   where k.id = (select app.api_key_id()) and k.revoked_at is null
$$;

-- Organizations where the caller ranks at least min_role. A key with the write
-- scope acts as a manager; keys never administer the organization.
create function app.org_ids_with_role(min_role public.member_role) returns setof uuid
language sql stable security definer set search_path = '' as $$
  select m.organization_id from public.organization_members m
   where m.user_id = (select auth.uid()) and m.role >= min_role
  union all
  select k.organization_id from public.api_keys k
   where k.id = (select app.api_key_id()) and k.revoked_at is null
     and 'write' = any (k.scopes) and min_role <= 'manager'
$$;

create function app.has_role(org uuid, min_role public.member_role) returns boolean
language sql stable security definer set search_path = '' as $$
  select org in (select app.org_ids_with_role(min_role))
$$;

-- Users who share an organization with the caller (for profiles).
create function app.teammate_ids() returns setof uuid
language sql stable security definer set search_path = '' as $$
  select m.user_id from public.organization_members m
   where m.organization_id in (select app.org_ids())
$$;

grant execute on function app.api_key_id(), app.org_ids(),
  app.org_ids_with_role(public.member_role), app.has_role(uuid, public.member_role),
  app.teammate_ids(), app.valid_timezone(text)
  to authenticated, service_role;

-- ---- policies ---------------------------------------------------------------------------
-- Reads: members of the organization. Writes on settings, members and keys:
-- admins and owners; owners alone delete the organization or touch owners.
-- anon: nothing (no policy names it).

create policy organizations_select on public.organizations for select to authenticated
  using (id in (select app.org_ids()));
create policy organizations_update on public.organizations for update to authenticated
  using (id in (select app.org_ids_with_role('admin')))
  with check (id in (select app.org_ids_with_role('admin')));
create policy organizations_delete on public.organizations for delete to authenticated
  using (id in (select app.org_ids_with_role('owner')));
-- No insert policy: organizations are created through create_organization().

create policy members_select on public.organization_members for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy members_insert on public.organization_members for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('admin'))
    and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner')))
  );
create policy members_update on public.organization_members for update to authenticated
  using (
    organization_id in (select app.org_ids_with_role('admin'))
    and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner')))
  )
  with check (
    organization_id in (select app.org_ids_with_role('admin'))
    and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner')))
  );
create policy members_delete on public.organization_members for delete to authenticated
  using (
    (organization_id in (select app.org_ids_with_role('admin'))
      and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner'))))
    or user_id = (select auth.uid())  -- leaving; the last owner cannot (trigger)
  );

create policy profiles_select on public.profiles for select to authenticated
  using (id = (select auth.uid()) or id in (select app.teammate_ids()));
create policy profiles_update on public.profiles for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));

create policy api_keys_select on public.api_keys for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy api_keys_update on public.api_keys for update to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')) and (select app.api_key_id()) is null)
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy api_keys_delete on public.api_keys for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')) and (select app.api_key_id()) is null);
-- No insert policy: keys are issued through app.create_api_key().

-- ---- invariants ---------------------------------------------------------------------------

create function app.keep_an_owner() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if old.role = 'owner'
     and exists (select 1 from public.organizations o where o.id = old.organization_id)
     and not exists (select 1 from public.organization_members m
                      where m.organization_id = old.organization_id and m.role = 'owner') then
    raise exception 'An organization must keep at least one owner'
      using errcode = 'CG409', hint = 'Make another member owner first';
  end if;
  return null;
end;
$$;
create constraint trigger organization_members_keep_owner
  after update or delete on public.organization_members
  for each row execute function app.keep_an_owner();

create function app.create_profile() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.profiles (id, email, full_name)
  values (new.id, new.email, coalesce(new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'name'))
  on conflict (id) do nothing;
  return new;
end;
$$;
create trigger on_auth_user_created after insert on auth.users
  for each row execute function app.create_profile();

create function app.sync_profile_email() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.profiles set email = new.email where id = new.id;
  return new;
end;
$$;
create trigger on_auth_user_email_changed after update of email on auth.users
  for each row when (old.email is distinct from new.email)
  execute function app.sync_profile_email();

-- ---- RPC ---------------------------------------------------------------------------------

create function app.slugify(value text) returns text
language sql immutable set search_path = '' as $$
  select coalesce(nullif(left(trim(both '-' from regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g')), 60), ''), 'org')
$$;

-- POST /rest/v1/rpc/create_organization {"name": …}: the caller becomes its owner.
create function public.create_organization(name text) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  caller uuid := (select auth.uid());
  base text := app.slugify(name);
  candidate text := base;
  org uuid;
begin
  if caller is null then
    raise exception 'Sign in to create an organization' using errcode = 'CG403';
  end if;
  while exists (select 1 from public.organizations o where o.slug = candidate) loop
    candidate := base || '-' || substr(md5(random()::text), 1, 6);
  end loop;
  insert into public.organizations (name, slug) values (btrim(name), candidate) returning id into org;
  insert into public.organization_members (organization_id, user_id, role) values (org, caller, 'owner');
  return org;
end;
$$;
revoke execute on function public.create_organization(text) from public, anon;
grant execute on function public.create_organization(text) to authenticated;

-- Issues a key for an organization the caller administers; the plain key never
-- reaches the database, only its hash.
create function app.create_api_key(org uuid, key_name text, key_scopes text[], key_prefix text, key_hash bytea)
returns public.api_keys
language plpgsql security definer set search_path = '' as $$
declare
  created public.api_keys;
begin
  if not app.has_role(org, 'admin') or (select app.api_key_id()) is not null then
    raise exception 'Only admins and owners can create API keys' using errcode = 'CG403';
  end if;
  insert into public.api_keys (organization_id, name, prefix, scopes, created_by)
  values (org, key_name, key_prefix, key_scopes, (select auth.uid()))
  returning * into created;
  insert into private.api_key_hashes (api_key_id, hash) values (created.id, key_hash);
  return created;
end;
$$;
grant execute on function app.create_api_key(uuid, text, text[], text, bytea) to authenticated;
