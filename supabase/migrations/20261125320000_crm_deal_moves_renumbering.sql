-- move_deal, mended: renumbering a column could renumber a deal that another
-- member was moving out of it at that moment. The renumbering UPDATE waited on
-- that deal's row, then matched it by id alone and gave it a position in the
-- column it had left, where it could take a neighbour's position (a unique
-- violation, seen about once in a dozen runs of the concurrent-moves test).
-- Now the row must still be in the column when its turn comes.
create or replace function public.move_deal(deal uuid, stage uuid, at_index integer)
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
