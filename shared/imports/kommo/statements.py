"""The statements that write a page of each entity (store.py runs them).

Each reads the page as a JSON record set, finds each record's row through
`import_external_refs` (a re-run updates it), or an existing row it matches (a
contact by e-mail or phone, a company by domain), inserts the rest with ids
chosen up front, and records every reference, all in one statement.
"""

from __future__ import annotations


def ref(entity: str, table: str, external: str) -> str:
    """Our id of a Kommo record already imported (and still there), as a SQL expression."""
    return (
        f"(select t.id from public.import_external_refs x join public.{table} t"
        f" on t.organization_id = x.organization_id and t.id = x.internal_id"
        f" where x.organization_id = $1 and x.source = 'kommo' and x.entity = '{entity}'"
        f" and x.external_id = {external})"
    )


def upsert_sql(
    *,
    table: str,
    entity: str,
    columns: dict[str, str],  # input column → its SQL type
    insert: dict[str, str],  # table column → expression over the input row `i`
    update: dict[str, str],  # table column → expression over `i` and the row `t`
    match: str = "null::uuid",  # an existing row to take over when there is no reference
) -> str:
    cols = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    sets = ", ".join(f"{col} = {expr}" for col, expr in update.items())
    return f"""
with input as (select * from jsonb_to_recordset($2::jsonb) as r(ext text, ord int, {cols})),
found as (
  select i.*, coalesce(t.id, {match}) as found_id
    from input i
    left join public.import_external_refs x
      on x.organization_id = $1 and x.source = 'kommo' and x.entity = '{entity}'
     and x.external_id = i.ext
    left join public.{table} t on t.organization_id = $1 and t.id = x.internal_id),
targets as (
  select f.*, coalesce(f.found_id, gen_random_uuid()) as id, f.found_id is null as is_new,
         -- two records taking over one row: the first writes it, both refer to it
         row_number() over (partition by f.found_id order by f.ord) as nth
    from found f),
updated as (
  update public.{table} t set {sets} from targets i
   where t.organization_id = $1 and t.id = i.id and not i.is_new and i.nth = 1
  returning t.id),
inserted as (
  insert into public.{table} (id, organization_id, {", ".join(insert)})
  select i.id, $1, {", ".join(insert.values())} from targets i where i.is_new order by i.ord
  returning id),
refs as (
  insert into public.import_external_refs
    (organization_id, source, entity, external_id, internal_id, job_id)
  select $1, 'kommo', '{entity}', i.ext, i.id, $3 from targets i
  on conflict (organization_id, source, entity, external_id) do update
    set internal_id = excluded.internal_id, job_id = excluded.job_id, updated_at = now())
select i.ext, i.id, i.is_new, (select count(*) from updated) as updated from targets i
"""


CF_MERGE = "t.custom_fields || i.custom_fields"

PIPELINES = upsert_sql(
    table="pipelines",
    entity="pipeline",
    columns={"name": "text", "position": "int"},
    insert={"name": "i.name", "position": "i.position"},
    update={"name": "i.name", "position": "i.position"},
)
STAGES = upsert_sql(
    table="stages",
    entity="stage",
    columns={"pipeline_id": "uuid", "name": "text", "position": "int", "kind": "public.stage_kind"},
    insert={
        "pipeline_id": "i.pipeline_id",
        "name": "i.name",
        "position": "i.position",
        "kind": "i.kind",
        "probability": "case i.kind when 'won' then 100 else 0 end",
    },
    update={"name": "i.name", "position": "i.position"},
)
COMPANIES = upsert_sql(
    table="companies",
    entity="company",
    columns={
        "name": "text",
        "domain": "text",
        "phone": "text",
        "custom_fields": "jsonb",
        "assignee_id": "uuid",
    },
    insert={
        "name": "i.name",
        "domain": "i.domain",
        "phone": "i.phone",
        "custom_fields": "i.custom_fields",
        "assignee_id": "i.assignee_id",
    },
    update={
        "name": "i.name",
        # a domain another company holds stays with it
        "domain": "coalesce((select i.domain where not exists (select 1 from public.companies c"
        " where c.organization_id = $1 and c.domain = i.domain and c.id <> i.id)), t.domain)",
        "phone": "coalesce(i.phone, t.phone)",
        "custom_fields": CF_MERGE,
        "assignee_id": "coalesce(i.assignee_id, t.assignee_id)",
    },
    match="(select c.id from public.companies c where c.organization_id = $1"
    " and c.domain = i.domain)",
)
CONTACTS = upsert_sql(
    table="contacts",
    entity="contact",
    columns={
        "name": "text",
        "email": "text",
        "phone": "text",
        "custom_fields": "jsonb",
        "assignee_id": "uuid",
        "company": "text",
    },
    insert={
        "name": "i.name",
        "email": "i.email",
        "phone": "i.phone",
        "custom_fields": "i.custom_fields",
        "assignee_id": "i.assignee_id",
        "company_id": ref("company", "companies", "i.company"),
        "source": "'kommo'",
    },
    update={
        "name": "coalesce(i.name, t.name)",
        # an address or number another contact holds stays with it
        "email": "coalesce((select i.email where not exists (select 1 from public.contacts c"
        " where c.organization_id = $1 and c.email = i.email and c.id <> i.id)), t.email)",
        "phone": "coalesce((select i.phone where not exists (select 1 from public.contacts c"
        " where c.organization_id = $1 and c.phone = i.phone and c.id <> i.id)), t.phone)",
        "custom_fields": CF_MERGE,
        "assignee_id": "coalesce(i.assignee_id, t.assignee_id)",
        "company_id": f"coalesce({ref('company', 'companies', 'i.company')}, t.company_id)",
    },
    # the inbox may already know them: by e-mail first, then by phone
    match="(select c.id from public.contacts c where c.organization_id = $1"
    " and (c.email = i.email or c.phone = i.phone) order by c.email = i.email desc nulls last"
    " limit 1)",
)
DEALS = upsert_sql(
    table="deals",
    entity="lead",
    columns={
        "title": "text",
        "value": "numeric",
        "currency": "text",
        "pipeline_id": "uuid",
        "stage_id": "uuid",
        "assignee_id": "uuid",
        "lost_reason": "text",
        "closed_at": "timestamptz",
        "custom_fields": "jsonb",
        "contact": "text",
        "company": "text",
    },
    insert={
        "title": "i.title",
        "value": "i.value",
        "currency": "i.currency",
        "pipeline_id": "i.pipeline_id",
        "stage_id": "i.stage_id",
        "assignee_id": "i.assignee_id",
        "lost_reason": "i.lost_reason",
        "won_at": "i.closed_at",
        "lost_at": "i.closed_at",
        "custom_fields": "i.custom_fields",
        "contact_id": ref("contact", "contacts", "i.contact"),
        "company_id": ref("company", "companies", "i.company"),
    },
    update={
        "title": "i.title",
        "value": "i.value",
        "pipeline_id": "i.pipeline_id",
        "stage_id": "i.stage_id",
        "assignee_id": "coalesce(i.assignee_id, t.assignee_id)",
        "lost_reason": "i.lost_reason",
        "won_at": "i.closed_at",
        "lost_at": "i.closed_at",
        "custom_fields": CF_MERGE,
        "contact_id": f"coalesce({ref('contact', 'contacts', 'i.contact')}, t.contact_id)",
        "company_id": f"coalesce({ref('company', 'companies', 'i.company')}, t.company_id)",
    },
)
NOTES = upsert_sql(
    table="notes",
    entity="note",
    columns={
        "body": "text",
        "author_id": "uuid",
        "contact_id": "uuid",
        "company_id": "uuid",
        "deal_id": "uuid",
        "created_at": "timestamptz",
    },
    insert={
        "body": "i.body",
        "author_id": "i.author_id",
        "contact_id": "i.contact_id",
        "company_id": "i.company_id",
        "deal_id": "i.deal_id",
        "created_at": "coalesce(i.created_at, now())",
    },
    update={"body": "i.body"},
)
TASKS = upsert_sql(
    table="tasks",
    entity="task",
    columns={
        "title": "text",
        "description": "text",
        "due_at": "timestamptz",
        "status": "public.task_status",
        "assignee_id": "uuid",
        "contact_id": "uuid",
        "deal_id": "uuid",
        "completed_at": "timestamptz",
        "created_at": "timestamptz",
    },
    insert={
        "title": "i.title",
        "description": "i.description",
        "due_at": "i.due_at",
        "status": "i.status",
        "assignee_id": "i.assignee_id",
        "contact_id": "i.contact_id",
        "deal_id": "i.deal_id",
        "completed_at": "i.completed_at",
        "created_at": "coalesce(i.created_at, now())",
    },
    update={
        "title": "i.title",
        "description": "i.description",
        "due_at": "i.due_at",
        "status": "i.status",
        "assignee_id": "coalesce(i.assignee_id, t.assignee_id)",
        "completed_at": "i.completed_at",
    },
)
SQL = {
    "pipeline": PIPELINES,
    "stage": STAGES,
    "company": COMPANIES,
    "contact": CONTACTS,
    "lead": DEALS,
    "note": NOTES,
    "task": TASKS,
}


FIELDS = """
with input as (
  select * from jsonb_to_recordset($2::jsonb) as r(
    ext text, entity public.custom_field_entity, key text, label text,
    type public.custom_field_type, options jsonb, position int)),
up as (
  insert into public.custom_field_definitions as d
    (organization_id, entity, key, label, type, options, position)
  select $1, i.entity, i.key, i.label, i.type, i.options, i.position from input i
  on conflict (organization_id, entity, key) do update
    set label = excluded.label,
        -- options only grow: values stored under an old option stay valid
        options = case when d.options is null or excluded.options is null then d.options
                       else d.options || coalesce((select jsonb_agg(o)
                              from jsonb_array_elements(excluded.options) o
                             where not d.options @> jsonb_build_array(o)), '[]') end
  returning d.id, d.entity, d.key, d.type::text as type, d.options),
refs as (
  insert into public.import_external_refs
    (organization_id, source, entity, external_id, internal_id, job_id)
  select $1, 'kommo', 'custom_field', i.ext, up.id, $3
    from up join input i on i.entity = up.entity and i.key = up.key
  on conflict (organization_id, source, entity, external_id) do update
    set internal_id = excluded.internal_id, job_id = excluded.job_id, updated_at = now())
select up.entity::text as entity, up.key, up.type, up.options from up
"""
