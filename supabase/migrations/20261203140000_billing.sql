-- Billing: plans (data), one subscription per organization, usage counters, and
-- the plan's limits enforced here, in the database, on every write path.
--
-- Plans carry `limits` (a JSON object: a missing key is unlimited) and `features`.
-- An organization's effective plan follows its subscription's status:
-- trialing/active → its plan; past_due → its plan until `grace_until`, then free;
-- unpaid/canceled/incomplete → the free plan. Data over a limit is kept: only new
-- rows are refused. Only the service writes subscriptions (Stripe's webhook and
-- the billing function, after checking the caller is an owner): no user can pick
-- their own plan through PostgREST.
--
-- A limit is one trigger line (private.enforce_plan_limit(metric[, predicate])):
-- it takes a transaction lock per (organization, metric), then counts the table's
-- rows of the organization (on an index leading with organization_id), so two
-- concurrent inserts at the limit cannot both pass. A refusal is SQLSTATE PT402,
-- which PostgREST answers as HTTP 402; its detail is JSON
-- {code: "plan_limit", limit, value, usage, plan}, and the functions map it to the
-- same 402 `plan_limit` (shared/errors.py).

create type public.subscription_status as enum (
  'trialing', 'active', 'past_due', 'unpaid', 'canceled', 'incomplete'
);

create function app.valid_plan_limits(limits jsonb) returns boolean
language sql immutable set search_path = '' as $$
  select jsonb_typeof(limits) = 'object' and not exists (
    select 1 from jsonb_each(limits) e
     where e.key not in ('seats', 'channel_accounts', 'contacts', 'outbound_messages_per_period',
                         'active_campaigns', 'automation_rules', 'bot_flows', 'api_keys')
        or jsonb_typeof(e.value) <> 'number'
        or (e.value)::numeric < 0 or (e.value)::numeric <> trunc((e.value)::numeric))
$$;

create table public.plans (
  code text primary key check (code ~ '^[a-z0-9_]{1,40}$'),
  name text not null check (length(btrim(name)) between 1 and 100),
  position integer not null default 0,
  limits jsonb not null default '{}'::jsonb check (app.valid_plan_limits(limits)),
  features text[] not null default '{}'
    check (features <@ array['api', 'bots', 'campaigns', 'sla', 'imports']),
  -- Stripe Price ids that subscribe to this plan (Checkout uses the first).
  stripe_price_ids text[] not null default '{}',
  -- Listed to everyone; a private plan (a negotiated deal) only to its subscribers.
  is_public boolean not null default true,
  -- The plan a new organization starts on (one at most).
  for_new_organizations boolean not null default false,
  created_at timestamptz not null default now()
);
alter table public.plans enable row level security;
create unique index plans_for_new_organizations_key on public.plans (for_new_organizations)
  where for_new_organizations;
create index plans_stripe_price_ids_idx on public.plans using gin (stripe_price_ids);

create table public.subscriptions (
  organization_id uuid primary key references public.organizations (id) on delete cascade,
  plan_code text not null references public.plans (code),
  status public.subscription_status not null default 'active',
  stripe_customer_id text unique,
  stripe_subscription_id text unique,
  current_period_start timestamptz,
  current_period_end timestamptz,
  cancel_at_period_end boolean not null default false,
  -- past_due keeps the plan until then (the billing grace setting, from the first failure)
  grace_until timestamptz,
  -- When the Stripe state written here was read: an older read never overwrites a newer one.
  stripe_synced_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.subscriptions enable row level security;
create trigger subscriptions_touch before update on public.subscriptions
  for each row execute function app.touch_updated_at();

-- Exact per-period counters (outbound messages), keyed by the period's start: a new
-- period starts a new row, so nothing has to reset them.
create table public.usage_counters (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  metric text not null check (metric in ('outbound_messages')),
  period_start timestamptz not null,
  count bigint not null default 0 check (count >= 0),
  unique (organization_id, metric, period_start)
);
alter table public.usage_counters enable row level security;

-- Stripe events processed, by Stripe's event id: each is applied once.
create table private.stripe_events (
  id text primary key,
  type text not null,
  created timestamptz not null,
  organization_id uuid references public.organizations (id) on delete set null,
  outcome text not null,
  received_at timestamptz not null default now()
);
alter table private.stripe_events enable row level security;

-- ---- policies ---------------------------------------------------------------------------
-- Reads only: every write is the service's.

create policy plans_select on public.plans for select to authenticated
  using (is_public or code in (
    select s.plan_code from public.subscriptions s where s.organization_id in (select app.org_ids())));
create policy subscriptions_select on public.subscriptions for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy usage_counters_select on public.usage_counters for select to authenticated
  using (organization_id in (select app.org_ids()));

-- ---- the effective plan ---------------------------------------------------------------------

-- The plan whose limits and features apply now (no data read: safe for any role).
create function app.effective_plan_code(
  plan text, status public.subscription_status, grace_until timestamptz
) returns text
language sql stable set search_path = '' as $$
  select case
    when status in ('trialing', 'active') then plan
    when status = 'past_due' and grace_until > now() then plan
    else 'free'
  end
$$;

-- The start of the usage period now: the subscription's billing period while it
-- runs, else the calendar month (UTC) — free plans and lapsed subscriptions.
create function app.usage_period(period_start timestamptz, period_end timestamptz)
returns timestamptz
language sql stable set search_path = '' as $$
  select case when period_start <= now() and now() < period_end then period_start
              else date_trunc('month', now(), 'UTC') end
$$;

-- The organization's effective plan (code, limits); the free plan when it has no subscription.
create function private.plan_in_effect(org uuid, out code text, out limits jsonb)
language sql stable security definer set search_path = '' as $$
  select p.code, p.limits
    from (select coalesce(
            (select app.effective_plan_code(s.plan_code, s.status, s.grace_until)
               from public.subscriptions s where s.organization_id = org), 'free') as code) e
    join public.plans p on p.code = e.code
$$;

create function private.refuse_over_limit(
  plan text, metric text, cap bigint, used bigint
) returns void
language plpgsql set search_path = '' as $$
begin
  raise exception using
    errcode = 'PT402',
    message = format('plan_limit: the %s plan allows %s %s, and the organization has %s',
                     plan, cap, metric, used),
    detail = json_build_object('code', 'plan_limit', 'limit', metric, 'value', cap,
                               'usage', used, 'plan', plan)::text,
    hint = 'Upgrade the plan, or remove some first. Nothing over a limit is deleted.';
end;
$$;

-- BEFORE INSERT (or an update that makes a row count): refuses the row when the
-- organization already has `limit` rows of the table matching the predicate.
-- tg_argv[0] names the limit; tg_argv[1], optional, is a SQL predicate on the
-- table's columns (fixed in the trigger's DDL, never user input).
create function private.enforce_plan_limit() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  metric text := tg_argv[0];
  plan record;
  cap bigint;
  used bigint;
begin
  select * into plan from private.plan_in_effect(new.organization_id);
  cap := (plan.limits ->> metric)::bigint;
  if cap is null then
    return new;  -- unlimited
  end if;
  -- Concurrent writers of this organization and metric queue here until commit;
  -- the count below then sees what the previous one committed.
  perform pg_advisory_xact_lock(hashtext('plan_limit:' || metric), hashtext(new.organization_id::text));
  execute format('select count(*) from %I.%I where organization_id = $1%s',
                 tg_table_schema, tg_table_name,
                 case when tg_nargs > 1 then ' and (' || tg_argv[1] || ')' else '' end)
    into used using new.organization_id;
  if used >= cap then
    perform private.refuse_over_limit(plan.code, metric, cap, used);
  end if;
  return new;
end;
$$;

-- Every outbound message we send (stored `queued`: echoes of messages sent
-- elsewhere are not ours) counts in the period's counter; the upsert's row lock
-- makes the count exact under concurrency.
create function private.count_outbound_message() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  sub public.subscriptions;
  plan record;
  cap bigint;
  used bigint;
begin
  select * into sub from public.subscriptions s where s.organization_id = new.organization_id;
  select * into plan from private.plan_in_effect(new.organization_id);
  cap := (plan.limits ->> 'outbound_messages_per_period')::bigint;
  insert into public.usage_counters as c (organization_id, metric, period_start, count)
  values (new.organization_id, 'outbound_messages',
          app.usage_period(sub.current_period_start, sub.current_period_end), 1)
  on conflict (organization_id, metric, period_start) do update set count = c.count + 1
  returning c.count into used;
  if cap is not null and used > cap then
    perform private.refuse_over_limit(plan.code, 'outbound_messages_per_period', cap, used - 1);
  end if;
  return new;
end;
$$;

-- A new organization starts on the plan marked for new organizations (else free).
create function private.start_subscription() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.subscriptions (organization_id, plan_code, status)
  values (new.id, coalesce((select p.code from public.plans p where p.for_new_organizations), 'free'),
          'active');
  return null;
end;
$$;

-- ---- plans ------------------------------------------------------------------------------
-- Stripe Price ids are the account's: set them with
--   update public.plans set stripe_price_ids = '{price_…}' where code = 'pro';

insert into public.plans (code, name, position, limits, features, for_new_organizations) values
  ('free', 'Free', 0,
   '{"seats": 2, "channel_accounts": 1, "contacts": 500, "outbound_messages_per_period": 1000,
     "active_campaigns": 0, "automation_rules": 3, "bot_flows": 0, "api_keys": 0}',
   '{imports}', true),
  ('starter', 'Starter', 1,
   '{"seats": 5, "channel_accounts": 3, "contacts": 5000, "outbound_messages_per_period": 10000,
     "active_campaigns": 2, "automation_rules": 20, "bot_flows": 3, "api_keys": 2}',
   '{api,bots,campaigns,imports}', false),
  ('pro', 'Pro', 2,
   '{"seats": 20, "channel_accounts": 10, "contacts": 50000, "outbound_messages_per_period": 100000,
     "active_campaigns": 10, "automation_rules": 100, "bot_flows": 20, "api_keys": 10}',
   '{api,bots,campaigns,sla,imports}', false),
  ('enterprise', 'Enterprise', 3, '{}', '{api,bots,campaigns,sla,imports}', false);

-- Organizations that exist already keep everything they do today.
insert into public.subscriptions (organization_id, plan_code, status)
select o.id, 'enterprise', 'active' from public.organizations o
on conflict (organization_id) do nothing;

-- ---- triggers ---------------------------------------------------------------------------

create trigger organizations_start_subscription after insert on public.organizations
  for each row execute function private.start_subscription();

create trigger organization_members_plan_limit before insert on public.organization_members
  for each row execute function private.enforce_plan_limit('seats');
create trigger channel_accounts_plan_limit before insert on public.channel_accounts
  for each row execute function private.enforce_plan_limit('channel_accounts');
-- Contacts people and keys add count against the limit; contacts the service makes
-- from a customer's inbound message are never refused (the message would be lost),
-- but count all the same.
create trigger contacts_plan_limit before insert on public.contacts
  for each row when (auth.role() = 'authenticated')
  execute function private.enforce_plan_limit('contacts');
create trigger automation_rules_plan_limit before insert on public.automation_rules
  for each row execute function private.enforce_plan_limit('automation_rules');
create trigger api_keys_plan_limit before insert on public.api_keys
  for each row execute function private.enforce_plan_limit('api_keys', 'revoked_at is null');
-- Active campaigns are scheduled or running: a new one, or one started or resumed.
create trigger campaigns_plan_limit before insert on public.campaigns
  for each row when (new.status in ('scheduled', 'running'))
  execute function private.enforce_plan_limit('active_campaigns', $$status in ('scheduled', 'running')$$);
create trigger campaigns_plan_limit_on_start before update of status on public.campaigns
  for each row when (new.status in ('scheduled', 'running')
                     and old.status not in ('scheduled', 'running'))
  execute function private.enforce_plan_limit('active_campaigns', $$status in ('scheduled', 'running')$$);
create trigger messages_count_outbound before insert on public.messages
  for each row when (new.direction = 'outbound' and new.status = 'queued')
  execute function private.count_outbound_message();

-- ---- function privileges ------------------------------------------------------------
revoke execute on function
  app.valid_plan_limits(jsonb), app.effective_plan_code(text, public.subscription_status, timestamptz),
  app.usage_period(timestamptz, timestamptz), private.plan_in_effect(uuid),
  private.refuse_over_limit(text, text, bigint, bigint), private.enforce_plan_limit(),
  private.count_outbound_message(), private.start_subscription()
  from public, anon, authenticated, service_role;
-- Pure functions the functions' reads call under RLS (no data read).
grant execute on function
  app.effective_plan_code(text, public.subscription_status, timestamptz),
  app.usage_period(timestamptz, timestamptz)
  to authenticated, service_role;
