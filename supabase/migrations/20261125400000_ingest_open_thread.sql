-- A reply can reference a message of a resolved conversation while its thread already
-- has an unresolved one: e-mail threads whose root never reached the inbox are keyed
-- by that root, so a later reply to the root alone starts a second conversation of the
-- thread once the first is resolved. Reopening the first then broke the rule of one
-- unresolved conversation per contact, account and thread, and the message failed on
-- every retry. Now the thread's unresolved conversation takes it.
--
-- app.ingest_message as in 20261125100100_inbox_ingest, with that one change.

create or replace function app.ingest_message(account uuid, sender jsonb, message jsonb)
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
      insert into public.contacts (organization_id, name, phone, email, avatar_url)
      values (acc.organization_id, sender ->> 'name', sender_phone, sender_email, sender ->> 'avatar_url')
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
  if conversation is not null then
    update public.conversations c
       set status = case when echo then c.status else 'open' end,
           snoozed_until = case when echo then c.snoozed_until end,
           last_message_at = greatest(c.last_message_at, occurred),
           last_inbound_at = greatest(c.last_inbound_at, inbound_at),
           unread_count = c.unread_count + case when echo then 0 else 1 end
     where c.id = conversation;
  else
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
    returning c.id into conversation;
  end if;

  return query
  insert into public.messages as m
    (organization_id, conversation_id, channel_account_id, direction, sender_type,
     content_type, body, attachments, metadata, provider_message_id, status, created_at, sent_at)
  values (acc.organization_id, conversation, account,
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
  returning m.id, contact, created;
end;
$$;
