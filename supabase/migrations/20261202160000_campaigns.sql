-- Broadcast campaigns and their notification log.
--
-- campaigns: one broadcast over a channel account: a WhatsApp template
--   ({name, language, values}) or a text, an audience (the filter language over
--   contacts), sent now or from starts_at (with the timezone it was set in).
-- campaign_recipients: the audience SNAPSHOTTED when the campaign starts (one
--   INSERT … SELECT, shared/campaigns/snapshot.py): editing contacts later never
--   changes who receives it. Contacts with no address on the channel or opted out
--   of it (contacts.opted_out_channels) are kept as `excluded` with the reason.
--   Each row is the recipient's log: attempts, the outbound message, the provider
--   message id and the status timeline the delivery webhooks move (below).
--
-- Members read both; managers and above write campaigns. Recipients are written
-- only by the service (the snapshot and the dispatcher) and the status trigger.

create table public.campaigns (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  channel_account_id uuid not null,
  name text not null check (length(btrim(name)) between 1 and 200),
  template jsonb check (
    template is null or (jsonb_typeof(template) = 'object'
      and jsonb_typeof(template -> 'name') = 'string'
      and jsonb_typeof(template -> 'language') = 'string')),
  body text check (body is null or length(body) between 1 and 4096),
  audience jsonb,
  starts_at timestamptz,
  timezone text not null default 'UTC' check (length(timezone) between 1 and 64),
  status text not null default 'draft' check (
    status in ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
  pause_reason text,
  recipient_count integer not null default 0 check (recipient_count >= 0),
  excluded_count integer not null default 0 check (excluded_count >= 0),
  created_by uuid references auth.users (id) on delete set null,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  -- a template or a text, never both nor neither
  check ((template is null) <> (body is null)),
  foreign key (organization_id, channel_account_id)
    references public.channel_accounts (organization_id, id) on delete cascade
);
create index campaigns_org_created_idx on public.campaigns (organization_id, created_at desc, id);
-- The dispatcher's scan: running campaigns, and scheduled ones that are due.
create index campaigns_due_idx on public.campaigns (status, starts_at)
  where status in ('scheduled', 'running');
alter table public.campaigns enable row level security;
create policy campaigns_select on public.campaigns for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy campaigns_insert on public.campaigns for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy campaigns_update on public.campaigns for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy campaigns_delete on public.campaigns for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create trigger campaigns_keep_org before update on public.campaigns
  for each row execute function app.keep_organization();

create table public.campaign_recipients (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  campaign_id uuid not null,
  contact_id uuid not null,
  address text,
  status text not null default 'queued' check (
    status in ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'excluded')),
  exclusion_reason text check (exclusion_reason in ('no_address', 'opted_out')),
  message_id uuid,
  provider_message_id text,
  attempts integer not null default 0 check (attempts >= 0),
  error jsonb,
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (campaign_id, contact_id),
  check ((status = 'excluded') = (exclusion_reason is not null)),
  foreign key (organization_id, campaign_id)
    references public.campaigns (organization_id, id) on delete cascade,
  foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete cascade
);
create index campaign_recipients_org_campaign_idx
  on public.campaign_recipients (organization_id, campaign_id, status, id);
-- The dispatcher claims the queued rows of a campaign in id order.
create index campaign_recipients_queued_idx
  on public.campaign_recipients (campaign_id, id) where status = 'queued';
create index campaign_recipients_message_idx
  on public.campaign_recipients (message_id) where message_id is not null;
create index campaign_recipients_contact_idx
  on public.campaign_recipients (organization_id, contact_id);
alter table public.campaign_recipients enable row level security;
create policy campaign_recipients_select on public.campaign_recipients for select to authenticated
  using (organization_id in (select app.org_ids()));

-- The status timeline: a message's status change moves its recipient, never
-- backwards (the same rank as messages, so an out-of-order `delivered` after
-- `read` changes nothing), stamping the time of each step once.
create function app.campaign_recipient_status() returns trigger
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
     and r.status <> 'excluded'
     and app.message_status_rank(new.status)
         > app.message_status_rank(r.status::public.message_status);
  return new;
end
$$;
revoke execute on function app.campaign_recipient_status() from public, anon, authenticated, service_role;
create trigger messages_campaign_recipient_status
  after update of status, provider_message_id on public.messages
  for each row when (new.direction = 'outbound')
  execute function app.campaign_recipient_status();

-- The send rate per channel account, shared by every dispatcher: the next free
-- send slot. A dispatcher reserves n slots in one atomic update, so the slots
-- of concurrent dispatchers never overlap and the account's cap holds overall.
create table private.campaign_send_slots (
  channel_account_id uuid primary key references public.channel_accounts (id) on delete cascade,
  next_slot timestamptz not null
);
revoke all on private.campaign_send_slots from public, anon, authenticated;
