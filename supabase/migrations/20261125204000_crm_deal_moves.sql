-- CRM, part 5: moving deals on the kanban board in one call.
--
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
