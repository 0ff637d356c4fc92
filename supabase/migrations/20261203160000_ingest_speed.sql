-- The inbound message path, cheaper per message (bench/ingest.py, bench/README.md).
--
-- 1. A contact's activity from messages is kept to the minute. Every message of a
--    repeat sender rewrote the contact for last_activity_at, which the CRM's contact
--    list sorts by (contacts_org_activity_idx): an indexed column, so the update was
--    never HOT, and the row went again into every index of contacts (eleven, the
--    trigram one among them) — a fifth of a message's write-ahead log. Now a message
--    moves it only when it is more than a minute newer than what is stored.
--    Trade-off: during a burst of messages the contact's last_activity_at is the
--    burst's first message, up to a minute behind the latest one (the contact list
--    sorted by activity is exact to the minute; the conversation's last_message_at
--    stays exact). It still only moves forward, and notes, tasks and deals
--    (app.touch_contact_activity) still set it exactly.
create or replace function app.message_activity() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.contacts k set last_activity_at = new.created_at
   where k.organization_id = new.organization_id
     and k.id = (select c.contact_id from public.conversations c
                  where c.organization_id = new.organization_id and c.id = new.conversation_id)
     and (k.last_activity_at is null or k.last_activity_at < new.created_at - interval '1 minute');
  return null;
end;
$$;

-- 2. Triggers that had nothing to do are not called. A trigger's WHEN is evaluated by
--    the executor, where calling a PL/pgSQL function that returns at once cost a
--    function call and its setup, three times per inbound message:
--    - the inbox broadcasts, while app.ingest_message holds them back (it sends the
--      message's one broadcast itself, with the conversation in it);
--    - conversation.assigned / status_changed, on an update that moved neither (a new
--      message bumping an open conversation).
-- The functions are unchanged; the triggers keep their names, and so their order.
drop trigger messages_broadcast on public.messages;
create trigger messages_broadcast after insert or update on public.messages
  for each row when (current_setting('connectgain.broadcast', true) is distinct from 'off')
  execute function app.broadcast_inbox();
drop trigger conversations_broadcast on public.conversations;
create trigger conversations_broadcast after insert or update or delete on public.conversations
  for each row when (current_setting('connectgain.broadcast', true) is distinct from 'off')
  execute function app.broadcast_inbox();

drop trigger conversations_events on public.conversations;
create trigger conversations_events after insert on public.conversations
  for each row execute function app.conversation_events();
create trigger conversations_events_changed after update on public.conversations
  for each row
  when (new.assignee_id is distinct from old.assignee_id or new.status is distinct from old.status)
  execute function app.conversation_events();

-- A row never moves to another organization: the check runs only when it would refuse
-- (every message of a known thread updates its conversation; the function raises).
drop trigger conversations_keep_org on public.conversations;
create trigger conversations_keep_org before update on public.conversations
  for each row when (new.organization_id is distinct from old.organization_id)
  execute function app.keep_organization();
drop trigger contacts_keep_org on public.contacts;
create trigger contacts_keep_org before update on public.contacts
  for each row when (new.organization_id is distinct from old.organization_id)
  execute function app.keep_organization();
