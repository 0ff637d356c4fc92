-- Organizations, members, profiles and API keys.
-- Reads: members of the organization. Writes on settings, members and keys:
-- admins and owners; owners alone delete the organization or touch owners.
-- anon: nothing (no policy names it).

select app.reset_policies('public.organizations');
create policy organizations_select on public.organizations for select to authenticated
  using (id in (select app.org_ids()));
create policy organizations_update on public.organizations for update to authenticated
  using (id in (select app.org_ids_with_role('admin')))
  with check (id in (select app.org_ids_with_role('admin')));
create policy organizations_delete on public.organizations for delete to authenticated
  using (id in (select app.org_ids_with_role('owner')));
-- No insert policy: organizations are created through create_organization().

select app.reset_policies('public.organization_members');
create policy members_select on public.organization_members for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy members_insert on public.organization_members for insert to authenticated
  with check (
    organization_id in (select app.org_ids_with_role('admin'))
    and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner')))
  );
create policy members_update on public.organization_members for update to authenticated
  using (
    organization_id in (select app.org_ids_with_role('admin'))
    and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner')))
  )
  with check (
    organization_id in (select app.org_ids_with_role('admin'))
    and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner')))
  );
create policy members_delete on public.organization_members for delete to authenticated
  using (
    (organization_id in (select app.org_ids_with_role('admin'))
      and (role <> 'owner' or organization_id in (select app.org_ids_with_role('owner'))))
    or user_id = (select auth.uid())  -- leaving; the last owner cannot (trigger)
  );

select app.reset_policies('public.profiles');
create policy profiles_select on public.profiles for select to authenticated
  using (id = (select auth.uid()) or id in (select app.teammate_ids()));
create policy profiles_update on public.profiles for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));

select app.reset_policies('public.api_keys');
create policy api_keys_select on public.api_keys for select to authenticated
  using (organization_id in (select app.org_ids()));
create policy api_keys_update on public.api_keys for update to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')) and (select app.api_key_id()) is null)
  with check (organization_id in (select app.org_ids_with_role('admin')));
create policy api_keys_delete on public.api_keys for delete to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')) and (select app.api_key_id()) is null);
-- No insert policy: keys are issued through app.create_api_key().
