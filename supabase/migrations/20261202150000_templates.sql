-- Message templates and quick replies.
--
-- whatsapp_templates: a WhatsApp account's templates as Meta holds them, synced
--   from the Graph API and kept current by its message_template_status_update
--   webhook. Only APPROVED ones can be sent (checked before any provider call).
-- text_templates: the organization's own templates for the other channels,
--   rendered in jinja2's sandbox (shared/templates/render.py).
-- quick_replies: snippets an agent inserts by shortcut (`/refund`): the
--   organization's (owner_user_id null) or one member's own.
--
-- Everyone in the organization reads them; managers and above write the
-- organization's; any member writes their own quick replies.

create table public.whatsapp_templates (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  channel_account_id uuid not null,
  provider_template_id text,
  name text not null check (name ~ '^[a-z0-9_]+$' and length(name) <= 512),
  language text not null check (length(language) between 2 and 15),
  category text not null check (category in ('MARKETING', 'UTILITY', 'AUTHENTICATION')),
  status text not null check (
    status in ('APPROVED', 'PENDING', 'REJECTED', 'PAUSED', 'DISABLED', 'IN_APPEAL',
               'PENDING_DELETION', 'DELETED', 'LIMIT_EXCEEDED', 'ARCHIVED')),
  parameter_format text not null default 'POSITIONAL'
    check (parameter_format in ('POSITIONAL', 'NAMED')),
  components jsonb not null default '[]'::jsonb check (jsonb_typeof(components) = 'array'),
  status_reason text,
  synced_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (channel_account_id, name, language),
  foreign key (organization_id, channel_account_id)
    references public.channel_accounts (organization_id, id) on delete cascade
);
create index whatsapp_templates_org_idx
  on public.whatsapp_templates (organization_id, channel_account_id, name);
create index whatsapp_templates_provider_idx
  on public.whatsapp_templates (channel_account_id, provider_template_id);
alter table public.whatsapp_templates enable row level security;
create policy whatsapp_templates_select on public.whatsapp_templates for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy whatsapp_templates_insert on public.whatsapp_templates for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy whatsapp_templates_update on public.whatsapp_templates for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy whatsapp_templates_delete on public.whatsapp_templates for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

-- The status webhook: a verified delivery's message_template_status_update event
-- moves the template it names (inbound events are only stored once verified).
create function app.apply_template_status() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  value jsonb := new.payload -> 'value';
begin
  if jsonb_typeof(value) is distinct from 'object' then
    return new;
  end if;
  update public.whatsapp_templates t
     set status = value ->> 'event',
         status_reason = nullif(value ->> 'reason', 'NONE'),
         updated_at = now()
   where t.organization_id = new.organization_id
     and t.channel_account_id = new.channel_account_id
     and (t.provider_template_id = value ->> 'message_template_id'
          or (t.name = value ->> 'message_template_name'
              and t.language = value ->> 'message_template_language'))
     and value ->> 'event' in ('APPROVED', 'PENDING', 'REJECTED', 'PAUSED', 'DISABLED',
                               'IN_APPEAL', 'PENDING_DELETION', 'DELETED',
                               'LIMIT_EXCEEDED', 'ARCHIVED');
  return new;
end
$$;
revoke execute on function app.apply_template_status() from public, anon, authenticated, service_role;
create trigger inbound_events_template_status
  after insert on public.inbound_events
  for each row when (new.event_type = 'message_template_status_update')
  execute function app.apply_template_status();

create table public.text_templates (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 120),
  body text not null check (length(body) between 1 and 4096),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, name)
);
alter table public.text_templates enable row level security;
create policy text_templates_select on public.text_templates for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy text_templates_insert on public.text_templates for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy text_templates_update on public.text_templates for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy text_templates_delete on public.text_templates for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

create table public.quick_replies (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  -- null: the organization's; else this member's own
  owner_user_id uuid references auth.users (id) on delete cascade,
  shortcut text not null check (shortcut ~ '^/[a-z0-9][a-z0-9_-]{0,39}$'),
  body text not null check (length(body) between 1 and 4096),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
-- One shortcut per scope: the organization's (owner null), and each member's own.
create unique index quick_replies_shortcut_key
  on public.quick_replies (organization_id, owner_user_id, shortcut) nulls not distinct;
-- Prefix search over both scopes at once (LIKE '/ref%'), leading with the organization.
create index quick_replies_shortcut_prefix_idx
  on public.quick_replies (organization_id, shortcut text_pattern_ops);
-- Text search (ILIKE '%word%'), as the inbox's message search does.
create index quick_replies_body_trgm_idx
  on public.quick_replies using gin (body extensions.gin_trgm_ops);
alter table public.quick_replies enable row level security;
create policy quick_replies_select on public.quick_replies for select to authenticated
  using (organization_id = any (array(select app.org_ids()))
         and (owner_user_id is null or owner_user_id = (select auth.uid())));
create policy quick_replies_insert on public.quick_replies for insert to authenticated
  with check (
    (owner_user_id is null and organization_id in (select app.org_ids_with_role('manager')))
    or (owner_user_id = (select auth.uid()) and organization_id in (select app.org_ids())));
create policy quick_replies_update on public.quick_replies for update to authenticated
  using (
    (owner_user_id is null and organization_id in (select app.org_ids_with_role('manager')))
    or (owner_user_id = (select auth.uid()) and organization_id in (select app.org_ids())))
  with check (
    (owner_user_id is null and organization_id in (select app.org_ids_with_role('manager')))
    or (owner_user_id = (select auth.uid()) and organization_id in (select app.org_ids())));
create policy quick_replies_delete on public.quick_replies for delete to authenticated
  using (
    (owner_user_id is null and organization_id in (select app.org_ids_with_role('manager')))
    or (owner_user_id = (select auth.uid()) and organization_id in (select app.org_ids())));


-- Search as the composer asks it: `/ref` a shortcut prefix, other text a substring of
-- the body. Under RLS neither LIKE nor ILIKE reaches an index (they are not
-- leakproof), so, as the inbox's searches, this runs as definer after checking the
-- caller's membership, and applies the read policy's scope itself: the
-- organization's replies and the caller's own.
create function public.search_quick_replies(
  organization_id uuid, query text default null, max_rows integer default 20
) returns setof public.quick_replies
language plpgsql stable security definer set search_path = '' as $$
declare
  term text := btrim(coalesce(query, ''));
  scope text := 'select q.* from public.quick_replies q
      where q.organization_id = $1
        and (q.owner_user_id is null or q.owner_user_id = $2)';
  ordered text := ' order by q.owner_user_id is null, q.shortcut limit least(greatest($4, 1), 100)';
begin
  if organization_id is null
     or not exists (select 1 from app.org_ids() o where o = organization_id) then
    raise exception 'Not a member of this organization' using errcode = '42501';
  end if;
  if length(term) > 200 then
    raise exception 'Search for at most 200 characters' using errcode = '22023';
  end if;
  if term = '' then
    return query execute scope || ordered
      using organization_id, (select auth.uid()), null::text, max_rows;
  elsif left(term, 1) = '/' then
    return query execute scope || ' and q.shortcut like $3' || ordered
      using organization_id, (select auth.uid()),
            replace(replace(replace(lower(term), '\', '\\'), '%', '\%'), '_', '\_') || '%',
            max_rows;
  else
    return query execute scope || ' and q.body ilike $3' || ordered
      using organization_id, (select auth.uid()), app.substring_pattern(term), max_rows;
  end if;
end;
$$;
revoke execute on function public.search_quick_replies(uuid, text, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.search_quick_replies(uuid, text, integer) to authenticated;
