-- CRM, part 4: tasks and notes, and the clean-up when a custom field is deleted.

create type public.task_priority as enum ('low', 'medium', 'high', 'urgent');
create type public.task_status as enum ('open', 'done', 'cancelled');

-- ---- tasks ---------------------------------------------------------------------------------------

create table public.tasks (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  title text not null check (length(btrim(title)) between 1 and 500),
  description text check (length(description) <= 20000),
  due_at timestamptz,
  priority public.task_priority not null default 'medium',
  status public.task_status not null default 'open',
  assignee_id uuid,
  contact_id uuid,
  deal_id uuid,
  completed_at timestamptz,
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  constraint tasks_assignee_fk foreign key (organization_id, assignee_id)
    references public.organization_members (organization_id, user_id) on delete set null (assignee_id),
  constraint tasks_contact_fk foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete set null (contact_id),
  constraint tasks_deal_fk foreign key (organization_id, deal_id)
    references public.deals (organization_id, id) on delete set null (deal_id),
  constraint tasks_completed_at_when_done check ((status = 'done') = (completed_at is not null))
);
create index tasks_org_created_idx on public.tasks (organization_id, created_at desc, id);
create index tasks_org_due_idx on public.tasks (organization_id, status, due_at, id);
create index tasks_org_assignee_idx on public.tasks (organization_id, assignee_id, status, due_at)
  where assignee_id is not null;
create index tasks_org_contact_idx on public.tasks (organization_id, contact_id)
  where contact_id is not null;
create index tasks_org_deal_idx on public.tasks (organization_id, deal_id) where deal_id is not null;
create trigger tasks_keep_org before update on public.tasks
  for each row execute function app.keep_organization();
create trigger tasks_touch before update on public.tasks
  for each row execute function app.touch_updated_at();

create function app.task_before_write() returns trigger
language plpgsql set search_path = '' as $$
begin
  if tg_op = 'UPDATE' and new.created_by is distinct from old.created_by then
    raise exception 'created_by: the creator of a task cannot change'
      using errcode = 'CG422', column = 'created_by';
  end if;
  if new.status = 'done' then
    if tg_op = 'INSERT' or old.status <> 'done' then
      new.completed_at := coalesce(new.completed_at, now());
    end if;
  else
    new.completed_at := null;
  end if;
  return new;
end;
$$;
create trigger tasks_before_write before insert or update on public.tasks
  for each row execute function app.task_before_write();

create function app.task_after_write() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' then
    perform app.emit(new.organization_id, 'task.created', new.id, to_jsonb(new));
  end if;
  if new.status = 'done' and (tg_op = 'INSERT' or old.status <> 'done') then
    perform app.emit(new.organization_id, 'task.completed', new.id, to_jsonb(new));
    perform app.touch_contact_activity(new.organization_id, new.contact_id, new.completed_at);
  end if;
  return null;
end;
$$;
create trigger tasks_after_write after insert or update on public.tasks
  for each row execute function app.task_after_write();

-- ---- notes ---------------------------------------------------------------------------------------

create table public.notes (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  body text not null check (length(btrim(body)) between 1 and 50000),
  -- the signed-in author; null for notes written through an API key
  author_id uuid default auth.uid() references auth.users (id) on delete set null,
  contact_id uuid,
  company_id uuid,
  deal_id uuid,
  conversation_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  constraint notes_one_subject_check
    check (num_nonnulls(contact_id, company_id, deal_id, conversation_id) = 1),
  constraint notes_contact_fk foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete cascade,
  constraint notes_company_fk foreign key (organization_id, company_id)
    references public.companies (organization_id, id) on delete cascade,
  constraint notes_deal_fk foreign key (organization_id, deal_id)
    references public.deals (organization_id, id) on delete cascade,
  constraint notes_conversation_fk foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade
);
create index notes_org_created_idx on public.notes (organization_id, created_at desc, id);
create index notes_contact_idx on public.notes (organization_id, contact_id, created_at desc)
  where contact_id is not null;
create index notes_company_idx on public.notes (organization_id, company_id, created_at desc)
  where company_id is not null;
create index notes_deal_idx on public.notes (organization_id, deal_id, created_at desc)
  where deal_id is not null;
create index notes_conversation_idx on public.notes (organization_id, conversation_id, created_at desc)
  where conversation_id is not null;
create trigger notes_keep_org before update on public.notes
  for each row execute function app.keep_organization();
create trigger notes_touch before update on public.notes
  for each row execute function app.touch_updated_at();

create function app.note_before_update() returns trigger
language plpgsql set search_path = '' as $$
begin
  if new.author_id is distinct from old.author_id then
    raise exception 'author_id: the author of a note cannot change'
      using errcode = 'CG422', column = 'author_id';
  end if;
  return new;
end;
$$;
create trigger notes_keep_author before update on public.notes
  for each row execute function app.note_before_update();

-- A note about a contact, its conversation or its deal is activity of the contact.
create function app.note_activity() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  contact uuid := new.contact_id;
begin
  if contact is null and new.conversation_id is not null then
    select c.contact_id into contact from public.conversations c
     where c.organization_id = new.organization_id and c.id = new.conversation_id;
  elsif contact is null and new.deal_id is not null then
    select d.contact_id into contact from public.deals d
     where d.organization_id = new.organization_id and d.id = new.deal_id;
  end if;
  perform app.touch_contact_activity(new.organization_id, contact, new.created_at);
  return null;
end;
$$;
create trigger notes_contact_activity after insert on public.notes
  for each row execute function app.note_activity();

-- ---- deleting a custom field removes its values ------------------------------------------------

create function app.custom_field_removed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if app.organization_is_going(old.organization_id) then
    return null;
  end if;
  perform set_config('connectgain.custom_field_cleanup', 'on', true);
  case old.entity
    when 'contact' then
      update public.contacts set custom_fields = custom_fields - old.key
       where organization_id = old.organization_id and custom_fields ? old.key;
    when 'company' then
      update public.companies set custom_fields = custom_fields - old.key
       where organization_id = old.organization_id and custom_fields ? old.key;
    when 'deal' then
      update public.deals set custom_fields = custom_fields - old.key
       where organization_id = old.organization_id and custom_fields ? old.key;
  end case;
  perform set_config('connectgain.custom_field_cleanup', 'off', true);
  return null;
end;
$$;
create trigger custom_field_definitions_removed after delete on public.custom_field_definitions
  for each row execute function app.custom_field_removed();
