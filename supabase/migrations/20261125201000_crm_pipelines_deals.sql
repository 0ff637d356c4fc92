-- CRM, part 2: pipelines, their stages, deals on the kanban board, and the
-- history of every stage change.
--
-- Invariants kept here, whoever writes (API, PostgREST, SQL):
--   * a deal's stage belongs to the deal's pipeline (composite foreign key);
--   * a deal's status is the kind of its stage (open / won / lost), with
--     won_at / lost_at set while it is won / lost;
--   * positions within a stage are unique; new arrivals go to the bottom of the
--     column under a per-stage lock, so concurrent writers never collide.

create type public.stage_kind as enum ('open', 'won', 'lost');
create type public.deal_status as enum ('open', 'won', 'lost');

-- ---- pipelines and stages ----------------------------------------------------------------------

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
create index pipelines_org_idx on public.pipelines (organization_id, position, created_at);
create unique index pipelines_one_default_key on public.pipelines (organization_id) where is_default;
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
create index stages_pipeline_idx on public.stages (organization_id, pipeline_id, position);
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
create function app.organization_is_going(org uuid) returns boolean
language sql stable security definer set search_path = '' as $$
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
create trigger deals_touch before update on public.deals
  for each row execute function app.touch_updated_at();

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

grant execute on function app.lock_stage(uuid), app.next_deal_position(uuid, uuid),
  app.first_stage(uuid, uuid, public.stage_kind), app.organization_is_going(uuid)
  to authenticated, service_role;

-- Runs as the caller: stages of other organizations are invisible, so a forged
-- reference fails as "no such stage" and reveals nothing.
create function app.deal_before_write() returns trigger
language plpgsql set search_path = '' as $$
declare
  stage public.stages;
  stage_changed boolean;
  wanted public.deal_status;
begin
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

select app.create_default_pipeline(o.id) from public.organizations o
 where not exists (select 1 from public.pipelines p where p.organization_id = o.id);

-- ---- moving a deal on the board --------------------------------------------------------------------

-- POST /rest/v1/rpc/move_deal {"deal", "stage", "at_index"}: put a deal at
-- `at_index` (0 = top) of a stage's column, in its pipeline or another. The
-- target column is locked for the move, so concurrent moves apply one after the
-- other and positions stay unique and ordered. Positions are spaced 1024 apart;
-- when two neighbours have no room between them the column is renumbered.
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
     where d.id = r.id;
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
revoke execute on function public.move_deal(uuid, uuid, integer) from public, anon;
grant execute on function public.move_deal(uuid, uuid, integer) to authenticated, service_role;
