-- The inbox's webhook path in the database: recording one inbound message in
-- one round trip (contact matching, threading, insert), statuses, send results,
-- whole deliveries and deliveries coalesced into one transaction. It follows
-- the CRM baseline because it keeps the contacts' CRM columns (opt-outs).
--
-- app.ingest_message(account, sender, message) → (message_id, contact_id, new_contact)
--   sender:  {external_id, name, phone (E.164), email (lower-case), avatar_url}
--   message: {provider_message_id, content_type, body, attachments, metadata,
--             occurred_at, edited, echo, opt_out, thread: {key, subject, references}}
-- An echo (a message the business sent from elsewhere) is recorded as outbound
-- and sent, and does not count as the contact writing.
-- message_id is null when the message was already recorded (a duplicate, or an
-- edit, which updates the recorded message).

create function app.ingest_message(account uuid, sender jsonb, message jsonb)
returns table (message_id uuid, contact_id uuid, new_contact boolean)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  acc record;
  pmid text := message ->> 'provider_message_id';
  occurred timestamptz := (message ->> 'occurred_at')::timestamptz;
  sender_phone text := nullif(sender ->> 'phone', '');
  sender_email text := nullif(sender ->> 'email', '');
  existing uuid;
  contact uuid;
  created boolean := false;
  conversation uuid;
  conv public.conversations;
  sent public.messages;
  broadcast text := current_setting('connectgain.broadcast', true);
  open_twin uuid;
  refs text[] := array(select jsonb_array_elements_text(coalesce(message -> 'thread' -> 'references', '[]')));
  echo boolean := coalesce((message ->> 'echo')::boolean, false);
  inbound_at timestamptz := case when echo then null else occurred end;
begin
  select a.id, a.organization_id, a.channel into acc from public.channel_accounts a where a.id = account;

  -- One sender at a time: concurrent deliveries never make a person two contacts.
  perform pg_advisory_xact_lock(hashtextextended(
    acc.organization_id::text || ':' || acc.channel::text || ':' || (sender ->> 'external_id'), 0));

  select m.id into existing from public.messages m
   where m.channel_account_id = account and m.provider_message_id = pmid;
  if existing is not null then
    if (message ->> 'edited')::boolean then
      update public.messages m
         set body = message ->> 'body', attachments = message -> 'attachments',
             metadata = m.metadata || jsonb_build_object('edited_at', occurred)
       where m.id = existing;
    end if;
    return query select null::uuid, null::uuid, false;
    return;
  end if;

  -- The contact: a known identity, else the same phone or e-mail, else a new one.
  select i.contact_id into contact from public.contact_identities i
   where i.organization_id = acc.organization_id and i.channel = acc.channel
     and i.external_id = sender ->> 'external_id';
  if contact is not null then
    update public.contacts c
       set name = coalesce(c.name, sender ->> 'name'),
           phone = coalesce(c.phone, case when not exists (
             select 1 from public.contacts o
              where o.organization_id = c.organization_id and o.phone = sender_phone)
             then sender_phone end)
     where c.id = contact and (c.name is null or c.phone is null)
       and (sender ->> 'name' is not null or sender_phone is not null);
  else
    select c.id into contact from public.contacts c
     where c.organization_id = acc.organization_id
       and (c.phone = sender_phone or c.email = sender_email)
     order by (c.phone = sender_phone) desc nulls last
     limit 1;
    if contact is null then
      -- Its first activity is this message: app.message_activity then has nothing to write.
      insert into public.contacts (organization_id, name, phone, email, avatar_url, last_activity_at)
      values (acc.organization_id, sender ->> 'name', sender_phone, sender_email, sender ->> 'avatar_url',
              occurred)
      on conflict do nothing
      returning id into contact;
      created := contact is not null;
      if contact is null then  -- another identity took the phone or e-mail meanwhile
        select c.id into contact from public.contacts c
         where c.organization_id = acc.organization_id
           and (c.phone = sender_phone or c.email = sender_email)
         limit 1;
      end if;
    end if;
    insert into public.contact_identities (organization_id, contact_id, channel, external_id, display_name)
    values (acc.organization_id, contact, acc.channel, sender ->> 'external_id', sender ->> 'name');
  end if;

  -- STOP / START and the like: the contact leaves or rejoins this channel.
  if (message ->> 'opt_out') is not null then
    update public.contacts c
       set opted_out_channels = case when (message ->> 'opt_out')::boolean
             then c.opted_out_channels || acc.channel
             else array_remove(c.opted_out_channels, acc.channel) end
     where c.id = contact;
  end if;

  -- The conversation: the one a referenced message is in, else the contact's
  -- unresolved one on this account and thread, else a new one. Reopened, bumped.
  if cardinality(refs) > 0 then
    select m.conversation_id into conversation from public.messages m
     where m.channel_account_id = account and m.provider_message_id = any (refs)
     order by m.created_at desc limit 1;
    -- Reopening a resolved conversation must not make a second unresolved one of its
    -- thread (conversations_one_unresolved_key): the thread's open one takes the message.
    select o.id into open_twin from public.conversations c
      join public.conversations o
        on o.organization_id = c.organization_id and o.channel_account_id = c.channel_account_id
       and o.contact_id = c.contact_id and o.thread_key = c.thread_key and o.status <> 'resolved'
     where c.id = conversation and c.status = 'resolved';
    conversation := coalesce(open_twin, conversation);
  end if;
  -- The message's one broadcast (below) carries the conversation: its own is off meanwhile.
  perform set_config('connectgain.broadcast', 'off', true);
  -- The open thread is found by a plain update (no conflict check or row lock of an
  -- insert; the sender's lock is held); only a first message inserts.
  update public.conversations c
     set status = case when echo then c.status else 'open' end,
         snoozed_until = case when echo then c.snoozed_until end,
         last_message_at = greatest(c.last_message_at, occurred),
         last_inbound_at = greatest(c.last_inbound_at, inbound_at),
         unread_count = c.unread_count + case when echo then 0 else 1 end
   where c.id = coalesce(conversation, (
           select o.id from public.conversations o
            where o.organization_id = acc.organization_id and o.channel_account_id = account
              and o.contact_id = contact and o.thread_key = coalesce(message -> 'thread' ->> 'key', '')
              and o.status <> 'resolved'))
     and (conversation is not null or c.status <> 'resolved')
  returning c.* into conv;
  if conv.id is null then
    insert into public.conversations as c
      (organization_id, contact_id, channel_account_id, thread_key, subject,
       last_message_at, last_inbound_at, unread_count)
    values (acc.organization_id, contact, account, coalesce(message -> 'thread' ->> 'key', ''),
            message -> 'thread' ->> 'subject', occurred, inbound_at, case when echo then 0 else 1 end)
    on conflict (organization_id, channel_account_id, contact_id, thread_key) where status <> 'resolved'
    do update set status = case when echo then c.status else 'open' end,
                  snoozed_until = case when echo then c.snoozed_until end,
                  last_message_at = greatest(c.last_message_at, excluded.last_message_at),
                  last_inbound_at = greatest(c.last_inbound_at, excluded.last_inbound_at),
                  unread_count = c.unread_count + excluded.unread_count
    returning c.* into conv;
  end if;

  insert into public.messages as m
    (organization_id, conversation_id, channel_account_id, direction, sender_type,
     content_type, body, attachments, metadata, provider_message_id, status, created_at, sent_at)
  values (acc.organization_id, conv.id, account,
          case when echo then 'outbound' else 'inbound' end::public.message_direction,
          case when echo then 'user' else 'contact' end::public.sender_type,
          (message ->> 'content_type')::public.content_type, message ->> 'body',
          coalesce(message -> 'attachments', '[]'),
          coalesce(message -> 'metadata', '{}')
            || case when (message ->> 'edited')::boolean
                    then jsonb_build_object('edited_at', occurred) else '{}' end
            || case when echo then '{"echo": true}'::jsonb else '{}' end,
          pmid, case when echo then 'sent' else 'received' end::public.message_status,
          occurred, case when echo then occurred end)
  on conflict (channel_account_id, provider_message_id) do nothing
  returning m.* into sent;
  perform set_config('connectgain.broadcast', coalesce(broadcast, ''), true);

  -- Realtime: the new message, in broadcast_changes' payload (app.broadcast_inbox), with
  -- the conversation as it now is. If a twin with the same provider id landed meanwhile,
  -- only the conversation changed, and that is what is sent.
  perform realtime.send(
    case when sent.id is not null
      then jsonb_build_object('old_record', null, 'record', to_jsonb(sent), 'operation', 'INSERT',
                              'table', 'messages', 'schema', 'public', 'conversation', to_jsonb(conv))
      else jsonb_build_object('old_record', null, 'record', to_jsonb(conv), 'operation', 'UPDATE',
                              'table', 'conversations', 'schema', 'public') end,
    case when sent.id is not null then 'INSERT' else 'UPDATE' end,
    'org:' || acc.organization_id::text || ':inbox');
  return query select sent.id, contact, created where sent.id is not null;
end;
$$;

-- A status onto the message we sent (statuses only move forward: see
-- app.keep_status_monotonic). Unknown yet → CG404, and the event is retried.
-- With a watermark, every message we sent the contact up to then takes it.
create function app.apply_message_status(account uuid, report jsonb) returns integer
language plpgsql set search_path = '' as $$
declare
  step text := report ->> 'status';
  occurred timestamptz := (report ->> 'occurred_at')::timestamptz;
  watermark timestamptz := (report ->> 'watermark')::timestamptz;
  updated integer;
begin
  update public.messages m
     set status = step::public.message_status,
         error = coalesce(report -> 'error', m.error),
         sent_at = case when step in ('sent', 'delivered', 'read') then coalesce(m.sent_at, occurred) else m.sent_at end,
         delivered_at = case when step in ('delivered', 'read') then coalesce(m.delivered_at, occurred) else m.delivered_at end,
         read_at = case when step = 'read' then coalesce(m.read_at, occurred) else m.read_at end
   where m.channel_account_id = account and m.direction = 'outbound'
     and case when watermark is null
              then m.provider_message_id = report ->> 'provider_message_id'
              else m.created_at <= watermark
                   and app.message_status_rank(m.status) < app.message_status_rank(step::public.message_status)
                   and m.conversation_id in (
                     select c.id from public.conversations c
                       join public.contact_identities i
                         on i.organization_id = c.organization_id and i.contact_id = c.contact_id
                       join public.channel_accounts a on a.id = c.channel_account_id
                      where c.channel_account_id = account and i.channel = a.channel
                        and i.external_id = report ->> 'recipient')
         end;
  get diagnostics updated = row_count;
  if updated = 0 and watermark is null then
    raise exception 'No outbound message % yet', report ->> 'provider_message_id'
      using errcode = 'CG404', hint = 'message_not_yet_known';
  end if;
  return updated;
end;
$$;

-- send-message's result: our queued message becomes sent with the provider's id.
-- If the provider's echo of it arrived first and was stored on its own, that
-- copy gives way, so the message is never shown twice.
create function app.record_send(message uuid, org uuid, outcome text, provider_id text,
                                failure jsonb, attempts jsonb)
returns setof public.messages
language plpgsql set search_path = '' as $$
begin
  if provider_id is not null then
    delete from public.messages m
     where m.provider_message_id = provider_id and m.id <> message
       and m.organization_id = org and (m.metadata ->> 'echo')::boolean
       and m.channel_account_id = (select x.channel_account_id from public.messages x where x.id = message);
  end if;
  return query
  update public.messages m
     set status = outcome::public.message_status, provider_message_id = provider_id, error = failure,
         sent_at = case when outcome = 'sent' then now() end,
         metadata = m.metadata || jsonb_build_object('attempts', attempts)
   where m.id = message and m.organization_id = org
  returning m.*;
  update public.conversations c set last_message_at = now()
   where c.id = (select x.conversation_id from public.messages x where x.id = message)
     and c.organization_id = org;
end;
$$;

-- Processes one stored event from its parsed form (done by the channel module):
-- {kind: message|status|ignored, ...} or a parse error. A failure is kept on the
-- event with its error and a backoff, never lost. Returns the new contact, if any.
-- `stored_as_processed`: the caller already stored the event as processed (the
-- webhook path, to write its row once); only another outcome is written here.
create function app.process_inbound_event(event uuid, account uuid, parsed jsonb, parse_error text,
                                          stored_as_processed boolean default false)
returns jsonb
language plpgsql set search_path = '' as $$
declare
  outcome jsonb := jsonb_build_object('status', 'processed');
begin
  begin
    if parse_error is not null then
      raise exception '%', parse_error using errcode = 'CG422';
    end if;
    case parsed ->> 'kind'
      when 'message' then
        perform app.ingest_message(account, parsed -> 'sender', parsed);
      when 'status' then
        perform app.apply_message_status(account, parsed);
      when 'ignored' then
        outcome := jsonb_build_object('status', 'ignored', 'reason', parsed ->> 'reason');
      else
        raise exception 'Unknown parsed kind %', parsed ->> 'kind' using errcode = 'CG422';
    end case;
    if not stored_as_processed or outcome ->> 'status' <> 'processed' then
      update public.inbound_events
         set status = outcome ->> 'status', attempts = attempts + 1, last_error = null,
             processed_at = now()
       where id = event;
    end if;
  exception when others then
    -- Backoff doubles from 30 seconds up to 6 hours; the 12th attempt is the last.
    update public.inbound_events e
       set status = 'failed', attempts = tried, last_error = left(sqlerrm, 2000), processed_at = null,
           next_attempt_at = case when tried >= 12 then 'infinity'
             else now() + least(interval '30 seconds' * power(2, tried - 1), interval '6 hours') end
      from (select x.attempts + case when stored_as_processed then 0 else 1 end as tried
              from public.inbound_events x where x.id = event) t
     where e.id = event;
    outcome := jsonb_build_object('status', 'failed', 'error', sqlerrm);
  end;
  return outcome;
end;
$$;

-- One-time tokens some providers sign (Mailgun): seen once, refused after.
-- Kept long enough to outlive the providers' own timestamp tolerance.
create table private.webhook_nonces (
  channel_account_id uuid not null references public.channel_accounts (id) on delete cascade,
  nonce text not null,
  seen_at timestamptz not null default now(),
  primary key (channel_account_id, nonce)
);
create index webhook_nonces_seen_idx on private.webhook_nonces (seen_at);

-- A verified webhook delivery in one round trip: refuses a replayed nonce,
-- stores each event once (a provider's redelivery finds it and changes nothing)
-- and processes the new ones in order, each in its own subtransaction.
--   events: [{provider_event_id, event_type, payload, parsed, parse_error, raw}]
-- An event that carries raw bytes (raw, base64: see inbound_events.raw) is stored
-- with them and, when it fails, never retried: what the provider sent will not change.
create function app.receive_inbound_events(account uuid, events jsonb, nonce text default null)
returns jsonb
language plpgsql set search_path = '' as $$
declare
  org uuid := (select a.organization_id from public.channel_accounts a where a.id = account);
  item jsonb;
  stored uuid;
  outcome jsonb;
  -- Counted in variables, built into the summary once at the end.
  duplicates integer := 0;
  processed integer := 0;
  ignored integer := 0;
  failed integer := 0;
begin
  if nonce is not null then
    insert into private.webhook_nonces (channel_account_id, nonce) values (account, nonce)
    on conflict do nothing;
    if not found then
      raise exception 'This signed request was already received (a replay)' using errcode = 'CG401';
    end if;
  end if;
  for item in select value from jsonb_array_elements(events) loop
    -- Stored as processed, which it almost always becomes: one write per event.
    insert into public.inbound_events
      (organization_id, channel_account_id, provider_event_id, event_type, payload, raw,
       status, attempts, processed_at)
    values (org, account, item ->> 'provider_event_id', item ->> 'event_type', item -> 'payload',
            decode(item ->> 'raw', 'base64'), 'processed', 1, now())
    on conflict (channel_account_id, provider_event_id) do nothing
    returning id into stored;
    if stored is null then
      duplicates := duplicates + 1;
      continue;
    end if;
    outcome := app.process_inbound_event(stored, account, item -> 'parsed', item ->> 'parse_error', true);
    if item ? 'raw' then
      update public.inbound_events e set next_attempt_at = 'infinity'
       where e.id = stored and e.status = 'failed';
    end if;
    case outcome ->> 'status'
      when 'processed' then processed := processed + 1;
      when 'ignored' then ignored := ignored + 1;
      else failed := failed + 1;
    end case;
  end loop;
  return jsonb_build_object('received', jsonb_array_length(events), 'duplicates', duplicates,
    'processed', processed, 'ignored', ignored, 'failed', failed);
end;
$$;

-- Webhook deliveries that arrived together (shared/coalesce.py) in one
-- transaction, so a busy server makes one round trip and one commit for many:
--   deliveries: [{account, version, events, nonce}] → [summary of app.receive_inbound_events]
-- in the same order. Anything that raises (a replayed nonce) fails the batch,
-- and the caller runs its deliveries again one by one.
--
-- `version`: the account and its secrets as the server read them to verify the
-- delivery (shared/inbox/accounts.py keeps them between deliveries):
-- channel_accounts.xmin || '/' || channel_credentials.xmin, which any change to
-- either row moves. If either changed since (new secrets, another phone number id,
-- the account gone), CG409 account_changed: the server reads it again and verifies anew.
--
-- The senders' locks (taken again by app.ingest_message, with the same key) are
-- taken first and in one order, so two batches never wait on each other in a cycle.
create function app.receive_inbound_deliveries(deliveries jsonb) returns jsonb
language plpgsql set search_path = '' as $$
begin
  if exists (select 1 from jsonb_array_elements(deliveries) d
               left join public.channel_accounts a on a.id = (d.value ->> 'account')::uuid
               left join private.channel_credentials c on c.channel_account_id = a.id
              where d.value ->> 'version' is distinct from a.xmin::text || '/' || coalesce(c.xmin::text, '')) then
    raise exception 'A channel account changed since the delivery was verified'
      using errcode = 'CG409', hint = 'account_changed';
  end if;
  perform pg_advisory_xact_lock(s.key)
     from (select distinct hashtextextended(
                    a.organization_id::text || ':' || a.channel::text || ':'
                    || (e.value -> 'parsed' -> 'sender' ->> 'external_id'), 0) as key
             from jsonb_array_elements(deliveries) d
             join public.channel_accounts a on a.id = (d.value ->> 'account')::uuid
            cross join jsonb_array_elements(d.value -> 'events') e
            where e.value -> 'parsed' ->> 'kind' = 'message'
            order by 1) s;
  return (select jsonb_agg(app.receive_inbound_events((d.value ->> 'account')::uuid,
                                                      d.value -> 'events', d.value ->> 'nonce')
                           order by d.n)
            from jsonb_array_elements(deliveries) with ordinality d (value, n));
end;
$$;

-- ---- function privileges ------------------------------------------------------------
-- The owner's alone: the functions' own connection calls them as the owner.
revoke execute on function
  app.ingest_message(uuid, jsonb, jsonb), app.apply_message_status(uuid, jsonb),
  app.record_send(uuid, uuid, text, text, jsonb, jsonb),
  app.process_inbound_event(uuid, uuid, jsonb, text, boolean),
  app.receive_inbound_events(uuid, jsonb, text), app.receive_inbound_deliveries(jsonb)
  from public, anon, authenticated, service_role;
