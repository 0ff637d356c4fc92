-- The events worker and outbound webhooks.
--
-- Triggers write every domain event to public.outbox_events (app.emit). The
-- events-worker function fans each event out once to its consumers
-- (shared/events/consumers.py): one row per (event, consumer, target) in
-- public.event_deliveries, written in the transaction that marks the event
-- processed, so a fan-out is never repeated or lost. The worker then claims due
-- deliveries with a lease (due_at moves to the lease's end, claim gets a fresh
-- token), commits, does the work outside any transaction and records the outcome
-- only while its claim still holds. A worker that dies leaves the row to be
-- claimed again when the lease ends: processed at least once, never by two
-- workers at the same time.
--
-- Webhook endpoints are configured by admins; their signing secrets live in
-- private, which no API role can read.

-- ---- per-consumer deliveries of the outbox -------------------------------------------------

create table public.event_deliveries (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  event_id bigint not null references public.outbox_events (id) on delete cascade,
  consumer text not null check (length(consumer) between 1 and 64),
  -- What the consumer delivers to, if it fans out further (a webhook endpoint).
  target uuid,
  -- pending: waiting or leased; done; dead (retries spent, an admin may replay);
  -- cancelled (its target is gone).
  status text not null default 'pending'
    check (status in ('pending', 'done', 'dead', 'cancelled')),
  attempts integer not null default 0 check (attempts >= 0),
  -- When it may be claimed: its next attempt or, while leased, the lease's end.
  due_at timestamptz not null default now(),
  -- The current claim's token: an outcome is recorded only under the claim that made it.
  claim uuid,
  last_error text check (length(last_error) <= 2000),
  created_at timestamptz not null default now(),
  finished_at timestamptz,
  unique nulls not distinct (event_id, consumer, target)
);
alter table public.event_deliveries enable row level security;
-- Admins read their organization's deliveries (failures, dead letters). No write
-- policy: only the worker (the owner) writes; an admin replays through
-- app.replay_event_delivery.
create policy event_deliveries_select on public.event_deliveries for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
-- The claim filters on status and due_at only, across organizations.
create index event_deliveries_due_idx on public.event_deliveries (due_at) where status = 'pending';
create index event_deliveries_org_idx on public.event_deliveries (organization_id, status, id desc);

-- ---- webhook endpoints ----------------------------------------------------------------------

create table public.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  url text not null check (length(url) <= 2048 and url ~ '^https?://'),
  -- The event types it receives (the function checks them against the catalog).
  events text[] not null check (cardinality(events) between 1 and 64),
  description text check (length(description) <= 500),
  enabled boolean not null default true,
  -- Why it is disabled: an admin did, or it failed for days without a success.
  disabled_reason text check (length(disabled_reason) <= 500),
  -- The first failure since the last success: days of it disable the endpoint.
  failing_since timestamptz,
  last_success_at timestamptz,
  last_failure_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id)
);
alter table public.webhook_endpoints enable row level security;
create policy webhook_endpoints_select on public.webhook_endpoints for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
create policy webhook_endpoints_insert on public.webhook_endpoints for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy webhook_endpoints_update on public.webhook_endpoints for update to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')))
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy webhook_endpoints_delete on public.webhook_endpoints for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
create index webhook_endpoints_org_idx on public.webhook_endpoints (organization_id, created_at desc);
create trigger webhook_endpoints_touch before update on public.webhook_endpoints
  for each row execute function app.touch_updated_at();
create trigger webhook_endpoints_keep_org before update on public.webhook_endpoints
  for each row execute function app.keep_organization();

-- Signing secrets (Standard Webhooks' whsec_…): never readable by API roles. After
-- a rotation the previous secret still signs until previous_until.
create table private.webhook_secrets (
  endpoint_id uuid primary key references public.webhook_endpoints (id) on delete cascade,
  secret text not null check (secret ~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$'),
  previous_secret text,
  previous_until timestamptz
);

-- Sets (or rotates) an endpoint's secret on an admin's behalf.
create function app.set_webhook_secret(endpoint uuid, secret text, overlap interval)
returns void
language plpgsql security definer set search_path = '' as $$
begin
  if not exists (
    select 1 from public.webhook_endpoints e
     where e.id = endpoint and e.organization_id in (select app.org_ids_with_role('admin'))) then
    raise exception 'No such webhook endpoint' using errcode = 'CG404';
  end if;
  insert into private.webhook_secrets as s (endpoint_id, secret) values (endpoint, secret)
  on conflict (endpoint_id) do update
    set previous_secret = s.secret, previous_until = now() + overlap, secret = excluded.secret;
end;
$$;

-- Each attempt at a webhook delivery, for the endpoint's admins: a bounded excerpt only.
create table public.webhook_attempts (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  endpoint_id uuid not null,
  delivery_id bigint not null references public.event_deliveries (id) on delete cascade,
  attempt integer not null,
  attempted_at timestamptz not null,
  status_code integer,
  latency_ms integer not null check (latency_ms >= 0),
  error text check (length(error) <= 1000),
  response_excerpt text check (length(response_excerpt) <= 1000),
  foreign key (organization_id, endpoint_id)
    references public.webhook_endpoints (organization_id, id) on delete cascade
);
alter table public.webhook_attempts enable row level security;
create policy webhook_attempts_select on public.webhook_attempts for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
create index webhook_attempts_endpoint_idx
  on public.webhook_attempts (organization_id, endpoint_id, id desc);
create index webhook_attempts_delivery_idx on public.webhook_attempts (delivery_id);

-- ---- replay -------------------------------------------------------------------------------

-- An admin sends a finished delivery (dead, done, cancelled) again: its retries
-- start over. Not found unless the caller administers its organization.
create function app.replay_event_delivery(delivery bigint) returns public.event_deliveries
language plpgsql security definer set search_path = '' as $$
declare
  found public.event_deliveries;
begin
  select * into found from public.event_deliveries d
   where d.id = delivery and d.organization_id in (select app.org_ids_with_role('admin'))
     for update;
  if found.id is null then
    raise exception 'No such event delivery' using errcode = 'CG404';
  end if;
  if found.status = 'pending' then
    raise exception 'The delivery is already waiting to be processed' using errcode = 'CG409';
  end if;
  update public.event_deliveries d
     set status = 'pending', attempts = 0, due_at = now(), claim = null, last_error = null,
         finished_at = null
   where d.id = delivery
  returning * into found;
  return found;
end;
$$;

-- ---- function privileges ------------------------------------------------------------
revoke execute on function
  app.set_webhook_secret(uuid, text, interval), app.replay_event_delivery(bigint)
  from public, anon, authenticated, service_role;
-- Called by webhook-endpoints and events-worker on an admin's behalf; each checks the
-- caller's role itself.
grant execute on function
  app.set_webhook_secret(uuid, text, interval), app.replay_event_delivery(bigint)
  to authenticated;
