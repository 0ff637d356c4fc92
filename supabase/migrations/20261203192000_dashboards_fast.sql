-- Dashboards, faster at a million messages: covering indexes so the widgets that read raw
-- rows read an index only (no table rows per message, conversation or deal).
--
--   messages_dashboard_idx      a filtered messages widget's range of messages, with every
--                               column it groups or joins by (the filter itself reads
--                               conversations)
--   conversations_dashboard_idx each conversation's assignee and channel account, for the
--                               clocks' agent and channel dimensions and conversation filters

create index messages_dashboard_idx on public.messages (organization_id, created_at)
  include (direction, conversation_id, channel_account_id, sender_type, sender_id);

create index conversations_dashboard_idx on public.conversations (organization_id, id)
  include (assignee_id, channel_account_id, status);

-- ---- how far each deal got: the stage funnel's rollup ----------------------------------------------
-- One row per deal: its pipeline and creation time, the furthest open stage position it
-- reached (over all its stage changes and its current stage; null: none) and whether it
-- was won. The funnel of deals created in a range is then one index-only range scan of
-- this table, however many stage changes the deals have.
--
-- How it stays exact: every write that can move a deal's row recomputes that deal's row
-- from the raw rows, in the same transaction (committing or rolling back with it):
--   deals               insert; update of stage, status, pipeline or creation time
--   deal_stage_changes  insert, update (a deleted stage nulls its changes), delete
--   stages              update of position or kind: the deals of that pipeline, and those
--                       that passed through the stage, are recomputed (a rare, admin write)
-- A deleted deal's row goes with it (foreign key cascade).
create table public.deal_progress (
  organization_id uuid not null,
  deal_id uuid not null,
  pipeline_id uuid not null,
  created_at timestamptz not null,
  furthest_position integer,
  won boolean not null,
  primary key (organization_id, deal_id),
  foreign key (organization_id, deal_id)
    references public.deals (organization_id, id) on delete cascade
);
alter table public.deal_progress enable row level security;
create policy deal_progress_select on public.deal_progress for select to authenticated
  using (organization_id = any (array(select app.org_ids())));
create index deal_progress_funnel_idx on public.deal_progress
  (organization_id, pipeline_id, created_at) include (furthest_position, won);

-- Recompute the rows of these deals from the raw rows (a deal gone: nothing to write).
create function app.refresh_deal_progress(deal_ids uuid[]) returns void
language sql security definer set search_path = '' as $$
  insert into public.deal_progress as p
         (organization_id, deal_id, pipeline_id, created_at, furthest_position, won)
  select d.organization_id, d.id, d.pipeline_id, d.created_at,
         greatest(m.position, case when s.kind = 'open' then s.position end),
         d.status = 'won'
    from public.deals d
    left join public.stages s on s.organization_id = d.organization_id and s.id = d.stage_id
    left join lateral (
      select max(cs.position) filter (where cs.kind = 'open') as position
        from public.deal_stage_changes c
        join public.stages cs on cs.organization_id = c.organization_id and cs.id = c.to_stage_id
       where c.organization_id = d.organization_id and c.deal_id = d.id
    ) m on true
   where d.id = any (deal_ids)
  on conflict (organization_id, deal_id) do update
     set pipeline_id = excluded.pipeline_id, created_at = excluded.created_at,
         furthest_position = excluded.furthest_position, won = excluded.won
   where (p.pipeline_id, p.created_at, p.furthest_position, p.won)
         is distinct from (excluded.pipeline_id, excluded.created_at, excluded.furthest_position,
                           excluded.won)
$$;

create function app.deal_progress_of_deal() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform app.refresh_deal_progress(array[new.id]);
  return null;
end;
$$;
create trigger deals_progress_insert after insert on public.deals
  for each row execute function app.deal_progress_of_deal();
create trigger deals_progress_update
  after update of stage_id, status, pipeline_id, created_at on public.deals for each row
  when ((old.stage_id, old.status, old.pipeline_id, old.created_at)
        is distinct from (new.stage_id, new.status, new.pipeline_id, new.created_at))
  execute function app.deal_progress_of_deal();

create function app.deal_progress_of_change() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op <> 'INSERT' then
    perform app.refresh_deal_progress(array[old.deal_id]);
  end if;
  if tg_op = 'INSERT' or (tg_op = 'UPDATE' and new.deal_id <> old.deal_id) then
    perform app.refresh_deal_progress(array[new.deal_id]);
  end if;
  return null;
end;
$$;
create trigger deal_stage_changes_progress
  after insert or update of deal_id, to_stage_id or delete on public.deal_stage_changes for each row execute function app.deal_progress_of_change();

create function app.deal_progress_of_stages() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform app.refresh_deal_progress(array(
    select d.id from after_rows n join before_rows o on o.id = n.id
      join public.deals d on d.organization_id = n.organization_id
                         and d.pipeline_id = n.pipeline_id
     where (o.position, o.kind) is distinct from (n.position, n.kind)
    union
    select c.deal_id from after_rows n join before_rows o on o.id = n.id
      join public.deal_stage_changes c on c.organization_id = n.organization_id
                                      and c.to_stage_id = n.id
     where (o.position, o.kind) is distinct from (n.position, n.kind)));
  return null;
end;
$$;
create trigger stages_progress after update on public.stages
  referencing old table as before_rows new table as after_rows
  for each statement execute function app.deal_progress_of_stages();

-- what exists already
select app.refresh_deal_progress(array(select id from public.deals));

revoke execute on function app.refresh_deal_progress(uuid[]), app.deal_progress_of_deal(),
  app.deal_progress_of_change(), app.deal_progress_of_stages()
  from public, anon, authenticated, service_role;
