-- Tenancy: organizations, members and roles, profiles, API keys, invitations,
-- and the security-definer helpers every policy uses.
--
-- Every table turns row level security on beside its `create table`, so it is
-- closed from the start whatever applies this file (the Supabase CLI or
-- `connectgain db migrate`); its policies follow once the helpers they call exist.
--
-- Schemas:
--   app      helpers called by policies and functions; not exposed by PostgREST
--   private  secrets and bookkeeping (key and token hashes, channel credentials,
--            the API key of a transaction); no API role may touch it
--
-- Every function in `app` and `private` is the owner's alone unless granted at
-- the end of its file, one by one (`alter default privileges … revoke` cannot
-- take back PostgreSQL's global default, EXECUTE for PUBLIC). Triggers fire
-- without EXECUTE, and security-definer functions call the others as the owner.

create schema if not exists app;
revoke all on schema app from public;
grant usage on schema app to authenticated, service_role;

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
-- The functions' own connection binds an API key to its transaction as the owner
-- (private.bind_api_key), before it switches to an API role; the organization and
-- scopes are then read from the key's row, never from claims. No setting is
-- trusted: a session can set any custom setting, but cannot write `private`.

-- One row per API-key transaction, keyed by its (top-level) transaction id and
-- deleted again at commit, so the table holds only transactions in flight.
-- Unlogged: a row never outlives its transaction.
create unlogged table private.api_key_transactions (
  txid xid8 primary key default pg_current_xact_id(),
  api_key_id uuid not null
);

create function private.bind_api_key(key uuid) returns void
language plpgsql security definer set search_path = '' as $$
begin
  insert into private.api_key_transactions (api_key_id) values (key);
end;
$$;

-- Deferred to commit; security definer because the transaction's role is then an API role.
create function private.forget_api_key_transaction() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from private.api_key_transactions t where t.txid = new.txid;
  return null;
end;
$$;
create constraint trigger api_key_transactions_forget
  after insert on private.api_key_transactions deferrable initially deferred
  for each row execute function private.forget_api_key_transaction();

-- The key bound to this transaction, or null.
create function app.api_key_id() returns uuid
language sql stable security definer set search_path = '' as $$
  select t.api_key_id from private.api_key_transactions t
   where t.txid = pg_current_xact_id_if_assigned()
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
-- scope acts as a manager for records; keys never administer the organization,
-- and never configure it either (pipelines, stages and custom field definitions
-- refuse them by trigger: app.refuse_api_keys in the CRM baseline).
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

-- A revoked key stays revoked. Also kept: when and by whom it was issued
-- (created_by may only be cleared, as the foreign key does when that user is
-- deleted) and the prefix that identifies it.
create function app.keep_api_key_history() returns trigger
language plpgsql set search_path = '' as $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'revoked_at: a revoked API key stays revoked; issue a new key'
      using errcode = 'CG422', column = 'revoked_at';
  end if;
  if new.prefix is distinct from old.prefix or new.created_at is distinct from old.created_at
     or (new.created_by is distinct from old.created_by and new.created_by is not null) then
    raise exception 'An API key''s prefix, creator and creation time cannot change'
      using errcode = 'CG422';
  end if;
  return new;
end;
$$;
create trigger api_keys_keep_history before update on public.api_keys
  for each row execute function app.keep_api_key_history();

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

-- profiles.email mirrors auth.users and nothing else: a member who writes
-- another address into it (through PostgREST or otherwise) is refused.
create function app.profile_email_follows_auth() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  account_email text := (select u.email::text from auth.users u where u.id = new.id);
begin
  if tg_op = 'INSERT' then
    new.email := account_email;
  elsif new.email is distinct from old.email and new.email is distinct from account_email then
    raise exception 'profiles.email follows the account''s e-mail; change it through Supabase Auth'
      using errcode = '42501';
  end if;
  return new;
end;
$$;
create trigger profiles_email_follows_auth before insert or update of email on public.profiles
  for each row execute function app.profile_email_follows_auth();

-- ---- RPC ---------------------------------------------------------------------------------

create function app.slugify(value text) returns text
language sql immutable set search_path = '' as $$
  select coalesce(nullif(left(trim(both '-' from regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g')), 60), ''), 'org')
$$;

-- POST /rest/v1/rpc/create_organization {"name": …}: the caller becomes its owner.
--
-- Slugs reveal nothing about other organizations. A chosen slug must be unique
-- across all organizations, so any answer to "make my slug X" tells whether X is
-- taken. So nobody chooses one: it is the name's slug and a random suffix, given
-- once at creation, and API roles cannot change it.
create function public.create_organization(name text) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  caller uuid := (select auth.uid());
  base text := app.slugify(name);
  candidate text;
  org uuid;
begin
  if caller is null then
    raise exception 'Sign in to create an organization' using errcode = 'CG403';
  end if;
  loop  -- a collision of the random part is retried, unseen
    candidate := base || '-' || left(replace(gen_random_uuid()::text, '-', ''), 8);
    exit when not exists (select 1 from public.organizations o where o.slug = candidate);
  end loop;
  insert into public.organizations (name, slug) values (btrim(name), candidate) returning id into org;
  insert into public.organization_members (organization_id, user_id, role) values (org, caller, 'owner');
  return org;
end;
$$;

create function app.keep_slug() returns trigger
language plpgsql set search_path = '' as $$
begin
  if new.slug is distinct from old.slug and current_user in ('anon', 'authenticated') then
    raise exception 'slug: an organization''s slug is given when it is created and cannot change'
      using errcode = 'CG422', column = 'slug';
  end if;
  return new;
end;
$$;
create trigger organizations_keep_slug before update of slug on public.organizations
  for each row execute function app.keep_slug();

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

-- E-mail and name as Supabase Auth holds them, for members of an organization
-- the caller belongs to (API keys excluded: they have no use for addresses).
create function app.member_directory(org uuid)
returns table (user_id uuid, email text, full_name text)
language sql stable security definer set search_path = '' as $$
  select m.user_id, u.email::text,
         coalesce(u.raw_user_meta_data ->> 'full_name', u.raw_user_meta_data ->> 'name')
    from public.organization_members m
    join auth.users u on u.id = m.user_id
   where m.organization_id = org
     and exists (select 1 from public.organization_members me
                  where me.organization_id = org and me.user_id = (select auth.uid()))
$$;

-- ---- invitations ---------------------------------------------------------------------
-- An admin invites an e-mail address with a role; nobody joins until the person
-- signed in with that address accepts with the token from their e-mail. The
-- token's hash lives in `private` (like API key hashes); the plain token is only
-- ever in the e-mail.

create table public.organization_invitations (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  email text not null
    check (email = lower(btrim(email)) and length(email) between 3 and 320 and email like '%_@_%'),
  role public.member_role not null default 'agent',
  invited_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  sent_at timestamptz not null default now(),  -- the last (re)send
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  revoked_at timestamptz,
  check (accepted_at is null or revoked_at is null)
);
alter table public.organization_invitations enable row level security;
-- Admins and owners see their organization's invitations; the invitee sees none
-- (they hold a token, not a membership). No insert, update or delete policy:
-- every write goes through the functions below, which check roles and states.
create policy invitations_select on public.organization_invitations for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
-- One open invitation per address and organization: inviting again refreshes it.
create unique index organization_invitations_open_idx on public.organization_invitations
  (organization_id, email) where accepted_at is null and revoked_at is null;
create index organization_invitations_org_idx on public.organization_invitations
  (organization_id, created_at desc);

create table private.invitation_tokens (
  invitation_id uuid primary key references public.organization_invitations (id) on delete cascade,
  token_hash bytea not null unique check (length(token_hash) = 32)
);
-- No API role has privileges on `private`; no policy either, so even a grant opens nothing.
alter table private.invitation_tokens enable row level security;

-- Creates, or refreshes (new token, role and expiry; same row), the open
-- invitation of `address` to `org`. The caller must administer `org`; only
-- owners invite owners or touch an open owner invitation.
create function app.create_invitation(
  org uuid, address text, new_role public.member_role, hash bytea, valid_for interval
) returns public.organization_invitations
language plpgsql security definer set search_path = '' as $$
declare
  invitee text := lower(btrim(address));
  open_role public.member_role;
  created public.organization_invitations;
begin
  if (select app.api_key_id()) is not null or not app.has_role(org, 'admin') then
    raise exception 'Only admins and owners can invite people' using errcode = 'CG403';
  end if;
  select i.role into open_role from public.organization_invitations i
   where i.organization_id = org and i.email = invitee
     and i.accepted_at is null and i.revoked_at is null;
  if 'owner' in (new_role, open_role) and not app.has_role(org, 'owner') then
    raise exception 'Only owners can grant, change or remove the owner role' using errcode = 'CG403';
  end if;
  if exists (select 1 from public.organization_members m join auth.users u on u.id = m.user_id
              where m.organization_id = org and lower(u.email) = invitee) then
    raise exception 'This person is already a member' using errcode = 'CG409';
  end if;
  insert into public.organization_invitations (organization_id, email, role, invited_by, expires_at)
  values (org, invitee, new_role, (select auth.uid()), now() + valid_for)
  on conflict (organization_id, email) where accepted_at is null and revoked_at is null
  do update set role = excluded.role, invited_by = excluded.invited_by, sent_at = now(),
                expires_at = excluded.expires_at
  returning * into created;
  insert into private.invitation_tokens (invitation_id, token_hash) values (created.id, hash)
  on conflict (invitation_id) do update set token_hash = excluded.token_hash;
  return created;
end;
$$;

-- Revokes an open invitation of an organization the caller administers.
-- Revoking twice is harmless; an accepted invitation cannot be revoked.
create function app.revoke_invitation(target uuid) returns public.organization_invitations
language plpgsql security definer set search_path = '' as $$
declare
  found_row public.organization_invitations;
begin
  select * into found_row from public.organization_invitations i where i.id = target for update;
  if found_row.id is null or (select app.api_key_id()) is not null
     or not app.has_role(found_row.organization_id, 'admin') then
    raise exception 'No such invitation' using errcode = 'CG404';
  end if;
  if found_row.role = 'owner' and not app.has_role(found_row.organization_id, 'owner') then
    raise exception 'Only owners can grant, change or remove the owner role' using errcode = 'CG403';
  end if;
  if found_row.accepted_at is not null then
    raise exception 'This invitation was already accepted'
      using errcode = 'CG409', hint = 'Remove the member instead';
  end if;
  update public.organization_invitations i set revoked_at = coalesce(i.revoked_at, now())
   where i.id = target returning * into found_row;
  return found_row;
end;
$$;

-- The signed-in caller accepts the invitation whose token hashes to `hash`.
-- Answers with an outcome instead of raising, so the function can say exactly
-- why not: not_found, wrong_user, revoked, accepted (already), expired; or
-- joined. Only `joined` changes anything. The address is checked first, so a
-- token in the wrong hands learns nothing about the invitation's state.
create function app.accept_invitation(hash bytea)
returns table (outcome text, organization_id uuid, role public.member_role)
language plpgsql security definer set search_path = '' as $$
#variable_conflict use_column
declare
  caller uuid := (select auth.uid());
  invitation public.organization_invitations;
begin
  select i.* into invitation
    from private.invitation_tokens t
    join public.organization_invitations i on i.id = t.invitation_id
   where t.token_hash = hash
     for update of i;
  if invitation.id is null or caller is null then
    return query select 'not_found', null::uuid, null::public.member_role;
  elsif invitation.email is distinct from
        (select lower(u.email) from auth.users u where u.id = caller) then
    return query select 'wrong_user', null::uuid, null::public.member_role;
  elsif invitation.revoked_at is not null then
    return query select 'revoked', invitation.organization_id, invitation.role;
  elsif invitation.accepted_at is not null then
    return query select 'accepted', invitation.organization_id, invitation.role;
  elsif invitation.expires_at <= now() then
    return query select 'expired', invitation.organization_id, invitation.role;
  else
    -- Someone who joined meanwhile keeps the role they have.
    insert into public.organization_members (organization_id, user_id, role)
    values (invitation.organization_id, caller, invitation.role)
    on conflict (organization_id, user_id) do nothing;
    update public.organization_invitations i set accepted_at = now(), accepted_by = caller
     where i.id = invitation.id;
    return query select 'joined', invitation.organization_id, invitation.role;
  end if;
end;
$$;

-- ---- function privileges ------------------------------------------------------------
-- Owner-only, whatever the default privileges; then one grant per caller that needs it.
revoke execute on function
  app.touch_updated_at(), app.keep_organization(), app.valid_timezone(text),
  private.bind_api_key(uuid), private.forget_api_key_transaction(), app.api_key_id(),
  app.org_ids(), app.org_ids_with_role(public.member_role),
  app.has_role(uuid, public.member_role), app.teammate_ids(),
  app.keep_an_owner(), app.keep_api_key_history(), app.create_profile(),
  app.sync_profile_email(), app.profile_email_follows_auth(),
  app.slugify(text), app.keep_slug(), app.create_api_key(uuid, text, text[], text, bytea),
  app.member_directory(uuid),
  app.create_invitation(uuid, text, public.member_role, bytea, interval),
  app.revoke_invitation(uuid), app.accept_invitation(bytea)
  from public, anon, authenticated, service_role;

-- Called by RLS policies, as the querying role (service_role bypasses RLS).
grant execute on function app.org_ids(), app.org_ids_with_role(public.member_role),
  app.teammate_ids(), app.api_key_id()
  to authenticated;
-- A check constraint, evaluated as whichever role writes the row.
grant execute on function app.valid_timezone(text) to authenticated, service_role;
-- Called by the functions on a member's behalf; each checks the caller itself.
grant execute on function app.create_api_key(uuid, text, text[], text, bytea),
  app.member_directory(uuid),
  app.create_invitation(uuid, text, public.member_role, bytea, interval),
  app.revoke_invitation(uuid), app.accept_invitation(bytea)
  to authenticated;

-- The RPC (PostgREST): signed-in users only; Supabase's default privileges in
-- `public` keep service_role's.
revoke execute on function public.create_organization(text) from public, anon;
grant execute on function public.create_organization(text) to authenticated;
