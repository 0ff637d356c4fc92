-- Bot flows: chatbots that run inside conversations.
--
-- A flow (public.bot_flows) holds a draft graph, edited freely, and its triggers.
-- Publishing snapshots the draft into public.bot_flow_versions (version N+1),
-- immutable once written. A session (public.bot_sessions) runs one version in
-- one conversation and stays on it whatever is published later; at most one
-- session per conversation is live (a partial unique index). Every node a
-- session runs is logged in public.bot_session_steps.
--
-- Only the bot runtime (the owner) writes sessions and steps; members read them.
-- Members read flows and versions; managers (and write keys) edit and publish.
-- An agent's reply in a conversation (an outbound message sent by a user) hands
-- its live session off at once, by trigger, whatever path sent it.

create table public.bot_flows (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  description text check (length(description) <= 2000),
  enabled boolean not null default true,
  -- The draft graph; checked by shared/bots/graph.py before it is saved.
  draft jsonb not null check (jsonb_typeof(draft) = 'object' and pg_column_size(draft) <= 262144),
  -- [{type: keyword|regex|new_conversation, …}]: checked by the function.
  triggers jsonb not null default '[]'::jsonb check (jsonb_typeof(triggers) = 'array'),
  -- Idle time after which a live session is timed out.
  timeout_seconds integer not null default 86400 check (timeout_seconds between 60 and 2592000),
  published_version_id uuid,
  published_version integer,
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id)
);
alter table public.bot_flows enable row level security;
create policy bot_flows_select on public.bot_flows for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy bot_flows_insert on public.bot_flows for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy bot_flows_update on public.bot_flows for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy bot_flows_delete on public.bot_flows for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index bot_flows_org_idx on public.bot_flows (organization_id, created_at desc, id);
-- Inbound messages look for the organization's published, enabled flows with triggers.
create index bot_flows_triggers_idx on public.bot_flows (organization_id)
  where enabled and published_version_id is not null and triggers <> '[]'::jsonb;
create trigger bot_flows_keep_org before update on public.bot_flows
  for each row execute function app.keep_organization();
create trigger bot_flows_touch before update on public.bot_flows
  for each row execute function app.touch_updated_at();

create table public.bot_flow_versions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  flow_id uuid not null,
  version integer not null check (version >= 1),
  graph jsonb not null check (jsonb_typeof(graph) = 'object'),
  published_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (flow_id, version),
  foreign key (organization_id, flow_id)
    references public.bot_flows (organization_id, id) on delete cascade
);
alter table public.bot_flow_versions enable row level security;
create policy bot_flow_versions_select on public.bot_flow_versions for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy bot_flow_versions_insert on public.bot_flow_versions for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
-- No update or delete policy: a version is immutable (and goes with its flow).
create index bot_flow_versions_org_idx
  on public.bot_flow_versions (organization_id, flow_id, version desc);

alter table public.bot_flows
  add foreign key (organization_id, published_version_id)
  references public.bot_flow_versions (organization_id, id);

-- ---- sessions ----------------------------------------------------------------------------

create table public.bot_sessions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  flow_id uuid not null,
  flow_version_id uuid not null,
  conversation_id uuid not null,
  contact_id uuid,
  status text not null default 'active'
    check (status in ('active', 'waiting', 'handed_off', 'completed', 'timed_out', 'failed')),
  current_node text,
  variables jsonb not null default '{}'::jsonb check (jsonb_typeof(variables) = 'object'),
  -- Failed answers to the current question so far.
  retries integer not null default 0,
  -- A delay's end (status waiting, no question asked).
  resume_at timestamptz,
  timeout_seconds integer not null,
  last_activity_at timestamptz not null default now(),
  -- last_activity_at + timeout_seconds while live: the sweep's index.
  expires_at timestamptz,
  -- How it started: {type: keyword|regex|new_conversation|automation|api, …}.
  started_by jsonb not null default '{}'::jsonb,
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  end_reason text check (length(end_reason) <= 1000),
  unique (organization_id, id),
  foreign key (organization_id, flow_id)
    references public.bot_flows (organization_id, id) on delete cascade,
  foreign key (organization_id, flow_version_id)
    references public.bot_flow_versions (organization_id, id) on delete cascade,
  foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade
);
alter table public.bot_sessions enable row level security;
create policy bot_sessions_select on public.bot_sessions for select to authenticated
  using (organization_id in (select app.org_ids()));
-- One live session per conversation, even under concurrent starts.
create unique index bot_sessions_one_live_key on public.bot_sessions (conversation_id)
  where status in ('active', 'waiting');
create index bot_sessions_org_idx on public.bot_sessions (organization_id, started_at desc, id);
create index bot_sessions_flow_idx on public.bot_sessions (organization_id, flow_id, started_at desc);
-- The sweep's work across organizations, as event_deliveries_due_idx.
create index bot_sessions_resume_idx on public.bot_sessions (resume_at)
  where status = 'waiting' and resume_at is not null;
create index bot_sessions_expiry_idx on public.bot_sessions (expires_at)
  where status in ('active', 'waiting');

create table public.bot_session_steps (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  session_id uuid not null,
  node_id text not null,
  kind text not null,
  input jsonb,
  output jsonb,
  variables_changed jsonb not null default '{}'::jsonb,
  error text check (length(error) <= 2000),
  started_at timestamptz not null default now(),
  duration_ms integer not null default 0 check (duration_ms >= 0),
  foreign key (organization_id, session_id)
    references public.bot_sessions (organization_id, id) on delete cascade
);
alter table public.bot_session_steps enable row level security;
create policy bot_session_steps_select on public.bot_session_steps for select to authenticated
  using (organization_id in (select app.org_ids()));
create index bot_session_steps_session_idx
  on public.bot_session_steps (organization_id, session_id, id);

-- Inbound messages the bot runtime has handled: the inline pass after a webhook and
-- the events worker both see each message; the first to mark it handles it.
create table private.bot_handled_messages (
  message_id uuid primary key,
  handled_at timestamptz not null default now()
);
revoke all on private.bot_handled_messages from public, anon, authenticated;
create index bot_handled_messages_age_idx on private.bot_handled_messages (handled_at);

-- ---- takeover ----------------------------------------------------------------------------

-- A person wrote in the conversation: the bot stops, whatever sent the message
-- (send-message, an echo from the provider's app, an automation as its author).
create function app.bot_agent_takeover() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.bot_sessions
     set status = 'handed_off', ended_at = now(), expires_at = null, resume_at = null,
         end_reason = 'an agent replied in the conversation'
   where conversation_id = new.conversation_id and organization_id = new.organization_id
     and status in ('active', 'waiting');
  return null;
end;
$$;
revoke execute on function app.bot_agent_takeover() from public, anon, authenticated, service_role;
create trigger messages_bot_takeover after insert on public.messages
  for each row when (new.direction = 'outbound' and new.sender_type = 'user')
  execute function app.bot_agent_takeover();
