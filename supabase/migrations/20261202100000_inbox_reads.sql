-- Inbox reads at scale: what the SPA reads through PostgREST under RLS, as fast as
-- the owner would read it (docs/inbox-queries.md has the queries this is built for).
--
-- Three things keep RLS reads slow, and each has its answer here:
--   1. `organization_id in (select app.org_ids())` is a hashed subplan: a filter
--      applied row by row, never an index condition. A query that leaves the
--      organization to RLS then scans the whole table. Written as `= any (array(…))`
--      the same rule becomes an InitPlan parameter the index scan starts from.
--   2. Under RLS only leakproof operators reach an index (PostgreSQL keeps a
--      non-leakproof qual from running before the policy). ILIKE and enum `=` are
--      not leakproof, so substring search and a status index are useless through
--      PostgREST; search goes through the security-definer functions below, and
--      the inbox walks its recency index with status as a filter.
--   3. Policies inflate cost estimates past jit_above_cost, and JIT compiles
--      for hundreds of milliseconds on queries that run in a few: JIT is off for the
--      API roles (PostgREST applies the impersonated role's settings per request),
--      and their statements are planned for their parameters (below).

-- ---- 1. the read policies: same rule, index-friendly form ---------------------------------
-- Who sees what is unchanged: every member (and API key) of the row's organization.
alter policy contacts_select on public.contacts
  using (organization_id = any (array(select app.org_ids())));
alter policy conversations_select on public.conversations
  using (organization_id = any (array(select app.org_ids())));
alter policy messages_select on public.messages
  using (organization_id = any (array(select app.org_ids())));

-- ---- 2. indexes ---------------------------------------------------------------------------
-- The inbox: newest conversation first, in the public API's order too (-last_message_at:
-- desc nulls last, then id). It replaces (organization_id, status, last_message_at),
-- which no RLS query could use past its first column (status = is not leakproof) and
-- which ordered nothing without a status.
drop index public.conversations_inbox_idx;
create index conversations_recent_idx
  on public.conversations (organization_id, last_message_at desc nulls last, id);

-- Substring search (ILIKE '%…%') over message bodies and contacts' name, e-mail and
-- phone, with pg_trgm where Supabase keeps extensions. A rare word is looked up in
-- the trigram index; a common one (a match in every hundred messages) is found sooner
-- by reading the organization's newest messages until a page is full.
create schema if not exists extensions;
create extension if not exists pg_trgm with schema extensions;
create index messages_body_trgm_idx
  on public.messages using gin (body extensions.gin_trgm_ops);
-- Ascending, read backwards: new messages land at the end of their organization's
-- range, where a page fills before it splits (a descending index would take them at
-- the front and split pages in halves).
create index messages_org_created_idx on public.messages (organization_id, created_at, id);
-- Which of the two is cheaper depends on how common the word is, which the planner
-- reads from body's histogram: with the default 100 entries a word in 1% of messages
-- is missing from it a third of the time (and taken for a rare one); 500 see it.
alter table public.messages alter column body set statistics 500;
create index contacts_search_trgm_idx on public.contacts using gin (
  (coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, ''))
  extensions.gin_trgm_ops
);

-- ---- 3. no JIT for the API roles; plans made for the request's values -----------------------
alter role anon set jit = off;
alter role authenticated set jit = off;
alter role service_role set jit = off;
-- PostgREST prepares its statements with the filter values as parameters. After five
-- runs PostgreSQL may keep a generic plan, made without the values: for a keyset page
-- (last_message_at <= $cursor) it guesses a third of the list and sorts it, where the
-- plan for the actual cursor walks the index from it. Planning each request costs well
-- under a millisecond; a generic plan gone wrong costs the whole list.
alter role authenticated set plan_cache_mode = force_custom_plan;

-- ---- search, for the SPA and the public API ---------------------------------------------------
-- Security definer, so the trigram indexes serve the ILIKE (under RLS they cannot);
-- each checks membership first with the helper the read policies use (app.org_ids():
-- the signed-in member's organizations, or the API key's), then reads that one
-- organization's rows. Three characters at least: a shorter pattern has no trigram
-- and would read the whole index. Newest first (messages: created_at desc, id desc;
-- contacts: created_at desc, id, the orders of their indexes), a page of at most 1000,
-- continued after the last row seen (after_created_at, after_id).
-- plpgsql with EXECUTE … USING: each call is planned with its values, so a rare word
-- reads the trigram index and a common one walks the newest rows until a page is full.

-- The pattern that matches `term` anywhere, its own % _ \ taken literally.
create function app.substring_pattern(term text) returns text
language sql immutable set search_path = '' as $$
  select '%' || replace(replace(replace(btrim(term), '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;

create function app.check_search(org uuid, term text) returns void
language plpgsql stable set search_path = '' as $$
begin
  if org is null or not exists (select 1 from app.org_ids() o where o = org) then
    raise exception 'Not a member of this organization' using errcode = '42501';
  end if;
  if term is null or length(btrim(term)) < 3 or length(term) > 200 then
    raise exception 'Search for 3 to 200 characters' using errcode = '22023';
  end if;
end;
$$;

create function public.search_messages(
  organization_id uuid, query text,
  after_created_at timestamptz default null, after_id uuid default null,
  max_rows integer default 50
) returns setof public.messages
language plpgsql stable security definer set search_path = '' as $$
begin
  perform app.check_search(organization_id, query);
  return query execute
    'select m.* from public.messages m
      where m.organization_id = $1 and m.body ilike $2
        and ($3::timestamptz is null
             or m.created_at < $3 or (m.created_at = $3 and m.id < $4))
      order by m.created_at desc, m.id desc
      limit least(greatest($5, 1), 1000)'
    using organization_id, app.substring_pattern(query), after_created_at,
          coalesce(after_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid), max_rows;
end;
$$;

-- Over name, e-mail and phone at once (the expression of contacts_search_trgm_idx).
create function public.search_contacts(
  organization_id uuid, query text,
  after_created_at timestamptz default null, after_id uuid default null,
  max_rows integer default 50
) returns setof public.contacts
language plpgsql stable security definer set search_path = '' as $$
begin
  perform app.check_search(organization_id, query);
  return query execute
    'select c.* from public.contacts c
      where c.organization_id = $1
        and (coalesce(c.name, '''') || '' '' || coalesce(c.email, '''') || '' ''
             || coalesce(c.phone, '''')) ilike $2
        and ($3::timestamptz is null
             or c.created_at < $3 or (c.created_at = $3 and c.id > $4))
      order by c.created_at desc, c.id
      limit least(greatest($5, 1), 1000)'
    using organization_id, app.substring_pattern(query), after_created_at,
          coalesce(after_id, '00000000-0000-0000-0000-000000000000'::uuid), max_rows;
end;
$$;

revoke execute on function
  app.substring_pattern(text), app.check_search(uuid, text),
  public.search_messages(uuid, text, timestamptz, uuid, integer),
  public.search_contacts(uuid, text, timestamptz, uuid, integer)
  from public, anon, authenticated, service_role;
grant execute on function
  public.search_messages(uuid, text, timestamptz, uuid, integer),
  public.search_contacts(uuid, text, timestamptz, uuid, integer)
  to authenticated;
