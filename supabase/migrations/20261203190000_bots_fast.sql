-- The bot pass after each webhook asks, per organization, whether any bot could act
-- on its messages: a triggered flow (bot_flows_triggers_idx) or a live session. The
-- live sessions of an organization, from this index alone, however many have ended.
create index bot_sessions_live_org_idx on public.bot_sessions (organization_id, conversation_id)
  where status in ('active', 'waiting');
