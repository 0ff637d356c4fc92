-- The CRM. Members read everything of their organization. Agents and up (and
-- write-scoped API keys, which rank as managers) work companies, deals, tasks,
-- notes and tag links; managers delete records and configure the organization's
-- pipelines, stages, custom fields and tags. Notes: authors edit and delete
-- their own, managers any. History is written by triggers only.

select app.reset_policies('public.custom_field_definitions');
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

select app.reset_policies('public.companies');
create policy companies_select on public.companies for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy companies_insert on public.companies for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy companies_update on public.companies for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy companies_delete on public.companies for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.pipelines');
create policy pipelines_select on public.pipelines for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy pipelines_insert on public.pipelines for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy pipelines_update on public.pipelines for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy pipelines_delete on public.pipelines for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.stages');
create policy stages_select on public.stages for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy stages_insert on public.stages for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy stages_update on public.stages for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy stages_delete on public.stages for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.deals');
create policy deals_select on public.deals for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy deals_insert on public.deals for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy deals_update on public.deals for update to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')))
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy deals_delete on public.deals for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.deal_stage_changes');
create policy deal_stage_changes_select on public.deal_stage_changes for select to authenticated
  using (organization_id in (select app.org_ids()));

select app.reset_policies('public.tags');
create policy tags_select on public.tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy tags_insert on public.tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy tags_update on public.tags for update to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')))
  with check (organization_id in (select app.org_ids_with_role('manager')));
create policy tags_delete on public.tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('manager')));

select app.reset_policies('public.contact_tags');
create policy contact_tags_select on public.contact_tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy contact_tags_insert on public.contact_tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy contact_tags_delete on public.contact_tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')));

select app.reset_policies('public.deal_tags');
create policy deal_tags_select on public.deal_tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy deal_tags_insert on public.deal_tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy deal_tags_delete on public.deal_tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')));

select app.reset_policies('public.conversation_tags');
create policy conversation_tags_select on public.conversation_tags for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy conversation_tags_insert on public.conversation_tags for insert to authenticated
  with check (organization_id in (select app.org_ids_with_role('agent')));
create policy conversation_tags_delete on public.conversation_tags for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('agent')));

select app.reset_policies('public.tasks');
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

select app.reset_policies('public.notes');
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
