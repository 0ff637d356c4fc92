-- The inbox. Members read everything of their organization; agents and up (and
-- write-scoped API keys) work contacts and conversations; managers delete;
-- admins connect channels and read the raw event logs. Messages are written
-- by the functions (send-message inserts the queued row under these policies).

select app.reset_policies('public.channel_accounts');
create policy channel_accounts_select on public.channel_accounts for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy channel_accounts_insert on public.channel_accounts for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy channel_accounts_update on public.channel_accounts for update to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')))
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy channel_accounts_delete on public.channel_accounts for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));

select app.reset_policies('public.contacts');
create policy contacts_select on public.contacts for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy contacts_insert on public.contacts for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contacts_update on public.contacts for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contacts_delete on public.contacts for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.contact_identities');
create policy contact_identities_select on public.contact_identities for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy contact_identities_insert on public.contact_identities for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contact_identities_update on public.contact_identities for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contact_identities_delete on public.contact_identities for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.conversations');
create policy conversations_select on public.conversations for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy conversations_insert on public.conversations for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy conversations_update on public.conversations for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy conversations_delete on public.conversations for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.messages');
create policy messages_select on public.messages for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy messages_insert on public.messages for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('agent'))
    and direction = 'outbound' and sender_type = 'user' and status = 'queued'
    and sender_id = (select auth.uid())
  );

select app.reset_policies('public.inbound_events');
create policy inbound_events_select on public.inbound_events for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));

select app.reset_policies('public.outbox_events');
create policy outbox_events_select on public.outbox_events for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));

-- Realtime: only members receive their organization's inbox topic, and only
-- they may broadcast on it (typing, presence). Other policies on
-- realtime.messages (a hosted project may have some) are left alone.
drop policy if exists inbox_members_receive on realtime.messages;
create policy inbox_members_receive on realtime.messages for select to authenticated
  using (realtime.topic() in (select 'org:' || o::text || ':inbox' from app.org_ids() o));
drop policy if exists inbox_members_send on realtime.messages;
create policy inbox_members_send on realtime.messages for insert to authenticated
  with check (realtime.topic() in (select 'org:' || o::text || ':inbox' from app.org_ids() o));
