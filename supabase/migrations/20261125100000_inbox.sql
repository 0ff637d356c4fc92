-- The unified inbox: channel accounts, contacts and their channel identities,
-- conversations, messages, the raw inbound event log and the domain-event outbox.
--
-- Cross-tenant references are impossible by construction: every child row
-- points at its parent through (organization_id, id) composite foreign keys,
-- and assignees must be members of the same organization.
--
-- Row level security is on from each table's creation, its policies beside it.
-- Members read everything of their organization; agents and up (and
-- write-scoped API keys) work contacts and conversations; managers delete;
-- admins connect channels and read the raw event logs. Messages are written
-- by the functions (send-message inserts the queued row under these policies).

create type public.channel as enum ('whatsapp', 'messenger', 'instagram', 'telegram', 'email', 'sms');
create type public.conversation_status as enum ('open', 'pending', 'snoozed', 'resolved');
create type public.message_direction as enum ('inbound', 'outbound');
create type public.sender_type as enum ('contact', 'user', 'bot', 'system');
create type public.content_type as enum (
  'text', 'image', 'audio', 'video', 'document', 'location', 'sticker', 'contacts',
  'template', 'interactive', 'unsupported'
);
-- Sending tells the truth: an outbound message goes queued → sending → sent | failed | unknown.
--   queued   stored, no provider call started (the sweeper fails it if it stays so)
--   sending  a provider call may be under way until send_deadline (then the sweeper
--            marks it unknown: never sent again by itself)
--   unknown  the provider may or may not have the message (timeout or 5xx after the
--            request left, an answer we cannot read): a person decides
create type public.message_status as enum (
  'received', 'queued', 'sending', 'unknown', 'sent', 'delivered', 'read', 'failed'
);

-- ---- domain events (transactional outbox) -------------------------------------------------

create table public.outbox_events (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  event_type text not null,
  aggregate_id uuid,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  processed_at timestamptz,
  attempts integer not null default 0,
  last_error text
);
alter table public.outbox_events enable row level security;
create policy outbox_events_select on public.outbox_events for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
create index outbox_events_org_idx on public.outbox_events (organization_id, id);
create index outbox_events_pending_idx on public.outbox_events (id) where processed_at is null;

-- Written by triggers, so a change made anywhere (function, PostgREST, SQL)
-- records its event in the same transaction.
-- plpgsql rather than sql: a security-definer SQL function is planned anew on
-- every call, and this one runs several times per inbound message.
create function app.emit(org uuid, kind text, aggregate uuid, body jsonb) returns void
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.outbox_events (organization_id, event_type, aggregate_id, payload)
  values (org, kind, aggregate, body);
end;
$$;

-- ---- channel accounts -----------------------------------------------------------------------

create table public.channel_accounts (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  channel public.channel not null,
  name text not null check (length(btrim(name)) between 1 and 120),
  external_id text not null,
  settings jsonb not null default '{}'::jsonb check (jsonb_typeof(settings) = 'object'),
  status text not null default 'active' check (status in ('active', 'disabled', 'error')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (organization_id, channel, external_id)
);
alter table public.channel_accounts enable row level security;
create policy channel_accounts_select on public.channel_accounts for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy channel_accounts_insert on public.channel_accounts for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy channel_accounts_update on public.channel_accounts for update to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')))
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy channel_accounts_delete on public.channel_accounts for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
create trigger channel_accounts_touch before update on public.channel_accounts
  for each row execute function app.touch_updated_at();
create trigger channel_accounts_keep_org before update on public.channel_accounts
  for each row execute function app.keep_organization();

-- Tokens, app secrets, verify tokens, webhook signing keys: never readable by API roles.
create table private.channel_credentials (
  channel_account_id uuid primary key references public.channel_accounts (id) on delete cascade,
  secrets jsonb not null default '{}'::jsonb
);

-- ---- contacts -------------------------------------------------------------------------------

create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text,
  phone text check (phone ~ '^\+[1-9][0-9]{6,14}$'),
  email text check (email = lower(email) and email like '%_@_%'),
  avatar_url text,
  custom_fields jsonb not null default '{}'::jsonb check (jsonb_typeof(custom_fields) = 'object'),
  assignee_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  foreign key (organization_id, assignee_id)
    references public.organization_members (organization_id, user_id) on delete set null (assignee_id)
);
alter table public.contacts enable row level security;
create policy contacts_select on public.contacts for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy contacts_insert on public.contacts for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contacts_update on public.contacts for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contacts_delete on public.contacts for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index contacts_org_created_idx on public.contacts (organization_id, created_at desc, id);
-- One contact per phone number and per e-mail address in an organization: the
-- inbox matches senders on them, race-free.
create unique index contacts_org_phone_key on public.contacts (organization_id, phone) where phone is not null;
create unique index contacts_org_email_key on public.contacts (organization_id, email) where email is not null;
-- updated_at means "someone changed the contact": activity bookkeeping
-- (last_activity_at, which the CRM adds) does not count.
create trigger contacts_touch before update on public.contacts
  for each row
  when ((to_jsonb(old) - 'updated_at' - 'last_activity_at')
        is distinct from (to_jsonb(new) - 'updated_at' - 'last_activity_at'))
  execute function app.touch_updated_at();
create trigger contacts_keep_org before update on public.contacts
  for each row execute function app.keep_organization();

create table public.contact_identities (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  contact_id uuid not null,
  channel public.channel not null,
  external_id text not null,
  display_name text,
  created_at timestamptz not null default now(),
  unique (organization_id, channel, external_id),
  foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete cascade
);
alter table public.contact_identities enable row level security;
create policy contact_identities_select on public.contact_identities for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy contact_identities_insert on public.contact_identities for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contact_identities_update on public.contact_identities for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contact_identities_delete on public.contact_identities for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index contact_identities_contact_idx on public.contact_identities (organization_id, contact_id);
create trigger contact_identities_keep_org before update on public.contact_identities
  for each row execute function app.keep_organization();

-- ---- conversations ----------------------------------------------------------------------------

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  contact_id uuid not null,
  channel_account_id uuid not null,
  -- Chats have one thread per contact and account (''); an e-mail thread is keyed
  -- by its first Message-ID, so a new subject starts a new conversation.
  thread_key text not null default '',
  subject text,
  status public.conversation_status not null default 'open',
  assignee_id uuid,
  snoozed_until timestamptz,
  last_message_at timestamptz,
  last_inbound_at timestamptz,
  unread_count integer not null default 0 check (unread_count >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete cascade,
  foreign key (organization_id, channel_account_id)
    references public.channel_accounts (organization_id, id) on delete cascade,
  foreign key (organization_id, assignee_id)
    references public.organization_members (organization_id, user_id) on delete set null (assignee_id)
);
alter table public.conversations enable row level security;
create policy conversations_select on public.conversations for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy conversations_insert on public.conversations for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy conversations_update on public.conversations for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy conversations_delete on public.conversations for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
-- At most one unresolved conversation per contact, account and thread: the
-- inbox reopens it instead of starting another, even under concurrent webhooks.
create unique index conversations_one_unresolved_key
  on public.conversations (organization_id, channel_account_id, contact_id, thread_key)
  where status <> 'resolved';
create index conversations_inbox_idx on public.conversations (organization_id, status, last_message_at desc);
create index conversations_assignee_idx on public.conversations (organization_id, assignee_id, status);
create index conversations_contact_idx on public.conversations (organization_id, contact_id, created_at desc);
create trigger conversations_touch before update on public.conversations
  for each row execute function app.touch_updated_at();
create trigger conversations_keep_org before update on public.conversations
  for each row execute function app.keep_organization();

-- ---- messages --------------------------------------------------------------------------------

create table public.messages (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  conversation_id uuid not null,
  channel_account_id uuid not null,
  direction public.message_direction not null,
  sender_type public.sender_type not null,
  sender_id uuid,
  content_type public.content_type not null default 'text',
  body text,
  attachments jsonb not null default '[]'::jsonb check (jsonb_typeof(attachments) = 'array'),
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  provider_message_id text,
  status public.message_status not null,
  error jsonb,
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  send_deadline timestamptz,
  unique (organization_id, id),
  unique (channel_account_id, provider_message_id),
  foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade,
  foreign key (organization_id, channel_account_id)
    references public.channel_accounts (organization_id, id) on delete cascade,
  check ((direction = 'inbound') = (status = 'received'))
);
alter table public.messages enable row level security;
create policy messages_select on public.messages for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy messages_insert on public.messages for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('agent'))
    and direction = 'outbound' and sender_type = 'user' and status = 'queued'
    and sender_id = (select auth.uid())
  );
comment on column public.messages.send_deadline is
  'While sending: when the claim of the server sending it expires.';
create index messages_conversation_idx on public.messages (organization_id, conversation_id, created_at, id);
-- The sweeper's rows: outbound messages by state and age.
create index messages_outbound_state_idx
  on public.messages (status, created_at) where direction = 'outbound';
create trigger messages_keep_org before update on public.messages
  for each row execute function app.keep_organization();

-- Statuses only move forward (queued → sending → sent → delivered → read);
-- providers deliver them late and out of order. A failure can follow queued,
-- sending or sent only. unknown sits below sent and failed, so the real outcome,
-- arriving late (the original sender, a status webhook), replaces it.
create function app.message_status_rank(s public.message_status) returns integer
language sql immutable set search_path = '' as $$
  select case s when 'received' then 0 when 'queued' then 1 when 'sending' then 2
                when 'unknown' then 3 when 'sent' then 4 when 'failed' then 5
                when 'delivered' then 6 when 'read' then 7 end
$$;

create function app.keep_status_monotonic() returns trigger
language plpgsql set search_path = '' as $$
begin
  if app.message_status_rank(new.status) < app.message_status_rank(old.status) then
    new.status := old.status;
    new.error := old.error;
  end if;
  -- keep the earliest known time of each step, whatever order they came in
  new.sent_at := least(old.sent_at, new.sent_at);
  new.delivered_at := least(old.delivered_at, new.delivered_at);
  new.read_at := least(old.read_at, new.read_at);
  return new;
end;
$$;
create trigger messages_status_monotonic before update of status, sent_at, delivered_at, read_at
  on public.messages for each row execute function app.keep_status_monotonic();

-- ---- the raw inbound log ------------------------------------------------------------------------

create table public.inbound_events (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  channel_account_id uuid not null,
  provider_event_id text not null,
  event_type text not null,
  payload jsonb not null,
  received_at timestamptz not null default now(),
  status text not null default 'pending' check (status in ('pending', 'processed', 'failed', 'ignored')),
  attempts integer not null default 0,
  last_error text,
  next_attempt_at timestamptz not null default now(),
  processed_at timestamptz,
  raw bytea,
  unique (channel_account_id, provider_event_id),
  foreign key (organization_id, channel_account_id)
    references public.channel_accounts (organization_id, id) on delete cascade
);
alter table public.inbound_events enable row level security;
create policy inbound_events_select on public.inbound_events for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));
-- A verified webhook delivery is never lost (shared/inbox/intake.py): what
-- PostgreSQL cannot hold as jsonb or text (a NUL character, a lone surrogate) or
-- what the channel cannot read is kept raw, losslessly, as bytes:
--   raw: the delivery's exact body (event_type 'unreadable'), or the event's
--        JSON text with NUL and surrogates as \u escapes (its payload then
--        names the field and why).
-- Such an event is failed with its reason and never retried by itself: what the
-- provider sent will not change.
comment on column public.inbound_events.raw is
  'The delivery or event exactly as received, when it cannot be stored as payload (see shared/inbox/intake.py)';
create index inbound_events_org_idx on public.inbound_events (organization_id, received_at desc);
create index inbound_events_due_idx on public.inbound_events (next_attempt_at)
  where status in ('pending', 'failed');

-- ---- domain events from row changes ---------------------------------------------------------------

create function app.contact_events() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' then
    perform app.emit(new.organization_id, 'contact.created', new.id, to_jsonb(new));
  end if;
  return null;
end;
$$;
create trigger contacts_events after insert on public.contacts
  for each row execute function app.contact_events();

create function app.conversation_events() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' then
    perform app.emit(new.organization_id, 'conversation.created', new.id, to_jsonb(new));
  else
    if new.assignee_id is distinct from old.assignee_id then
      perform app.emit(new.organization_id, 'conversation.assigned', new.id,
        jsonb_build_object('conversation', to_jsonb(new), 'previous_assignee_id', old.assignee_id));
    end if;
    if new.status is distinct from old.status then
      perform app.emit(new.organization_id, 'conversation.status_changed', new.id,
        jsonb_build_object('conversation', to_jsonb(new), 'previous_status', old.status));
    end if;
  end if;
  return null;
end;
$$;
create trigger conversations_events after insert or update on public.conversations
  for each row execute function app.conversation_events();

-- The step queued → sending is the sender's claim, not news for automations
-- (they hear of the outcome), so it emits no message.status_changed.
create function app.message_events() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' and new.direction = 'inbound' then
    perform app.emit(new.organization_id, 'message.received', new.id, to_jsonb(new));
  elsif tg_op = 'INSERT' and new.status = 'sent' then
    perform app.emit(new.organization_id, 'message.sent', new.id, to_jsonb(new));
  elsif tg_op = 'UPDATE' and new.status is distinct from old.status
        and new.status <> 'sending' then
    if new.status = 'sent' then
      perform app.emit(new.organization_id, 'message.sent', new.id, to_jsonb(new));
    end if;
    perform app.emit(new.organization_id, 'message.status_changed', new.id,
      jsonb_build_object('message', to_jsonb(new), 'previous_status', old.status));
  end if;
  return null;
end;
$$;
create trigger messages_events after insert or update on public.messages
  for each row execute function app.message_events();

-- ---- realtime: the organization's private inbox topic ------------------------------------------------

-- The payload is realtime.broadcast_changes' ({old_record, record, operation, table,
-- schema}, event = the operation), sent with realtime.send directly: the same message
-- without broadcast_changes' exception block, a subtransaction per row.
-- app.ingest_message sends a new message's broadcast itself, with the conversation it
-- changed in it (`conversation`), and turns these off meanwhile (connectgain.broadcast).
create function app.broadcast_inbox() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if current_setting('connectgain.broadcast', true) = 'off' then
    return null;
  end if;
  perform realtime.send(
    jsonb_build_object('old_record', old, 'record', new, 'operation', tg_op,
                       'table', tg_table_name, 'schema', tg_table_schema),
    tg_op, 'org:' || coalesce(new.organization_id, old.organization_id)::text || ':inbox');
  return null;
end;
$$;
create trigger messages_broadcast after insert or update on public.messages
  for each row execute function app.broadcast_inbox();
create trigger conversations_broadcast after insert or update or delete on public.conversations
  for each row execute function app.broadcast_inbox();
-- A message can disappear: the provider's echo of our own reply, stored when it
-- overtook send-message's answer, gives way to the reply (app.record_send).
-- Clients that were shown that copy learn it is gone on the same topic.
create trigger messages_broadcast_deleted after delete on public.messages
  for each row execute function app.broadcast_inbox();

-- Only members receive their organization's inbox topic, and only they may
-- broadcast on it (typing, presence). realtime.messages is Supabase's own table
-- (supabase/local stands in for it); other policies on it are left alone.
create policy inbox_members_receive on realtime.messages for select to authenticated
  using (realtime.topic() in (select 'org:' || o::text || ':inbox' from app.org_ids() o));
create policy inbox_members_send on realtime.messages for insert to authenticated
  with check (realtime.topic() in (select 'org:' || o::text || ':inbox' from app.org_ids() o));
-- The two above check the channel (realtime.topic()) only; these restrictive ones
-- also check the row's own topic, so a member can neither read nor insert rows of
-- another organization's topic by joining their own. Restrictive on purpose: the
-- table is shared, and a permissive policy someone else adds on it (Supabase's
-- examples open it to every signed-in user) cannot open an organization's topic.
create policy org_topics_members_only on realtime.messages as restrictive for all to authenticated
  using (
    not starts_with(topic, 'org:')
    or (topic = realtime.topic()
        and split_part(topic, ':', 2) in (select o::text from app.org_ids() o))
  );
create policy org_topics_not_anon on realtime.messages as restrictive for all to anon
  using (not starts_with(topic, 'org:'));

-- ---- helpers for the functions ----------------------------------------------------------------------

-- Stores or replaces an account's secrets, for an admin of its organization.
create function app.set_channel_credentials(account uuid, secrets jsonb) returns void
language plpgsql security definer set search_path = '' as $$
begin
  if (select app.api_key_id()) is not null or not exists (
    select 1 from public.channel_accounts a
     where a.id = account and a.organization_id in (select app.org_ids_with_role('admin'))) then
    raise exception 'Only admins and owners can change channel credentials' using errcode = 'CG403';
  end if;
  insert into private.channel_credentials (channel_account_id, secrets) values (account, secrets)
  on conflict (channel_account_id)
  do update set secrets = private.channel_credentials.secrets || excluded.secrets;
end;
$$;

-- ---- idempotent requests ---------------------------------------------------------------------------
-- Idempotency-Key: the first request's answer, replayed for a retry of the same
-- request by the same caller ("user:<id>" or "api_key:<id>") for 24 hours. An
-- in-progress claim expires (claimed_until: a killed request does not hold the
-- key for a day), and a send links its message to the key (resource_id) so that
-- a retry after the claim expired never sends a second copy.
create table private.idempotency_keys (
  owner text not null,
  scope text not null,
  key text not null,
  request_hash bytea not null,
  status_code integer,
  response jsonb,
  created_at timestamptz not null default now(),
  claimed_until timestamptz not null default now(),
  resource_id uuid,
  primary key (owner, scope, key)
);
create index idempotency_keys_created_idx on private.idempotency_keys (created_at);
create index idempotency_keys_resource_idx
  on private.idempotency_keys (resource_id) where resource_id is not null;

-- ---- function privileges ------------------------------------------------------------
-- Owner-only, whatever the default privileges; then one grant per caller that needs it.
revoke execute on function
  app.emit(uuid, text, uuid, jsonb), app.message_status_rank(public.message_status),
  app.keep_status_monotonic(), app.contact_events(), app.conversation_events(),
  app.message_events(), app.broadcast_inbox(), app.set_channel_credentials(uuid, jsonb)
  from public, anon, authenticated, service_role;

-- The message status trigger runs as whichever role updates messages: only
-- service_role does (authenticated has no update policy on them).
grant execute on function app.message_status_rank(public.message_status) to service_role;
-- Called by channel-accounts on an admin's behalf; it checks the caller's role itself.
grant execute on function app.set_channel_credentials(uuid, jsonb) to authenticated;
