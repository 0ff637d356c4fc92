-- Invitations with consent, and member identities that only Supabase Auth decides.
--
-- An admin invites an e-mail address with a role; nobody joins until the person
-- signed in with that address accepts with the token from their e-mail. The
-- token's hash lives in `private` (like API key hashes); the plain token is only
-- ever in the e-mail. Who a member is (their e-mail) comes from auth.users,
-- never from a profile the member can edit.

-- ---- invitations ---------------------------------------------------------------------

create table public.organization_invitations (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  email text not null
    check (email = lower(btrim(email)) and length(email) between 3 and 320 and email like '%_@_%'),
  role public.member_role not null default 'agent',
  invited_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  sent_at timestamptz not null default now(),  -- the last (re)send
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  revoked_at timestamptz,
  check (accepted_at is null or revoked_at is null)
);
-- One open invitation per address and organization: inviting again refreshes it.
create unique index organization_invitations_open_idx on public.organization_invitations
  (organization_id, email) where accepted_at is null and revoked_at is null;
create index organization_invitations_org_idx on public.organization_invitations
  (organization_id, created_at desc);

-- Admins and owners see their organization's invitations; the invitee sees none
-- (they hold a token, not a membership). No insert, update or delete policy:
-- every write goes through the functions below, which check roles and states.
alter table public.organization_invitations enable row level security;
create policy invitations_select on public.organization_invitations for select to authenticated
  using (organization_id in (select app.org_ids_with_role('admin')));

create table private.invitation_tokens (
  invitation_id uuid primary key references public.organization_invitations (id) on delete cascade,
  token_hash bytea not null unique check (length(token_hash) = 32)
);
-- No API role has privileges on `private`; no policy either, so even a grant opens nothing.
alter table private.invitation_tokens enable row level security;

-- ---- who a member is -----------------------------------------------------------------

-- E-mail and name as Supabase Auth holds them, for members of an organization
-- the caller belongs to (API keys excluded: they have no use for addresses).
create function app.member_directory(org uuid)
returns table (user_id uuid, email text, full_name text)
language sql stable security definer set search_path = '' as $$
  select m.user_id, u.email::text,
         coalesce(u.raw_user_meta_data ->> 'full_name', u.raw_user_meta_data ->> 'name')
    from public.organization_members m
    join auth.users u on u.id = m.user_id
   where m.organization_id = org
     and exists (select 1 from public.organization_members me
                  where me.organization_id = org and me.user_id = (select auth.uid()))
$$;
revoke execute on function app.member_directory(uuid) from public;
grant execute on function app.member_directory(uuid) to authenticated;

-- profiles.email mirrors auth.users and nothing else: a member who writes
-- another address into it (through PostgREST or otherwise) is refused.
create function app.profile_email_follows_auth() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  account_email text := (select u.email::text from auth.users u where u.id = new.id);
begin
  if tg_op = 'INSERT' then
    new.email := account_email;
  elsif new.email is distinct from old.email and new.email is distinct from account_email then
    raise exception 'profiles.email follows the account''s e-mail; change it through Supabase Auth'
      using errcode = '42501';
  end if;
  return new;
end;
$$;
revoke execute on function app.profile_email_follows_auth() from public;
create trigger profiles_email_follows_auth before insert or update of email on public.profiles
  for each row execute function app.profile_email_follows_auth();

-- Addresses written into profiles before this migration are put right.
update public.profiles p set email = u.email
  from auth.users u
 where u.id = p.id and p.email is distinct from u.email;

-- ---- the invitation flow ------------------------------------------------------------

-- Creates, or refreshes (new token, role and expiry; same row), the open
-- invitation of `address` to `org`. The caller must administer `org`; only
-- owners invite owners or touch an open owner invitation.
create function app.create_invitation(
  org uuid, address text, new_role public.member_role, hash bytea, valid_for interval
) returns public.organization_invitations
language plpgsql security definer set search_path = '' as $$
declare
  invitee text := lower(btrim(address));
  open_role public.member_role;
  created public.organization_invitations;
begin
  if (select app.api_key_id()) is not null or not app.has_role(org, 'admin') then
    raise exception 'Only admins and owners can invite people' using errcode = 'CG403';
  end if;
  select i.role into open_role from public.organization_invitations i
   where i.organization_id = org and i.email = invitee
     and i.accepted_at is null and i.revoked_at is null;
  if 'owner' in (new_role, open_role) and not app.has_role(org, 'owner') then
    raise exception 'Only owners can grant, change or remove the owner role' using errcode = 'CG403';
  end if;
  if exists (select 1 from public.organization_members m join auth.users u on u.id = m.user_id
              where m.organization_id = org and lower(u.email) = invitee) then
    raise exception 'This person is already a member' using errcode = 'CG409';
  end if;
  insert into public.organization_invitations (organization_id, email, role, invited_by, expires_at)
  values (org, invitee, new_role, (select auth.uid()), now() + valid_for)
  on conflict (organization_id, email) where accepted_at is null and revoked_at is null
  do update set role = excluded.role, invited_by = excluded.invited_by, sent_at = now(),
                expires_at = excluded.expires_at
  returning * into created;
  insert into private.invitation_tokens (invitation_id, token_hash) values (created.id, hash)
  on conflict (invitation_id) do update set token_hash = excluded.token_hash;
  return created;
end;
$$;
revoke execute on function
  app.create_invitation(uuid, text, public.member_role, bytea, interval) from public;
grant execute on function
  app.create_invitation(uuid, text, public.member_role, bytea, interval) to authenticated;

-- Revokes an open invitation of an organization the caller administers.
-- Revoking twice is harmless; an accepted invitation cannot be revoked.
create function app.revoke_invitation(target uuid) returns public.organization_invitations
language plpgsql security definer set search_path = '' as $$
declare
  found_row public.organization_invitations;
begin
  select * into found_row from public.organization_invitations i where i.id = target for update;
  if found_row.id is null or (select app.api_key_id()) is not null
     or not app.has_role(found_row.organization_id, 'admin') then
    raise exception 'No such invitation' using errcode = 'CG404';
  end if;
  if found_row.role = 'owner' and not app.has_role(found_row.organization_id, 'owner') then
    raise exception 'Only owners can grant, change or remove the owner role' using errcode = 'CG403';
  end if;
  if found_row.accepted_at is not null then
    raise exception 'This invitation was already accepted'
      using errcode = 'CG409', hint = 'Remove the member instead';
  end if;
  update public.organization_invitations i set revoked_at = coalesce(i.revoked_at, now())
   where i.id = target returning * into found_row;
  return found_row;
end;
$$;
revoke execute on function app.revoke_invitation(uuid) from public;
grant execute on function app.revoke_invitation(uuid) to authenticated;

-- The signed-in caller accepts the invitation whose token hashes to `hash`.
-- Answers with an outcome instead of raising, so the function can say exactly
-- why not: not_found, wrong_user, revoked, accepted (already), expired; or
-- joined. Only `joined` changes anything. The address is checked first, so a
-- token in the wrong hands learns nothing about the invitation's state.
create function app.accept_invitation(hash bytea)
returns table (outcome text, organization_id uuid, role public.member_role)
language plpgsql security definer set search_path = '' as $$
#variable_conflict use_column
declare
  caller uuid := (select auth.uid());
  invitation public.organization_invitations;
begin
  select i.* into invitation
    from private.invitation_tokens t
    join public.organization_invitations i on i.id = t.invitation_id
   where t.token_hash = hash
     for update of i;
  if invitation.id is null or caller is null then
    return query select 'not_found', null::uuid, null::public.member_role;
  elsif invitation.email is distinct from
        (select lower(u.email) from auth.users u where u.id = caller) then
    return query select 'wrong_user', null::uuid, null::public.member_role;
  elsif invitation.revoked_at is not null then
    return query select 'revoked', invitation.organization_id, invitation.role;
  elsif invitation.accepted_at is not null then
    return query select 'accepted', invitation.organization_id, invitation.role;
  elsif invitation.expires_at <= now() then
    return query select 'expired', invitation.organization_id, invitation.role;
  else
    -- Someone who joined meanwhile keeps the role they have.
    insert into public.organization_members (organization_id, user_id, role)
    values (invitation.organization_id, caller, invitation.role)
    on conflict (organization_id, user_id) do nothing;
    update public.organization_invitations i set accepted_at = now(), accepted_by = caller
     where i.id = invitation.id;
    return query select 'joined', invitation.organization_id, invitation.role;
  end if;
end;
$$;
revoke execute on function app.accept_invitation(bytea) from public;
grant execute on function app.accept_invitation(bytea) to authenticated;
