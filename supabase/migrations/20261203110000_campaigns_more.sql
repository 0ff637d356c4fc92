-- Campaigns, continued: cancelled recipients, each claimed recipient's send slot,
-- and replies linked to the campaign that prompted them.
--
-- campaign_recipients.status gains `cancelled`: cancelling a campaign marks every
-- recipient not yet sent cancelled in the cancelling transaction (a trigger, so the
-- key's or member's own transaction does it, though only the service writes
-- recipients otherwise). slot_at is the send time a dispatcher reserved for the
-- recipient: one whose slot is long past while its message is still queued was
-- left by a dead dispatcher and is resumed (shared/campaigns/claim.py).
-- replied_at: the first inbound message in the conversation the campaign's message
-- went to, within 7 days of the send; that message carries metadata.campaign_id.

alter table public.campaign_recipients drop constraint campaign_recipients_status_check;
alter table public.campaign_recipients add constraint campaign_recipients_status_check check (
  status in ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'excluded', 'cancelled'));
alter table public.campaign_recipients
  add column slot_at timestamptz,
  add column replied_at timestamptz;
-- Replies per campaign (the dashboards' replied rate) and the reply link's lookup.
create index campaign_recipients_replied_idx
  on public.campaign_recipients (organization_id, campaign_id) where replied_at is not null;

-- The status timeline, as before, but a cancelled recipient stays cancelled.
create or replace function app.campaign_recipient_status() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.campaign_recipients r
     set status = case when new.status = 'unknown' then 'sending' else new.status::text end,
         provider_message_id = coalesce(new.provider_message_id, r.provider_message_id),
         error = case when new.status = 'failed' then new.error else r.error end,
         sent_at = case when new.status in ('sent', 'delivered', 'read')
                        then coalesce(r.sent_at, new.sent_at, now()) else r.sent_at end,
         delivered_at = case when new.status in ('delivered', 'read')
                             then coalesce(r.delivered_at, new.delivered_at, now())
                             else r.delivered_at end,
         read_at = case when new.status = 'read' then coalesce(r.read_at, new.read_at, now())
                        else r.read_at end,
         failed_at = case when new.status = 'failed' then coalesce(r.failed_at, now())
                          else r.failed_at end,
         updated_at = now()
   where r.message_id = new.id
     and r.status not in ('excluded', 'cancelled')
     and app.message_status_rank(new.status)
         > app.message_status_rank(r.status::public.message_status);
  return new;
end
$$;

-- Cancelling: recipients still queued, and those claimed whose message was never
-- taken for sending, become cancelled; those messages fail as never sent. A message
-- already `sending` is under way and keeps its outcome.
create function app.cancel_campaign_recipients() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  unsent uuid[];
begin
  with cancelled as (
    update public.campaign_recipients r
       set status = 'cancelled', updated_at = now()
     where r.organization_id = new.organization_id and r.campaign_id = new.id
       and (r.status = 'queued'
         or (r.status = 'sending' and exists (
               select 1 from public.messages m
                where m.organization_id = r.organization_id and m.id = r.message_id
                  and m.status = 'queued')))
    returning r.message_id
  )
  select array_agg(message_id) filter (where message_id is not null) into unsent from cancelled;
  if unsent is not null then
    update public.messages m
       set status = 'failed',
           error = jsonb_build_object('message', 'The campaign was cancelled before this send',
                                      'status', null, 'code', 'campaign_cancelled',
                                      'outcome', 'not_sent', 'retryable', false)
     where m.organization_id = new.organization_id and m.id = any (unsent)
       and m.status = 'queued';
  end if;
  return null;
end
$$;
revoke execute on function app.cancel_campaign_recipients() from public, anon, authenticated, service_role;
create trigger campaigns_cancel_recipients
  after update of status on public.campaigns
  for each row when (new.status = 'cancelled' and old.status is distinct from 'cancelled')
  execute function app.cancel_campaign_recipients();

-- A reply: an inbound message in a conversation where a campaign's message was sent
-- in the 7 days before it. The message is tagged with the (latest) campaign and the
-- recipient's first reply is stamped.
create function app.link_campaign_reply() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  recipient record;
begin
  select r.id, r.campaign_id, r.replied_at into recipient
    from public.campaign_recipients r
    join public.messages m on m.organization_id = r.organization_id and m.id = r.message_id
   where r.organization_id = new.organization_id
     and r.contact_id = (select c.contact_id from public.conversations c
                          where c.organization_id = new.organization_id
                            and c.id = new.conversation_id)
     and m.conversation_id = new.conversation_id
     and r.sent_at between new.created_at - interval '7 days' and new.created_at
   order by r.sent_at desc
   limit 1;
  if found then
    new.metadata := coalesce(new.metadata, '{}'::jsonb)
                    || jsonb_build_object('campaign_id', recipient.campaign_id);
    if recipient.replied_at is null then
      update public.campaign_recipients set replied_at = new.created_at, updated_at = now()
       where id = recipient.id and replied_at is null;
    end if;
  end if;
  return new;
end
$$;
revoke execute on function app.link_campaign_reply() from public, anon, authenticated, service_role;
create trigger messages_link_campaign_reply
  before insert on public.messages
  for each row when (new.direction = 'inbound')
  execute function app.link_campaign_reply();
