-- The CRM: custom field definitions and their validation, companies, what
-- contacts gain (company, source, opt-outs, last activity), pipelines, stages
-- and deals with their history, tags, tasks and notes, and moving deals on the
-- kanban board.
--
-- Row level security is on from each table's creation, its policies beside it.
-- Members read everything of their organization. Agents and up (and
-- write-scoped API keys, which rank as managers) work companies, deals, tasks,
-- notes and tag links; managers delete records and configure the organization's
-- pipelines, stages, custom fields and tags (API keys never configure the first
-- three: app.refuse_api_keys). Notes: authors edit and delete their own,
-- managers any. History is written by triggers only.
--
-- Custom field values live in each entity's `custom_fields` jsonb and are
-- checked here, in the database, against the organization's definitions, so a
-- PostgREST write cannot store a wrong type, an unknown option or a missing
-- required value. The checking trigger runs as the caller (not security
-- definer): it sees only the definitions of organizations the caller belongs
-- to, so its messages can never reveal another organization's fields.

create type public.custom_field_entity as enum ('contact', 'company', 'deal');
create type public.custom_field_type as enum (
  'text', 'number', 'date', 'datetime', 'boolean', 'select', 'multiselect', 'url', 'email', 'phone'
);

-- ---- API keys read the organization's configuration, never change it ---------------------------
-- A write key ranks as a manager for records (it deletes contacts, edits tags),
-- and the pipelines, stages and custom field policies also ask for a manager; no
-- scope names configuration, so those tables refuse keys (the public API only
-- reads them). A row trigger, so rows RLS hides never reach it and refusals stay
-- 42501; named `<table>_api_keys_refused` to fire first (triggers fire in name order).
create function app.refuse_api_keys() returns trigger
language plpgsql set search_path = '' as $$
begin
  if (select app.api_key_id()) is not null then
    raise exception 'API keys cannot change %; no scope grants it', tg_table_name
      using errcode = '42501';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end;
$$;

-- ---- definitions ------------------------------------------------------------------------------

create function app.valid_field_options(opts jsonb) returns boolean
language sql immutable set search_path = '' as $$
  select jsonb_typeof(opts) = 'array'
     and jsonb_array_length(opts) between 1 and 500
     and (select bool_and(jsonb_typeof(o) = 'string' and length(btrim(o #>> '{}')) between 1 and 100)
                 and count(distinct o) = count(*)
            from jsonb_array_elements(opts) o)
$$;

create table public.custom_field_definitions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  entity public.custom_field_entity not null,
  key text not null check (key ~ '^[a-z][a-z0-9_]{0,49}$'),
  label text not null check (length(btrim(label)) between 1 and 100),
  type public.custom_field_type not null,
  options jsonb check (options is null or app.valid_field_options(options)),
  required boolean not null default false,
  position integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (organization_id, entity, key),
  constraint custom_field_definitions_options_for_choices
    check ((type in ('select', 'multiselect')) = (options is not null))
);
alter table public.custom_field_definitions enable row level security;
create policy custom_field_definitions_select on public.custom_field_definitions
  for select to authenticated using (organization_id in (select app.org_ids()));
create policy custom_field_definitions_insert on public.custom_field_definitions
  for insert to authenticated with check (organization_id in (select app.org_ids_with_role('manager')));
create policy custom_field_definitions_update on public.custom_field_definitions
  for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy custom_field_definitions_delete on public.custom_field_definitions
  for delete to authenticated using (organization_id in (select app.org_ids_with_role('manager')));
create trigger custom_field_definitions_api_keys_refused
  before insert or update or delete on public.custom_field_definitions
  for each row execute function app.refuse_api_keys();
create trigger custom_field_definitions_touch before update on public.custom_field_definitions
  for each row execute function app.touch_updated_at();
create trigger custom_field_definitions_keep_org before update on public.custom_field_definitions
  for each row execute function app.keep_organization();

-- Stored values were checked against the key, entity and type they were written
-- for; changing those would silently reinterpret them. Make a new field instead.
create function app.keep_field_identity() returns trigger
language plpgsql set search_path = '' as $$
begin
  if new.entity is distinct from old.entity or new.key is distinct from old.key
     or new.type is distinct from old.type then
    raise exception 'The entity, key and type of a custom field cannot change; create a new field instead'
      using errcode = 'CG422';
  end if;
  return new;
end;
$$;
create trigger custom_field_definitions_keep_identity before update on public.custom_field_definitions
  for each row execute function app.keep_field_identity();

-- ---- value parsing helpers (never raise: a bad value is a validation message) -----------------

create function app.parse_date(value text) returns date
language plpgsql immutable set search_path = '' as $$
begin
  if value !~ '^\d{4}-\d{2}-\d{2}$' then
    return null;
  end if;
  return value::date;
exception when others then
  return null;
end;
$$;

-- ISO 8601 date and time; without an offset it is UTC.
create function app.parse_datetime(value text) returns timestamptz
language plpgsql immutable set search_path = '' as $$
begin
  if value !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$' then
    return null;
  end if;
  if value !~ '(Z|z|[+-]\d{2}(:?\d{2})?)$' then
    value := value || '+00';
  end if;
  return value::timestamptz;
exception when others then
  return null;
end;
$$;

-- The one stored form of a datetime value: UTC, millisecond precision, fixed
-- width (JavaScript's toISOString), so comparing the text compares the times.
create function app.datetime_text(value timestamptz) returns text
language sql immutable set search_path = '' as $$
  select to_char(value at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- ---- validation -----------------------------------------------------------------------------

-- The checked and normalized custom_fields of an entity row, or CG422 naming
-- every bad field. null, "" and [] mean "not set" and are dropped.
--
-- On update (`previous` given) only what changes is checked: values kept from
-- before stay valid when a definition's options change later, and a field made
-- required later does not block unrelated edits, but a required value can
-- never be removed. Required values are enforced for people and API keys (the
-- authenticated role); rows the system creates itself (a contact made by an
-- inbound message in a service transaction) are exempt, so no message is lost.
create function app.clean_custom_fields(
  org uuid, kind public.custom_field_entity, fields jsonb, previous jsonb
) returns jsonb
language plpgsql stable set search_path = '' as $$
declare
  def record;
  val jsonb;
  txt text;
  field_key text;
  known text[] := '{}';
  cleaned jsonb := '{}'::jsonb;
  problems text[] := '{}';
  problem text;
  enforce_required boolean := current_user = 'authenticated';
begin
  if fields is null or jsonb_typeof(fields) <> 'object' then
    raise exception 'custom_fields must be a JSON object' using errcode = 'CG422', column = 'custom_fields';
  end if;

  for def in
    select d.key, d.type, d.options, d.required
      from public.custom_field_definitions d
     where d.organization_id = org and d.entity = kind
     order by d.position, d.key
  loop
    known := known || def.key;
    val := fields -> def.key;
    if val is null or val in ('null'::jsonb, '""'::jsonb, '[]'::jsonb) then
      if def.required and enforce_required and (previous is null or previous ? def.key) then
        problems := problems || format('custom_fields.%s: is required', def.key);
      end if;
      continue;
    end if;
    if previous is not null and previous -> def.key = val then
      cleaned := cleaned || jsonb_build_object(def.key, val);
      continue;
    end if;

    problem := null;
    txt := case when jsonb_typeof(val) = 'string' then val #>> '{}' end;
    case def.type
      when 'text' then
        if txt is null then
          problem := 'must be text';
        elsif length(txt) > 10000 then
          problem := 'must be at most 10000 characters';
        end if;
      when 'number' then
        if jsonb_typeof(val) <> 'number' then
          problem := 'must be a number';
        end if;
      when 'boolean' then
        if jsonb_typeof(val) <> 'boolean' then
          problem := 'must be true or false';
        end if;
      when 'date' then
        if app.parse_date(txt) is null then
          problem := 'must be a date as YYYY-MM-DD';
        end if;
      when 'datetime' then
        if app.parse_datetime(txt) is null then
          problem := 'must be an ISO 8601 date and time, e.g. 2025-01-31T09:30:00Z';
        else
          val := to_jsonb(app.datetime_text(app.parse_datetime(txt)));
        end if;
      when 'select' then
        if txt is null or not def.options @> jsonb_build_array(txt) then
          problem := format('must be one of %s', def.options::text);
        end if;
      when 'multiselect' then
        if jsonb_typeof(val) <> 'array'
           or exists (select 1 from jsonb_array_elements(val) o
                       where jsonb_typeof(o) <> 'string' or not def.options @> jsonb_build_array(o)) then
          problem := format('must be a list of options from %s', def.options::text);
        else
          -- a set: each option once, in the order the definition lists them
          select jsonb_agg(o order by ord) into val
            from jsonb_array_elements(def.options) with ordinality as d(o, ord)
           where val @> jsonb_build_array(o);
        end if;
      when 'url' then
        if txt is null or txt !~ '^https?://[^\s/?#]+[^\s]*$' or length(txt) > 2048 then
          problem := 'must be an http or https URL';
        end if;
      when 'email' then
        if txt is null or txt !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' or length(txt) > 320 then
          problem := 'must be an email address';
        else
          val := to_jsonb(lower(txt));
        end if;
      when 'phone' then
        if txt is null or txt !~ '^\+[1-9][0-9]{6,14}$' then
          problem := 'must be a phone number in E.164 format, e.g. +14155550123';
        end if;
    end case;
    if problem is not null then
      problems := problems || format('custom_fields.%s: %s', def.key, problem);
    else
      cleaned := cleaned || jsonb_build_object(def.key, val);
    end if;
  end loop;

  for field_key in select k from jsonb_object_keys(fields) k where not (k = any (known)) order by k loop
    val := fields -> field_key;
    if val is null or val = 'null'::jsonb then
      continue;
    elsif previous is not null and previous -> field_key = val then
      cleaned := cleaned || jsonb_build_object(field_key, val);
    else
      problems := problems || format('custom_fields.%s: there is no such %s field', field_key, kind);
    end if;
  end loop;

  if cardinality(problems) > 0 then
    raise exception '%', array_to_string(problems, '; ')
      using errcode = 'CG422', column = 'custom_fields';
  end if;
  return cleaned;
end;
$$;

-- Trigger: tg_argv[0] is the entity kind of the table.
create function app.check_custom_fields() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.custom_fields := app.clean_custom_fields(
    new.organization_id,
    tg_argv[0]::public.custom_field_entity,
    new.custom_fields,
    case when tg_op = 'UPDATE' then old.custom_fields end
  );
  return new;
end;
$$;

-- ---- companies -------------------------------------------------------------------------------

create function app.valid_address(address jsonb) returns boolean
language sql immutable set search_path = '' as $$
  select jsonb_typeof(address) = 'object'
     and not exists (
       select 1 from jsonb_each(address) e
        where e.key not in ('line1', 'line2', 'city', 'region', 'postal_code', 'country')
           or jsonb_typeof(e.value) <> 'string'
           or length(e.value #>> '{}') > 200)
$$;

create table public.companies (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  -- a bare lowercase host name: the API strips schemes, paths and "www."
  domain text check (
    length(domain) <= 253 and domain ~ '^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,63}$'
  ),
  phone text check (phone ~ '^\+[1-9][0-9]{6,14}$'),
  address jsonb not null default '{}'::jsonb check (app.valid_address(address)),
  custom_fields jsonb not null default '{}'::jsonb check (jsonb_typeof(custom_fields) = 'object'),
  assignee_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  constraint companies_assignee_fk foreign key (organization_id, assignee_id)
    references public.organization_members (organization_id, user_id) on delete set null (assignee_id)
);
alter table public.companies enable row level security;
create policy companies_select on public.companies for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy companies_insert on public.companies for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy companies_update on public.companies for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy companies_delete on public.companies for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index companies_org_created_idx on public.companies (organization_id, created_at desc, id);
create index companies_org_updated_idx on public.companies (organization_id, updated_at desc, id);
create index companies_org_name_idx on public.companies (organization_id, lower(name), id);
-- One company per web domain in an organization: integrations match on it.
create unique index companies_org_domain_key on public.companies (organization_id, domain)
  where domain is not null;
create trigger companies_custom_fields before insert or update of custom_fields on public.companies
  for each row execute function app.check_custom_fields('company');
create trigger companies_keep_org before update on public.companies
  for each row execute function app.keep_organization();
create trigger companies_touch before update on public.companies
  for each row execute function app.touch_updated_at();

-- ---- contacts gain CRM columns ------------------------------------------------------------------

alter table public.contacts
  add column company_id uuid,
  add column source text check (length(btrim(source)) between 1 and 100),
  add column opted_out_channels public.channel[] not null default '{}',
  add column last_activity_at timestamptz,
  add constraint contacts_company_fk foreign key (organization_id, company_id)
    references public.companies (organization_id, id) on delete set null (company_id);

create index contacts_org_company_idx on public.contacts (organization_id, company_id)
  where company_id is not null;
create index contacts_org_updated_idx on public.contacts (organization_id, updated_at desc, id);
create index contacts_org_name_idx on public.contacts (organization_id, lower(name), id);
create index contacts_org_activity_idx
  on public.contacts (organization_id, last_activity_at desc nulls last, id);
create index contacts_org_assignee_idx on public.contacts (organization_id, assignee_id)
  where assignee_id is not null;

create trigger contacts_custom_fields before insert or update of custom_fields on public.contacts
  for each row execute function app.check_custom_fields('contact');

-- Opt-outs are a set of channels: each once, in a stable order.
create function app.normalize_contact() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.opted_out_channels := array(
    select distinct c from unnest(new.opted_out_channels) c where c is not null order by c
  );
  return new;
end;
$$;
create trigger contacts_normalize before insert or update of opted_out_channels on public.contacts
  for each row execute function app.normalize_contact();

-- ---- contact activity and events -------------------------------------------------------------

-- last_activity_at: the latest message, note, completed task or deal move of the
-- contact. Only ever moves forward; touching it changes neither updated_at nor
-- emits contact.updated.
-- plpgsql rather than sql: its plan is kept for the session (a security-definer
-- SQL function is planned on every call, and this runs for every message).
create function app.touch_contact_activity(org uuid, contact uuid, happened_at timestamptz default now())
returns void
language plpgsql security definer set search_path = '' as $$
begin
  update public.contacts c set last_activity_at = happened_at
   where c.organization_id = org and c.id = contact
     and (c.last_activity_at is null or c.last_activity_at < happened_at);
end;
$$;

create function app.message_activity() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.contacts k set last_activity_at = new.created_at
   where k.organization_id = new.organization_id
     and k.id = (select c.contact_id from public.conversations c
                  where c.organization_id = new.organization_id and c.id = new.conversation_id)
     and (k.last_activity_at is null or k.last_activity_at < new.created_at);
  return null;
end;
$$;
create trigger messages_contact_activity after insert on public.messages
  for each row execute function app.message_activity();

-- contact.updated carries the contact and the previous values of what changed.
-- Removing a deleted custom field from every contact is bookkeeping, not news.
create function app.contact_update_events() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  before jsonb := to_jsonb(old) - 'updated_at' - 'last_activity_at';
  previous jsonb;
begin
  if current_setting('connectgain.custom_field_cleanup', true) = 'on' then
    return null;
  end if;
  select jsonb_object_agg(a.key, before -> a.key) into previous
    from jsonb_each(to_jsonb(new) - 'updated_at' - 'last_activity_at') a
   where a.value is distinct from before -> a.key;
  if previous is not null then
    perform app.emit(new.organization_id, 'contact.updated', new.id,
      jsonb_build_object('contact', to_jsonb(new), 'previous', previous));
  end if;
  return null;
end;
$$;
create trigger contacts_update_events after update on public.contacts
  for each row
  when ((to_jsonb(old) - 'updated_at' - 'last_activity_at')
        is distinct from (to_jsonb(new) - 'updated_at' - 'last_activity_at'))
  execute function app.contact_update_events();

-- Pipelines, stages and deals: invariants kept here, whoever writes (API, PostgREST, SQL):
--   * a deal's stage belongs to the deal's pipeline (composite foreign key);
--   * a deal's status is the kind of its stage (open / won / lost), with
--     won_at / lost_at set while it is won / lost;
--   * positions within a stage are unique; new arrivals go to the bottom of the
--     column under a per-stage lock, so concurrent writers never collide.

-- ---- pipelines and stages ----------------------------------------------------------------------

create type public.stage_kind as enum ('open', 'won', 'lost');
create type public.deal_status as enum ('open', 'won', 'lost');

create table public.pipelines (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 100),
  position integer not null default 0,
  is_default boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id)
);
alter table public.pipelines enable row level security;
create policy pipelines_select on public.pipelines for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy pipelines_insert on public.pipelines for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy pipelines_update on public.pipelines for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy pipelines_delete on public.pipelines for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index pipelines_org_idx on public.pipelines (organization_id, position, created_at);
create unique index pipelines_one_default_key on public.pipelines (organization_id) where is_default;
create trigger pipelines_api_keys_refused before insert or update or delete on public.pipelines
  for each row execute function app.refuse_api_keys();
create trigger pipelines_keep_org before update on public.pipelines
  for each row execute function app.keep_organization();
create trigger pipelines_touch before update on public.pipelines
  for each row execute function app.touch_updated_at();

create table public.stages (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  pipeline_id uuid not null,
  name text not null check (length(btrim(name)) between 1 and 100),
  position integer not null default 0,
  probability smallint not null default 0 check (probability between 0 and 100),
  kind public.stage_kind not null default 'open',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (organization_id, pipeline_id, id),
  constraint stages_pipeline_fk foreign key (organization_id, pipeline_id)
    references public.pipelines (organization_id, id) on delete cascade
);
alter table public.stages enable row level security;
create policy stages_select on public.stages for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy stages_insert on public.stages for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy stages_update on public.stages for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy stages_delete on public.stages for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index stages_pipeline_idx on public.stages (organization_id, pipeline_id, position);
create trigger stages_api_keys_refused before insert or update or delete on public.stages
  for each row execute function app.refuse_api_keys();
create trigger stages_keep_org before update on public.stages
  for each row execute function app.keep_organization();
create trigger stages_touch before update on public.stages
  for each row execute function app.touch_updated_at();

-- An organization always has exactly one default pipeline: making one default
-- unsets the previous one; the default itself cannot be unset or deleted.
create function app.pipeline_before_write() returns trigger
language plpgsql set search_path = '' as $$
begin
  -- (depth 1: the switch below unsets the previous default from inside this trigger)
  if tg_op = 'UPDATE' and old.is_default and not new.is_default and pg_trigger_depth() = 1 then
    raise exception 'is_default: make another pipeline the default instead'
      using errcode = 'CG422', column = 'is_default';
  end if;
  if new.is_default and (tg_op = 'INSERT' or not old.is_default) then
    update public.pipelines set is_default = false
     where organization_id = new.organization_id and is_default and id <> new.id;
  end if;
  return new;
end;
$$;
create trigger pipelines_default before insert or update of is_default on public.pipelines
  for each row execute function app.pipeline_before_write();

-- Deleting the organization removes everything; otherwise a pipeline or stage
-- still holding deals cannot go (their deals would be lost with it).
-- As the caller (not security definer, which would tell anyone whether any
-- organization id exists): it answers for visible organizations only, and its
-- callers (triggers on rows the caller may delete, and cascades, which run as
-- the table owner) need no more.
create function app.organization_is_going(org uuid) returns boolean
language sql stable set search_path = '' as $$
  select not exists (select 1 from public.organizations o where o.id = org)
$$;

create function app.pipeline_before_delete() returns trigger
language plpgsql set search_path = '' as $$
begin
  if app.organization_is_going(old.organization_id) then
    return old;
  end if;
  if old.is_default then
    raise exception 'The default pipeline cannot be deleted; make another pipeline the default first'
      using errcode = 'CG409';
  end if;
  if exists (select 1 from public.deals d
              where d.organization_id = old.organization_id and d.pipeline_id = old.id) then
    raise exception 'The pipeline still has deals; move or delete them first' using errcode = 'CG409';
  end if;
  return old;
end;
$$;

create function app.stage_before_write() returns trigger
language plpgsql set search_path = '' as $$
begin
  if tg_op = 'DELETE' then
    if not app.organization_is_going(old.organization_id) and exists (
      select 1 from public.deals d where d.organization_id = old.organization_id and d.stage_id = old.id
    ) then
      raise exception 'The stage still has deals; move or delete them first' using errcode = 'CG409';
    end if;
    return old;
  end if;
  if new.pipeline_id is distinct from old.pipeline_id then
    raise exception 'pipeline_id: a stage cannot move to another pipeline'
      using errcode = 'CG422', column = 'pipeline_id';
  end if;
  if new.kind is distinct from old.kind and exists (
    select 1 from public.deals d where d.organization_id = old.organization_id and d.stage_id = old.id
  ) then
    raise exception 'kind: the stage has deals; move them before changing its kind'
      using errcode = 'CG409', column = 'kind';
  end if;
  return new;
end;
$$;

-- ---- deals --------------------------------------------------------------------------------------

create table public.deals (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  title text not null check (length(btrim(title)) between 1 and 200),
  value numeric(18, 2) check (value >= 0),
  currency text not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  probability smallint not null check (probability between 0 and 100),
  expected_close_date date,
  pipeline_id uuid not null,
  stage_id uuid not null,
  position bigint not null,
  contact_id uuid,
  company_id uuid,
  -- copies of the contact's and company's names, kept exact by triggers: the board
  -- shows thousands of cards with them and reads no other table
  contact_name text,
  company_name text,
  assignee_id uuid,
  status public.deal_status not null default 'open',
  won_at timestamptz,
  lost_at timestamptz,
  lost_reason text check (length(lost_reason) <= 500),
  custom_fields jsonb not null default '{}'::jsonb check (jsonb_typeof(custom_fields) = 'object'),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  constraint deals_stage_fk foreign key (organization_id, pipeline_id, stage_id)
    references public.stages (organization_id, pipeline_id, id),
  constraint deals_contact_fk foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete set null (contact_id),
  constraint deals_company_fk foreign key (organization_id, company_id)
    references public.companies (organization_id, id) on delete set null (company_id),
  constraint deals_assignee_fk foreign key (organization_id, assignee_id)
    references public.organization_members (organization_id, user_id) on delete set null (assignee_id),
  -- checked at the end of each statement, so a column can be renumbered in one UPDATE
  constraint deals_stage_position_key unique (organization_id, stage_id, position)
    deferrable initially immediate,
  constraint deals_won_at_when_won check ((status = 'won') = (won_at is not null)),
  constraint deals_lost_at_when_lost check ((status = 'lost') = (lost_at is not null)),
  constraint deals_lost_reason_when_lost check (lost_reason is null or status = 'lost')
);
alter table public.deals enable row level security;
create policy deals_select on public.deals for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy deals_insert on public.deals for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('agent'))
    and created_by is not distinct from (select auth.uid())
  );
create policy deals_update on public.deals for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy deals_delete on public.deals for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create index deals_org_created_idx on public.deals (organization_id, created_at desc, id);
create index deals_org_updated_idx on public.deals (organization_id, updated_at desc, id);
create index deals_board_idx on public.deals (organization_id, pipeline_id, stage_id, position)
  where status = 'open';
create index deals_org_contact_idx on public.deals (organization_id, contact_id)
  where contact_id is not null;
create index deals_org_company_idx on public.deals (organization_id, company_id)
  where company_id is not null;
create index deals_org_assignee_idx on public.deals (organization_id, assignee_id, status)
  where assignee_id is not null;
create trigger deals_custom_fields before insert or update of custom_fields on public.deals
  for each row execute function app.check_custom_fields('deal');
create trigger deals_keep_org before update on public.deals
  for each row execute function app.keep_organization();
-- updated_at means "someone changed the deal": a renamed contact or company does not count
create trigger deals_touch before update on public.deals
  for each row
  when ((to_jsonb(old) - 'updated_at' - 'contact_name' - 'company_name')
        is distinct from (to_jsonb(new) - 'updated_at' - 'contact_name' - 'company_name'))
  execute function app.touch_updated_at();

create trigger pipelines_before_delete before delete on public.pipelines
  for each row execute function app.pipeline_before_delete();
create trigger stages_before_write before update or delete on public.stages
  for each row execute function app.stage_before_write();

create table public.deal_stage_changes (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  deal_id uuid not null,
  from_stage_id uuid,
  to_stage_id uuid,
  changed_by uuid references auth.users (id) on delete set null,
  api_key_id uuid references public.api_keys (id) on delete set null,
  changed_at timestamptz not null default now(),
  constraint deal_stage_changes_deal_fk foreign key (organization_id, deal_id)
    references public.deals (organization_id, id) on delete cascade,
  constraint deal_stage_changes_from_fk foreign key (organization_id, from_stage_id)
    references public.stages (organization_id, id) on delete set null (from_stage_id),
  constraint deal_stage_changes_to_fk foreign key (organization_id, to_stage_id)
    references public.stages (organization_id, id) on delete set null (to_stage_id)
);
alter table public.deal_stage_changes enable row level security;
create policy deal_stage_changes_select on public.deal_stage_changes for select to authenticated
  using (organization_id in (select app.org_ids()));
create index deal_stage_changes_deal_idx
  on public.deal_stage_changes (organization_id, deal_id, changed_at);

-- ---- the deal's stage, status, probability and position ---------------------------------------

-- Serializes everyone placing deals into one kanban column (inserts, stage
-- changes, moves); held to the end of the transaction.
create function app.lock_stage(stage uuid) returns void
language sql set search_path = '' as $$
  select pg_advisory_xact_lock(hashtextextended('connectgain.stage:' || stage::text, 0))
$$;

-- The bottom of a column; call with the stage locked.
create function app.next_deal_position(org uuid, stage uuid) returns bigint
language sql stable set search_path = '' as $$
  select coalesce(max(d.position), 0) + 1024 from public.deals d
   where d.organization_id = org and d.stage_id = stage
$$;

create function app.first_stage(org uuid, pipeline uuid, wanted public.stage_kind) returns uuid
language sql stable set search_path = '' as $$
  select s.id from public.stages s
   where s.organization_id = org and s.pipeline_id = pipeline and s.kind = wanted
   order by s.position, s.created_at, s.id limit 1
$$;

-- Runs as the caller: stages of other organizations are invisible, so a forged
-- reference fails as "no such stage" and reveals nothing.
create function app.deal_before_write() returns trigger
language plpgsql set search_path = '' as $$
declare
  stage public.stages;
  stage_changed boolean;
  wanted public.deal_status;
begin
  if tg_op = 'UPDATE' and new.created_by is distinct from old.created_by then
    raise exception 'created_by: the creator of a deal cannot change'
      using errcode = 'CG422', column = 'created_by';
  end if;
  if tg_op = 'INSERT' then
    if new.stage_id is null then
      if new.pipeline_id is null then
        select p.id into new.pipeline_id from public.pipelines p
         where p.organization_id = new.organization_id and p.is_default;
        if new.pipeline_id is null then
          raise exception 'pipeline_id: the organization has no default pipeline; name one'
            using errcode = 'CG422', column = 'pipeline_id';
        end if;
      end if;
      if not exists (select 1 from public.pipelines p
                      where p.organization_id = new.organization_id and p.id = new.pipeline_id) then
        raise exception 'pipeline_id: no such pipeline' using errcode = 'CG422', column = 'pipeline_id';
      end if;
      new.stage_id := app.first_stage(new.organization_id, new.pipeline_id, new.status::text::public.stage_kind);
      if new.stage_id is null then
        raise exception 'stage_id: the pipeline has no % stage', new.status
          using errcode = 'CG422', column = 'stage_id';
      end if;
    end if;
    stage_changed := true;
  else
    stage_changed := new.stage_id is distinct from old.stage_id;
    if not stage_changed and new.pipeline_id is distinct from old.pipeline_id then
      -- a new pipeline alone: the first stage there of the deal's (new) status
      new.stage_id := app.first_stage(new.organization_id, new.pipeline_id, new.status::text::public.stage_kind);
      if new.stage_id is null then
        raise exception 'pipeline_id: no such pipeline, or it has no % stage', new.status
          using errcode = 'CG422', column = 'pipeline_id';
      end if;
      stage_changed := true;
    elsif not stage_changed and new.status is distinct from old.status then
      -- "mark as won / lost / reopen": into the pipeline's first stage of that kind;
      -- reopening returns to the last open stage the deal was in
      if new.status = 'open' then
        select h.to_stage_id into new.stage_id
          from public.deal_stage_changes h
          join public.stages s on s.organization_id = h.organization_id and s.id = h.to_stage_id
         where h.organization_id = new.organization_id and h.deal_id = new.id
           and s.kind = 'open' and s.pipeline_id = new.pipeline_id
         order by h.changed_at desc, h.id desc limit 1;
      end if;
      if new.stage_id is not distinct from old.stage_id then
        new.stage_id := app.first_stage(new.organization_id, new.pipeline_id, new.status::text::public.stage_kind);
      end if;
      if new.stage_id is null then
        raise exception 'status: the pipeline has no % stage', new.status
          using errcode = 'CG422', column = 'status';
      end if;
      stage_changed := true;
    end if;
  end if;

  if stage_changed then
    select * into stage from public.stages s
     where s.organization_id = new.organization_id and s.id = new.stage_id;
    if not found then
      raise exception 'stage_id: no such stage' using errcode = 'CG422', column = 'stage_id';
    end if;
    if new.pipeline_id is null then
      new.pipeline_id := stage.pipeline_id;
    elsif new.pipeline_id <> stage.pipeline_id then
      raise exception 'stage_id: the stage is not in the deal''s pipeline'
        using errcode = 'CG422', column = 'stage_id';
    end if;
    -- the status follows the stage; a status that contradicts it is a mistake
    wanted := stage.kind::text::public.deal_status;
    if new.status is distinct from wanted
       and (case when tg_op = 'INSERT' then new.status <> 'open'
                 else new.status is distinct from old.status end) then
      raise exception 'status: the deal is % but its stage "%" is %', new.status, stage.name, stage.kind
        using errcode = 'CG422', column = 'status';
    end if;
    new.status := wanted;
    if tg_op = 'INSERT' then
      new.probability := coalesce(new.probability, stage.probability);
    elsif new.probability is not distinct from old.probability then
      new.probability := stage.probability;
    end if;
    if new.position is null or (tg_op = 'UPDATE' and new.position is not distinct from old.position) then
      perform app.lock_stage(new.stage_id);
      new.position := app.next_deal_position(new.organization_id, new.stage_id);
    end if;
  end if;

  -- the names always come from the rows they copy, whatever the writer sent
  if tg_op = 'INSERT' or new.contact_id is distinct from old.contact_id
     or new.contact_name is distinct from old.contact_name then
    new.contact_name := (select c.name from public.contacts c
                          where c.organization_id = new.organization_id and c.id = new.contact_id);
  end if;
  if tg_op = 'INSERT' or new.company_id is distinct from old.company_id
     or new.company_name is distinct from old.company_name then
    new.company_name := (select co.name from public.companies co
                          where co.organization_id = new.organization_id and co.id = new.company_id);
  end if;

  if new.status = 'won' then
    new.won_at := coalesce(new.won_at, now());
  else
    new.won_at := null;
  end if;
  if new.status = 'lost' then
    new.lost_at := coalesce(new.lost_at, now());
  else
    new.lost_at := null;
    if tg_op = 'UPDATE' and old.status = 'lost' and new.lost_reason is not distinct from old.lost_reason then
      new.lost_reason := null;  -- reopened: the old reason no longer applies
    end if;
  end if;
  return new;
end;
$$;
create trigger deals_before_write before insert or update on public.deals
  for each row execute function app.deal_before_write();

-- History and domain events. Security definer: nobody writes history directly.
create function app.deal_after_write() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  deal jsonb := to_jsonb(new);
begin
  if tg_op = 'INSERT' or new.stage_id is distinct from old.stage_id then
    insert into public.deal_stage_changes
      (organization_id, deal_id, from_stage_id, to_stage_id, changed_by, api_key_id)
    values (new.organization_id, new.id, case when tg_op = 'UPDATE' then old.stage_id end,
            new.stage_id, (select auth.uid()), (select app.api_key_id()));
    perform app.touch_contact_activity(new.organization_id, new.contact_id);
  end if;
  if tg_op = 'INSERT' then
    perform app.emit(new.organization_id, 'deal.created', new.id, deal);
  elsif new.stage_id is distinct from old.stage_id then
    perform app.emit(new.organization_id, 'deal.stage_changed', new.id,
      jsonb_build_object('deal', deal, 'from_stage_id', old.stage_id, 'to_stage_id', new.stage_id));
  end if;
  if new.status is distinct from (case when tg_op = 'UPDATE' then old.status end) then
    if new.status = 'won' then
      perform app.emit(new.organization_id, 'deal.won', new.id, deal);
    elsif new.status = 'lost' then
      perform app.emit(new.organization_id, 'deal.lost', new.id, deal);
    end if;
  end if;
  return null;
end;
$$;
create trigger deals_after_write after insert or update on public.deals
  for each row execute function app.deal_after_write();

-- A renamed contact or company renames its deals' copies.
create function app.rename_on_deals() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_table_name = 'contacts' then
    update public.deals d set contact_name = new.name
     where d.organization_id = new.organization_id and d.contact_id = new.id
       and d.contact_name is distinct from new.name;
  else
    update public.deals d set company_name = new.name
     where d.organization_id = new.organization_id and d.company_id = new.id
       and d.company_name is distinct from new.name;
  end if;
  return null;
end;
$$;
create trigger contacts_rename_on_deals after update of name on public.contacts
  for each row when (old.name is distinct from new.name)
  execute function app.rename_on_deals();
create trigger companies_rename_on_deals after update of name on public.companies
  for each row when (old.name is distinct from new.name)
  execute function app.rename_on_deals();

-- ---- the default pipeline of every organization -------------------------------------------------

create function app.create_default_pipeline(org uuid) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  pipeline uuid;
begin
  insert into public.pipelines (organization_id, name, position, is_default)
  values (org, 'Sales', 0, true) returning id into pipeline;
  insert into public.stages (organization_id, pipeline_id, name, position, probability, kind)
  values (org, pipeline, 'Lead', 0, 10, 'open'),
         (org, pipeline, 'Qualified', 1, 25, 'open'),
         (org, pipeline, 'Proposal', 2, 50, 'open'),
         (org, pipeline, 'Negotiation', 3, 75, 'open'),
         (org, pipeline, 'Closed Won', 4, 100, 'won'),
         (org, pipeline, 'Closed Lost', 5, 0, 'lost');
  return pipeline;
end;
$$;

create function app.organization_defaults() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform app.create_default_pipeline(new.id);
  return null;
end;
$$;
create trigger organizations_defaults after insert on public.organizations
  for each row execute function app.organization_defaults();

-- ---- tags ------------------------------------------------------------------------------------
-- Tags, and their application to contacts, deals and conversations. A tag's
-- name is unique in its organization whatever its case ("VIP" = "vip").

create table public.tags (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(name) between 1 and 50 and name = btrim(name)),
  color text not null default '#64748b' check (color ~ '^#[0-9a-f]{6}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id)
);
alter table public.tags enable row level security;
create policy tags_select on public.tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy tags_insert on public.tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy tags_update on public.tags for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy tags_delete on public.tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));
create unique index tags_org_name_key on public.tags (organization_id, lower(name));
create trigger tags_keep_org before update on public.tags
  for each row execute function app.keep_organization();
create trigger tags_touch before update on public.tags
  for each row execute function app.touch_updated_at();

create table public.contact_tags (
  organization_id uuid not null,
  contact_id uuid not null,
  tag_id uuid not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, contact_id, tag_id),
  constraint contact_tags_contact_fk foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete cascade,
  constraint contact_tags_tag_fk foreign key (organization_id, tag_id)
    references public.tags (organization_id, id) on delete cascade
);
alter table public.contact_tags enable row level security;
create policy contact_tags_select on public.contact_tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy contact_tags_insert on public.contact_tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contact_tags_delete on public.contact_tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')));
create index contact_tags_tag_idx on public.contact_tags (organization_id, tag_id, contact_id);

create table public.deal_tags (
  organization_id uuid not null,
  deal_id uuid not null,
  tag_id uuid not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, deal_id, tag_id),
  constraint deal_tags_deal_fk foreign key (organization_id, deal_id)
    references public.deals (organization_id, id) on delete cascade,
  constraint deal_tags_tag_fk foreign key (organization_id, tag_id)
    references public.tags (organization_id, id) on delete cascade
);
alter table public.deal_tags enable row level security;
create policy deal_tags_select on public.deal_tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy deal_tags_insert on public.deal_tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy deal_tags_delete on public.deal_tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')));
create index deal_tags_tag_idx on public.deal_tags (organization_id, tag_id, deal_id);

create table public.conversation_tags (
  organization_id uuid not null,
  conversation_id uuid not null,
  tag_id uuid not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, conversation_id, tag_id),
  constraint conversation_tags_conversation_fk foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade,
  constraint conversation_tags_tag_fk foreign key (organization_id, tag_id)
    references public.tags (organization_id, id) on delete cascade
);
alter table public.conversation_tags enable row level security;
create policy conversation_tags_select on public.conversation_tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy conversation_tags_insert on public.conversation_tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy conversation_tags_delete on public.conversation_tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')));
create index conversation_tags_tag_idx
  on public.conversation_tags (organization_id, tag_id, conversation_id);

-- Links never change; they are added and removed.
create trigger contact_tags_keep_org before update on public.contact_tags
  for each row execute function app.keep_organization();
create trigger deal_tags_keep_org before update on public.deal_tags
  for each row execute function app.keep_organization();
create trigger conversation_tags_keep_org before update on public.conversation_tags
  for each row execute function app.keep_organization();

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
alter table public.tasks enable row level security;
create policy tasks_select on public.tasks for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy tasks_insert on public.tasks for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('agent'))
    and created_by is not distinct from (select auth.uid())
  );
create policy tasks_update on public.tasks for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
-- the creator may delete a task; managers any
create policy tasks_delete on public.tasks for delete to authenticated
  using (
    organization_id in (select app.org_ids_with_role('manager'))
    or (created_by = (select auth.uid()) and organization_id in (select app.org_ids_with_role('agent')))
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
alter table public.notes enable row level security;
create policy notes_select on public.notes for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy notes_insert on public.notes for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('agent'))
    and author_id is not distinct from (select auth.uid())
  );
create policy notes_update on public.notes for update to authenticated
  using (
    organization_id in (select app.org_ids_with_role('manager'))
    or (author_id = (select auth.uid()) and organization_id in (select app.org_ids_with_role('agent')))
  )
  with check (
    organization_id in (select app.org_ids_with_role('manager'))
    or (author_id = (select auth.uid()) and organization_id in (select app.org_ids_with_role('agent')))
  );
create policy notes_delete on public.notes for delete to authenticated
  using (
    organization_id in (select app.org_ids_with_role('manager'))
    or (author_id = (select auth.uid()) and organization_id in (select app.org_ids_with_role('agent')))
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

-- ---- moving deals on the kanban board in one call ---------------------------------------------
--
-- POST /rest/v1/rpc/move_deal {"deal", "stage", "at_index"}: put a deal at
-- `at_index` (0 = top) of a stage's column, in its pipeline or another. The
-- target column is locked for the move, so concurrent moves apply one after the
-- other and positions stay unique and ordered. Positions are spaced 1024 apart;
-- when two neighbours have no room between them the column is renumbered, and
-- only the deals still in the column when their turn comes: one another member
-- moved out meanwhile keeps its new place.
-- Runs as the caller: other organizations' deals and stages are not found.
create function public.move_deal(deal uuid, stage uuid, at_index integer)
returns public.deals
language plpgsql set search_path = '' as $$
declare
  moving public.deals;
  target public.stages;
  above bigint;
  below bigint;
begin
  if at_index is null or at_index < 0 then
    raise exception 'at_index: must be 0 or more' using errcode = 'CG422', column = 'at_index';
  end if;
  select * into moving from public.deals d where d.id = deal;
  if not found then
    raise exception 'No such deal' using errcode = 'CG404';
  end if;
  select * into target from public.stages s
   where s.organization_id = moving.organization_id and s.id = stage;
  if not found then
    raise exception 'stage_id: no such stage' using errcode = 'CG422', column = 'stage_id';
  end if;
  perform app.lock_stage(target.id);

  if moving.stage_id is distinct from target.id then
    -- enter the column first (at the bottom): status, history and events follow the stage
    update public.deals d set stage_id = target.id, pipeline_id = target.pipeline_id
     where d.id = moving.id returning * into moving;
  end if;

  for attempt in 1..2 loop
    above := null;
    below := null;
    if at_index > 0 then
      select d.position into above from public.deals d
       where d.organization_id = moving.organization_id and d.stage_id = target.id and d.id <> moving.id
       order by d.position offset at_index - 1 limit 1;
      if above is null then  -- past the end: the bottom
        select max(d.position) into above from public.deals d
         where d.organization_id = moving.organization_id and d.stage_id = target.id
           and d.id <> moving.id;
      end if;
    end if;
    select d.position into below from public.deals d
     where d.organization_id = moving.organization_id and d.stage_id = target.id and d.id <> moving.id
       and (above is null or d.position > above)
     order by d.position limit 1;
    exit when above is null or below is null or below - above > 1;
    -- no room: respace the whole column (one statement; the unique key is checked at its end)
    update public.deals d set position = r.rn * 1024
      from (select x.id, row_number() over (order by x.position) as rn from public.deals x
             where x.organization_id = moving.organization_id and x.stage_id = target.id) r
     where d.id = r.id
       -- re-checked on a row another mover changed meanwhile: one that left the
       -- column (its mover held only the new column's lock) keeps its new place
       and d.organization_id = moving.organization_id and d.stage_id = target.id;
  end loop;

  update public.deals d
     set position = case
           when above is null and below is null then 1024
           when above is null then below - 1024
           when below is null then above + 1024
           else above + (below - above) / 2
         end
   where d.id = moving.id
  returning * into moving;
  return moving;
end;
$$;

-- ---- function privileges ------------------------------------------------------------
-- Owner-only, whatever the default privileges; then one grant per caller that needs it.
revoke execute on function
  app.refuse_api_keys(), app.valid_field_options(jsonb), app.keep_field_identity(),
  app.parse_date(text), app.parse_datetime(text), app.datetime_text(timestamptz),
  app.clean_custom_fields(uuid, public.custom_field_entity, jsonb, jsonb),
  app.check_custom_fields(), app.valid_address(jsonb), app.normalize_contact(),
  app.touch_contact_activity(uuid, uuid, timestamptz), app.message_activity(),
  app.contact_update_events(), app.pipeline_before_write(), app.organization_is_going(uuid),
  app.pipeline_before_delete(), app.stage_before_write(), app.lock_stage(uuid),
  app.next_deal_position(uuid, uuid), app.first_stage(uuid, uuid, public.stage_kind),
  app.deal_before_write(), app.deal_after_write(), app.rename_on_deals(),
  app.create_default_pipeline(uuid), app.organization_defaults(), app.task_before_write(),
  app.task_after_write(), app.note_before_update(), app.note_activity(),
  app.custom_field_removed()
  from public, anon, authenticated, service_role;

-- Called by check constraints and by invoker triggers (custom fields, deal placement,
-- pipeline and stage deletion), as whichever role writes the row.
grant execute on function app.valid_field_options(jsonb), app.valid_address(jsonb),
  app.clean_custom_fields(uuid, public.custom_field_entity, jsonb, jsonb),
  app.parse_date(text), app.parse_datetime(text), app.datetime_text(timestamptz),
  app.first_stage(uuid, uuid, public.stage_kind), app.next_deal_position(uuid, uuid),
  app.lock_stage(uuid), app.organization_is_going(uuid)
  to authenticated, service_role;

-- The RPC (PostgREST): signed-in users and the service, never anon.
revoke execute on function public.move_deal(uuid, uuid, integer) from public, anon;
grant execute on function public.move_deal(uuid, uuid, integer) to authenticated, service_role;
