-- Dashboards: a rollup widget reads only its direction's rows under RLS, as the owner does.
--
-- Under RLS the policy's qual runs first, and the planner does not use a qual that is
-- not leakproof as an index condition: `direction = 'outbound'` (an enum equality) was
-- checked on the table rows, so a widget of messages out visited the rows of both
-- directions (twice the owner's heap reads). A partial index per direction needs no
-- such condition: the planner proves its predicate from the query, and the scan reads
-- only that direction's rows. Neither index holds a counter, so the rollup trigger's
-- increments stay HOT updates; a new row (a new hour, account or shard) adds one entry.
create index message_rollups_inbound_idx on public.message_rollups (organization_id, bucket)
  where direction = 'inbound';
create index message_rollups_outbound_idx on public.message_rollups (organization_id, bucket)
  where direction = 'outbound';
