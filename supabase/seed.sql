-- Demo data for local development (`connectgain dev`, `connectgain db reset`).
-- Applied once per content; never to a hosted project.
-- Sign in as the demo owner with: connectgain user create --email demo@connectgain.local --org "Demo Company"

insert into auth.users (id, email, raw_user_meta_data)
values ('00000000-0000-4000-8000-000000000001', 'demo@connectgain.local', '{"full_name": "Demo Owner"}'),
       ('00000000-0000-4000-8000-000000000002', 'agent@connectgain.local', '{"full_name": "Demo Agent"}')
on conflict do nothing;

insert into public.organizations (id, name, slug, timezone)
values ('00000000-0000-4000-8000-0000000000a1', 'Demo Company', 'demo-company', 'Europe/Lisbon')
on conflict do nothing;

insert into public.organization_members (organization_id, user_id, role)
values ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 'owner'),
       ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000002', 'agent')
on conflict do nothing;
