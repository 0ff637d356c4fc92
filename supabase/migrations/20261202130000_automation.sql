-- Automation rules and conversation assignment, both consumers of the events worker.
--
-- An organization's rules are ordered (position). The `automation` consumer
-- (shared/automation/consumer.py) takes each event whose type is a rule's
-- trigger, evaluates the rule's conditions (the public API's filter language,
-- compiled to SQL against the event's records) and runs its actions in one
-- transaction with the run's log row (public.automation_runs), so a retried
-- delivery never acts twice.
--
-- Loops: the consumer sets `app.causation` (set local) in the transaction that
-- acts; every event written then carries it in outbox_events.causation (a
-- column default, so app.emit is unchanged): the rules already in the chain
-- and its depth. A rule never runs again in a chain it is part of, and a chain
-- stops at a fixed depth.
--
-- Assignment: agents set their own availability (member_availability; no row
-- is offline) and managers their capacity; round-robin keeps a per-organization
-- cursor in private.assignment_cursors, locked while choosing, which also
-- serialises balanced choices of the organization.

-- ---- causation of events ---------------------------------------------------------------------

alter table public.outbox_events
  add column causation jsonb default nullif(current_setting('app.causation', true), '')::jsonb;

-- ---- conversation priority -----------------------------------------------------------------------

alter table public.conversations
  add column priority text check (priority in ('low', 'medium', 'high', 'urgent'));

-- ---- rules -----------------------------------------------------------------------------------

create table public.automation_rules (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  position integer not null check (position >= 0),
  enabled boolean not null default true,
  trigger text not null check (length(trigger) between 1 and 64),
  -- {"<entity>": <filter>, …}: checked by the function against the filter language
  conditions jsonb not null default '{}'::jsonb check (jsonb_typeof(conditions) = 'object'),
  actions jsonb not null check (jsonb_typeof(actions) = 'array' and jsonb_array_length(actions) between 1 and 20),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id)
);
alter table public.automation_rules enable row level security;
create policy automation_rules_select on public.automation_rules for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy automation_rules_insert on public.automation_rules for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy automation_rules_update on public.automation_rules for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy automation_rules_delete on public.automation_rules for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
-- The consumer reads an organization's enabled rules of one trigger, in order.
create index automation_rules_org_trigger_idx
  on public.automation_rules (organization_id, trigger, position) where enabled;
create index automation_rules_org_position_idx on public.automation_rules (organization_id, position, id);
-- Configuration, as pipelines are: keys never change it.
create trigger automation_rules_api_keys_refused before insert or update or delete
  on public.automation_rules for each row execute function app.refuse_api_keys();
create trigger automation_rules_keep_org before update on public.automation_rules
  for each row execute function app.keep_organization();
create trigger automation_rules_touch before update on public.automation_rules
  for each row execute function app.touch_updated_at();

-- ---- runs ------------------------------------------------------------------------------------

-- One row per (event, rule) the consumer considered: whether the conditions
-- matched and each action with its outcome. Written by the consumer (owner) only.
create table public.automation_runs (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  rule_id uuid not null,
  event_id bigint not null references public.outbox_events (id) on delete cascade,
  event_type text not null,
  record_id uuid,
  -- ran: conditions matched, actions taken; not_matched; skipped (the loop guard)
  status text not null check (status in ('ran', 'not_matched', 'skipped')),
  matched boolean not null,
  -- [{"type", "ok", "detail"|"error"}], in the rule's order
  actions jsonb not null default '[]'::jsonb,
  reason text check (length(reason) <= 500),
  depth integer not null default 0,
  created_at timestamptz not null default now(),
  unique (event_id, rule_id),
  foreign key (organization_id, rule_id)
    references public.automation_rules (organization_id, id) on delete cascade
);
alter table public.automation_runs enable row level security;
create policy automation_runs_select on public.automation_runs for select to authenticated
  using (organization_id in (select app.org_ids()));
create index automation_runs_org_rule_idx on public.automation_runs (organization_id, rule_id, id desc);

-- ---- availability and capacity -----------------------------------------------------------------

create table public.member_availability (
  organization_id uuid not null,
  user_id uuid not null,
  availability text not null default 'offline'
    check (availability in ('online', 'away', 'offline')),
  -- open conversations the agent takes at most by balanced assignment; null: no limit
  capacity integer check (capacity between 0 and 10000),
  updated_at timestamptz not null default now(),
  primary key (organization_id, user_id),
  foreign key (organization_id, user_id)
    references public.organization_members (organization_id, user_id) on delete cascade
);
alter table public.member_availability enable row level security;
create policy member_availability_select on public.member_availability for select to authenticated
  using (organization_id in (select app.org_ids()));
-- A member writes their own row; managers write anyone's (the trigger below keeps
-- availability the agent's own and capacity the managers').
create policy member_availability_insert on public.member_availability for insert to authenticated
  with check (
    (select app.api_key_id()) is null
    and ((user_id = (select auth.uid()) and organization_id in (select app.org_ids()))
         or organization_id in (select app.org_ids_with_role('manager'))));
create policy member_availability_update on public.member_availability for update to authenticated
  using (
    (select app.api_key_id()) is null
    and ((user_id = (select auth.uid()) and organization_id in (select app.org_ids()))
         or organization_id in (select app.org_ids_with_role('manager'))))
  with check (
    (select app.api_key_id()) is null
    and ((user_id = (select auth.uid()) and organization_id in (select app.org_ids()))
         or organization_id in (select app.org_ids_with_role('manager'))));

create function app.member_availability_rules() returns trigger
language plpgsql set search_path = '' as $$
declare
  caller uuid := (select auth.uid());
begin
  if caller is not null then  -- the functions' own (owner) connection may do both
    if new.user_id <> caller
       and new.availability is distinct from
           (case when tg_op = 'UPDATE' then old.availability else 'offline' end) then
      raise exception 'availability: only the member sets their own availability'
        using errcode = '42501';
    end if;
    if new.capacity is distinct from (case when tg_op = 'UPDATE' then old.capacity end)
       and new.organization_id not in (select app.org_ids_with_role('manager')) then
      raise exception 'capacity: only managers and above set an agent''s capacity'
        using errcode = '42501';
    end if;
  end if;
  new.updated_at := now();
  return new;
end;
$$;
create trigger member_availability_rules before insert or update on public.member_availability
  for each row execute function app.member_availability_rules();

-- What the organization does with the open conversations of a member who goes
-- offline or leaves: nothing, or reassign them by this method.
alter table public.organizations
  add column reassign_unavailable text not null default 'off'
    check (reassign_unavailable in ('off', 'round_robin', 'balanced'));

-- Round-robin's cursor: the last agent it chose. Locked for update while choosing.
create table private.assignment_cursors (
  organization_id uuid primary key references public.organizations (id) on delete cascade,
  last_user_id uuid,
  updated_at timestamptz not null default now()
);

-- ---- events the rules and reassignment need ----------------------------------------------------------

-- <entity>.tag_added for contacts, conversations and deals.
create function app.tag_added_events() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  entity text := case tg_table_name when 'contact_tags' then 'contact'
                                    when 'conversation_tags' then 'conversation' else 'deal' end;
  record_id uuid := (to_jsonb(new) ->> (entity || '_id'))::uuid;
begin
  perform app.emit(new.organization_id, entity || '.tag_added', record_id,
    jsonb_build_object(entity || '_id', record_id, 'tag_id', new.tag_id,
      'tag_name', (select t.name from public.tags t
                    where t.organization_id = new.organization_id and t.id = new.tag_id)));
  return null;
end;
$$;
create trigger contact_tags_events after insert on public.contact_tags
  for each row execute function app.tag_added_events();
create trigger conversation_tags_events after insert on public.conversation_tags
  for each row execute function app.tag_added_events();
create trigger deal_tags_events after insert on public.deal_tags
  for each row execute function app.tag_added_events();

-- member.availability_changed; member.removed with the open conversations they had
-- (before the foreign key clears their assignee). Only where the organization
-- reassigns: otherwise nobody needs them.
create function app.member_availability_events() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.availability is distinct from (case when tg_op = 'UPDATE' then old.availability end)
     and exists (select 1 from public.organizations o
                  where o.id = new.organization_id and o.reassign_unavailable <> 'off') then
    perform app.emit(new.organization_id, 'member.availability_changed', new.user_id,
      jsonb_build_object('user_id', new.user_id, 'availability', new.availability));
  end if;
  return null;
end;
$$;
create trigger member_availability_events after insert or update on public.member_availability
  for each row execute function app.member_availability_events();

create function app.member_removed_events() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  open_ids jsonb;
begin
  if exists (select 1 from public.organizations o
              where o.id = old.organization_id and o.reassign_unavailable <> 'off') then
    select coalesce(jsonb_agg(c.id), '[]'::jsonb) into open_ids
      from public.conversations c
     where c.organization_id = old.organization_id and c.assignee_id = old.user_id
       and c.status <> 'resolved';
    perform app.emit(old.organization_id, 'member.removed', old.user_id,
      jsonb_build_object('user_id', old.user_id, 'conversation_ids', open_ids));
  end if;
  return old;
end;
$$;
create trigger organization_members_removed_events before delete on public.organization_members
  for each row execute function app.member_removed_events();

-- task.overdue: no row change says a task became overdue, so the automation-sweep
-- job (every minute) emits it, once per task and due time: a task given a new
-- due time can become overdue again.
create table private.task_overdue_marks (
  task_id uuid primary key references public.tasks (id) on delete cascade,
  due_at timestamptz not null
);
create index tasks_overdue_idx on public.tasks (due_at) where status = 'open' and due_at is not null;

create function app.emit_overdue_tasks(max_tasks integer) returns integer
language plpgsql security definer set search_path = '' as $$
declare
  task public.tasks;
  emitted integer := 0;
begin
  for task in
    select t.* from public.tasks t
     where t.status = 'open' and t.due_at is not null and t.due_at <= now()
       and not exists (select 1 from private.task_overdue_marks m
                        where m.task_id = t.id and m.due_at = t.due_at)
     order by t.due_at
     limit max_tasks
       for update of t skip locked
  loop
    insert into private.task_overdue_marks as m (task_id, due_at) values (task.id, task.due_at)
    on conflict (task_id) do update set due_at = excluded.due_at;
    perform app.emit(task.organization_id, 'task.overdue', task.id, to_jsonb(task));
    emitted := emitted + 1;
  end loop;
  return emitted;
end;
$$;

-- ---- function privileges ------------------------------------------------------------
-- All owner-only: triggers fire without EXECUTE, and the functions' own
-- connection (the owner) calls app.emit_overdue_tasks.
revoke execute on function
  app.member_availability_rules(), app.tag_added_events(), app.member_availability_events(),
  app.member_removed_events(), app.emit_overdue_tasks(integer)
  from public, anon, authenticated, service_role;
