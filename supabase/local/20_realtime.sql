-- Supabase Realtime's database side: the publication, realtime.messages (not
-- partitioned here: the local server deletes the rows Supabase would drop by day)
-- and the broadcast functions with Supabase's signatures.
-- realtime.send only stores the broadcast, as Supabase's does: the Realtime
-- server reads realtime.messages itself. (A pg_notify here would take the
-- notify queue's lock through every commit and serialize them.)
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

create schema if not exists realtime;
grant usage on schema realtime to postgres, anon, authenticated, service_role;

create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  id uuid not null default gen_random_uuid(),
  primary key (id, inserted_at)
);
alter table realtime.messages enable row level security;
-- Local only: what the local Realtime server (shared/tooling/realtime_feed.py) reads
-- new rows by, where Supabase's reads the WAL. `txid` is the inserting transaction
-- (top-level, also from a subtransaction), for a watermark that is safe in commit
-- order (pg_current_snapshot); `seq` orders one transaction's rows as inserted.
alter table realtime.messages
  add column if not exists txid xid8 not null default pg_current_xact_id(),
  add column if not exists seq bigint generated always as identity;
create index if not exists messages_txid_seq on realtime.messages (txid, seq);
-- The pruning step (Supabase drops day partitions older than 72 hours) finds them here.
create index if not exists messages_inserted_at on realtime.messages (inserted_at);
grant select, insert on realtime.messages to anon, authenticated, service_role;

create or replace function realtime.topic() returns text
language sql stable
as $$
select nullif(current_setting('realtime.topic', true), '')::text;
$$;

create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    generated_id := gen_random_uuid();
    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    end if;

    execute format('SET LOCAL realtime.topic TO %L', topic);

    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'ErrorSendingBroadcastMessage: %', SQLERRM;
  end;
end;
$$;

create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW'
) returns void
language plpgsql
as $$
declare
  row_data jsonb := '{}'::jsonb;
begin
  if level = 'STATEMENT' then
    raise exception 'function can only be triggered for each row, not for each statement';
  end if;
  if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
    row_data := jsonb_build_object('old_record', OLD, 'record', NEW, 'operation', operation,
                                   'table', table_name, 'schema', table_schema);
    perform realtime.send (row_data, event_name, topic_name);
  else
    raise exception 'Unexpected operation type: %', operation;
  end if;
exception
  when others then
    raise exception 'Failed to process the row: %', SQLERRM;
end;
$$;

grant execute on function realtime.topic(), realtime.send(jsonb, text, text, boolean),
  realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  to anon, authenticated, service_role;
