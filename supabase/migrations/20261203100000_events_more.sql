-- Events, rest: automation rules through the public API, the rules' order in one
-- call, a cap on webhook endpoints per organization, and retention of what the
-- events worker has finished with.

-- ---- automation rules: write keys act as managers ------------------------------------------
--
-- Rules are configuration as business hours and SLA policies are, which write
-- keys change (the policies already let a write key act as a manager). The
-- author a rule sends messages as is the caller, never a value it sends: a
-- member's own id, or for a key the member who issued it. The functions' own
-- (owner) connection, with no caller, writes what it is given.

drop trigger automation_rules_api_keys_refused on public.automation_rules;

create function app.automation_rule_author() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  caller uuid := (select auth.uid());
  key uuid := (select app.api_key_id());
begin
  if tg_op = 'UPDATE' then
    if caller is not null or key is not null then
      new.created_by := old.created_by;
    end if;
  elsif caller is not null then
    new.created_by := caller;
  elsif key is not null then
    new.created_by := (select k.created_by from public.api_keys k where k.id = key);
  end if;
  return new;
end;
$$;
create trigger automation_rules_author before insert or update on public.automation_rules
  for each row execute function app.automation_rule_author();

-- ---- webhook endpoints: a cap per organization -----------------------------------------------
--
-- At most app.webhook_endpoint_cap(org) endpoints: 20 unless the organization
-- has a row here (where a plan's limit is written). Creates of one organization
-- take a transaction-scoped advisory lock before counting, so two concurrent
-- creates at the cap cannot both pass.

create table private.webhook_endpoint_caps (
  organization_id uuid primary key references public.organizations (id) on delete cascade,
  max_endpoints integer not null check (max_endpoints between 0 and 10000)
);

create function app.webhook_endpoint_cap(org uuid) returns integer
language sql stable security definer set search_path = '' as $$
  select coalesce(
    (select c.max_endpoints from private.webhook_endpoint_caps c where c.organization_id = org),
    20)
$$;

create function app.webhook_endpoints_within_cap() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  cap integer := app.webhook_endpoint_cap(new.organization_id);
  have integer;
begin
  perform pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || new.organization_id::text, 0));
  select count(*) into have from public.webhook_endpoints e
   where e.organization_id = new.organization_id;
  if have >= cap then
    raise exception 'webhook endpoints: this organization has % of its % endpoints; delete one first', have, cap
      using errcode = 'CG409', hint = 'limit ' || cap;
  end if;
  return new;
end;
$$;
create trigger webhook_endpoints_cap before insert on public.webhook_endpoints
  for each row execute function app.webhook_endpoints_within_cap();

-- ---- retention -------------------------------------------------------------------------------
--
-- events-retention deletes processed events past their age in batches, walking
-- this index (across organizations, so it leads with the processing time) from a
-- cursor kept below; their deliveries, webhook attempts and automation runs go
-- with them (on delete cascade, each found by an index leading with the parent's
-- id). Events kept (a pending delivery, an unreplayed dead letter) are stepped
-- over by the cursor, so they never hold the walk up; a walk that reaches the
-- end starts again from the oldest.
create index outbox_events_processed_idx on public.outbox_events (processed_at, id)
  where processed_at is not null;

create table private.events_retention_cursor (
  singleton boolean primary key default true check (singleton),
  processed_at timestamptz not null,
  event_id bigint not null
);

revoke execute on function
  app.automation_rule_author(), app.webhook_endpoint_cap(uuid), app.webhook_endpoints_within_cap()
  from public, anon, authenticated, service_role;
