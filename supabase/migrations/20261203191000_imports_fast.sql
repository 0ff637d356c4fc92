-- Bulk inserts into contacts (a CSV import merges tens of thousands of rows in one
-- statement) paid for per-row triggers that do nothing for such rows, and for one
-- plpgsql call per row writing its `contact.created` event.
--
-- 1. `contact.created` is written by a statement-level trigger: one INSERT … SELECT
--    over the statement's new rows, the same payload (the row as stored) and the
--    same rule as app.emit (an organization being deleted gets no event). A
--    single-row insert writes its one event as before.
-- 2. The opt-out normalization runs only when there is a list to normalize: an
--    empty list is already in its normal form.
-- 3. The custom field check runs for any value but an empty object written by a
--    role other than `authenticated`: for such a write app.clean_custom_fields
--    returns '{}' unchanged (required fields are enforced for users only). A user's
--    write, and every non-empty value, is checked as before.

create or replace function app.contact_events() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.outbox_events (organization_id, event_type, aggregate_id, payload)
  select n.organization_id, 'contact.created', n.id, to_jsonb(n)
    from created n
   -- a lookup per row, not a join: the events keep the order the rows were inserted in
   where (select true from public.organizations o where o.id = n.organization_id);
  return null;
end;
$$;

drop trigger contacts_events on public.contacts;
create trigger contacts_events after insert on public.contacts
  referencing new table as created
  for each statement execute function app.contact_events();

drop trigger contacts_normalize on public.contacts;
create trigger contacts_normalize before insert or update of opted_out_channels on public.contacts
  for each row when (new.opted_out_channels is distinct from '{}')
  execute function app.normalize_contact();

drop trigger contacts_custom_fields on public.contacts;
create trigger contacts_custom_fields before insert or update of custom_fields on public.contacts
  for each row when (new.custom_fields is distinct from '{}' or current_user = 'authenticated')
  execute function app.check_custom_fields('contact');
