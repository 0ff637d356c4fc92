-- A CSV import checks its contacts' custom fields once per distinct value instead of
-- once per row: app.clean_custom_fields costs some 90 µs a call (a query of the
-- definitions, a loop in plpgsql), which a file's repeated values (a city, a plan, a
-- source) paid on every row. The import calls it itself, in the INSERT … SELECT, for
-- each distinct value of the batch, and stores the cleaned value; around that one
-- statement it sets `app.custom_fields_cleaned`, and the row trigger is skipped.
--
-- Only roles other than `authenticated` can skip it (the functions' owner and the
-- service, which bypass RLS and are trusted with the table anyway): a user's write is
-- checked as before, whatever the setting says. An empty object written by a role
-- other than `authenticated` is still skipped as before (it is already clean).

drop trigger contacts_custom_fields on public.contacts;
create trigger contacts_custom_fields before insert or update of custom_fields on public.contacts
  for each row when (
    current_user = 'authenticated'
    or (new.custom_fields is distinct from '{}'
        and current_setting('app.custom_fields_cleaned', true) is distinct from 'on'))
  execute function app.check_custom_fields('contact');
