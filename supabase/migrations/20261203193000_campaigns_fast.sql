-- Campaigns, faster and in each contact's local time.
--
-- 1. The recipient timeline trigger runs only where it can move something: a campaign's
--    message (its metadata names the campaign) leaving `queued`/`sending`. The step
--    queued -> sending (the dispatcher's take) never moved a recipient (it is `sending`
--    from its claim on), yet ran an UPDATE per message; other outbound messages have no
--    recipient at all.
-- 2. `local_time`: starts_at's wall-clock time is sent in each contact's own timezone
--    (the contact's `timezone` custom field when it names an IANA zone, else the
--    campaign's). The snapshot gives every recipient its `due_at`; the dispatcher claims
--    only the due ones, in due order.

drop trigger messages_campaign_recipient_status on public.messages;
create trigger messages_campaign_recipient_status
  after update of status, provider_message_id on public.messages
  for each row when (new.direction = 'outbound' and new.status <> 'sending'
                     and new.metadata ? 'campaign_id')
  execute function app.campaign_recipient_status();

alter table public.campaigns add column local_time boolean not null default false;
alter table public.campaigns add constraint campaigns_local_time_scheduled
  check (not local_time or starts_at is not null);

alter table public.campaign_recipients add column due_at timestamptz;
-- The dispatcher claims a local-time campaign's due recipients, earliest first.
create index campaign_recipients_due_idx
  on public.campaign_recipients (campaign_id, due_at, id)
  where status = 'queued' and due_at is not null;
