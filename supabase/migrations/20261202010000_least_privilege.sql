-- Least privilege in the database.
--
-- 1. Functions: every function in `app` and `private` was executable by PUBLIC
--    (`alter default privileges in schema app revoke …` cannot take back the
--    global default). Each is now owner-only unless granted below, one by one.
-- 2. API keys: the key of a transaction is recorded by the owner, before it
--    switches role, in a table no API role can reach, so no client can claim one.
-- 3. realtime.messages: a row of an organization's topic is only for its members,
--    whatever the session's realtime.topic says.
-- 4. Nothing a client edits feeds identity: a revoked key stays revoked; an
--    organization's slug is given at creation and never reveals another's.
-- 5. Scopes say what they mean: API keys never configure pipelines, stages or
--    custom fields (no scope names them; the public API only reads them).

-- ---- 2. the API key of the transaction ---------------------------------------------------------
-- One row per API-key transaction, keyed by its (top-level) transaction id, written
-- by private.bind_api_key() as the owner and deleted again at commit, so the table
-- holds only transactions in flight. Unlogged: a row never outlives its transaction.
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

-- The key bound to this transaction, or null. No setting is trusted: a session can
-- set any custom setting, but cannot write private.api_key_transactions.
create or replace function app.api_key_id() returns uuid
language sql stable security definer set search_path = '' as $$
  select t.api_key_id from private.api_key_transactions t
   where t.txid = pg_current_xact_id_if_assigned()
$$;

-- ---- 5. scopes: keys read the organization's configuration, never change it ---------------------
-- A write key ranks as a manager for records (it deletes contacts, edits tags),
-- and the pipelines, stages and custom field policies also ask for a manager.
-- A row trigger, so rows RLS hides never reach it and refusals stay 42501; named to
-- fire first (triggers fire in name order).
create function app.refuse_api_keys() returns trigger
language plpgsql set search_path = '' as $$
begin
  if (select app.api_key_id()) is not null then
    raise exception 'API keys cannot change %; no scope grants it', tg_table_name
      using errcode = '42501';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end;
$$;
create trigger pipelines_api_keys_refused before insert or update or delete on public.pipelines
  for each row execute function app.refuse_api_keys();
create trigger stages_api_keys_refused before insert or update or delete on public.stages
  for each row execute function app.refuse_api_keys();
create trigger custom_field_definitions_api_keys_refused
  before insert or update or delete on public.custom_field_definitions
  for each row execute function app.refuse_api_keys();

-- ---- 4. a revoked key stays revoked ----------------------------------------------------------
-- Also kept: when and by whom it was issued (created_by may only be cleared, as the
-- foreign key does when that user is deleted) and the prefix that identifies it.
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

-- ---- 4. slugs reveal nothing about other organizations -------------------------------------
-- A chosen slug must be unique across all organizations, so any answer to "make my
-- slug X" tells whether X is taken. So nobody chooses one: it is the name's slug and
-- a random suffix, given once at creation, and API roles cannot change it.
create or replace function public.create_organization(name text) returns uuid
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

-- ---- 1. an organization id is no oracle ------------------------------------------------------
-- Was security definer: anyone could learn whether any organization id exists. As
-- the caller it answers for visible organizations only; its callers (triggers on
-- rows the caller may delete, and cascades, which run as the table owner) need no more.
create or replace function app.organization_is_going(org uuid) returns boolean
language sql stable set search_path = '' as $$
  select not exists (select 1 from public.organizations o where o.id = org)
$$;

-- ---- 3. realtime: a row of an organization's topic is for its members only ---------------------
-- The permissive inbox policies check the channel (realtime.topic()) only; these
-- restrictive ones also check the row's own topic, so a member can neither read
-- nor insert rows of another organization's topic by joining their own.
drop policy if exists org_topics_members_only on realtime.messages;
create policy org_topics_members_only on realtime.messages as restrictive for all to authenticated
  using (
    not starts_with(topic, 'org:')
    or (topic = realtime.topic()
        and split_part(topic, ':', 2) in (select o::text from app.org_ids() o))
  );
drop policy if exists org_topics_not_anon on realtime.messages;
create policy org_topics_not_anon on realtime.messages as restrictive for all to anon
  using (not starts_with(topic, 'org:'));

-- ---- 1. function privileges: owner-only, then one grant per caller that needs it -------------
do $$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::regprocedure from pg_catalog.pg_proc p
      join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('app', 'private')
  loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
  end loop;
end;
$$;

-- Called by RLS policies, as the querying role (service_role bypasses RLS).
grant execute on function app.org_ids(), app.org_ids_with_role(public.member_role),
  app.teammate_ids(), app.api_key_id()
  to authenticated;

-- Called by check constraints and by invoker triggers (custom fields, deal placement,
-- pipeline and stage deletion, message statuses), as whichever role writes the row.
grant execute on function app.valid_timezone(text), app.valid_field_options(jsonb),
  app.valid_address(jsonb),
  app.clean_custom_fields(uuid, public.custom_field_entity, jsonb, jsonb),
  app.parse_date(text), app.parse_datetime(text), app.datetime_text(timestamptz),
  app.first_stage(uuid, uuid, public.stage_kind), app.next_deal_position(uuid, uuid),
  app.lock_stage(uuid), app.organization_is_going(uuid)
  to authenticated, service_role;
-- authenticated has no update policy on messages; only service_role updates them.
grant execute on function app.message_status_rank(public.message_status) to service_role;

-- Called by the functions on a member's behalf; each checks the caller's role itself.
grant execute on function app.create_api_key(uuid, text, text[], text, bytea),
  app.set_channel_credentials(uuid, jsonb)
  to authenticated;

-- public: the two RPCs keep their grants (create_organization, move_deal: authenticated
-- and service_role, never anon). Every other app and private function, including
-- has_role, slugify, emit, create_default_pipeline, touch_contact_activity, the
-- inbound pipeline, reset_policies, every trigger function and the key binding,
-- is the owner's alone: triggers fire without EXECUTE, and definer functions call
-- the others as the owner.
revoke execute on function public.create_organization(text) from public, anon;
revoke execute on function public.move_deal(uuid, uuid, integer) from public, anon;
