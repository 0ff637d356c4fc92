-- CRM, part 1: custom field definitions and their validation, companies, and
-- what contacts gain for the CRM (company, source, opt-outs, last activity).
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

grant execute on function app.parse_date(text), app.parse_datetime(text),
  app.datetime_text(timestamptz), app.valid_field_options(jsonb)
  to authenticated, service_role;

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
grant execute on function app.clean_custom_fields(uuid, public.custom_field_entity, jsonb, jsonb)
  to authenticated, service_role;

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
grant execute on function app.valid_address(jsonb) to authenticated, service_role;

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

-- updated_at means "someone changed the contact": activity bookkeeping
-- (last_activity_at) does not count.
drop trigger contacts_touch on public.contacts;
create trigger contacts_touch before update on public.contacts
  for each row
  when ((to_jsonb(old) - 'updated_at' - 'last_activity_at')
        is distinct from (to_jsonb(new) - 'updated_at' - 'last_activity_at'))
  execute function app.touch_updated_at();

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
grant execute on function app.touch_contact_activity(uuid, uuid, timestamptz)
  to authenticated, service_role;

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
