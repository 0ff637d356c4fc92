-- CRM, part 3: tags, and their application to contacts, deals and conversations.
-- A tag's name is unique in its organization whatever its case ("VIP" = "vip").

create table public.tags (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(name) between 1 and 50 and name = btrim(name)),
  color text not null default '#64748b' check (color ~ '^#[0-9a-f]{6}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id)
);
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
create index conversation_tags_tag_idx
  on public.conversation_tags (organization_id, tag_id, conversation_id);

-- Links never change; they are added and removed.
create trigger contact_tags_keep_org before update on public.contact_tags
  for each row execute function app.keep_organization();
create trigger deal_tags_keep_org before update on public.deal_tags
  for each row execute function app.keep_organization();
create trigger conversation_tags_keep_org before update on public.conversation_tags
  for each row execute function app.keep_organization();
