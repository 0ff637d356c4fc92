-- Dashboards: per-user and organization-shared dashboards of widgets, and what their
-- metrics read fast at scale.
--
--   dashboards, dashboard_widgets   members read their own and the organization's
--                                   shared ones; each member writes their own, managers
--                                   (and write keys) the shared ones
--   message_rollups, reply_rollups  messages per UTC hour, channel account and direction;
--                                   agents' replies per UTC hour; kept by statement
--                                   triggers on messages
--   conversation_transitions        every conversation's opening and status change,
--                                   appended by triggers on conversations
--   organizations.agents_see_team_metrics   whether agents see their teammates' figures
--
-- How the rollups stay exact: every insert, delete and update of the rolled-up columns
-- of messages adds or subtracts in the same transaction (an upsert per message inserted,
-- one per group of a delete statement's rows), committing or rolling back with it. Rows
-- are striped by backend (`shard`, 4 stripes) so concurrent ingest transactions seldom
-- wait on one counter row; readers sum the stripes.

-- ---- the organization's choice -------------------------------------------------------------

alter table public.organizations
  add column agents_see_team_metrics boolean not null default false;

-- ---- dashboards ------------------------------------------------------------------------------

create table public.dashboards (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  -- null: shared with the organization; else the member whose own dashboard it is
  owner_user_id uuid,
  name text not null check (length(btrim(name)) between 1 and 120),
  -- a shared dashboard may be the default of one role (seeded per organization)
  default_for_role public.member_role,
  columns smallint not null default 12 check (columns between 1 and 24),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  check (default_for_role is null or owner_user_id is null),
  foreign key (organization_id, owner_user_id)
    references public.organization_members (organization_id, user_id) on delete cascade
);
alter table public.dashboards enable row level security;

-- Who may write a dashboard (and its widgets): its owner, or for a shared one managers and
-- up (write keys act as managers). Invoker: it calls the definer helpers only.
create function app.may_write_dashboard(org uuid, owner uuid) returns boolean
language sql stable set search_path = '' as $$
  select case when owner is null then org = any (array(select app.org_ids_with_role('manager')))
              else owner = (select auth.uid())
                   and org = any (array(select app.org_ids_with_role('agent'))) end
$$;

create policy dashboards_select on public.dashboards for select to authenticated
  using (organization_id = any (array(select app.org_ids()))
         and (owner_user_id is null or owner_user_id = (select auth.uid())));
create policy dashboards_insert on public.dashboards for insert to authenticated
  with check (app.may_write_dashboard(organization_id, owner_user_id));
create policy dashboards_update on public.dashboards for update to authenticated
  using (app.may_write_dashboard(organization_id, owner_user_id))
  with check (app.may_write_dashboard(organization_id, owner_user_id));
create policy dashboards_delete on public.dashboards for delete to authenticated
  using (app.may_write_dashboard(organization_id, owner_user_id));
create index dashboards_org_idx on public.dashboards (organization_id, owner_user_id, created_at);
create unique index dashboards_role_default_key on public.dashboards (organization_id, default_for_role)
  where default_for_role is not null;
create trigger dashboards_touch before update on public.dashboards
  for each row execute function app.touch_updated_at();
create trigger dashboards_keep_org before update on public.dashboards
  for each row execute function app.keep_organization();

-- A dashboard never changes hands: a shared one stays shared, an own one its owner's.
create function app.keep_dashboard_owner() returns trigger
language plpgsql set search_path = '' as $$
begin
  if new.owner_user_id is distinct from old.owner_user_id then
    raise exception 'owner_user_id: a dashboard cannot change owner' using errcode = 'CG422',
      column = 'owner_user_id';
  end if;
  return new;
end;
$$;
create trigger dashboards_keep_owner before update on public.dashboards
  for each row execute function app.keep_dashboard_owner();

create table public.dashboard_widgets (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  dashboard_id uuid not null,
  title text check (length(btrim(title)) between 1 and 120),
  metric text not null check (metric ~ '^[a-z][a-z0-9_]{0,62}$'),
  visualization text not null
    check (visualization in ('kpi', 'timeseries', 'bar', 'funnel', 'leaderboard', 'table', 'heatmap')),
  filter jsonb,
  date_range jsonb not null default '{"preset": "last_30_days"}'::jsonb
    check (jsonb_typeof(date_range) = 'object'),
  grouping text not null default 'day' check (grouping in ('day', 'week', 'month')),
  options jsonb not null default '{}'::jsonb check (jsonb_typeof(options) = 'object'),
  -- the widget's place on the dashboard's grid, in cells
  x smallint not null default 0 check (x between 0 and 23),
  y smallint not null default 0 check (y between 0 and 999),
  w smallint not null default 4 check (w between 1 and 24),
  h smallint not null default 3 check (h between 1 and 24),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  foreign key (organization_id, dashboard_id)
    references public.dashboards (organization_id, id) on delete cascade
);
alter table public.dashboard_widgets enable row level security;
-- A widget is seen and written with its dashboard: the subquery reads dashboards under
-- the caller's own policies.
create policy dashboard_widgets_select on public.dashboard_widgets for select to authenticated
  using (organization_id = any (array(select app.org_ids()))
         and exists (select 1 from public.dashboards d
                      where d.organization_id = dashboard_widgets.organization_id
                        and d.id = dashboard_widgets.dashboard_id));
create policy dashboard_widgets_insert on public.dashboard_widgets for insert to authenticated
  with check (exists (select 1 from public.dashboards d
                       where d.organization_id = dashboard_widgets.organization_id
                         and d.id = dashboard_widgets.dashboard_id
                         and app.may_write_dashboard(d.organization_id, d.owner_user_id)));
create policy dashboard_widgets_update on public.dashboard_widgets for update to authenticated
  using (exists (select 1 from public.dashboards d
                  where d.organization_id = dashboard_widgets.organization_id
                    and d.id = dashboard_widgets.dashboard_id
                    and app.may_write_dashboard(d.organization_id, d.owner_user_id)))
  with check (exists (select 1 from public.dashboards d
                       where d.organization_id = dashboard_widgets.organization_id
                         and d.id = dashboard_widgets.dashboard_id
                         and app.may_write_dashboard(d.organization_id, d.owner_user_id)));
create policy dashboard_widgets_delete on public.dashboard_widgets for delete to authenticated
  using (exists (select 1 from public.dashboards d
                  where d.organization_id = dashboard_widgets.organization_id
                    and d.id = dashboard_widgets.dashboard_id
                    and app.may_write_dashboard(d.organization_id, d.owner_user_id)));
create index dashboard_widgets_dashboard_idx
  on public.dashboard_widgets (organization_id, dashboard_id, y, x);
create trigger dashboard_widgets_touch before update on public.dashboard_widgets
  for each row execute function app.touch_updated_at();
create trigger dashboard_widgets_keep_org before update on public.dashboard_widgets
  for each row execute function app.keep_organization();

-- ---- messages per hour ------------------------------------------------------------------------

-- Messages per UTC hour, channel account and direction; agents' replies per UTC hour and
-- agent. Hourly UTC buckets serve every zone whose offset is whole hours; the functions
-- read raw messages for the others (and when a widget has a filter).
create table public.message_rollups (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  bucket timestamptz not null,
  channel_account_id uuid not null,
  direction public.message_direction not null,
  shard smallint not null,
  messages bigint not null,
  primary key (organization_id, bucket, channel_account_id, direction, shard)
);
alter table public.message_rollups enable row level security;
create policy message_rollups_select on public.message_rollups for select to authenticated
  using (organization_id = any (array(select app.org_ids())));

create table public.reply_rollups (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  bucket timestamptz not null,
  sender_id uuid not null,  -- the agent (outbound messages a user sent)
  shard smallint not null,
  messages bigint not null,
  primary key (organization_id, bucket, sender_id, shard)
);
alter table public.reply_rollups enable row level security;
create policy reply_rollups_select on public.reply_rollups for select to authenticated
  using (organization_id = any (array(select app.org_ids())));

-- One message in or out of the counts: an upsert per rollup it belongs to.
create function app.bump_message_rollups(m public.messages, delta integer) returns void
language plpgsql set search_path = '' as $$
begin
  insert into public.message_rollups as r
         (organization_id, bucket, channel_account_id, direction, shard, messages)
  values (m.organization_id, date_trunc('hour', m.created_at, 'UTC'), m.channel_account_id,
          m.direction, pg_backend_pid() % 4, delta)
  on conflict (organization_id, bucket, channel_account_id, direction, shard)
  do update set messages = r.messages + excluded.messages;
  if m.direction = 'outbound' and m.sender_type = 'user' and m.sender_id is not null then
    insert into public.reply_rollups as r (organization_id, bucket, sender_id, shard, messages)
    values (m.organization_id, date_trunc('hour', m.created_at, 'UTC'), m.sender_id,
            pg_backend_pid() % 4, delta)
    on conflict (organization_id, bucket, sender_id, shard)
    do update set messages = r.messages + excluded.messages;
  end if;
end;
$$;

-- Inserts: a row trigger, the cheapest for the ingest's one message per statement (a
-- statement trigger with a transition table cost twice as much CPU per message; a bulk
-- import pays one upsert per row instead).
create function app.message_rollup_add() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform app.bump_message_rollups(new, 1);
  return null;
end;
$$;
create trigger messages_rollup_insert after insert on public.messages
  for each row execute function app.message_rollup_add();

-- Deletes come by whole conversations (cascades): the statement's rows, `gone`, are
-- subtracted per group, one upsert per rollup and statement. A cascade from a deleted
-- organization subtracts nothing: its rollups go with it.
create function app.message_rollup_subtract() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.message_rollups as r
         (organization_id, bucket, channel_account_id, direction, shard, messages)
  select m.organization_id, date_trunc('hour', m.created_at, 'UTC'), m.channel_account_id,
         m.direction, pg_backend_pid() % 4, -count(*)
    from gone m
   where exists (select 1 from public.organizations o where o.id = m.organization_id)
   group by 1, 2, 3, 4
  on conflict (organization_id, bucket, channel_account_id, direction, shard)
  do update set messages = r.messages + excluded.messages;
  insert into public.reply_rollups as r (organization_id, bucket, sender_id, shard, messages)
  select m.organization_id, date_trunc('hour', m.created_at, 'UTC'), m.sender_id,
         pg_backend_pid() % 4, -count(*)
    from gone m
   where m.direction = 'outbound' and m.sender_type = 'user' and m.sender_id is not null
     and exists (select 1 from public.organizations o where o.id = m.organization_id)
   group by 1, 2, 3
  on conflict (organization_id, bucket, sender_id, shard)
  do update set messages = r.messages + excluded.messages;
  return null;
end;
$$;
create trigger messages_rollup_delete after delete on public.messages
  referencing old table as gone for each statement execute function app.message_rollup_subtract();

-- Updates of the rolled-up columns (none of the app's paths makes them) move the count;
-- status updates do not fire it.
create function app.message_rollup_move() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform app.bump_message_rollups(old, -1);
  perform app.bump_message_rollups(new, 1);
  return null;
end;
$$;
create trigger messages_rollup_update
  after update of created_at, channel_account_id, direction, sender_type, sender_id
  on public.messages for each row
  when ((old.created_at, old.channel_account_id, old.direction, old.sender_type, old.sender_id)
        is distinct from (new.created_at, new.channel_account_id, new.direction, new.sender_type,
                          new.sender_id))
  execute function app.message_rollup_move();

-- ---- conversation openings and status changes ----------------------------------------------------

create table public.conversation_transitions (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  conversation_id uuid not null,
  channel_account_id uuid not null,
  -- null: the conversation was opened
  from_status public.conversation_status,
  to_status public.conversation_status not null,
  assignee_id uuid,  -- the conversation's assignee at that moment
  at timestamptz not null,
  foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade
);
alter table public.conversation_transitions enable row level security;
create policy conversation_transitions_select on public.conversation_transitions
  for select to authenticated using (organization_id = any (array(select app.org_ids())));
create index conversation_transitions_report_idx on public.conversation_transitions
  (organization_id, at) include (to_status, from_status, channel_account_id, assignee_id, conversation_id);

create function app.conversation_transition() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.conversation_transitions
         (organization_id, conversation_id, channel_account_id, from_status, to_status,
          assignee_id, at)
  values (new.organization_id, new.id, new.channel_account_id,
          case when tg_op = 'UPDATE' then old.status end, new.status, new.assignee_id,
          case when tg_op = 'UPDATE' then now() else new.created_at end);
  return null;
end;
$$;
create trigger conversations_transition_insert after insert on public.conversations
  for each row execute function app.conversation_transition();
create trigger conversations_transition_update after update of status on public.conversations
  for each row when (old.status is distinct from new.status)
  execute function app.conversation_transition();

-- ---- indexes the raw metrics read ------------------------------------------------------------------

-- measured clocks with their seconds, read without the heap
create index sla_clocks_dashboard_idx on public.sla_clocks
  (organization_id, kind, stopped_at)
  include (wall_seconds, business_seconds, outcome, due_at, conversation_id)
  where stopped_at is not null;
create index deals_org_won_idx on public.deals (organization_id, won_at)
  include (value, pipeline_id, assignee_id) where won_at is not null;
create index deals_org_lost_idx on public.deals (organization_id, lost_at)
  include (value, pipeline_id, assignee_id, lost_reason) where lost_at is not null;
-- the funnel reads the stage changes of the deals created in its range
create index deal_stage_changes_org_changed_idx on public.deal_stage_changes
  (organization_id, changed_at) include (deal_id, to_stage_id);
create index deals_org_open_idx on public.deals (organization_id, expected_close_date)
  include (value, probability, pipeline_id, stage_id, assignee_id, created_at) where status = 'open';

-- ---- what exists already --------------------------------------------------------------------------

insert into public.message_rollups
       (organization_id, bucket, channel_account_id, direction, shard, messages)
select organization_id, date_trunc('hour', created_at, 'UTC'), channel_account_id, direction, 0,
       count(*)
  from public.messages
 group by 1, 2, 3, 4;
insert into public.reply_rollups (organization_id, bucket, sender_id, shard, messages)
select organization_id, date_trunc('hour', created_at, 'UTC'), sender_id, 0, count(*)
  from public.messages
 where direction = 'outbound' and sender_type = 'user' and sender_id is not null
 group by 1, 2, 3;

-- History before this migration is unknown: each conversation was opened when it was
-- created, and one resolved now was resolved at its last update.
insert into public.conversation_transitions
       (organization_id, conversation_id, channel_account_id, from_status, to_status, assignee_id, at)
select organization_id, id, channel_account_id, null::public.conversation_status,
       'open'::public.conversation_status, assignee_id, created_at
  from public.conversations
union all
select organization_id, id, channel_account_id, 'open', 'resolved', assignee_id, updated_at
  from public.conversations where status = 'resolved';

-- ---- function privileges ----------------------------------------------------------------------
revoke execute on function app.keep_dashboard_owner(),
  app.bump_message_rollups(public.messages, integer), app.message_rollup_add(),
  app.message_rollup_subtract(), app.message_rollup_move(), app.conversation_transition(),
  app.may_write_dashboard(uuid, uuid)
  from public, anon, authenticated, service_role;
-- the policies run it as the querying role
grant execute on function app.may_write_dashboard(uuid, uuid) to authenticated;
