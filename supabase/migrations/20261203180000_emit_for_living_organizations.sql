-- Deleting an organization cascades through its members, and clearing a
-- conversation's assignee emits `conversation.assigned` for an organization that
-- is already gone: the outbox's foreign key then refused the whole delete.
-- An event of an organization being deleted has nobody to tell, so app.emit drops
-- it. The check is the primary-key lookup the foreign key makes anyway.
create or replace function app.emit(org uuid, kind text, aggregate uuid, body jsonb) returns void
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.outbox_events (organization_id, event_type, aggregate_id, payload)
  select org, kind, aggregate, body
   where exists (select 1 from public.organizations o where o.id = org);
end;
$$;
