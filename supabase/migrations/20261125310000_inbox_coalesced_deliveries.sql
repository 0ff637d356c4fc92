-- Webhook deliveries that arrived together (shared/coalesce.py) in one
-- transaction, so a busy server makes one round trip and one commit for many:
--   deliveries: [{account, events, nonce}] → [summary of app.receive_inbound_events]
-- in the same order. Anything that raises (a replayed nonce) fails the batch,
-- and the caller runs its deliveries again one by one.
--
-- The senders' locks (taken again by app.ingest_message, with the same key) are
-- taken first and in one order, so two batches never wait on each other in a cycle.
create function app.receive_inbound_deliveries(deliveries jsonb) returns jsonb
language plpgsql set search_path = '' as $$
begin
  perform pg_advisory_xact_lock(s.key)
     from (select distinct hashtextextended(
                    a.organization_id::text || ':' || a.channel::text || ':'
                    || (e.value -> 'parsed' -> 'sender' ->> 'external_id'), 0) as key
             from jsonb_array_elements(deliveries) d
             join public.channel_accounts a on a.id = (d.value ->> 'account')::uuid
            cross join jsonb_array_elements(d.value -> 'events') e
            where e.value -> 'parsed' ->> 'kind' = 'message'
            order by 1) s;
  return (select jsonb_agg(app.receive_inbound_events((d.value ->> 'account')::uuid,
                                                      d.value -> 'events', d.value ->> 'nonce')
                           order by d.n)
            from jsonb_array_elements(deliveries) with ordinality d (value, n));
end;
$$;
