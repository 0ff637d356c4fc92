-- Sending tells the truth: an outbound message goes queued → sending → sent | failed | unknown.
--
--   queued   stored, no provider call started (the sweeper fails it if it stays so)
--   sending  a provider call may be under way until send_deadline (then the sweeper
--            marks it unknown: never sent again by itself)
--   unknown  the provider may or may not have the message (timeout or 5xx after the
--            request left, an answer we cannot read): a person decides
--
-- The new enum values cannot be used in this transaction (PostgreSQL refuses an
-- uncommitted enum value), so nothing below casts 'sending'/'unknown' to the type
-- when it is created: plpgsql bodies are checked when they run, and the ranking
-- compares text.

alter type public.message_status add value if not exists 'sending' after 'queued';
alter type public.message_status add value if not exists 'unknown' after 'sending';

alter table public.messages add column if not exists send_deadline timestamptz;
comment on column public.messages.send_deadline is
  'While sending: when the claim of the server sending it expires.';

-- The sweeper's rows: outbound messages by state and age.
create index if not exists messages_outbound_state_idx
  on public.messages (status, created_at) where direction = 'outbound';

-- Statuses only move forward. unknown sits below sent and failed, so the real
-- outcome, arriving late (the original sender, a status webhook), replaces it.
create or replace function app.message_status_rank(s public.message_status) returns integer
language sql immutable set search_path = '' as $$
  select case s::text when 'received' then 0 when 'queued' then 1 when 'sending' then 2
                      when 'unknown' then 3 when 'sent' then 4 when 'failed' then 5
                      when 'delivered' then 6 when 'read' then 7 end
$$;

-- As before, plus: the step queued → sending is the sender's claim, not news for
-- automations (they hear of the outcome), so it emits no message.status_changed.
create or replace function app.message_events() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' and new.direction = 'inbound' then
    perform app.emit(new.organization_id, 'message.received', new.id, to_jsonb(new));
  elsif tg_op = 'INSERT' and new.status = 'sent' then
    perform app.emit(new.organization_id, 'message.sent', new.id, to_jsonb(new));
  elsif tg_op = 'UPDATE' and new.status is distinct from old.status
        and new.status::text <> 'sending' then
    if new.status = 'sent' then
      perform app.emit(new.organization_id, 'message.sent', new.id, to_jsonb(new));
    end if;
    perform app.emit(new.organization_id, 'message.status_changed', new.id,
      jsonb_build_object('message', to_jsonb(new), 'previous_status', old.status));
  end if;
  return null;
end;
$$;

-- Idempotency-Key: an in-progress claim expires (a killed request does not hold
-- the key for a day), and a send links its message to the key so that a retry
-- after the claim expired never sends a second copy.
alter table private.idempotency_keys
  add column if not exists claimed_until timestamptz not null default now(),
  add column if not exists resource_id uuid;
create index if not exists idempotency_keys_resource_idx
  on private.idempotency_keys (resource_id) where resource_id is not null;
