-- A verified webhook delivery is never lost (shared/inbox/intake.py): what
-- PostgreSQL cannot hold as jsonb or text (a NUL character, a lone surrogate) or
-- what the channel cannot read is kept raw, losslessly, as bytes:
--   raw: the delivery's exact body (event_type 'unreadable'), or the event's
--        JSON text with NUL and surrogates as \u escapes (its payload then
--        names the field and why).
-- Such an event is failed with its reason and never retried by itself: what the
-- provider sent will not change.
alter table public.inbound_events add column if not exists raw bytea;

comment on column public.inbound_events.raw is
  'The delivery or event exactly as received, when it cannot be stored as payload (see shared/inbox/intake.py)';

-- As in 20261125210000_inbox_ingest.sql, plus the raw bytes of an event that
-- carries them (item.raw, base64): stored with the event and never retried.
create or replace function app.receive_inbound_events(account uuid, events jsonb, nonce text default null)
returns jsonb
language plpgsql set search_path = '' as $$
declare
  org uuid := (select a.organization_id from public.channel_accounts a where a.id = account);
  item jsonb;
  stored uuid;
  outcome jsonb;
  summary jsonb := jsonb_build_object('received', jsonb_array_length(events), 'duplicates', 0,
    'processed', 0, 'ignored', 0, 'failed', 0, 'new_contacts', '[]'::jsonb);
begin
  if nonce is not null then
    insert into private.webhook_nonces (channel_account_id, nonce) values (account, nonce)
    on conflict do nothing;
    if not found then
      raise exception 'This signed request was already received (a replay)' using errcode = 'CG401';
    end if;
  end if;
  for item in select value from jsonb_array_elements(events) loop
    -- Stored as processed, which it almost always becomes: one write per event.
    insert into public.inbound_events
      (organization_id, channel_account_id, provider_event_id, event_type, payload, raw,
       status, attempts, processed_at)
    values (org, account, item ->> 'provider_event_id', item ->> 'event_type', item -> 'payload',
            decode(item ->> 'raw', 'base64'), 'processed', 1, now())
    on conflict (channel_account_id, provider_event_id) do nothing
    returning id into stored;
    if stored is null then
      summary := jsonb_set(summary, '{duplicates}', to_jsonb((summary ->> 'duplicates')::int + 1));
      continue;
    end if;
    outcome := app.process_inbound_event(stored, account, item -> 'parsed', item ->> 'parse_error', true);
    if item ? 'raw' then
      update public.inbound_events e set next_attempt_at = 'infinity'
       where e.id = stored and e.status = 'failed';
    end if;
    summary := jsonb_set(summary, array[outcome ->> 'status'],
                         to_jsonb((summary ->> (outcome ->> 'status'))::int + 1));
    if outcome ? 'new_contact' then
      summary := jsonb_set(summary, '{new_contacts}', (summary -> 'new_contacts') || jsonb_build_array(
        jsonb_build_object('contact_id', outcome -> 'new_contact', 'external_id', outcome -> 'external_id')));
    end if;
  end loop;
  return summary;
end;
$$;
revoke execute on function app.receive_inbound_events(uuid, jsonb, text) from public;
