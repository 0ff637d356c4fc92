-- Business hours and SLAs.
--
-- Business hours (per organization, optionally per channel account) and SLA
-- policies are configuration: members read them, managers and up (and
-- write-scoped API keys) write them. A conversation's SLA is measured by clocks
-- (public.sla_clocks): the events worker's "sla" consumer (shared/sla/) starts
-- and stops them from domain events, the sla-sweep cron marks the ones past their
-- due time breached and emits sla.breached once for each. Members read clocks;
-- only the worker (the owner) writes them, so nobody edits their own figures.

-- ---- business hours ---------------------------------------------------------------------------

-- {"mon": [{"start": "09:00", "end": "17:00"}, ...], ...}: weekdays mon … sun, each a
-- list of wall-clock intervals ending after they start ("24:00" is midnight). The
-- functions also refuse overlapping intervals; a PostgREST write that overlaps
-- counts the overlap once.
create function app.valid_business_week(weekly jsonb) returns boolean
language sql immutable set search_path = '' as $$
  select jsonb_typeof(weekly) = 'object' and not exists (
    select 1 from jsonb_each(weekly) d(day, spans)
     where d.day not in ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')
        or case when jsonb_typeof(d.spans) <> 'array' then true
           else jsonb_array_length(d.spans) > 12 or exists (
             select 1 from jsonb_array_elements(d.spans) s
              where case when jsonb_typeof(s) <> 'object' then true
                    else coalesce(s ->> 'start', '') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
                      or coalesce(s ->> 'end', '') !~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'
                      or s ->> 'end' <= s ->> 'start' end)
           end)
$$;

-- [{"date": "2026-12-25", "recurring": true, "name": "Christmas"}, ...]
create function app.valid_holidays(holidays jsonb) returns boolean
language sql immutable set search_path = '' as $$
  select jsonb_typeof(holidays) = 'array' and jsonb_array_length(holidays) <= 400 and not exists (
    select 1 from jsonb_array_elements(holidays) h
     where case when jsonb_typeof(h) <> 'object' then true
           else coalesce(h ->> 'date', '') !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
             or jsonb_typeof(h -> 'recurring') is distinct from 'boolean' end)
$$;

create table public.business_hours (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  -- null: the organization's hours; else this channel account's, which win over them
  channel_account_id uuid,
  name text not null check (length(btrim(name)) between 1 and 120),
  timezone text not null check (app.valid_timezone(timezone)),
  weekly jsonb not null check (app.valid_business_week(weekly)),
  holidays jsonb not null default '[]'::jsonb check (app.valid_holidays(holidays)),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique nulls not distinct (organization_id, channel_account_id),
  foreign key (organization_id, channel_account_id)
    references public.channel_accounts (organization_id, id) on delete cascade
);
alter table public.business_hours enable row level security;
create policy business_hours_select on public.business_hours for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy business_hours_insert on public.business_hours for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy business_hours_update on public.business_hours for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy business_hours_delete on public.business_hours for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create trigger business_hours_touch before update on public.business_hours
  for each row execute function app.touch_updated_at();
create trigger business_hours_keep_org before update on public.business_hours
  for each row execute function app.keep_organization();

-- ---- SLA policies -------------------------------------------------------------------------------

create table public.sla_policies (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 120),
  -- targets in seconds; null: not measured against a target
  first_response_seconds integer check (first_response_seconds between 1 and 31622400),
  next_response_seconds integer check (next_response_seconds between 1 and 31622400),
  resolution_seconds integer check (resolution_seconds between 1 and 31622400),
  -- count only the conversation's business hours (its account's, else the organization's)
  business_hours_only boolean not null default false,
  -- applied to conversations that have no policy yet: the organization's default
  -- (channel_account_id null) or one channel account's, which wins
  is_default boolean not null default false,
  channel_account_id uuid check (channel_account_id is null or is_default),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  foreign key (organization_id, channel_account_id)
    references public.channel_accounts (organization_id, id) on delete cascade
);
alter table public.sla_policies enable row level security;
create policy sla_policies_select on public.sla_policies for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy sla_policies_insert on public.sla_policies for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy sla_policies_update on public.sla_policies for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy sla_policies_delete on public.sla_policies for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index sla_policies_org_idx on public.sla_policies (organization_id, created_at);
create unique index sla_policies_one_default_key
  on public.sla_policies (organization_id, channel_account_id) nulls not distinct
  where is_default;
create trigger sla_policies_touch before update on public.sla_policies
  for each row execute function app.touch_updated_at();
create trigger sla_policies_keep_org before update on public.sla_policies
  for each row execute function app.keep_organization();

-- ---- per conversation ------------------------------------------------------------------------------

-- The policy a conversation follows (fixed when its first clock starts, so a new
-- default does not change conversations under way) and the newest outbox event
-- the consumer applied to it: an event redelivered is not applied twice.
create table public.conversation_sla (
  organization_id uuid not null,
  conversation_id uuid not null,
  policy_id uuid,
  last_event_id bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (organization_id, conversation_id),
  foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade,
  foreign key (organization_id, policy_id)
    references public.sla_policies (organization_id, id) on delete set null (policy_id)
);
alter table public.conversation_sla enable row level security;
create policy conversation_sla_select on public.conversation_sla for select to authenticated
  using (organization_id in (select app.org_ids()));

-- One row per clock: a first response, a next response or a resolution. Running
-- while stopped_at is null; due_at null when the policy has no target for it (or
-- its business hours never open). Stopped clocks keep the measured time in
-- wall-clock and business-hours seconds, for dashboards.
create table public.sla_clocks (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  conversation_id uuid not null,
  policy_id uuid,
  kind text not null check (kind in ('first_response', 'next_response', 'resolution')),
  business_hours_only boolean not null,
  started_at timestamptz not null,
  due_at timestamptz,
  stopped_at timestamptz,
  -- met: stopped by its due time (or without one); breached: past its due time;
  -- cancelled: a response clock the conversation's resolution ended unanswered
  outcome text check (outcome in ('met', 'breached', 'cancelled')),
  breached_at timestamptz,
  wall_seconds bigint check (wall_seconds >= 0),
  business_seconds bigint check (business_seconds >= 0),
  created_at timestamptz not null default now(),
  check ((stopped_at is null) = (outcome is null)),
  foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade,
  foreign key (organization_id, policy_id)
    references public.sla_policies (organization_id, id) on delete set null (policy_id)
);
alter table public.sla_clocks enable row level security;
create policy sla_clocks_select on public.sla_clocks for select to authenticated
  using (organization_id in (select app.org_ids()));
create unique index sla_clocks_running_key
  on public.sla_clocks (organization_id, conversation_id, kind) where stopped_at is null;
create index sla_clocks_conversation_idx
  on public.sla_clocks (organization_id, conversation_id, id desc);
-- dashboards: an organization's measured clocks by kind and time
create index sla_clocks_report_idx
  on public.sla_clocks (organization_id, kind, stopped_at) where stopped_at is not null;
-- The sweep looks across organizations for running clocks past due, as the
-- events worker's claim does.
create index sla_clocks_due_idx
  on public.sla_clocks (due_at) where stopped_at is null and breached_at is null;

-- ---- function privileges ------------------------------------------------------------
revoke execute on function app.valid_business_week(jsonb), app.valid_holidays(jsonb)
  from public, anon, authenticated, service_role;
-- checks on business_hours, run as the writing role
grant execute on function app.valid_business_week(jsonb), app.valid_holidays(jsonb)
  to authenticated, service_role;
